"""Benchmark: a loaded policy bundle on onnxruntime, on one core (targets: single-decision p99 under 1 ms; a batch
of 1,024 at least 100,000 decisions per second).

Scenario: a routing-sized policy (32 features, two hidden layers of 64, 10 routes) is exported from torch to a
temporary bundle and loaded with one onnxruntime thread, the process pinned to one CPU where the OS allows. A
single decision is one ``act`` call on one observation with its mask, input checks included; the batch figure is
``act`` on 1,024 observations.

Run: ``python benchmarks/bundle_latency.py [--single 20000] [--batches 500]`` (needs torch for the export: the
``[train]`` install). Prints the timings and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from payroute.experiments.onnx_export import export_torch_policy
from payroute.policies import load_bundle

OBS_DIM, N_ACTIONS, BATCH = 32, 10, 1024


def export_bundle(folder: Path) -> Path:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(OBS_DIM, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
        torch.nn.Linear(64, N_ACTIONS),
    )  # fmt: skip
    card = {
        "decision_kind": "route",
        "observation": [{"name": f"f{i}"} for i in range(OBS_DIM)],
        "actions": [f"route{i}" for i in range(N_ACTIONS)],
    }
    return export_torch_policy(net, OBS_DIM, N_ACTIONS, card, folder / "bench_policy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--single", type=int, default=20_000, help="single-decision calls to time")
    ap.add_argument("--batches", type=int, default=500, help="batches of 1,024 to time")
    args = ap.parse_args()
    pinned = False
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        pinned = True

    with tempfile.TemporaryDirectory() as tmp:
        policy = load_bundle(export_bundle(Path(tmp)), threads=1)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((BATCH, OBS_DIM)).astype(np.float32)
    mask = rng.random((BATCH, N_ACTIONS)) < 0.5
    mask[:, 0] = True

    for i in range(500):  # warm-up
        policy.act(obs[i % BATCH], mask[i % BATCH])
    times = np.empty(args.single)
    for i in range(args.single):
        t = time.perf_counter()
        policy.act(obs[i % BATCH], mask[i % BATCH])
        times[i] = time.perf_counter() - t
    p50, p99 = np.percentile(times, [50, 99]) * 1e3

    policy.act(obs, mask)
    t0 = time.perf_counter()
    for _ in range(args.batches):
        policy.act(obs, mask)
    per_second = args.batches * BATCH / (time.perf_counter() - t0)

    print(f"single decision: p50 {p50:.3f} ms, p99 {p99:.3f} ms (target p99 < 1 ms)")
    print(f"batch of {BATCH}: {per_second:,.0f} decisions/s (target >= 100,000)")
    print(
        json.dumps(
            {
                "benchmark": "bundle_latency",
                "single_p50_ms": round(p50, 4),
                "single_p99_ms": round(p99, 4),
                "batch_decisions_per_s": round(per_second),
                "passed": bool(p99 < 1.0 and per_second >= 100_000),
                "pinned_to_one_cpu": pinned,
                "machine": platform.machine(),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
