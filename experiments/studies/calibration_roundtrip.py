"""The calibration round trip: a world logged under exploration, fitted from its log alone, and the decisions
made on the fitted world checked against the world that made the log.

Each truth (``envs/calibration/truths/*.yaml``, or ``default`` itself) is simulated for ``days`` days under the
exploring behaviour policy users log with (``payroute simulate --explore``: :func:`run_simulation` with
``explore``), the log is calibrated on the base ``default`` (:func:`~payroute.envs.calibration.calibrate`), and:

* :func:`recovery`: every fitted value with an interval against the truth's value (inside or not, relative
  error), by block, plus the distance between the fitted and the true arrival profiles;
* :func:`decide`: every routing baseline and the zoo router run on the truth, on the fitted world and on the
  base (the answer of a fit that learned nothing), on the same held-out seeds (paired: :mod:`payroute.policies.compare`);
* :func:`kpi_agreement`: per policy, the paired interval of fitted minus truth for each KPI, against a tolerance;
* :func:`pair_signs` / :func:`rankings`: for every pair of policies, the sign of their paired difference in the
  truth and in the fitted world, and the ranking by margin per transaction in each.

``benchmarks/calibration_roundtrip.py`` runs it and prints the tables; docs/calibration_roundtrip.md has the
numbers.
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import payroute.envs.calibration as calibration_package
from payroute.envs.calibration import Calibration, calibrate
from payroute.envs.scenarios import Scenario, load_scenario
from payroute.experiments.simulate import run_simulation
from payroute.policies import zoo
from payroute.policies.compare import ROUTING_BASELINE_ORDER, PolicyRef, Run, bundle_policy, run_all
from payroute.stats import paired_interval
from payroute.vocabulary import HELD_OUT_SEED_START

TRUTH_DIR = Path(calibration_package.__file__).resolve().parent / "truths"
TRUTHS = ("shifted", "outage")
"""The shipped truths: ``shifted`` differs from ``default`` in volume profile, segment mix, approval by route
and segment, fees and fraud rates; ``outage`` is ``shifted`` with card_alpha down four hours on day 0."""

BEHAVIOUR, EPSILON = "cheapest", 0.3
"""The logging policy: the cheapest route, and a uniformly drawn eligible one 30% of the time, so every route
is seen on every kind of payment."""

EVAL_SEED_START = HELD_OUT_SEED_START + 220_000
"""Decisions are compared on seeds no log of the study used (logs use seeds below 1000)."""

TOLERANCE = {"margin_per_tx_usd": 0.05, "approval_rate": 0.01, "fraud_loss_bps": 5.0}
"""The stated tolerance of a fitted world's KPI against the truth's, per policy: the paired 95% interval of
(fitted - truth) must lie within +-tolerance ($ per transaction, share of attempts, bps of settled value)."""

METRICS = ("margin_per_tx_usd", "approval_rate")
"""What a decision is judged on: the ranking and the pair signs use these (margin first)."""

RESOLVABLE = {"margin_per_tx_usd": 0.03, "approval_rate": 0.02}
"""The smallest difference between two routers a log can be expected to settle. Approval is the binding one: a
route's approval drifts (hourly random steps of ``drift_sigma_per_day`` a day in logit, 0.08 on default's card
processors, reverting over about eight days) and starts at the scenario's value in every simulated run, so the
level a log shows is off that value by 1 to 2 points on a card route, for a week of log as for a month. Two
routers whose true approval differs by less can be ordered either way by a faithful fit."""

ZOO_ROUTER = "zoo_router"


def truth_scenario(name: str, volume: float = 0.1) -> Scenario:
    """A shipped truth (or ``default``) at ``volume`` times its volume."""
    ref: str | Path = name if name == "default" else TRUTH_DIR / f"{name}.yaml"
    return load_scenario(ref, {"volume_scale": volume})


def log_truth(truth: Scenario, days: int, path: Path, seed: int = 7) -> Path:
    """``days`` days of ``truth`` logged under the exploring behaviour policy (what ``simulate --explore`` runs)."""
    run_simulation(truth, route=BEHAVIOUR, days=float(days), seed=seed, log_path=path, explore=EPSILON,
                   log_observations=False)  # fmt: skip
    return path


def fit_truth(truth: Scenario, days: int, seed: int = 7, folder: Path | None = None) -> Calibration:
    """Log ``truth`` for ``days`` days and calibrate ``default`` from that log alone."""
    with tempfile.TemporaryDirectory() as tmp:
        path = log_truth(truth, days, Path(folder or tmp) / f"{truth.name}_{days}d.parquet", seed)
        return calibrate(
            path, base="default", name=f"fitted_{truth.name}_{days}d", start_date=truth.start_date
        )


# ---------------------------------------------------------------------- parameters
MIXES = {
    "instrument_mix", "segment_mix", "merchant_category_mix", "credit_networks", "debit_networks",
    "cross_border_currencies", "urgency_mix",
}  # fmt: skip


def truth_value(truth: Scenario, path: str) -> float:
    """What ``truth`` says at a calibrated value's provenance path (``demand.segment_mix.consumer``,
    ``routes.card_alpha.fee.bps``...): a mix's share normalised; a rate the world multiplies by
    ``volume_scale`` (genuine payments a day, fraud attacks a day) at the rate the log was made at."""
    data: Any = truth.model_dump(mode="json")
    parts = path.split(".")
    if parts[:2] == ["demand", "transactions_per_day"]:
        return truth.demand.transactions_per_day * truth.volume_scale
    if parts[0] == "demand" and parts[1] in MIXES:
        mix = data["demand"][parts[1]]
        return mix.get(parts[2], 0.0) / sum(mix.values())
    for part in parts:
        data = data[part]
    if parts[-1] == "attacks_per_day":
        return float(data) * truth.volume_scale
    return float(data)


def block_of(path: str) -> str:
    """The fit report's block a provenance path belongs to."""
    parts = path.split(".")
    if parts[0] == "demand":
        if parts[1] in MIXES or parts[1].endswith("_share"):
            return "mixes"
        return "amounts" if parts[1].endswith("_amount") else "arrivals"
    if parts[0] == "routes":
        return {"approval": "approval", "latency": "latency", "fee": "fees"}.get(parts[2], "routes")
    return "fraud" if parts[-1] == "attacks_per_day" else "discovery"


