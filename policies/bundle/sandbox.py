"""Untrusted graphs run under limits: a child process with a CPU-time and a memory cap, and a wall-clock timeout.

An ONNX graph is a program: a ``Loop`` of 10^12 iterations hangs whoever runs it, a ``ConstantOfShape`` of a huge
shape allocates until the machine gives out. A bundle not signed by a trusted key has its graph run first in a
child process (:mod:`payroute.policies.bundle.sandbox_child`, numpy and onnxruntime only, ``python -I``) with
``RLIMIT_CPU`` and ``RLIMIT_AS`` set (:class:`GraphLimits`; the review config's ``integrity`` section sets them)
and a wall-clock timeout; only when the graph answered there is it loaded in this process, where every call
runs under the same limits (:class:`~payroute.policies.bundle.runtime.BundlePolicy`: a per-call time limit and
a capped onnxruntime arena). A graph past a limit is refused with a message that states the limit, never a hang
or a crash.
"""

from __future__ import annotations

import atexit
import io
import os
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from payroute.errors import PayrouteError
from payroute.policies.bundle.card import POLICY_FILE

CHILD = Path(__file__).with_name("sandbox_child.py")
STARTUP_ALLOWANCE_S = 30.0  # wall-clock time the child may take to start (imports) on a loaded machine
WALL_ALLOWANCE_S = 10.0  # wall-clock time beyond the CPU limit (a loaded machine shares the CPU)


@dataclass(frozen=True)
class GraphLimits:
    """Limits on running an untrusted graph: CPU seconds for building the session and answering the check
    batches, and MiB of memory beyond what the child holds after its imports."""

    time_s: float = 20.0
    memory_mb: int = 2048

    def says(self) -> str:
        return f"{self.time_s:g} s of CPU time and {self.memory_mb:,} MiB of memory"


class _Server:
    """The child process (one per process, started at the first untrusted graph), spoken to over pipes."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.pid = os.getpid()

    def ask(self, request: bytes, wait_s: float) -> bytes | None:
        """The child's answer, or None when it did not answer within ``wait_s`` (it is then stopped)."""
        if self.pid != os.getpid():  # a forked worker: its parent's child is not its own to speak to
            self.proc, self.lock, self.pid = None, threading.Lock(), os.getpid()
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self.proc = subprocess.Popen(
                    [sys.executable, "-I", str(CHILD)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
            proc = self.proc
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(struct.pack("<Q", len(request)) + request)
                proc.stdin.flush()
                head = _read_within(proc.stdout, 8, wait_s)
                answer = (
                    None if head is None else _read_within(proc.stdout, struct.unpack("<Q", head)[0], wait_s)
                )
            except (BrokenPipeError, OSError):
                answer = None
            if answer is None:
                self.stop()
            return answer

    def stop(self) -> None:
        if self.proc is not None and self.pid == os.getpid():
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _read_within(stream: Any, n: int, wait_s: float) -> bytes | None:
    chunks, got, deadline = [], 0, time.monotonic() + wait_s
    fd = stream.fileno()
    while got < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


_SERVER = _Server()
atexit.register(_SERVER.stop)


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
    wall = limits.time_s + WALL_ALLOWANCE_S
    np.savez(
        buf,
        onnx=np.frombuffer(onnx_bytes, dtype=np.uint8),
        limits=np.array([limits.time_s, limits.memory_mb, wall], dtype=np.float64),
        n=np.array(len(batches)),
        **arrays,
    )
    prefix = f"bundle {name}: {POLICY_FILE}"
    answer = _SERVER.ask(buf.getvalue(), wall + STARTUP_ALLOWANCE_S)
    if answer is None or answer[:1] == b"w":
        raise PayrouteError(
            f"{prefix} did not answer {what} within {wall:g} s of wall-clock time (limits: {limits.says()}; "
            "integrity.time_limit_s in the review config); refusing to load"
        )
    kind, text = answer[:1], answer[1:400].decode("utf-8", "replace")
    if kind == b"t":
        raise PayrouteError(
            f"{prefix} ran past the limit of {limits.time_s:g} s of CPU time answering {what} "
            "(integrity.time_limit_s in the review config); refusing to load"
        )
    if kind == b"m":
        raise PayrouteError(
            f"{prefix} ran past the limit of {limits.memory_mb:,} MiB of memory answering {what} "
            f"(integrity.memory_limit_mb in the review config; {text[:160]}); refusing to load"
        )
    if kind != b"o":
        raise PayrouteError(f"{prefix} failed on {what} ({text[:260]}); refusing to load")
    try:
        out = np.load(io.BytesIO(answer[1:]), allow_pickle=False)
        return [np.asarray(out[f"out_{i}"]) for i in range(len(batches))]
    except (OSError, ValueError, KeyError) as exc:
        raise PayrouteError(f"{prefix}: the limited run returned no readable logits ({exc})") from None


__all__ = ["GraphLimits", "run_limited"]
