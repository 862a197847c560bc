"""The child process of :mod:`payroute.policies.bundle.sandbox`: untrusted graphs, each run under limits.

Run as ``python -I sandbox_child.py``; imports numpy and onnxruntime only. It serves requests on stdin, one at a
time, each framed as an 8-byte little-endian length and an ``.npz`` (``onnx`` bytes, ``limits``: CPU seconds,
MiB and wall seconds, ``obs_i``/``mask_i`` batches). For each it forks (this process has no threads and no
sessions, so a fork is safe and costs milliseconds instead of an interpreter start); the fork sets its CPU-time
and address-space limits, builds the session, runs every batch and writes the logits (``out_i``) back. The
answer, framed the same way, is one status byte and a payload: ``o`` and the ``.npz``, ``t`` (CPU limit),
``w`` (wall-clock limit), ``m`` (memory) or ``e`` (another error) with a one-line message.
"""

import io
import math
import os
import select
import signal
import struct
import sys
import time

import numpy as np
import onnxruntime as ort


def _limit(cpu_s: float, memory_mib: float) -> None:
    try:
        import resource
    except ImportError:  # no rlimits here: the wall-clock limit still holds
        return
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = math.ceil(used.ru_utime + used.ru_stime + cpu_s)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    try:
        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        size = 0
    cap = size + int(memory_mib * (1 << 20))
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _evaluate(data: dict, cpu_s: float, memory_mib: float) -> bytes:
    """In the fork: the answer (status byte and payload)."""
    _limit(cpu_s, memory_mib)
    try:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 4
        session = ort.InferenceSession(
            data["onnx"].tobytes(), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        outs = {}
        for i in range(int(data["n"])):
            feeds = {"obs": data[f"obs_{i}"], "action_mask": data[f"mask_{i}"]}
            outs[f"out_{i}"] = np.asarray(session.run(["logits"], feeds)[0])
    except MemoryError:
        return b"mMemoryError"
    except Exception as err:  # onnxruntime raises its own types
        text = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
        low = text.lower()
        return (b"m" if ("alloc" in low or "memory" in low) else b"e") + text.encode("utf-8", "replace")
    buf = io.BytesIO()
    np.savez(buf, **outs)
    return b"o" + buf.getvalue()


def _run_one(request: bytes) -> bytes:
    data = dict(np.load(io.BytesIO(request), allow_pickle=False))
    cpu_s, memory_mib, wall_s = (float(x) for x in data["limits"])
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the fork: answer, then leave without cleanup handlers, whatever happens
        try:
            os.close(read_fd)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing it prints reaches the answers' pipe
            answer = _evaluate(data, cpu_s, memory_mib)
            with os.fdopen(write_fd, "wb") as out:
                out.write(answer)
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks, deadline, timed_out = [], time.monotonic() + wall_s, False
    with os.fdopen(read_fd, "rb", buffering=0) as src:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([src], [], [], left)[0]:
                timed_out = True
                os.kill(pid, signal.SIGKILL)
                break
            chunk = src.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL) and not timed_out:
        return b"tCPU time limit"
    if timed_out:
        return b"wwall-clock limit"
    answer = b"".join(chunks)
    if not answer or os.WIFSIGNALED(status):
        return b"ecrashed (" + str(status).encode() + b")"
    return answer


def main() -> int:
    src, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = src.read(8)
        if len(head) < 8:
            return 0  # the parent is gone
        (n,) = struct.unpack("<Q", head)
        answer = _run_one(src.read(n))
        out.write(struct.pack("<Q", len(answer)) + answer)
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
