"""Untrusted graphs run under limits: a child process with a CPU-time and a memory cap, and a wall-clock timeout.

An ONNX graph is a program: a ``Loop`` of 10^12 iterations hangs whoever runs it, a ``ConstantOfShape`` of a huge
shape allocates until the machine gives out. A bundle not signed by a trusted key has its graph run first in a
child process (:mod:`payroute.policies.bundle.sandbox_child`, numpy and onnxruntime only, ``python -I``) with
``RLIMIT_CPU`` and ``RLIMIT_AS`` set (:class:`GraphLimits`; the review config's ``integrity`` section sets them)
and a wall-clock timeout; only when the graph answered there is it loaded in this process. A graph past a limit
is refused with a message that states the limit, never a hang or a crash.
"""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from payroute.errors import PayrouteError
from payroute.policies.bundle.card import POLICY_FILE

CHILD = Path(__file__).with_name("sandbox_child.py")
STARTUP_ALLOWANCE_S = 30.0  # wall-clock time the child may take to start (imports) on a loaded machine


@dataclass(frozen=True)
class GraphLimits:
    """Limits on running an untrusted graph: CPU seconds for building the session and answering the check
    batches, and MiB of memory beyond what the child holds after its imports."""

    time_s: float = 20.0
    memory_mb: int = 2048

    def says(self) -> str:
        return f"{self.time_s:g} s of CPU time and {self.memory_mb:,} MiB of memory"


def run_limited(
    onnx_bytes: bytes,
    batches: Sequence[tuple[np.ndarray, np.ndarray]],
    limits: GraphLimits,
    name: str,
    what: str = "the golden vectors",
) -> list[np.ndarray]:
    """The logits of every ``(obs, mask)`` batch, computed in a child process under ``limits``."""
    buf = io.BytesIO()
    arrays = {f"obs_{i}": o for i, (o, _) in enumerate(batches)}
    arrays |= {f"mask_{i}": m for i, (_, m) in enumerate(batches)}
    np.savez(
        buf,
        onnx=np.frombuffer(onnx_bytes, dtype=np.uint8),
        limits=np.array([limits.time_s, limits.memory_mb], dtype=np.float64),
        n=np.array(len(batches)),
        **arrays,
    )
    prefix = f"bundle {name}: {POLICY_FILE}"
    wall = limits.time_s + STARTUP_ALLOWANCE_S
    try:
        done = subprocess.run(
            [sys.executable, "-I", str(CHILD)], input=buf.getvalue(), capture_output=True, timeout=wall
        )
    except subprocess.TimeoutExpired:
        raise PayrouteError(
            f"{prefix} did not answer {what} within {wall:g} s of wall-clock time (limits: {limits.says()}; "
            "integrity.time_limit_s in the review config); refusing to load"
        ) from None
    err = done.stderr.decode("utf-8", "replace").strip().splitlines()
    last = err[-1] if err else ""
    if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL) or (done.returncode != 0 and "SIGXCPU" in last):
        raise PayrouteError(
            f"{prefix} ran past the limit of {limits.time_s:g} s of CPU time answering {what} "
            "(integrity.time_limit_s in the review config); refusing to load"
        )
    if done.returncode == 3 and last.startswith("memory:"):
        raise PayrouteError(
            f"{prefix} ran past the limit of {limits.memory_mb:,} MiB of memory answering {what} "
            f"(integrity.memory_limit_mb in the review config; {last[8:160]}); refusing to load"
        )
    if done.returncode == 3:
        raise PayrouteError(f"{prefix} failed on {what} ({last[7:260]}); refusing to load")
    if done.returncode != 0:
        raise PayrouteError(
            f"{prefix} crashed the process answering {what} (exit code {done.returncode}; limits: "
            f"{limits.says()}); refusing to load"
        )
    try:
        out = np.load(io.BytesIO(done.stdout), allow_pickle=False)
        return [np.asarray(out[f"out_{i}"]) for i in range(len(batches))]
    except (OSError, ValueError, KeyError) as exc:
        raise PayrouteError(f"{prefix}: the limited run returned no readable logits ({exc})") from None


__all__ = ["GraphLimits", "run_limited"]
