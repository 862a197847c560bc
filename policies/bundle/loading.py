"""Verified loading: a bundle's files checked before anything runs, on onnxruntime alone and never unpickling.

:func:`load_bundle` reads a bundle directory or ``.zip`` and checks, in order: that no zip entry escapes the
bundle folder and every file is a plain file; that every file is listed in ``checksums.sha256`` and matches its
hash; the card's bundle schema version and fields; the network's opset, inputs and outputs against the card; that
the golden vectors reproduce; and, when the caller gives one, the observation schema against the expected one.
Any failure raises :class:`~payroute.errors.PayrouteError` naming the file and the problem.
"""

from __future__ import annotations

import functools
import hashlib
import os
import posixpath
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from payroute.config_io import parse_json
from payroute.errors import PayrouteError, format_validation_error
from payroute.policies.bundle.card import (
    BUNDLE_FILES,
    BUNDLE_SCHEMA_VERSION,
    CARD_FILE,
    CHECKSUM_FILE,
    GOLDEN_ATOL,
    GOLDEN_FILE,
    GOLDEN_RTOL,
    LOGITS_OUTPUT,
    MASK_INPUT,
    MAX_BUNDLE_BYTES,
    MAX_BUNDLE_ENTRIES,
    MAX_FILE_BYTES,
    MAX_OTHER_FILE_BYTES,
    OBS_INPUT,
    ONNX_INPUTS,
    ONNX_OUTPUTS,
    POLICY_FILE,
    SIGNATURE_FILE,
    SUPPORTED_OPSETS,
    FeatureSpec,
    PolicyCard,
    check_observation_schema,
)
from payroute.policies.bundle.runtime import BundlePolicy
from payroute.policies.bundle.sandbox import GraphLimits, run_limited
from payroute.policies.bundle.signing import TrustedKey, default_trusted_keys, verify_signature


def load_bundle(
    path: str | Path,
    *,
    expected_observation: Sequence[FeatureSpec | Mapping[str, Any] | str] | None = None,
    threads: int = 1,
    trusted_keys: Sequence[TrustedKey] | None = None,
    require_signature: bool = False,
    limits: GraphLimits | None = None,
) -> BundlePolicy:
    """Verify and load a bundle (directory or ``.zip``). Never unpickles; needs onnxruntime only.

    ``expected_observation`` (feature names, or feature specs compared field by field) is checked against the
    card's observation schema. ``threads`` is onnxruntime's intra-op thread count. ``trusted_keys`` are the public
    keys whose signature makes the bundle trusted (default: the zoo's key); ``require_signature`` refuses a bundle
    that is unsigned or signed by a key not among them; an invalid signature is always refused. A bundle that is
    not trusted has its graph run first in a child process under ``limits`` (default :class:`GraphLimits`), and
    then every call of it in this process under the same time and memory limits. The result's ``signature`` says
    who signed it. Raises :class:`~payroute.errors.PayrouteError` naming the file and
    the problem when the bundle is incomplete, tampered with, unsafe, of another schema version or inconsistent.
    """
    path = Path(path)
    return load_bundle_files(
        _read_bundle_files(path), path, expected_observation=expected_observation, threads=threads,
        trusted_keys=trusted_keys, require_signature=require_signature, limits=limits,
    )  # fmt: skip


def read_bundle_files(path: str | Path) -> dict[str, bytes]:
    """The files of the bundle at ``path`` (directory or ``.zip``) by name, read as :func:`load_bundle` reads
    them (plain files only, no entry escaping the folder, every file listed in the checksums, sizes bounded);
    nothing is verified beyond that. :func:`load_bundle_files` verifies them, wherever they were shipped to."""
    return _read_bundle_files(Path(path))


