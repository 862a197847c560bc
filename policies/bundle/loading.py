"""Verified loading: a bundle's files checked before anything runs, on onnxruntime alone and never unpickling.

:func:`load_bundle` reads a bundle directory or ``.zip`` and checks, in order: that no zip entry escapes the
bundle folder and every file is a plain file; that every file is listed in ``checksums.sha256`` and matches its
hash; the card's bundle schema version and fields; the network's opset, inputs and outputs against the card; that
the golden vectors reproduce; and, when the caller gives one, the observation schema against the expected one.
Any failure raises :class:`~payroute.errors.PayrouteError` naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import stat
import zipfile
from collections.abc import Mapping, Sequence
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
    OBS_INPUT,
    ONNX_INPUTS,
    ONNX_OUTPUTS,
    POLICY_FILE,
    FeatureSpec,
    PolicyCard,
    check_observation_schema,
)
from payroute.policies.bundle.runtime import BundlePolicy, run_session


def load_bundle(
    path: str | Path,
    *,
    expected_observation: Sequence[FeatureSpec | Mapping[str, Any] | str] | None = None,
    threads: int = 1,
) -> BundlePolicy:
    """Verify and load a bundle (directory or ``.zip``). Never unpickles; needs onnxruntime only.

    ``expected_observation`` (feature names, or feature specs compared field by field) is checked against the
    card's observation schema. ``threads`` is onnxruntime's intra-op thread count. Raises
    :class:`~payroute.errors.PayrouteError` naming the file and the problem when the bundle is incomplete,
    tampered with, unsafe, of another schema version or inconsistent.
    """
    path = Path(path)
    name = path.name
    files = _read_bundle_files(path)
    _check_checksums(files, name)
    card = _parse_card(files[CARD_FILE], name)
    onnx_bytes = files[POLICY_FILE]
    check_onnx(onnx_bytes, card, name)
    policy = BundlePolicy(card, onnx_bytes, path, threads)
    _check_golden(policy, files[GOLDEN_FILE], name)
    if expected_observation is not None:
        check_observation_schema(card, expected_observation, name)
    return policy


# ---------------------------------------------------------------------- reading files safely
def _read_bundle_files(path: Path) -> dict[str, bytes]:
    if not path.exists():
        raise PayrouteError(f"bundle not found: {path}")
    if path.is_dir():
        return _read_directory(path)
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    raise PayrouteError(f"{path} is neither a bundle directory nor a .zip of one")


def _read_directory(path: Path) -> dict[str, bytes]:
    files = {}
    for entry in sorted(path.iterdir()):
        mode = entry.lstat().st_mode
        if not stat.S_ISREG(mode):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a plain file"
            raise PayrouteError(
                f"bundle {path.name}: {entry.name} is {kind}; a bundle holds plain files only"
            )
        files[entry.name] = entry.read_bytes()
    return files


def _safe_member_name(raw: str) -> str | None:
    """The normalised name of a zip entry, or None when it could land outside the bundle folder."""
    if not raw or "\\" in raw or raw.startswith("/") or (len(raw) > 1 and raw[1] == ":") or "\x00" in raw:
        return None
    parts = raw.rstrip("/").split("/")
    if any(p in ("..", "") for p in parts):
        return None
    return posixpath.normpath(raw)


def _read_zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        names = []
        for info in infos:
            safe = _safe_member_name(info.filename)
            if safe is None:
                raise PayrouteError(
                    f"bundle {path.name}: zip entry {info.filename!r} escapes the bundle folder; refusing to load"
                )
            if stat.S_ISLNK(info.external_attr >> 16):
                raise PayrouteError(
                    f"bundle {path.name}: zip entry {info.filename!r} is a symbolic link; refusing"
                )
            names.append(safe)
        if sum(i.file_size for i in infos) > MAX_BUNDLE_BYTES:
            raise PayrouteError(
                f"bundle {path.name}: inflates to more than {MAX_BUNDLE_BYTES} bytes; refusing"
            )
        file_infos = [(info, n) for info, n in zip(infos, names, strict=True) if not info.is_dir()]
        # files at the archive root, or all under one folder (``zip -r bundle.zip bundle/``)
        tops = {n.split("/")[0] for _, n in file_infos}
        prefix = ""
        if len(tops) == 1 and all("/" in n for _, n in file_infos):
            prefix = next(iter(tops)) + "/"
        files: dict[str, bytes] = {}
        for info, n in file_infos:
            rel = n[len(prefix) :]
            if "/" in rel:
                raise PayrouteError(f"bundle {path.name}: unexpected nested entry {info.filename!r}")
            if rel in files:
                raise PayrouteError(f"bundle {path.name}: zip entry {info.filename!r} appears twice")
            files[rel] = zf.read(info)
        return files


def _check_checksums(files: dict[str, bytes], name: str) -> None:
    if CHECKSUM_FILE not in files:
        raise PayrouteError(f"bundle {name}: {CHECKSUM_FILE} is missing")
    listed: dict[str, str] = {}
    for lineno, line in enumerate(files[CHECKSUM_FILE].decode("utf-8", "replace").splitlines(), start=1):
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
    for fname in files:
        if fname != CHECKSUM_FILE and fname not in listed:
            raise PayrouteError(f"bundle {name}: {fname} is not listed in {CHECKSUM_FILE}; refusing to load")


def _parse_card(raw: bytes, name: str) -> PolicyCard:
    try:
        data = parse_json(raw, f"bundle {name}: {CARD_FILE}")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PayrouteError(f"bundle {name}: {CARD_FILE} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise PayrouteError(f"bundle {name}: {CARD_FILE} must hold a JSON object")
    version = data.get("bundle_schema_version")
    if version != BUNDLE_SCHEMA_VERSION:
        raise PayrouteError(
            f"bundle {name}: {CARD_FILE} bundle_schema_version is {version!r}; this payroute reads "
            f"{BUNDLE_SCHEMA_VERSION!r}"
        )
    try:
        return PolicyCard.model_validate(data)
    except ValidationError as err:
        raise PayrouteError(format_validation_error(f"bundle {name}: {CARD_FILE}", err)) from None


def check_onnx(onnx_bytes: bytes, card: PolicyCard, name: str = "export") -> None:
    import onnx

    def fail(problem: str) -> PayrouteError:
        return PayrouteError(f"bundle {name}: {POLICY_FILE} {problem}")

    try:
        model = onnx.load_model_from_string(onnx_bytes)
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:  # onnx raises several unrelated types for a bad file
        raise fail(f"is not a valid ONNX model ({type(err).__name__}: {str(err)[:200]})") from None
    domains = {op.domain: op.version for op in model.opset_import}
    if set(domains) - {"", "ai.onnx"} or domains.get("", domains.get("ai.onnx")) != card.io.opset:
        raise fail(f"uses opsets {domains}; the card says ai.onnx opset {card.io.opset}")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise fail("refers to external data files; a bundle's network must be self-contained")
    dtypes = {"float32": onnx.TensorProto.FLOAT, "bool": onnx.TensorProto.BOOL}
    want_inputs = [(n, dtypes[d], getattr(card.io, width)) for n, d, width in ONNX_INPUTS]
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if [i.name for i in inputs] != [w[0] for w in want_inputs]:
        raise fail(f"has inputs {[i.name for i in inputs]}; expected {[w[0] for w in want_inputs]}")
    for vi, (iname, dtype, width) in zip(inputs, want_inputs, strict=True):
        _check_value_info(vi, dtype, width, iname, fail)
    outputs = list(model.graph.output)
    if len(outputs) != 1 or outputs[0].name != LOGITS_OUTPUT:
        raise fail(f"has outputs {[o.name for o in outputs]}; expected ['{LOGITS_OUTPUT}']")
    ((_, out_dtype, out_width),) = ONNX_OUTPUTS
    _check_value_info(outputs[0], dtypes[out_dtype], getattr(card.io, out_width), LOGITS_OUTPUT, fail)


def _check_value_info(vi: Any, dtype: int, width: int, what: str, fail: Any) -> None:
    tt = vi.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    if tt.elem_type != dtype or len(dims) != 2 or dims[1] != width or dims[0] is not None:
        raise fail(f"{what} is not a (batch, {width}) tensor of the expected type (found dims {dims})")


def _check_golden(policy: BundlePolicy, raw: bytes, name: str) -> None:
    try:
        golden = parse_json(raw, f"bundle {name}: {GOLDEN_FILE}")
        obs = np.asarray(golden[OBS_INPUT], dtype=np.float32)
        mask = np.asarray(golden[MASK_INPUT], dtype=bool)
        want = np.asarray(golden[LOGITS_OUTPUT], dtype=np.float32)
        actions = np.asarray(golden["actions"], dtype=np.int64)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
        raise PayrouteError(
            f"bundle {name}: {GOLDEN_FILE} is malformed ({type(err).__name__}: {err})"
        ) from None
    n = obs.shape[0] if obs.ndim == 2 else 0
    shape = (n, policy.n_actions)
    if (
        n == 0
        or obs.shape[1] != policy.obs_dim
        or mask.shape != shape
        or want.shape != shape
        or actions.shape != (n,)
    ):
        raise PayrouteError(
            f"bundle {name}: {GOLDEN_FILE} vectors do not fit the card's observation and actions"
        )
    got = run_session(policy._session, obs, mask)
    if not np.allclose(got, want, atol=GOLDEN_ATOL, rtol=GOLDEN_RTOL):
        worst = float(np.max(np.abs(got - want)))
        raise PayrouteError(
            f"bundle {name}: {GOLDEN_FILE} vectors do not reproduce (logits differ by up to {worst:.3g}; "
            f"tolerance {GOLDEN_ATOL})"
        )
    if not np.array_equal(np.argmax(np.where(mask, got, -np.inf), axis=1), actions):
        raise PayrouteError(f"bundle {name}: {GOLDEN_FILE} golden actions do not reproduce")


__all__ = ["check_onnx", "load_bundle"]
