"""Run payroute's benchmarks and print them as a table (or one JSON object with ``--json``).

``make bench`` calls this. Benchmarks measure; they never fail a test run. Each row shows the target it is
held to and whether this machine met it.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys

from payroute.benchmarks import world as world_bench

# the other benchmarks run as scripts in their own process; each prints a JSON record as its last line
SCRIPTS = ("routing_env", "ecosystem", "rllib_sampling", "bundle_latency", "ope")


def run_script(name: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", f"payroute.benchmarks.{name}"], capture_output=True, text=True, check=False
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        return {
            "benchmark": name,
            "error": (out.stderr or out.stdout).strip().splitlines()[-1:] or ["failed"],
        }
    return json.loads(lines[-1])


def _script_rows(results: dict, add) -> None:
    r = results.get("routing_env")
    if r and "error" not in r:
        add(
            f"Routing-v0, random valid policy ({r['steps']:,} steps)",
            f"{r['steps_per_s']:,} steps/s",
            f">= {r['target_steps_per_s']:,}",
            r["passed"],
        )
        if "retries_steps_per_s" in r:
            add(
                f"Routing-v0 with retries on ({r['retries_steps']:,} steps)",
                f"{r['retries_steps_per_s']:,} steps/s",
                f">= {r['target_steps_per_s']:,}",
                r["retries_passed"],
            )
        add("Routing-v0 / bare SimPy loop", f"{r['ratio_to_bare_simpy']:.2f}", "", None)
        add("Routing-v0, async vector of 2 (wall)", f"{r['async_vector_2_steps_per_s']:,} steps/s", "", None)
    r = results.get("ecosystem")
    if r and "error" not in r:
        add(
            f"multi-agent ecosystem, 5 random agents ({r['agent_steps']:,} agent-steps)",
            f"{r['agent_steps_per_s']:,} agent-steps/s",
            f">= {r['target_agent_steps_per_s']:,}",
            r["passed"],
        )
    r = results.get("rllib_sampling")
    if r and "error" not in r:
        add(
            f"RLlib PPO sampling, Routing-v0 ({r['experiment']}, num_env_runners=0, {r['env_steps']:,} steps)",
            f"{r['env_steps_per_s']:,} env-steps/s ({r['env_steps_per_cpu_s']:,}/CPU s)",
            "",
            None,
        )
    r = results.get("bundle_latency")
    if r and "error" not in r:
        add("bundle on onnxruntime, single decision p50", f"{r['single_p50_ms']:.3f} ms", "", None)
        add(
            "bundle on onnxruntime, single decision p99",
            f"{r['single_p99_ms']:.3f} ms",
            "< 1 ms",
            r["single_p99_ms"] < 1,
        )
        add(
            "bundle on onnxruntime, batches of 1,024",
            f"{r['batch_decisions_per_s']:,} decisions/s",
            ">= 100,000",
            r["batch_decisions_per_s"] >= 100_000,
        )
    r = results.get("ope")
    if r and "error" not in r:
        add(
            f"OPE, {r['n']:,} logged decisions, {r['n_bootstrap']} bootstrap draws, 6 estimators",
            f"{r['seconds']:.1f} s",
            f"< {r['target_seconds']:.0f} s",
            r["passed"],
        )
    for name, r in results.items():
        if "error" in r:
            add(f"{name} (failed to run)", " ".join(r["error"]), "", False)


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

    def add(name: str, value: str, target: str, met: bool | None) -> None:
        table.add_row(name, value, target, "" if met is None else ok[met])

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
    _script_rows(result.get("scripts", {}), add)
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
    parser.add_argument("--only-world", action="store_true", help="only the world throughput (and memory)")
    args = parser.parse_args(argv)
    result = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()}
    }
    result["throughput"] = world_bench.throughput()
    if not args.only_world:
        result["scripts"] = {name: run_script(name) for name in SCRIPTS}
    if not args.skip_memory:
        result["memory"] = world_bench.memory()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _table(result)


if __name__ == "__main__":
    main()