def load_bundle_files(
    files: Mapping[str, bytes],
    source: str | Path,
    *,
    expected_observation: Sequence[FeatureSpec | Mapping[str, Any] | str] | None = None,
    threads: int = 1,
    trusted_keys: Sequence[TrustedKey] | None = None,
    require_signature: bool = False,
    limits: GraphLimits | None = None,
) -> BundlePolicy:
    """:func:`load_bundle` on a bundle's files already in memory (a bundle shipped as bytes to another machine):
    the same checks, in the same order; ``source`` is the path the bundle had where it was read (its name is
    the one the messages give)."""
    path = Path(source)
    name = path.name
    files = dict(files)
    _check_shipped_names(files, name)
    _check_checksums(files, name)
    keys = default_trusted_keys() if trusted_keys is None else tuple(trusted_keys)
    signature = verify_signature(files, keys, name)
    if require_signature and not signature.trusted:
        raise PayrouteError(
            f"bundle {name} is {signature.describe()}; a signature by a trusted key is required "
            "(--trusted-key PUB, or integrity.require_signature: false in the review config)"
        )
    card = _parse_card(files[CARD_FILE], name)
    onnx_bytes = files[POLICY_FILE]
    check_onnx(onnx_bytes, card, name)
    batches, golden = _golden_batches(files[GOLDEN_FILE], card, name)
    limits = limits or GraphLimits()
    if not signature.trusted:  # an untrusted graph runs under limits before it runs here
        _check_outputs(run_limited(onnx_bytes, batches, limits, name), golden, card, name)
    here = None if signature.trusted else limits  # and every call here is stopped past them
    policy = BundlePolicy(
        card, onnx_bytes, path, threads, signature=signature, limits=here, trusted_keys=keys
    )
    _check_outputs([policy.run(o, m) for o, m in batches], golden, card, name)
    policy.checksums_sha256 = hashlib.sha256(files[CHECKSUM_FILE]).hexdigest()
    if expected_observation is not None:
        check_observation_schema(card, expected_observation, name)
    return policy


def _check_shipped_names(files: dict[str, bytes], name: str) -> None:
    """What reading a bundle from disk checks of its entries, again on files held in memory: the checksums
    file is there, every other file is listed in it (or is the signature), none is larger than its bound."""
    if CHECKSUM_FILE not in files:
        raise PayrouteError(f"bundle {name}: {CHECKSUM_FILE} is missing")
    listed = _parse_checksums(files[CHECKSUM_FILE], name)
    for rel, data in files.items():
        if rel not in listed and rel not in (CHECKSUM_FILE, SIGNATURE_FILE):
            raise PayrouteError(f"bundle {name}: {rel} is not listed in {CHECKSUM_FILE}; refusing to load")
        bound = MAX_FILE_BYTES.get(rel, MAX_OTHER_FILE_BYTES)
        if len(data) > bound:
            raise PayrouteError(
                f"bundle {name}: {rel} is {len(data):,} bytes; at most {bound:,} allowed; refusing to load"
            )


# ---------------------------------------------------------------------- reading files safely
def _read_bundle_files(path: Path) -> dict[str, bytes]:
    if not path.exists():
        raise PayrouteError(f"bundle not found: {path}")
    if path.is_dir():
        return _read_entries(path.name, _directory_entries(path))
    if not path.is_file():  # a FIFO or a device would block or never end
        raise PayrouteError(f"bundle {path.name} is neither a directory nor a plain file")
    if path.stat().st_size > MAX_BUNDLE_BYTES:
        raise PayrouteError(f"bundle {path.name} is larger than {MAX_BUNDLE_BYTES:,} bytes; refusing")
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as err:
        raise PayrouteError(f"bundle {path.name} cannot be read ({err.strerror})") from None
    if is_zip:
        try:
            with zipfile.ZipFile(path) as zf:
                return _read_entries(path.name, _zip_entries(path.name, zf))
        except PayrouteError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as err:
            raise PayrouteError(f"bundle {path.name} is not a readable zip ({_one_line(err)})") from None
    raise PayrouteError(f"{path} is neither a bundle directory nor a .zip of one")


def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"


# an entry: (the name in the bundle, the name to show, its size as stat or the zip header says, a reader that
# returns at most n bytes)
_Entry = tuple[str, str, int, Callable[[int], bytes]]


