"""The torch → ONNX exporter: a trained torch network written as a policy bundle (needs the ``[train]`` install).

:func:`export_torch_policy` wraps the network so the graph applies the action mask itself, traces it to ONNX
(opset :data:`~payroute.policies.bundle.card.ONNX_OPSET`), checks the graph with the loader's own checks
(:func:`payroute.policies.bundle.loading.check_onnx`) and against the torch module on golden inputs (and, when
given, on observations the policy met), then writes ``policy.onnx``, ``card.json``, ``golden.json`` and
``checksums.sha256`` atomically. Torch lives here, above the reviewer's layer: ``payroute.policies`` loads and
checks bundles without it.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import warnings
import zipfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from payroute.errors import PayrouteError, format_validation_error
from payroute.files import atomic_folder, atomic_path
from payroute.policies.bundle.card import (
    CARD_FILE,
    CHECKSUM_FILE,
    GOLDEN_ATOL,
    GOLDEN_FILE,
    GOLDEN_ROWS,
    GOLDEN_RTOL,
    LOGITS_OUTPUT,
    MASK_INPUT,
    MASKED_LOGIT,
    OBS_INPUT,
    ONNX_OPSET,
    POLICY_FILE,
    SIGNATURE_FILE,
    PolicyCard,
    config_sha256,
)
from payroute.policies.bundle.loading import check_onnx
from payroute.policies.bundle.runtime import new_session, run_session
from payroute.policies.bundle.signing import sign_checksums


def export_torch_policy(
    module: Any,
    obs_dim: int,
    n_actions: int,
    card: Mapping[str, Any],
    out: str | Path,
    *,
    golden_seed: int = 0,
    parity: tuple[np.ndarray, np.ndarray] | None = None,
    parity_source: str = "observations the policy met acting in its training scenario",
    sign_key: Any = None,
) -> Path:
    """Export a torch module (``obs -> logits``) as a bundle at ``out`` (a directory; a ``.zip`` if it ends so).

    ``card`` holds the model card fields of :class:`PolicyCard` except ``io`` and ``bundle_schema_version``, which
    the exporter writes; a ``scenario``/``experiment`` entry may give ``config`` without ``sha256`` (it is computed)
    and ``versions``/``git_commit`` are filled in when absent. The exported graph applies the mask itself, is
    checked with ``onnx.checker`` and compared with the torch module on the golden inputs before anything is
    written. ``parity`` (observations, masks) is a larger set the graph must also reproduce within
    ``GOLDEN_ATOL``; the result goes into the card's ``parity`` field. ``sign_key`` (an Ed25519 private key,
    :func:`~payroute.policies.bundle.signing.load_private_key`) signs ``checksums.sha256`` into
    ``signature.json``. Returns the bundle path. Requires torch (the ``[train]`` install).
    """
    import torch  # imported when called: the CLI loads this module on the core install too

    out = Path(out)
    if out.exists():
        raise PayrouteError(f"{out} already exists; choose a new path for the bundle")
    policy_card = _complete_card(card, obs_dim, n_actions)

    class _MaskedPolicy(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner
            self.register_buffer("masked_logit", torch.tensor(MASKED_LOGIT, dtype=torch.float32))

        def forward(self, obs: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
            return torch.where(action_mask, self.inner(obs), self.masked_logit)

    was_training = bool(getattr(module, "training", False))
    try:
        onnx_bytes, obs, mask, logits, checked = _export_and_compare(
            torch, _MaskedPolicy(module).eval(), policy_card, golden_seed, parity
        )
    finally:
        module.train(was_training)
    if checked is not None:
        policy_card = policy_card.model_copy(update={"parity": {**checked, "source": parity_source}})
    golden = {
        "seed": golden_seed,
        "atol": GOLDEN_ATOL,
        "rtol": GOLDEN_RTOL,
        OBS_INPUT: obs.tolist(),
        MASK_INPUT: mask.astype(int).tolist(),
        LOGITS_OUTPUT: logits.tolist(),
        "actions": np.argmax(logits, axis=1).tolist(),
    }
    files = {
        POLICY_FILE: onnx_bytes,
        CARD_FILE: (
            json.dumps(policy_card.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
        ).encode(),
        GOLDEN_FILE: (json.dumps(golden, indent=1) + "\n").encode(),
    }
    files[CHECKSUM_FILE] = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
    ).encode()
    if sign_key is not None:
        files[SIGNATURE_FILE] = sign_checksums(sign_key, files[CHECKSUM_FILE])
    _write(files, out)
    return out


def _export_and_compare(
    torch: Any,
    wrapped: Any,
    card: PolicyCard,
    golden_seed: int,
    parity: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple:
    """Trace the masked policy to ONNX and check the graph reproduces torch on the golden inputs and, when given,
    on the ``parity`` observations and masks (the largest absolute difference at most ``GOLDEN_ATOL``)."""
    param = next(iter(wrapped.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    obs_dim, n_actions = card.io.obs_dim, card.io.n_actions
    example = (
        torch.zeros(2, obs_dim, device=device),
        torch.ones(2, n_actions, dtype=torch.bool, device=device),
    )
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export's, which needs onnxscript (not a
        # dependency); the TorchScript path gives a fixed opset and a plain graph for these small networks.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped, example, buf, dynamo=False, opset_version=ONNX_OPSET,
            input_names=[OBS_INPUT, MASK_INPUT], output_names=[LOGITS_OUTPUT],
            dynamic_axes={OBS_INPUT: {0: "batch"}, MASK_INPUT: {0: "batch"}, LOGITS_OUTPUT: {0: "batch"}},
        )  # fmt: skip
    onnx_bytes = buf.getvalue()
    check_onnx(onnx_bytes, card)
    session = new_session(onnx_bytes, threads=1)

    def both(o: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            want = wrapped(torch.from_numpy(o).to(device), torch.from_numpy(m).to(device)).cpu().numpy()
        return run_session(session, o, m), want

    obs, mask = _golden_inputs(card, golden_seed)
    logits, expected = both(obs, mask)
    if not np.allclose(logits, expected, atol=GOLDEN_ATOL, rtol=GOLDEN_RTOL):
        worst = float(np.max(np.abs(logits - expected)))
        raise PayrouteError(
            f"the exported ONNX graph disagrees with the torch module by up to {worst:.3g} on the golden inputs "
            f"(tolerance {GOLDEN_ATOL}); the module may use an operation the exporter does not translate exactly"
        )
    if parity is None:
        return onnx_bytes, obs, mask, logits, None
    p_obs = np.ascontiguousarray(parity[0], dtype=np.float32)
    p_mask = np.ascontiguousarray(parity[1], dtype=bool)
    if p_obs.ndim != 2 or p_mask.ndim != 2 or len(p_mask) != len(p_obs):
        raise PayrouteError(
            f"parity inputs must be (n, obs_dim) observations and (n, n_actions) masks; got {p_obs.shape}, "
            f"{p_mask.shape}"
        )
    worst = 0.0
    for start in range(0, len(p_obs), 4096):
        got, want = both(p_obs[start : start + 4096], p_mask[start : start + 4096])
        worst = max(worst, float(np.max(np.abs(got - want))))
    if not worst <= GOLDEN_ATOL:
        raise PayrouteError(
            f"the exported ONNX graph disagrees with the torch network by up to {worst:.3g} on {len(p_obs):,} "
            f"parity observations (tolerance {GOLDEN_ATOL})"
        )
    checked = {"observations": len(p_obs), "max_abs_diff": worst, "atol": GOLDEN_ATOL}
    return onnx_bytes, obs, mask, logits, checked


def _complete_card(card: Mapping[str, Any], obs_dim: int, n_actions: int) -> PolicyCard:
    data = dict(card)
    for owned in ("io", "bundle_schema_version"):
        if owned in data:
            raise PayrouteError(f"card field {owned!r} is written by the exporter; leave it out")
    for field in ("scenario", "experiment"):
        rec = data.get(field)
        if isinstance(rec, Mapping) and rec.get("config") is not None and "sha256" not in rec:
            data[field] = {**rec, "sha256": config_sha256(rec["config"])}
    data["versions"] = {**_package_versions(), **dict(data.get("versions") or {})}
    if "git_commit" not in data:
        data["git_commit"] = _git_commit()
    data["io"] = {"opset": ONNX_OPSET, "obs_dim": int(obs_dim), "n_actions": int(n_actions)}
    try:
        return PolicyCard.model_validate(data)
    except ValidationError as err:
        raise PayrouteError(format_validation_error("card", err)) from None


def _package_versions() -> dict[str, str]:
    out = {}
    for pkg in ("payroute", "numpy", "onnx", "onnxruntime", "torch", "ray", "stable-baselines3", "gymnasium"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def _git_commit() -> str | None:
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    return res.stdout.strip() or None


def _golden_inputs(card: PolicyCard, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Observations inside each feature's declared range (standard normal where none is declared) and masks
    with at least one allowed action; the first row allows every action."""
    rng = np.random.default_rng(seed)
    n, d, a = GOLDEN_ROWS, card.io.obs_dim, card.io.n_actions
    obs = rng.standard_normal((n, d))
    for j, f in enumerate(card.observation):
        if f.low is not None and f.high is not None:
            obs[:, j] = rng.uniform(f.low, f.high, n)
    mask = rng.random((n, a)) < 0.7
    mask[0] = True
    empty = ~mask.any(axis=1)
    mask[empty, rng.integers(0, a, int(empty.sum()))] = True
    return obs.astype(np.float32), mask


def _write(files: dict[str, bytes], out: Path) -> None:
    """Write into a temporary file or folder beside ``out`` and rename it into place, so that a failed or killed
    export leaves no half-written bundle (:mod:`payroute.files`)."""
    if out.suffix == ".zip":
        if out.exists():
            raise PayrouteError(f"{out} already exists; choose a new path for the bundle")
        with (
            atomic_path(out) as partial,
            zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf,
        ):
            for name, data in files.items():
                zf.writestr(name, data)
    else:
        with atomic_folder(out) as partial:
            for name, data in files.items():
                (partial / name).write_bytes(data)


__all__ = ["export_torch_policy"]
