"""Compare routing policies on common random numbers: every policy on the same seeds, paired intervals.

``payroute baselines SCENARIO --seeds N`` runs every routing baseline and the oracle through this module. The
result table reports, per policy, KPI means and the 95% interval of the paired difference in margin per
transaction against the cheapest route, and the oracle share: (policy - cheapest) / (oracle - cheapest).

Policies are baseline names or :class:`NamedPolicy` entries (a trained network bound into the world, as
``payroute evaluate`` does); :func:`versus` gives one policy's paired intervals against each of the others.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from payroute.envs.baselines import bound_policies
from payroute.envs.scenarios import Scenario, load_scenario
from payroute.envs.world import PaymentWorld
from payroute.stats import paired_interval
from payroute.vocabulary import HEADLINE_KPIS

ROUTING_BASELINE_ORDER = (
    "cheapest",
    "fastest",
    "priority",
    "success_rate",
    "cost_aware",
    "thompson",
    "ucb",
    "oracle",
    "clairvoyant",
)
KPI_COLUMNS = HEADLINE_KPIS


@dataclass(frozen=True)
class NamedPolicy:
    """A policy that is not a registered baseline (a trained network, say), under a label for the tables.

    ``make`` builds a fresh bound policy for one run; it must pickle when seeds run in worker processes.
    """

    name: str
    make: Callable[[], Any]


PolicyRef = str | NamedPolicy


def _label(p: PolicyRef) -> str:
    return p.name if isinstance(p, NamedPolicy) else p


@dataclass(frozen=True)
class _Job:
    scenario: Scenario
    policy: PolicyRef
    seed: int
    days: float
    risk: str
    kind: str = "route"
    others: tuple[tuple[str, str], ...] = ()
    detail: bool = False


def _run_job(job: _Job) -> dict[str, Any]:
    names: dict[str, str | None] = {"risk": job.risk, **dict(job.others)}
    if isinstance(job.policy, NamedPolicy):
        names[job.kind] = None
        policies = bound_policies(**names)
        policies[job.kind] = job.policy.make()
    else:
        names[job.kind] = job.policy
        policies = bound_policies(**names)
    world = PaymentWorld(job.scenario, seed=job.seed, policies=policies, days=job.days)
    margin_by_hour: list[float] = []
    if job.detail:
        world.on_hour = lambda w: margin_by_hour.append(w.kpis()["margin_usd"])
    world.run()
    row = {"policy": _label(job.policy), "seed": job.seed, "arrivals": world.arrivals, **world.kpis()}
    if not job.detail:
        return row
    return {
        "row": row,
        "hourly": {
            "attempts": world.by_hour_attempts.tolist(),
            "approved": world.by_hour_approved.tolist(),
            "margin_usd_cum": [*margin_by_hour, world.kpis()["margin_usd"]],
        },
        "route_mix": dict(world.route_counts),
    }


@dataclass
class PairedRuns:
    """Per-run KPIs and, for plots: attempts and approvals by hour of day, the cumulative margin at the end
    of each simulated hour (and once more after the world drained: ``drained``), and the route mix."""

    runs: pd.DataFrame
    hourly: pd.DataFrame
    margin_curve: pd.DataFrame
    route_mix: pd.DataFrame


def run_paired(
    scenario: str | Scenario,
    policies: tuple[PolicyRef, ...] = ROUTING_BASELINE_ORDER,
    seeds: int | list[int] = 5,
    days: float = 1.0,
    risk: str = "threshold",
    overrides: dict[str, Any] | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    kind: str = "route",
    others: dict[str, str] | None = None,
) -> pd.DataFrame:
    """One row per (policy, seed) with the run's KPIs; every policy sees the same seeds.

    ``policies`` are baseline names for decision ``kind`` or :class:`NamedPolicy` entries; ``risk`` and
    ``others`` (kind -> baseline name) bind every other decision.
    """
    return _run(scenario, policies, seeds, days, risk, overrides, workers, progress, kind, others, False).runs


def run_paired_detailed(
    scenario: str | Scenario,
    policies: tuple[PolicyRef, ...],
    seeds: int | list[int],
    days: float = 1.0,
    risk: str = "threshold",
    overrides: dict[str, Any] | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    kind: str = "route",
    others: dict[str, str] | None = None,
) -> PairedRuns:
    """:func:`run_paired` plus the hourly series and route mix of every run (long format)."""
    return _run(scenario, policies, seeds, days, risk, overrides, workers, progress, kind, others, True)


def _run(
    scenario, policies, seeds, days, risk, overrides, workers, progress, kind, others, detail
) -> PairedRuns:
    sc = load_scenario(scenario, overrides)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    other = dict(others or {})
    if kind == "risk":
        other.pop("risk", None)
    for p in policies:  # fail fast on a bad name, before any work
        if not isinstance(p, NamedPolicy):
            bound_policies(**{"risk": risk, **other, kind: p})
    labels = [_label(p) for p in policies]
    if len(set(labels)) != len(labels):
        raise ValueError(f"policy labels must be unique, got {labels}")
    others_t = tuple(sorted(other.items()))
    jobs = [_Job(sc, p, s, days, risk, kind, others_t, detail) for s in seed_list for p in policies]
    results: list[dict[str, Any]] = []
    if workers <= 1:
        for i, job in enumerate(jobs):
            results.append(_run_job(job))
            if progress:
                progress(i + 1, len(jobs))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for i, res in enumerate(pool.map(_run_job, jobs)):
                results.append(res)
                if progress:
                    progress(i + 1, len(jobs))
    if not detail:
        return PairedRuns(pd.DataFrame(results), pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    rows, hourly, curve, mix = [], [], [], []
    for job, res in zip(jobs, results, strict=True):
        rows.append(res["row"])
        label, h = _label(job.policy), res["hourly"]
        for hour in range(24):
            hourly.append(
                {"policy": label, "seed": job.seed, "hour": hour, "attempts": h["attempts"][hour],
                 "approved": h["approved"][hour]}
            )  # fmt: skip
        last = len(h["margin_usd_cum"]) - 1
        for step, m in enumerate(h["margin_usd_cum"]):
            curve.append(
                {"policy": label, "seed": job.seed, "hours": step + 1 if step < last else np.nan,
                 "drained": step == last, "margin_usd_cum": m}
            )  # fmt: skip
        for name, count in res["route_mix"].items():
            mix.append({"policy": label, "seed": job.seed, "route": name, "count": count})
    return PairedRuns(pd.DataFrame(rows), pd.DataFrame(hourly), pd.DataFrame(curve), pd.DataFrame(mix))


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


def versus(
    runs: pd.DataFrame, policy: str, metrics: tuple[str, ...] = ("margin_per_tx_usd", "approval_rate")
) -> pd.DataFrame:
    """Paired intervals of ``policy`` minus each other policy, per metric (same seeds)."""
    out = []
    for other in runs["policy"].unique():
        if other == policy:
            continue
        row: dict[str, Any] = {"policy": policy, "versus": other}
        for m in metrics:
            wide = runs.pivot(index="seed", columns="policy", values=m)
            d = paired_interval(wide[policy].to_numpy(), wide[other].to_numpy())
            row.update({f"{m}_diff": d.mean, f"{m}_low": d.low, f"{m}_high": d.high,
                        f"{m}_excludes_zero": d.excludes_zero})  # fmt: skip
        out.append(row)
    return pd.DataFrame(out)