def recovery(cal: Calibration, truth: Scenario) -> pd.DataFrame:
    """One row per fitted value with an interval: its block, the truth, the fit, the interval, whether the
    truth is inside it and the relative error |fit - truth| / |truth|."""
    rows = []
    for path, entry in sorted(cal.provenance["values"].items()):
        if entry["status"] != "fitted" or "interval" not in entry:
            continue
        lo, hi = entry["interval"]
        true, fit = truth_value(truth, path), float(entry["value"])
        rows.append({"path": path, "block": block_of(path), "truth": true, "fitted": fit, "low": lo, "high": hi,
                     "inside": bool(lo <= true <= hi),
                     "rel_error": abs(fit - true) / abs(true) if true else abs(fit - true)})  # fmt: skip
    return pd.DataFrame(rows)


def profile_distances(fitted: Scenario, truth: Scenario) -> dict[str, float]:
    """Total-variation distances between the fitted and the true arrival profiles (hour of day, day of week)."""

    def tv(a, b) -> float:
        a, b = np.asarray(a, float), np.asarray(b, float)
        return float(0.5 * np.abs(a / a.sum() - b / b.sum()).sum())

    return {"intraday_tv": tv(fitted.demand.intraday_profile, truth.demand.intraday_profile),
            "weekly_tv": tv(fitted.demand.weekly_profile, truth.demand.weekly_profile)}  # fmt: skip


# ---------------------------------------------------------------------- decisions
def routers(zoo_router: bool = True) -> tuple[PolicyRef, ...]:
    """Every routing baseline and, with ``zoo_router``, the zoo's router bundle (bound as every arm binds one)."""
    out: tuple[PolicyRef, ...] = ROUTING_BASELINE_ORDER
    return (*out, bundle_policy(zoo("router"), ZOO_ROUTER)) if zoo_router else out


@dataclass
class Decisions:
    """Per-run KPIs of every policy in every world (``world``, ``policy``, ``seed`` and the KPIs)."""

    runs: pd.DataFrame

    def wide(self, world: str, metric: str) -> pd.DataFrame:
        part = self.runs[self.runs.world == world]
        return part.pivot(index="seed", columns="policy", values=metric)


def decide(
    worlds: dict[str, Scenario | list[Scenario]],
    policies: tuple[PolicyRef, ...],
    seeds: int = 10,
    days: float = 1.0,
    workers: int = 1,
) -> Decisions:
    """Every policy in every world on the same held-out seeds (common random numbers within a world, the same
    seed numbers across worlds), the risk decision bound to ``threshold`` everywhere.

    A world given as a list of scenarios (one per seed: the fits of independent logs, :func:`replicate_fits`)
    runs its i-th seed on its i-th scenario, so the paired intervals against the truth hold the calibration's
    own uncertainty (which log was drawn) besides the evaluation days'."""
    seed_list = [EVAL_SEED_START + i for i in range(seeds)]
    jobs = []
    for w, sc in worlds.items():
        if isinstance(sc, list) and len(sc) < seeds:
            raise ValueError(f"world {w!r} has {len(sc)} scenarios for {seeds} seeds")
        for i, s in enumerate(seed_list):
            scenario = sc[i] if isinstance(sc, list) else sc
            jobs += [(w, Run(scenario, p, s, days, "route", (("risk", "threshold"),))) for p in policies]
    outcomes = run_all([run for _, run in jobs], workers, spawn=workers > 1)
    rows = [{"world": w, "policy": r.policy if isinstance(r.policy, str) else r.policy.name, "seed": r.seed,
             **o.kpis} for (w, r), o in zip(jobs, outcomes, strict=True)]  # fmt: skip
    return Decisions(pd.DataFrame(rows))


