"""Benchmarks of the payment world: throughput against a bare SimPy loop, and memory over long horizons.

Scenario: ``payroute simulate default --policy cheapest`` — one simulated day of the default scenario (about
10^5 payments) with the cheapest-route and threshold-risk baselines, no event log, on one core. In the same
run, a bare SimPy loop pushes the same number of payments through the least a discrete-event payment model
needs — one arrival timeout, one resource request and one processing timeout each — and our rate is reported
as a share of that rate.

Memory: the default scenario for 3, 10 and 30 simulated days with the event log streamed to Parquet, each
horizon in a fresh process, reporting the peak resident set size; it should stay under 1 GB and not grow
with the number of days.

Run ``python benchmarks/world.py`` (or ``python benchmarks/run.py`` for the table and ``--json``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import simpy

THROUGHPUT_TARGET_TX_S = 20_000
MEMORY_TARGET_MB = 1024
MEMORY_HORIZONS_DAYS = (3, 10, 30)
FLAT_GROWTH_LIMIT = 1.25  # peak memory at the longest horizon over the one before it (3x the days)


def _timed(fn) -> tuple[float, float, Any]:
    """(CPU seconds, wall seconds, result) of ``fn()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, out


def _one_world_day(scenario, days: float, seed: int) -> int:
    from payroute.envs.baselines import bound_policies
    from payroute.envs.world import PaymentWorld

    world = PaymentWorld(scenario, seed=seed, policies=bound_policies(route="cheapest"), days=days)
    world.run()
    assert world.in_flight == 0
    return world.arrivals


def _bare_simpy(gaps: list[float], service: list[float], capacity: int = 100) -> int:
    """One arrival timeout, one resource request and one processing timeout per payment."""
    env = simpy.Environment()
    processor = simpy.Resource(env, capacity=capacity)

    def payment(service_s: float):
        with processor.request() as req:
            yield req
            yield env.timeout(service_s)

    def arrivals():
        for gap, service_s in zip(gaps, service, strict=True):
            yield env.timeout(gap)
            env.process(payment(service_s))

    env.process(arrivals())
    env.run()
    return len(gaps)


def throughput(days: float = 1.0, seed: int = 0, repeats: int = 5) -> dict[str, Any]:
    """Our rate and the bare loop's, each the best of ``repeats`` runs taken in turns.

    Rates are payments per CPU-second of this process (what one core does, even on a shared machine);
    wall-clock rates are reported beside them.
    """
    from payroute.envs.scenarios import load_scenario

    scenario = load_scenario("default")
    n = _one_world_day(scenario, days, seed)  # warm-up, and the number of payments to match
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(86_400.0 * days / n, n).tolist()
    service = rng.lognormal(0.0, 0.5, n).tolist()
    world_runs, bare_runs = [], []
    for _ in range(repeats):  # in turns, so a burst of load on the machine hits both alike
        world_runs.append(_timed(lambda: _one_world_day(scenario, days, seed)))
        bare_runs.append(_timed(lambda: _bare_simpy(gaps, service)))
    w_cpu, w_wall = min(r[0] for r in world_runs), min(r[1] for r in world_runs)
    b_cpu, b_wall = min(r[0] for r in bare_runs), min(r[1] for r in bare_runs)
    world = {
        "transactions": n,
        "cpu_s": w_cpu,
        "wall_s": w_wall,
        "tx_per_s": n / w_cpu,
        "tx_per_wall_s": n / w_wall,
    }
    bare = {
        "transactions": n,
        "cpu_s": b_cpu,
        "wall_s": b_wall,
        "tx_per_s": n / b_cpu,
        "tx_per_wall_s": n / b_wall,
    }
    return {
        "command": f"payroute simulate default --policy cheapest --days {days:g} --seed {seed} (no log)",
        "world": world,
        "bare_simpy": bare,
        "ratio_to_bare_simpy": world["tx_per_s"] / bare["tx_per_s"],
        "target_tx_per_s": THROUGHPUT_TARGET_TX_S,
        "meets_target": world["tx_per_s"] >= THROUGHPUT_TARGET_TX_S,
    }


def _memory_child(days: float, log_path: str) -> None:
    """Run in a fresh process: simulate ``days`` with the log streamed to Parquet, print peak RSS as JSON."""
    from payroute.experiments.simulate import run_simulation

    summary = run_simulation("default", route="cheapest", days=days, seed=0, log_path=log_path)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB
    out = {
        "days": days,
        "transactions": summary["arrivals"],
        "wall_s": summary["wall_s"],
        "peak_rss_mb": peak_mb,
        "log_mb": Path(log_path).stat().st_size / 2**20,
    }
    print(json.dumps(out))


def memory(horizons: tuple[float, ...] = MEMORY_HORIZONS_DAYS) -> dict[str, Any]:
    """Peak memory per horizon, each in its own process."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for days in horizons:
            log_path = str(Path(tmp) / f"log-{days}d.parquet")
            cmd = [
                sys.executable,
                "-m",
                "payroute.benchmarks.world",
                "--memory-child",
                str(days),
                "--log",
                log_path,
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    peaks = [r["peak_rss_mb"] for r in rows]
    return {
        "command": "payroute simulate default --policy cheapest --days N --log FILE.parquet",
        "runs": rows,
        "peak_rss_mb": max(peaks),
        "growth_first_to_last": peaks[-1] / peaks[0],
        "growth_last_two": peaks[-1] / peaks[-2],
        "target_mb": MEMORY_TARGET_MB,
        # Flat: the first days fill the pipeline (cards settle T+1/T+2, next-day ACH, the first weekend's held
        # payouts); after that memory follows the number of payments in flight, not the days: three times the
        # days may need at most 25% more (the in-flight high-water mark still creeps up with more weekends).
        "meets_target": max(peaks) < MEMORY_TARGET_MB and peaks[-1] / peaks[-2] < FLAT_GROWTH_LIMIT,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-child", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    parser.add_argument("--skip-memory", action="store_true", help="only the throughput benchmark")
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        _memory_child(args.memory_child, args.log)
        return
    result = {"throughput": throughput()}
    if not args.skip_memory:
        result["memory"] = memory()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
