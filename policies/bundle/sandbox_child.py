"""The child process of :mod:`payroute.policies.bundle.sandbox`: one untrusted graph, run under limits.

Run as ``python -I sandbox_child.py``; reads an ``.npz`` on stdin (``onnx`` bytes, ``limits``: CPU seconds and MiB,
``obs_i``/``mask_i`` batches), sets its CPU-time and address-space limits after its own imports, builds the
session and runs every batch, and writes the logits (``out_i``) as an ``.npz`` on stdout. A failure is one line on
stderr, ``memory: ...`` or ``error: ...``, and exit code 3. Imports numpy and onnxruntime only.
"""

import io
import math
import os
import sys

import numpy as np
import onnxruntime as ort


def _limit(cpu_s: float, memory_mib: float) -> None:
    try:
        import resource
    except ImportError:  # no rlimits here: the parent's wall-clock timeout still holds
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


def main() -> int:
    data = np.load(io.BytesIO(sys.stdin.buffer.read()), allow_pickle=False)
    cpu_s, memory_mib = (float(x) for x in data["limits"])
    onnx_bytes = data["onnx"].tobytes()
    batches = [(data[f"obs_{i}"], data[f"mask_{i}"]) for i in range(int(data["n"]))]
    _limit(cpu_s, memory_mib)
    try:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 4
        session = ort.InferenceSession(onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"])
        outs = {}
        for i, (obs, mask) in enumerate(batches):
            outs[f"out_{i}"] = np.asarray(session.run(["logits"], {"obs": obs, "action_mask": mask})[0])
    except MemoryError:
        sys.stderr.write("memory: MemoryError\n")
        return 3
    except Exception as err:  # onnxruntime raises its own types
        text = " ".join(str(err).split())[:300]
        low = text.lower()
        kind = "memory" if ("alloc" in low or "memory" in low) else "error"
        sys.stderr.write(f"{kind}: {type(err).__name__}: {text}\n")
        return 3
    buf = io.BytesIO()
    np.savez(buf, **outs)
    sys.stdout.buffer.write(buf.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