def replicate_fits(truth: Scenario, days: int, replicates: int) -> list[Scenario]:
    """The scenarios fitted from ``replicates`` independent logs of ``truth`` (log seeds 0, 1, ...), each
    ``days`` long: a round trip repeated, for intervals that hold which log happened to be drawn."""
    return [fit_truth(truth, days, seed=i).scenario for i in range(replicates)]


def kpi_agreement(d: Decisions, world: str, truth: str = "truth", confidence: float = 0.95) -> pd.DataFrame:
    """Per policy and KPI: the paired interval (same seeds, at ``confidence``) of ``world`` minus ``truth``;
    ``consistent`` when it holds zero (no difference shown), ``within`` when it lies inside +-:data:`TOLERANCE`
    (equivalence shown). A claim about every row at once needs a family-wise ``confidence`` (Bonferroni:
    1 - 0.05 / rows): at 95% each, one of 18 true matches is outside its interval more often than not."""
    rows = []
    for metric, tol in TOLERANCE.items():
        a, b = d.wide(world, metric), d.wide(truth, metric)
        for policy in a.columns:
            iv = paired_interval(a[policy].to_numpy(), b[policy].to_numpy(), confidence)
            rows.append({"world": world, "policy": policy, "metric": metric, "truth": float(b[policy].mean()),
                         "diff": iv.mean, "low": iv.low, "high": iv.high, "tolerance": tol,
                         "consistent": bool(iv.low <= 0.0 <= iv.high),
                         "within": bool(-tol <= iv.low and iv.high <= tol)})  # fmt: skip
    return pd.DataFrame(rows)


def rankings(d: Decisions, metric: str = "margin_per_tx_usd") -> pd.DataFrame:
    """Each world's policies ranked by their mean ``metric`` (1 = best), one column per world."""
    means = d.runs.groupby(["world", "policy"], sort=False)[metric].mean().unstack("world")
    return means.rank(ascending=False, method="min").astype(int).sort_values(means.columns[0])


def pair_signs(d: Decisions, world: str, truth: str = "truth") -> pd.DataFrame:
    """For every pair of policies and each of :data:`METRICS`: the paired interval of their difference in the
    truth and in ``world``; ``clear`` when the truth's interval excludes zero, ``resolvable`` when it is clear and
    at least :data:`RESOLVABLE`; ``agree`` when the signs of the two mean differences are the same (for a clear
    pair, the decision the fitted world would make is right)."""
    rows = []
    for metric in METRICS:
        t, w = d.wide(truth, metric), d.wide(world, metric)
        for a, b in itertools.combinations(list(t.columns), 2):
            ti = paired_interval(t[a].to_numpy(), t[b].to_numpy())
            wi = paired_interval(w[a].to_numpy(), w[b].to_numpy())
            rows.append({"world": world, "metric": metric, "a": a, "b": b, "truth_diff": ti.mean,
                         "truth_low": ti.low, "truth_high": ti.high, "diff": wi.mean, "low": wi.low,
                         "high": wi.high, "clear": bool(ti.excludes_zero),
                         "resolvable": bool(ti.excludes_zero and abs(ti.mean) >= RESOLVABLE[metric]),
                         "agree": bool(np.sign(ti.mean) == np.sign(wi.mean))})  # fmt: skip
    return pd.DataFrame(rows)


def kendall_tau(d: Decisions, world: str, truth: str = "truth", metric: str = METRICS[0]) -> float:
    """Kendall's tau between the policies' mean ``metric`` in ``world`` and in the truth (1: the same order)."""
    from scipy.stats import kendalltau

    means = d.runs.groupby(["world", "policy"])[metric].mean().unstack("world")
    return float(kendalltau(means[world], means[truth]).statistic)


def worlds_for(truth: Scenario, fits: dict[str, Scenario], base: bool = True) -> dict[str, Scenario]:
    """The worlds a truth's decisions are compared in: the truth; each fitted world (``fitted <label>``) and,
    where the truth has incidents, the fitted world with them stated as a what-if (``fitted <label> +
    incidents``: an outage is an event, not a parameter, so a fit has none); and the base ``default`` at the
    truth's volume (what a fit that learned nothing would say)."""
    worlds = {"truth": truth}
    incidents = [i.model_dump(mode="json") for i in truth.incidents]
    for label, fitted in fits.items():
        worlds[f"fitted {label}"] = fitted
        if incidents:
            worlds[f"fitted {label} + incidents"] = load_scenario(fitted, {"incidents": incidents})
    if base:
        worlds["base"] = load_scenario("default", {"volume_scale": truth.volume_scale})
    return worlds


__all__ = [
    "EPSILON", "RESOLVABLE", "TOLERANCE", "TRUTHS", "TRUTH_DIR", "Decisions", "block_of", "decide", "fit_truth", "kendall_tau",
    "kpi_agreement", "log_truth", "pair_signs", "profile_distances", "rankings", "recovery", "replicate_fits", "routers",
    "truth_scenario", "truth_value", "worlds_for",
]  # fmt: skip
