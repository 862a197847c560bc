"""Does a route bundle keep its edge at another volume? Its margin against the cheapest route, ucb and the oracle.

Training on a fraction of a day's volume buys many more complete days per minute, but ``volume_scale`` scales
demand and fraud only: the routes' capacity, the prefunded balances and the 200-outcome windows of the route
statistics stay as they are, so a tenth-volume day is a different world (less congestion, more liquidity,
statistics that react ten times more slowly). This runs the bundle, ``cheapest``, ``ucb`` and the ``oracle`` on
the same held-out seeds (common random numbers) at each volume and prints each one's margin per transaction
minus ``cheapest``'s: the paired mean and its 95% half-width (t with n-1 degrees of freedom), and the bundle's
share of the oracle's uplift.

    python benchmarks/volume_shift.py policies/zoo/router --volumes 0.1 1.0 --seeds 20
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy import stats

from payroute.vocabulary import HELD_OUT_SEED_START

FIRST_SEED = HELD_OUT_SEED_START  # the held-out evaluation seeds of the routing experiments
REFERENCES = ("cheapest", "ucb", "oracle")


def _margin(args: tuple[str, float, int]) -> float:
    from payroute.experiments.whatif import run

    policy, volume, seed = args
    return float(run(policy, "default", {"volume_scale": volume}, seed).kpis()["margin_per_tx_usd"])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", help="a route bundle (directory or .zip)")
    ap.add_argument("--volumes", type=float, nargs="+", default=[0.1, 1.0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print the record as JSON")
    args = ap.parse_args(argv)

    seeds = [FIRST_SEED + k for k in range(args.seeds)]
    policies = (args.bundle, *REFERENCES)
    jobs = [(p, v, s) for v in args.volumes for p in policies for s in seeds]
    with ProcessPoolExecutor(args.workers) as pool:
        margins = list(pool.map(_margin, jobs, chunksize=4))
    table = np.array(margins).reshape(len(args.volumes), len(policies), len(seeds))
    t = stats.t.ppf(0.975, len(seeds) - 1)
    record: dict = {"bundle": args.bundle, "seeds": [seeds[0], seeds[-1]], "volumes": {}}
    for i, volume in enumerate(args.volumes):
        rows = {}
        for j, name in enumerate(policies):
            diff = table[i, j] - table[i, 1]
            half = float(t * diff.std(ddof=1) / np.sqrt(len(diff)))
            rows["bundle" if j == 0 else name] = {
                "margin_per_tx_usd": float(table[i, j].mean()),
                "vs_cheapest": float(diff.mean()),
                "half_width": half,
            }
        uplift = rows["oracle"]["vs_cheapest"]
        rows["bundle"]["oracle_share"] = rows["bundle"]["vs_cheapest"] / uplift if uplift else float("nan")
        record["volumes"][str(volume)] = rows
        print(f"volume_scale {volume}: margin/tx minus cheapest's, paired over {len(seeds)} seeds")
        for name, r in rows.items():
            print(
                f"  {name:9s} {r['margin_per_tx_usd']:.4f}  {r['vs_cheapest']:+.4f} ± {r['half_width']:.4f}"
            )
        print(f"  the bundle's share of the oracle's uplift: {rows['bundle']['oracle_share']:.0%}")
    if args.json:
        print(json.dumps(record))
    return record


if __name__ == "__main__":
    main(sys.argv[1:])
