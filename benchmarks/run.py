"""Run payroute's benchmarks and print them as a table (or one JSON object with ``--json``).

``make bench`` calls this. Benchmarks measure; they never fail a test run. Each row shows the target it is
held to and whether this machine met it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import world as world_bench  # noqa: E402  (benchmarks/world.py, next to this file)


def _table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    tp = result["throughput"]
    table = Table(
        title=f"payroute benchmarks · {platform.python_implementation()} {platform.python_version()}"
    )
    table.add_column("benchmark")
    table.add_column("result", justify="right")
    table.add_column("target", justify="right")
    table.add_column("met", justify="center")
    ok = {True: "[green]yes[/]", False: "[red]no[/]"}
    w, bare = tp["world"], tp["bare_simpy"]
    table.add_row(
        f"world throughput ({w['transactions']:,} tx, {w['cpu_s']:.2f} CPU s, {w['wall_s']:.2f} wall s)",
        f"{w['tx_per_s']:,.0f} tx/s",
        f">= {tp['target_tx_per_s']:,} tx/s",
        ok[tp["meets_target"]],
    )
    table.add_row(
        f"bare SimPy loop (same {bare['transactions']:,} tx, {bare['cpu_s']:.2f} CPU s)",
        f"{bare['tx_per_s']:,.0f} tx/s",
        "",
        "",
    )
    table.add_row("world / bare SimPy", f"{tp['ratio_to_bare_simpy']:.2f}", "", "")
    mem = result.get("memory")
    if mem is not None:
        for run in mem["runs"]:
            table.add_row(
                f"peak memory, {run['days']:g} days with log ({run['transactions']:,} tx, {run['wall_s']:.0f} s)",
                f"{run['peak_rss_mb']:,.0f} MB",
                f"< {mem['target_mb']:,} MB",
                ok[run["peak_rss_mb"] < mem["target_mb"]],
            )
        days = [run["days"] for run in mem["runs"]]
        table.add_row(
            f"memory growth, {days[-1]:g} / {days[0]:g} days", f"{mem['growth_first_to_last']:.2f}x", "", ""
        )
        table.add_row(
            f"memory growth, {days[-1]:g} / {days[-2]:g} days (pipeline full)",
            f"{mem['growth_last_two']:.2f}x",
            f"< {world_bench.FLAT_GROWTH_LIMIT:.2f}x (flat)",
            ok[mem["meets_target"]],
        )
    console.print(table)
    console.print(
        f"[dim]{tp['command']}; rates per CPU-second of one process, best of 5 runs taken in turns[/]"
    )
    if mem is not None:
        console.print(f"[dim]{mem['command']}[/]")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="payroute benchmarks")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--skip-memory", action="store_true", help="skip the multi-day memory benchmark")
    args = parser.parse_args(argv)
    result = {"throughput": world_bench.throughput()}
    if not args.skip_memory:
        result["memory"] = world_bench.memory()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _table(result)


if __name__ == "__main__":
    main()
