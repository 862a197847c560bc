"""What one stress job costs: core-seconds and peak memory of one world of the review's stress suite.

A stress review is a list of independent jobs (one world each: a policy on a stress scenario and seed, every
other decision bound to a baseline), run by the paired-comparison engine on worker processes or on a Ray
cluster. This runs the jobs named on the command line one at a time, each in a fresh process, and records per
job: the simulated payments, the wall and CPU seconds of the world alone (``cpu_s``: user + system time of the
process while the world ran) and the peak resident memory of the process (imports and the bundle included).
docs/cluster.md projects a 200-seed review from these numbers.

    python -m payroute.benchmarks.stress_job_cost policies/zoo/router --volume 1.0 --seed 1000000000
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from payroute.policies.review.stress import STRESS_SCENARIOS


def _job(args: tuple[str, str, float, int, bool]) -> dict:
    from payroute.envs.scenarios import load_scenario
    from payroute.policies.compare import Run, bundle_policy, run_one

    policy, scenario, volume, seed, is_bundle = args
    base = load_scenario(scenario)
    sc = load_scenario(base, {"volume_scale": base.volume_scale * volume})
    arm = bundle_policy(policy, "candidate") if is_bundle else policy
    run = Run(sc, arm, seed, 1.0, "route", (("risk", "threshold"),))
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    out = run_one(run)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "policy": policy,
        "scenario": scenario,
        "volume_multiplier": volume,
        "seed": seed,
        "arrivals": out.arrivals,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_rss_mib": round(after.ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", help="the candidate route bundle (directory or .zip)")
    ap.add_argument("--scenarios", nargs="+", default=list(STRESS_SCENARIOS))
    ap.add_argument("--policies", nargs="+", default=["candidate", "ucb", "oracle"],
                    help="'candidate' (the bundle) and routing baseline names")  # fmt: skip
    ap.add_argument("--volume", type=float, default=1.0, help="stress.volume_multiplier (1.0: full volume)")
    ap.add_argument("--seed", type=int, default=1_000_000_000)
    args = ap.parse_args(argv)
    jobs = [
        (args.bundle if p == "candidate" else p, s, args.volume, args.seed, p == "candidate")
        for s in args.scenarios
        for p in args.policies
    ]
    rows = []
    # one fresh process per job: its peak memory is that job's alone
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        for row in pool.map(_job, jobs):
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


if __name__ == "__main__":
    main()