def _directory_entries(path: Path) -> list[_Entry]:
    entries = []
    for entry in sorted(path.iterdir()):
        st = entry.lstat()
        if not stat.S_ISREG(st.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a plain file"
            raise PayrouteError(
                f"bundle {path.name}: {entry.name} is {kind}; a bundle holds plain files only"
            )
        entries.append((entry.name, entry.name, st.st_size, functools.partial(_read_plain, entry)))
    return entries


def _read_plain(entry: Path, limit: int) -> bytes:
    fd = os.open(entry, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise PayrouteError(f"{entry.name} is not a plain file")
        return f.read(limit)


def _safe_member_name(raw: str) -> str | None:
    """The normalised name of a zip entry, or None when it could land outside the bundle folder."""
    if not raw or "\\" in raw or raw.startswith("/") or (len(raw) > 1 and raw[1] == ":") or "\x00" in raw:
        return None
    parts = raw.rstrip("/").split("/")
    if any(p in ("..", "") for p in parts):
        return None
    return posixpath.normpath(raw)


def _zip_entries(name: str, zf: zipfile.ZipFile) -> list[_Entry]:
    infos = zf.infolist()
    if len(infos) > MAX_BUNDLE_ENTRIES:
        raise PayrouteError(
            f"bundle {name}: {len(infos)} zip entries; a bundle holds at most {MAX_BUNDLE_ENTRIES}"
        )
    safe_names = []
    for info in infos:
        safe = _safe_member_name(info.filename)
        if safe is None:
            raise PayrouteError(
                f"bundle {name}: zip entry {info.filename!r} escapes the bundle folder; refusing to load"
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            raise PayrouteError(f"bundle {name}: zip entry {info.filename!r} is a symbolic link; refusing")
        safe_names.append(safe)
    if sum(i.file_size for i in infos) > MAX_BUNDLE_BYTES:
        raise PayrouteError(f"bundle {name}: inflates to more than {MAX_BUNDLE_BYTES} bytes; refusing")
    file_infos = [(info, n) for info, n in zip(infos, safe_names, strict=True) if not info.is_dir()]
    # files at the archive root, or all under one folder (``zip -r bundle.zip bundle/``)
    tops = {n.split("/")[0] for _, n in file_infos}
    prefix = ""
    if len(tops) == 1 and all("/" in n for _, n in file_infos):
        prefix = next(iter(tops)) + "/"
    entries = []
    for info, n in file_infos:
        rel = n[len(prefix) :]
        if "/" in rel:
            raise PayrouteError(f"bundle {name}: unexpected nested entry {info.filename!r}")
        if info.flag_bits & 0x1:
            raise PayrouteError(f"bundle {name}: zip entry {info.filename!r} is encrypted; a bundle is not")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise PayrouteError(
                f"bundle {name}: zip entry {info.filename!r} uses compression method {info.compress_type}; "
                "allowed: stored (0) or deflated (8)"
            )
        entries.append((rel, info.filename, info.file_size, functools.partial(_read_member, zf, info)))
    return entries


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    chunks, total = [], 0
    with zf.open(info) as f:  # stops at the declared size and checks the CRC there
        while total < limit:
            chunk = f.read(min(1 << 20, limit - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    return b"".join(chunks)


def _read_entries(name: str, entries: list[_Entry]) -> dict[str, bytes]:
    """Every entry, checksums first; an entry not listed in the checksums or larger than its bound is refused
    by its declared or stat size before it is read, and no read goes past the bound whatever a header says."""
    seen: set[str] = set()
    for rel, shown, _size, _read in entries:
        if rel in seen:
            raise PayrouteError(f"bundle {name}: zip entry {shown!r} appears twice")
        seen.add(rel)
    by_name = {e[0]: e for e in entries}
    if CHECKSUM_FILE not in by_name:
        raise PayrouteError(f"bundle {name}: {CHECKSUM_FILE} is missing")
    files = {CHECKSUM_FILE: _read_entry(name, by_name[CHECKSUM_FILE])}
    listed = _parse_checksums(files[CHECKSUM_FILE], name)
    for rel in by_name:
        if rel not in listed and rel not in (CHECKSUM_FILE, SIGNATURE_FILE):
            raise PayrouteError(f"bundle {name}: {rel} is not listed in {CHECKSUM_FILE}; refusing to load")
    for rel, entry in by_name.items():
        if rel != CHECKSUM_FILE:
            files[rel] = _read_entry(name, entry)
    return files


def _read_entry(name: str, entry: _Entry) -> bytes:
    rel, shown, size, read = entry
    bound = MAX_FILE_BYTES.get(rel, MAX_OTHER_FILE_BYTES)
    if size > bound:
        raise PayrouteError(
            f"bundle {name}: {shown} is {size:,} bytes; at most {bound:,} allowed; refusing to load"
        )
    try:
        data = read(bound + 1)
    except PayrouteError as err:
        raise PayrouteError(f"bundle {name}: {err}") from None
    except (
        zipfile.BadZipFile,
        zlib.error,
        OSError,
        EOFError,
        RuntimeError,
        NotImplementedError,
        ValueError,
    ) as err:
        raise PayrouteError(f"bundle {name}: entry {shown!r} cannot be read ({_one_line(err)})") from None
    if len(data) > bound or len(data) != size:
        raise PayrouteError(
            f"bundle {name}: entry {shown!r} holds {'more than ' if len(data) > bound else ''}{len(data):,} "
            f"bytes, not the {size:,} its header or stat says; refusing to load"
        )
    return data


def _parse_checksums(raw: bytes, name: str) -> dict[str, str]:
    listed: dict[str, str] = {}
    for lineno, line in enumerate(raw.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, fname = line.partition("  ")
        if not sep:
            digest, sep, fname = line.partition(" *")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or "/" in fname:
            raise PayrouteError(
                f"bundle {name}: {CHECKSUM_FILE} line {lineno} is not '<sha256>  <file name>'"
            )
        listed[fname] = digest
    return listed


def _check_checksums(files: dict[str, bytes], name: str) -> None:
    listed = _parse_checksums(files[CHECKSUM_FILE], name)
    for required in BUNDLE_FILES:
        if required not in files:
            raise PayrouteError(f"bundle {name}: {required} is missing")
        if required not in listed:
            raise PayrouteError(f"bundle {name}: {required} is not listed in {CHECKSUM_FILE}")
    for fname, digest in listed.items():
        if fname not in files:
            raise PayrouteError(f"bundle {name}: {fname} is listed in {CHECKSUM_FILE} but missing")
        if hashlib.sha256(files[fname]).hexdigest() != digest:
            raise PayrouteError(
                f"bundle {name}: {fname} does not match its checksum (changed after export); refusing to load"
            )


def _json(raw: bytes, name: str, fname: str) -> Any:
    """A bundle's JSON file, read within :func:`~payroute.config_io.parse_json`'s limits (UTF-8, size, nesting)."""
    return parse_json(raw, f"bundle {name}: {fname}")


def _parse_card(raw: bytes, name: str) -> PolicyCard:
    data = _json(raw, name, CARD_FILE)
    if not isinstance(data, dict):
        raise PayrouteError(f"bundle {name}: {CARD_FILE} must hold a JSON object")
    version = data.get("bundle_schema_version")
    if version != BUNDLE_SCHEMA_VERSION:
        raise PayrouteError(
            f"bundle {name}: {CARD_FILE} bundle_schema_version is {str(version)[:40]!r}; this payroute reads "
            f"{BUNDLE_SCHEMA_VERSION!r}"
        )
    try:
        return PolicyCard.model_validate(data)
    except ValidationError as err:
        raise PayrouteError(format_validation_error(f"bundle {name}: {CARD_FILE}", err)) from None


def _all_graphs(graph: Any) -> Iterator[Any]:
    """A graph and every subgraph in its nodes' attributes (Loop, Scan and If bodies), depth first."""
    stack = [graph]
    while stack:
        g = stack.pop()
        yield g
        for node in g.node:
            for attr in node.attribute:
                stack += ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)


def _all_tensors(graph: Any) -> Iterator[tuple[str, Any]]:
    for g in _all_graphs(graph):
        yield from ((t.name, t) for t in g.initializer)
        for sp in g.sparse_initializer:
            yield from ((sp.values.name, sp.values), (sp.indices.name, sp.indices))
        for node in g.node:
            for attr in node.attribute:
                where = f"attribute {attr.name!r} of node {node.name or node.op_type!r}"
                tensors = ([attr.t] if attr.HasField("t") else []) + list(attr.tensors)
                for sp in ([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []) + list(
                    attr.sparse_tensors
                ):
                    tensors += [sp.values, sp.indices]
                yield from ((where, t) for t in tensors)


def check_onnx(onnx_bytes: bytes, card: PolicyCard, name: str = "export") -> None:
    """The graph, checked before anything runs it: self-contained (no external data), only the standard
    ``ai.onnx`` domain at the card's opset, ``onnx.checker`` clean, and the interface the card declares with a
    dynamic batch dimension."""
    import onnx

    def fail(problem: str) -> PayrouteError:
        return PayrouteError(f"bundle {name}: {POLICY_FILE} {problem}")

    try:
        model = onnx.load_model_from_string(onnx_bytes)
    except Exception as err:  # protobuf's DecodeError, RecursionError, ...
        raise fail(f"is not a valid ONNX model ({_one_line(err)})") from None
    # before the checker, which would look for an external file (relative to the working directory)
    for where, tensor in _all_tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            raise fail(
                f"tensor {where[:80]!r} refers to an external data file; a bundle's network must be "
                "self-contained (nothing outside the bundle is ever read)"
            )
    if len(model.functions):
        raise fail(
            f"defines {len(model.functions)} local functions; only standard ai.onnx operators are allowed"
        )
    domains = {op.domain: op.version for op in model.opset_import}
    unknown = sorted(set(domains) - {"", "ai.onnx"})
    if unknown:
        raise fail(f"imports op domains {unknown[:3]}; only the standard ai.onnx domain is allowed")
    for g in _all_graphs(model.graph):
        for node in g.node:
            if node.domain not in ("", "ai.onnx"):
                raise fail(
                    f"node {node.name[:60]!r} uses operator {node.op_type[:40]!r} of domain {node.domain[:60]!r}; "
                    "only the standard ai.onnx domain is allowed"
                )
    opset = domains.get("", domains.get("ai.onnx"))
    if opset != card.io.opset:
        raise fail(f"uses ai.onnx opset {opset}; the card declares opset {card.io.opset}")
    if opset not in SUPPORTED_OPSETS:
        raise fail(
            f"uses ai.onnx opset {opset}; supported: {SUPPORTED_OPSETS.start} to {SUPPORTED_OPSETS.stop - 1}"
        )
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:  # onnx raises several unrelated types for a bad file
        raise fail(f"is not a valid ONNX model ({_one_line(err)})") from None
    dtypes = {"float32": onnx.TensorProto.FLOAT, "bool": onnx.TensorProto.BOOL}
    want_inputs = [(n, dtypes[d], getattr(card.io, width)) for n, d, width in ONNX_INPUTS]
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if [i.name for i in inputs] != [w[0] for w in want_inputs]:
        raise fail(f"has inputs {[i.name[:40] for i in inputs][:5]}; expected {[w[0] for w in want_inputs]}")
    for vi, (iname, dtype, width) in zip(inputs, want_inputs, strict=True):
        _check_value_info(vi, dtype, width, iname, fail)
    outputs = list(model.graph.output)
    if len(outputs) != 1 or outputs[0].name != LOGITS_OUTPUT:
        raise fail(f"has outputs {[o.name[:40] for o in outputs][:5]}; expected ['{LOGITS_OUTPUT}']")
    ((_, out_dtype, out_width),) = ONNX_OUTPUTS
    _check_value_info(outputs[0], dtypes[out_dtype], getattr(card.io, out_width), LOGITS_OUTPUT, fail)


def _check_value_info(vi: Any, dtype: int, width: int, what: str, fail: Any) -> None:
    tt = vi.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    if len(dims) == 2 and dims[0] is not None and tt.elem_type == dtype and dims[1] == width:
        raise fail(
            f"{what} has a fixed batch dimension of {dims[0]}; a policy must take any number of rows "
            "(a dynamic first dimension)"
        )
    if tt.elem_type != dtype or len(dims) != 2 or dims[1] != width or dims[0] is not None:
        raise fail(f"{what} is not a (batch, {width}) tensor of the expected type (found dims {dims[:4]})")


def _golden_batches(
    raw: bytes, card: PolicyCard, name: str
) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The golden rows as check batches (all of them, the first alone, the first three: a row's logits must not
    depend on the batch it is in), and the logits and actions they must reproduce."""
    try:
        golden = _json(raw, name, GOLDEN_FILE)
        obs = np.asarray(golden[OBS_INPUT], dtype=np.float32)
        mask = np.asarray(golden[MASK_INPUT], dtype=bool)
        want = np.asarray(golden[LOGITS_OUTPUT], dtype=np.float32)
        actions = np.asarray(golden["actions"], dtype=np.int64)
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise PayrouteError(f"bundle {name}: {GOLDEN_FILE} is malformed ({_one_line(err)})") from None
    n = obs.shape[0] if obs.ndim == 2 else 0
    shape = (n, card.io.n_actions)
    if (
        n == 0
        or obs.shape[1] != card.io.obs_dim
        or mask.shape != shape
        or want.shape != shape
        or actions.shape != (n,)
    ):
        raise PayrouteError(
            f"bundle {name}: {GOLDEN_FILE} vectors do not fit the card's observation and actions"
        )
    if not (np.isfinite(obs).all() and mask.any(axis=1).all()):
        raise PayrouteError(f"bundle {name}: {GOLDEN_FILE} holds a non-finite observation or an empty mask")
    batches = [(obs, mask), (obs[:1], mask[:1]), (obs[:3], mask[:3])]
    return batches, (want, actions, mask)


def _check_outputs(
    outs: list[np.ndarray], golden: tuple[np.ndarray, np.ndarray, np.ndarray], card: PolicyCard, name: str
) -> None:
    want, actions, mask = golden
    n = want.shape[0]
    for got, rows in zip(outs, (n, 1, min(n, 3)), strict=True):
        if got.shape != (rows, card.io.n_actions):
            raise PayrouteError(
                f"bundle {name}: {POLICY_FILE} answers a batch of {rows} rows with logits of shape "
                f"{got.shape}; expected {(rows, card.io.n_actions)} (a policy must take any number of rows)"
            )
    full = outs[0]
    if not np.allclose(full, want, atol=GOLDEN_ATOL, rtol=GOLDEN_RTOL):
        worst = (
            float(np.nanmax(np.abs(full.astype(np.float64) - want))) if np.isfinite(full).any() else np.nan
        )
        raise PayrouteError(
            f"bundle {name}: {GOLDEN_FILE} vectors do not reproduce (logits differ by up to {worst:.3g}; "
            f"tolerance {GOLDEN_ATOL})"
        )
    for part in outs[1:]:
        if not np.allclose(part, full[: len(part)], atol=GOLDEN_ATOL, rtol=GOLDEN_RTOL):
            raise PayrouteError(
                f"bundle {name}: {POLICY_FILE} gives other logits for the same rows in a batch of "
                f"{len(part)} than in a batch of {n}; a row's logits must not depend on its batch"
            )
    if not np.array_equal(np.argmax(np.where(mask, full, -np.inf), axis=1), actions):
        raise PayrouteError(f"bundle {name}: {GOLDEN_FILE} golden actions do not reproduce")


__all__ = ["check_onnx", "load_bundle", "load_bundle_files", "read_bundle_files"]
