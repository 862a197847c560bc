"""The fit report's numbers: the log against a simulation of the scenario fitted to it, block by block.

The fitted scenario is simulated for some of the log's days with the log's own routing behaviour
(:class:`ReplayRoute`: each payment's route drawn in proportion to the log's attempts on the eligible routes for
its instrument and corridor), its event log is read back into the same statistics as the log's, and every
fitted quantity is compared: a distance per quantity and a ``pass`` / ``warn`` verdict per block.

A block warns when a difference is both material and beyond what sampling explains (two-sided, p < 0.001, the
simulated days being a sample too):

| block | distance (per quantity) | warns when |
| --- | --- | --- |
| arrivals | relative error of genuine payments a day; total variation (TV) of the intraday profile | Poisson abs(z) > 3.3 and error > 5%; chi-square p < 0.001 and TV > 0.02 |
| mixes | TV of each mix | chi-square p < 0.001 and TV > 0.02 |
| amounts | Kolmogorov-Smirnov (KS) and Wasserstein-1 in log cents, per family | KS above its 0.001 critical value and > 0.05 |
| approval | two-proportion z per route x segment (30 answered attempts or more in both) | abs(z) > 3.3 |
| latency | KS of log latency per route (30 or more in both) | KS above its 0.001 critical value and > 0.05 |
| fees | relative error of the mean fee per approved attempt (net of interchange) per route | abs(z) > 3.3 and error > 2% |
| fraud | Poisson z of attacks a day per pattern | abs(z) > 3.3 |
| discovery | z of the log's mean log-delay until a fraud came to light against the scenario's median, per pattern (10 or more delays) | abs(z) > 3.3 |

The simulated days end before their frauds' chargebacks and returns arrive (weeks later), so the discovery block
compares the log's delays with the fitted scenario's discovery model (lognormal: ``discovery_median_days``,
``discovery_sigma``) rather than with a simulation. The risk decisions of the simulation are the ``threshold``
baseline's, not the log's (a log does not say how its risk desk decided). The HTML page with plots is drawn from
:func:`fit_comparison`'s two statistics by :mod:`payroute.experiments.fit_report`.
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import chi2_contingency

from payroute.envs.baselines import bound_policies
from payroute.envs.calibration.stats import (
    AMOUNT_BINS,
    LOG_AMOUNT_HI,
    LOG_LAT_BINS,
    LOG_LAT_HI,
    LOG_LAT_LO,
    LogStats,
    read_log_stats,
)
from payroute.envs.scenarios.schema import Scenario
from payroute.envs.world import EventLog, PaymentWorld

MIN_CELL = 30
Z = 3.29  # two-sided p = 0.001
KS_C = 1.95  # the two-sample KS critical value's constant at p = 0.001


class ReplayRoute:
    """Routes as the log did: an eligible route drawn in proportion to the log's attempts on it for the payment's
    instrument and corridor (uniformly where the log has none)."""

    kind = "route"

    def __init__(self, choice: Counter) -> None:
        self.weights: dict[tuple[str, str], dict[str, float]] = {}
        for (instrument, cross_border, route), n in sorted(choice.items()):
            self.weights.setdefault((instrument, cross_border), {})[route] = float(n)
        self.rng = np.random.default_rng(0)

    def bind(self, world: Any) -> None:
        self.rng = world.policy_rng("route")

    def decide(self, world: Any, payload: Any) -> tuple[int, float]:
        tx, eligible = payload
        w = self.weights.get((tx.instrument, "true" if tx.cross_border else "false"), {})
        p = np.array([w.get(r.name, 0.0) for r in eligible])
        if p.sum() <= 0:
            p = np.ones(len(eligible))
        p = p / p.sum()
        i = int(np.searchsorted(np.cumsum(p), self.rng.random() * (1 - 1e-12), side="right"))
        i = min(i, len(eligible) - 1)
        return eligible[i].index, float(p[i])


def simulate_like_the_log(scenario: Scenario, logged: LogStats, days: float, seed: int, path: Path) -> Path:
    """Simulate ``scenario`` for ``days`` with the log's routing shares; its event log is written to ``path``."""
    policies = bound_policies(risk="threshold")
    policies["route"] = ReplayRoute(logged.route_choice)
    log = EventLog(path)
    try:
        PaymentWorld(scenario, seed=seed, policies=policies, days=days, log=log, drain=True).run()
    except BaseException:
        log.discard()
        raise
    log.close()
    return path


def fit_report(scenario: Scenario, logged: LogStats, days: float, seed: int = 0) -> dict[str, Any]:
    """The log against ``days`` simulated days of its fitted ``scenario``: distances and verdicts per block."""
    return fit_comparison(scenario, logged, days, seed)[0]


