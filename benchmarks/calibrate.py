"""How long ``payroute calibrate`` takes on a month of a full-volume log, and whether its memory grows with the log.

One day of ``default`` at ``--per-day`` genuine payments (30% exploration around ``cheapest``) is simulated and
logged, then repeated day after day (times and ids shifted) into logs of each ``--days`` length: the fit's cost
depends on the number of rows and on what it keeps per day, not on whether the days differ. Each log is fitted in
a fresh process; the record holds its rows, the fit's wall time (one core: the fit is single-threaded) and the
process's peak resident memory. The issue's target: 30 days of 10^5 payments a day in under two minutes, with
memory that does not grow with the log beyond a streaming read (compare the peaks of the short and the long log).

    python -m payroute.benchmarks.calibrate --days 3 30 --per-day 100000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path


def make_log(folder: Path, days: int, per_day: int, seed: int = 5) -> Path:
    """A ``days``-long own event log: one simulated day of ``default``, repeated."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from payroute.experiments.simulate import run_simulation

    one = folder / "one_day.parquet"
    if not one.exists():
        run_simulation(
            "default", route="cheapest", days=1.0, seed=seed, log_path=one,
            overrides={"volume_scale": per_day / 100_000}, explore=0.3, log_observations=False,
        )  # fmt: skip
    table = pq.read_table(one)
    path = folder / f"log_{days}d.parquet"
    with pq.ParquetWriter(path, table.schema) as writer:
        for d in range(days):
            shift = d * 86_400.0
            day = table
            for name in ("t", "t_arrival"):
                day = day.set_column(day.schema.get_field_index(name), name, pc.add(day[name], shift))
            settled = day["t_settled"]
            day = day.set_column(
                day.schema.get_field_index("t_settled"), "t_settled",
                pc.if_else(pc.less(settled, 0), settled, pc.add(settled, shift)),
            )  # fmt: skip
            day = day.set_column(
                day.schema.get_field_index("tx_id"), "tx_id", pc.add(day["tx_id"], d * 10**8)
            )
            writer.write_table(day)
    return path


def _fit(path: str, queue) -> None:
    from payroute.envs.calibration import calibrate

    start = time.perf_counter()
    result = calibrate(path, base="default", name="bench")
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    p = result.provenance
    queue.put({"rows": p["rows_read"], "fit_s": wall, "peak_rss_mb": peak_mb,
               "transactions_per_day": result.scenario.demand.transactions_per_day})  # fmt: skip


def fit_in_fresh_process(path: Path) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_fit, args=(str(path), queue))
    proc.start()
    record = queue.get()
    proc.join()
    return record


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, nargs="+", default=[3, 30])
    ap.add_argument("--per-day", type=int, default=100_000, help="genuine payments a day (default's volume)")
    ap.add_argument("--json", action="store_true", help="print the record as JSON")
    args = ap.parse_args(argv)
    record: dict = {"per_day": args.per_day, "logs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for days in args.days:
            path = make_log(Path(tmp), days, args.per_day)
            run = fit_in_fresh_process(path)
            run["log_mb"] = path.stat().st_size / 1e6
            run["rows_per_s"] = run["rows"] / run["fit_s"]
            record["logs"][f"{days}d"] = run
            path.unlink()
    if args.json:
        print(json.dumps(record, indent=2, sort_keys=True))
    else:
        for name, r in record["logs"].items():
            print(f"{name}: {r['rows']:,} rows ({r['log_mb']:.0f} MB) fitted in {r['fit_s']:.1f} s "
                  f"({r['rows_per_s']:,.0f} rows/s), peak memory {r['peak_rss_mb']:.0f} MB")  # fmt: skip
    return record


if __name__ == "__main__":
    main()
