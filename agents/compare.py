"""Compare routing policies on common random numbers: every policy on the same seeds, paired intervals.

``payroute baselines SCENARIO --seeds N`` runs every routing baseline and the oracle through this module. The
result table reports, per policy, KPI means and the 95% interval of the paired difference in margin per
transaction against the cheapest route, and the oracle share: (policy - cheapest) / (oracle - cheapest).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from payroute.agents.registry import bound_policies
from payroute.envs.scenarios import Scenario, load_scenario
from payroute.envs.world import PaymentWorld
from payroute.stats import paired_interval

ROUTING_BASELINE_ORDER = (
    "cheapest",
    "fastest",
    "priority",
    "success_rate",
    "cost_aware",
    "thompson",
    "ucb",
    "oracle",
)
KPI_COLUMNS = (
    "margin_per_tx_usd",
    "approval_rate",
    "route_cost_bps",
    "fraud_loss_bps",
    "sla_misses",
    "liquidity_cost_usd",
)


@dataclass(frozen=True)
class _Job:
    scenario: Scenario
    policy: str
    seed: int
    days: float
    risk: str


def _run_job(job: _Job) -> dict[str, Any]:
    world = PaymentWorld(
        job.scenario, seed=job.seed, policies=bound_policies(route=job.policy, risk=job.risk), days=job.days
    )
    world.run()
    return {"policy": job.policy, "seed": job.seed, "arrivals": world.arrivals, **world.kpis()}


def run_paired(
    scenario: str | Scenario,
    policies: tuple[str, ...] = ROUTING_BASELINE_ORDER,
    seeds: int | list[int] = 5,
    days: float = 1.0,
    risk: str = "threshold",
    overrides: dict[str, Any] | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """One row per (policy, seed) with the run's KPIs; every policy sees the same seeds."""
    sc = load_scenario(scenario, overrides)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    for name in policies:  # fail fast on a bad name, before any work
        bound_policies(route=name, risk=risk)
    jobs = [_Job(sc, p, s, days, risk) for s in seed_list for p in policies]
    rows: list[dict[str, Any]] = []
    if workers <= 1:
        for i, job in enumerate(jobs):
            rows.append(_run_job(job))
            if progress:
                progress(i + 1, len(jobs))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for i, row in enumerate(pool.map(_run_job, jobs)):
                rows.append(row)
                if progress:
                    progress(i + 1, len(jobs))
    return pd.DataFrame(rows)


def summarise(runs: pd.DataFrame, reference: str = "cheapest", oracle: str = "oracle") -> pd.DataFrame:
    """Per policy: KPI means, the paired interval of margin/tx against ``reference``, and the oracle share."""
    wide = runs.pivot(index="seed", columns="policy", values="margin_per_tx_usd")
    approval = runs.pivot(index="seed", columns="policy", values="approval_rate")
    ref = wide[reference] if reference in wide else None
    gap = None
    if ref is not None and oracle in wide:
        gap = float((wide[oracle] - ref).mean())
    out = []
    for policy, group in runs.groupby("policy", sort=False):
        row: dict[str, Any] = {"policy": policy, "seeds": len(group)}
        for k in KPI_COLUMNS:
            row[k] = float(group[k].mean())
        if ref is not None:
            d = paired_interval(wide[policy].to_numpy(), ref.to_numpy())
            row.update(margin_diff=d.mean, margin_diff_low=d.low, margin_diff_high=d.high)
            a = paired_interval(approval[policy].to_numpy(), approval[reference].to_numpy())
            row.update(approval_diff=a.mean, approval_diff_low=a.low, approval_diff_high=a.high)
            row["oracle_share"] = d.mean / gap if gap and abs(gap) > 1e-12 else np.nan
        out.append(row)
    return pd.DataFrame(out)


def markdown_table(table: pd.DataFrame) -> str:
    """The summary as a Markdown table (what the README shows)."""
    head = (
        "| policy | margin/tx ($) | Δ margin/tx vs cheapest [95% CI] | approval | Δ approval, points [95% CI] "
        "| oracle share | route cost (bps) | fraud loss (bps) | SLA misses |"
    )
    lines = [head, "|" + " --- |" * 9]
    for r in table.itertuples():
        lines.append(
            f"| {r.policy} | {r.margin_per_tx_usd:.4f} | {r.margin_diff:+.4f} [{r.margin_diff_low:+.4f}, "
            f"{r.margin_diff_high:+.4f}] | {r.approval_rate:.2%} | {r.approval_diff * 100:+.2f} "
            f"[{r.approval_diff_low * 100:+.2f}, {r.approval_diff_high * 100:+.2f}] | {r.oracle_share:.0%} | "
            f"{r.route_cost_bps:.1f} | {r.fraud_loss_bps:.2f} | {r.sla_misses:,.0f} |"
        )
    return "\n".join(lines)