def fit_comparison(
    scenario: Scenario, logged: LogStats, days: float, seed: int = 0
) -> tuple[dict[str, Any], LogStats]:
    """The fit report and the simulated days' statistics it compared with the log's (for plots)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = simulate_like_the_log(scenario, logged, days, seed, Path(tmp) / "simulated.parquet")
        _, simulated = read_log_stats(path, None, scenario)
    return compare(logged, simulated, scenario) | {"simulated_days": days, "seed": seed}, simulated


# ------------------------------------------------------------------------------------------------ comparing


def compare(log: LogStats, sim: LogStats, scenario: Scenario | None = None) -> dict[str, Any]:
    """Every block's distances and verdict (see the module's table); ``discovery`` needs the ``scenario``."""
    blocks = {
        "arrivals": _arrivals(log, sim),
        "mixes": _mixes(log, sim),
        "amounts": _amounts(log, sim),
        "approval": _approval(log, sim),
        "latency": _latency(log, sim),
        "fees": _fees(log, sim),
        "fraud": _fraud(log, sim),
    }
    if scenario is not None:
        blocks["discovery"] = _discovery(log, scenario)
    return {
        "verdict": "pass" if all(b["verdict"] == "pass" for b in blocks.values()) else "warn",
        "blocks": blocks,
    }


def _days(s: LogStats) -> int:
    return s.last_day - s.first_day + 1


def _verdict(ok: bool) -> str:
    return "pass" if ok else "warn"


def _tv(a: dict, b: dict) -> float:
    ta, tb = sum(a.values()), sum(b.values())
    if ta == 0 or tb == 0:
        return 0.0 if ta == tb else 1.0
    return 0.5 * sum(abs(a.get(k, 0) / ta - b.get(k, 0) / tb) for k in set(a) | set(b))


def _arrivals(log: LogStats, sim: LogStats) -> dict[str, Any]:
    n_log, n_sim = sum(log.day_counts.values()), sum(sim.day_counts.values())
    rate_log, rate_sim = n_log / _days(log), n_sim / _days(sim)
    rel = abs(rate_sim - rate_log) / rate_log
    z = (rate_sim - rate_log) / math.sqrt(rate_log / _days(log) + max(rate_sim, 1e-9) / _days(sim))
    hours_log, hours_sim = dict(enumerate(log.hour_counts)), dict(enumerate(sim.hour_counts))
    tv, p = _tv(hours_log, hours_sim), _chi2_p(hours_log, hours_sim)
    return {
        "verdict": _verdict(not (abs(z) > Z and rel > 0.05) and not (p < 0.001 and tv > 0.02)),
        "per_day": {"logged": _r(rate_log), "simulated": _r(rate_sim), "relative_error": _r(rel), "z": _r(z)},
        "intraday": {"total_variation": _r(tv), "p": _r(p)},
    }


def _chi2_p(a: dict, b: dict) -> float:
    """p-value of a chi-square test that two samples of categories come from one distribution."""
    keys = sorted(k for k in set(a) | set(b) if a.get(k, 0) + b.get(k, 0) > 0)
    if len(keys) < 2:
        return 1.0
    table = np.array([[a.get(k, 0) for k in keys], [b.get(k, 0) for k in keys]], dtype=float)
    if table.sum(axis=1).min() <= 0:
        return 0.0
    return float(chi2_contingency(table, correction=False)[1])


def _mixes(log: LogStats, sim: LogStats) -> dict[str, Any]:
    items = {}
    for name, counter in sorted(log.mixes.items()):
        if sum(counter.values()):
            other = sim.mixes.get(name, Counter())
            items[name] = {"total_variation": _r(_tv(counter, other)), "p": _r(_chi2_p(counter, other))}
    warn = any(v["p"] < 0.001 and v["total_variation"] > 0.02 for v in items.values())
    return {"verdict": _verdict(not warn), "mixes": items}


def _hist_distances(a: np.ndarray, b: np.ndarray, width: float) -> tuple[float, float]:
    ca, cb = np.cumsum(a) / a.sum(), np.cumsum(b) / b.sum()
    return float(np.max(np.abs(ca - cb))), float(np.sum(np.abs(ca - cb)) * width)


def _amounts(log: LogStats, sim: LogStats) -> dict[str, Any]:
    items = {}
    for name, hist in sorted(log.amount_hist.items()):
        other = sim.amount_hist.get(name)
        if hist.sum() < MIN_CELL or other is None or other.sum() < MIN_CELL:
            continue
        ks, w1 = _hist_distances(hist, other, LOG_AMOUNT_HI / AMOUNT_BINS)
        items[name] = {"ks": _r(ks), "ks_critical": _ks_critical(hist.sum(), other.sum()),
                       "wasserstein_log_cents": _r(w1), "rows": [int(hist.sum()), int(other.sum())]}  # fmt: skip
    return {"verdict": _verdict(not any(_ks_warns(v) for v in items.values())), "families": items}


def _ks_critical(n: float, m: float) -> float:
    return _r(KS_C * math.sqrt((n + m) / (n * m)))


def _ks_warns(item: dict) -> bool:
    return item["ks"] > item["ks_critical"] and item["ks"] > 0.05


def _approval(log: LogStats, sim: LogStats) -> dict[str, Any]:
    items = {}
    for route, seg in sorted({(r, s) for r, s, _ in log.approval}):
        k1, n1 = _approved(log, route, seg)
        k2, n2 = _approved(sim, route, seg)
        if n1 < MIN_CELL or n2 < MIN_CELL:
            continue
        p1, p2, p = k1 / n1, k2 / n2, (k1 + k2) / (n1 + n2)
        se = math.sqrt(max(p * (1 - p), 1e-12) * (1 / n1 + 1 / n2))
        items[f"{route}.{seg}"] = {
            "logged": _r(p1),
            "simulated": _r(p2),
            "z": _r((p2 - p1) / se),
            "rows": [n1, n2],
        }
    return {"verdict": _verdict(all(abs(v["z"]) <= Z for v in items.values())), "cells": items}


def _approved(s: LogStats, route: str, seg: str) -> tuple[int, int]:
    k = s.approval.get((route, seg, "approved"), 0)
    return k, k + s.approval.get((route, seg, "declined"), 0)


def _latency(log: LogStats, sim: LogStats) -> dict[str, Any]:
    items = {}
    for route, hist in sorted(log.latency.items()):
        other = sim.latency.get(route)
        if hist.sum() < MIN_CELL or other is None or other.sum() < MIN_CELL:
            continue
        ks, _ = _hist_distances(hist, other, (LOG_LAT_HI - LOG_LAT_LO) / LOG_LAT_BINS)
        items[route] = {"ks": _r(ks), "ks_critical": _ks_critical(hist.sum(), other.sum()),
                        "rows": [int(hist.sum()), int(other.sum())]}  # fmt: skip
    return {"verdict": _verdict(not any(_ks_warns(v) for v in items.values())), "routes": items}


def _fees(log: LogStats, sim: LogStats) -> dict[str, Any]:
    items = {}
    for route, m in sorted(log.fees.items()):
        other = sim.fees.get(route)
        if m.n < MIN_CELL or other is None or other.n < MIN_CELL or m.my == 0:
            continue
        rel = abs(other.my - m.my) / abs(m.my)
        se = math.sqrt(m.syy / (m.n - 1) / m.n + other.syy / (other.n - 1) / other.n) or 1e-9
        items[route] = {"logged_cents": _r(m.my), "simulated_cents": _r(other.my), "relative_error": _r(rel),
                        "z": _r((other.my - m.my) / se)}  # fmt: skip
    warn = any(abs(v["z"]) > Z and v["relative_error"] > 0.02 for v in items.values())
    return {"verdict": _verdict(not warn), "routes": items}


def _fraud(log: LogStats, sim: LogStats) -> dict[str, Any]:
    items = {}
    for pattern, n in sorted(log.fraud.items()):
        rate_log, rate_sim = n / _days(log), sim.fraud.get(pattern, 0) / _days(sim)
        se = math.sqrt(max(rate_log, 1e-9) / _days(sim) + max(rate_log, 1e-9) / _days(log))
        items[pattern or "all"] = {"logged_per_day": _r(rate_log), "simulated_per_day": _r(rate_sim),
                                   "z": _r((rate_sim - rate_log) / se)}  # fmt: skip
    return {"verdict": _verdict(all(abs(v["z"]) <= Z for v in items.values())), "patterns": items}


def _discovery(log: LogStats, scenario: Scenario) -> dict[str, Any]:
    items = {}
    for pattern, m in sorted(log.delays.items()):
        spec = scenario.fraud.patterns.get(pattern)
        if spec is None or m.n < 10:
            continue
        se = max(m.sd, 1e-9) / math.sqrt(m.n)
        items[pattern] = {"logged_median_days": _r(math.exp(m.mean)), "logged_sigma": _r(m.sd),
                          "scenario_median_days": _r(spec.discovery_median_days),
                          "scenario_sigma": _r(spec.discovery_sigma),
                          "z": _r((math.log(spec.discovery_median_days) - m.mean) / se), "rows": m.n}  # fmt: skip
    return {"verdict": _verdict(all(abs(v["z"]) <= Z for v in items.values())), "patterns": items}


def _r(x: float) -> float:
    x = float(x)
    return 0.0 if x == 0 else float(f"{x:.6g}")
