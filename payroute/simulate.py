"""Run the payment world with baseline policies: what ``payroute simulate`` does, as a function."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from payroute.agents.registry import bound_policies
from payroute.envs.scenarios import load_scenario
from payroute.envs.world import EventLog, PaymentWorld


def run_simulation(
    scenario: str | Path,
    route: str = "cheapest",
    risk: str = "threshold",
    days: float = 1.0,
    seed: int = 0,
    log_path: str | Path | None = None,
    drain: bool = True,
    progress: bool = False,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Simulate ``days`` of ``scenario`` with the named baselines; return the summary (counts, KPIs, wall time)."""
    sc = load_scenario(scenario, overrides)
    policies = bound_policies(route=route, risk=risk)
    log = EventLog(log_path) if log_path is not None else None
    start = time.perf_counter()
    world = PaymentWorld(sc, seed=seed, policies=policies, days=days, log=log, drain=drain)
    if progress:
        _run_with_progress(world, days)
    else:
        world.run(None if drain else world.horizon_s)
    if log is not None:
        log.close()
    wall = time.perf_counter() - start
    summary = world.summary()
    summary.update(policy=route, risk_policy=risk, wall_s=wall, log=str(log_path) if log_path else None)
    return summary


def _run_with_progress(world: PaymentWorld, days: float) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    hours = math.ceil(days * 24)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sim hours · {task.fields[arrivals]:,} arrivals · approval {task.fields[approval]}"),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(f"simulating {world.scenario.name}", total=hours, arrivals=0, approval="-")

        def on_hour(w: PaymentWorld) -> None:
            rate = w.kpis()["approval_rate"]
            bar.update(task, advance=1, arrivals=w.arrivals, approval=f"{rate:.1%}")

        world.on_hour = on_hour
        world.run(world.horizon_s)
        if world.drain:
            bar.update(task, description="settling in-flight payments and late chargebacks")
            world.run()
        bar.update(task, description=f"simulated {world.scenario.name}")
