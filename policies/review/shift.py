"""Covariate shift: do the logged contexts look like the review scenario's?

Off-policy estimates say what the bundle would have earned on the log's traffic; the stress suite and the
constraint checks run it in the review scenario. When the two differ, the numbers answer different questions.
The check compares the bundle's observations as the log recorded them (``obs.<feature>``) with those the bundle
met as the world's policy in the review scenario (the constraint checks' simulated contexts):

- per feature: a feature with at most ``shift.categorical_max_values`` distinct values is categorical (one-hot
  segments, flags) and gets the total variation distance between the two frequency tables (0 same, 1 disjoint);
  any other gets the two-sample Kolmogorov-Smirnov statistic (the largest gap between the two empirical CDFs,
  0 to 1) and the 1-Wasserstein distance in units of the pooled standard deviation (how far, not only whether);
- overall: a domain classifier, logistic regression (numpy, standardised features, L2 penalty, Newton steps)
  trained to tell logged from simulated rows on a seeded 70% split, its AUC on the other 30%: 0.5 when it cannot
  tell them apart, 1 when it always can.

The two samples differ by more than the traffic: the simulated contexts come from the bundle's own routing, the
logged ones from the logging policy's, so the routing-state features (each route's recent approvals, counts and
latency, its queue, the prefunded balances: :data:`ROUTING_STATE`) differ with who routed, not with the
customers. They are measured and shown, but neither they nor the classifier decide the verdict: the classifier
sees only the traffic features (the payment, the calendar, fees, eligibility, hours, expected fraud). The check
WARNs, naming the features, when a traffic feature's distance or the AUC exceeds its threshold in ``shift``; it
never fails a review.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from payroute.config_model import ConfigModel
from payroute.policies.review.checks import NOT_RUN, PASS, WARN, Check

ROUTING_STATE = (".recent_approval", ".recent_count", ".recent_latency", ".queue", ".balance_to_target")
"""Suffixes of the observation features that depend on who routed the earlier payments, not on the traffic."""


class ShiftReviewConfig(ConfigModel):
    """When the log's contexts differ materially from the review scenario's (a WARN, never a failure)."""

    enabled: bool = True
    max_ks: float = Field(
        default=0.2, gt=0, le=1, description="KS statistic above which a feature has shifted"
    )
    max_tv: float = Field(
        default=0.2, gt=0, le=1, description="total variation above which a categorical has"
    )
    max_auc: float = Field(
        default=0.7, gt=0.5, le=1, description="domain classifier AUC above which the contexts have"
    )
    categorical_max_values: int = Field(default=12, ge=2, le=1000)
    max_rows: int = Field(default=20_000, ge=100, le=10_000_000, description="rows per side (seeded sample)")
    seed: int = Field(default=0, ge=0, le=2**32 - 1)


@dataclass(frozen=True)
class FeatureShift:
    name: str
    kind: str  # categorical | continuous
    distance: float  # TV or KS
    wasserstein_sd: float | None  # continuous only
    shifted: bool  # a traffic feature past its threshold (a routing-state feature never counts)
    routing_state: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.name,
            "kind": self.kind,
            "distance": self.distance,
            "wasserstein_sd": self.wasserstein_sd,
            "shifted": self.shifted,
            "routing_state": self.routing_state,
        }


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    grid = np.union1d(a, b)
    fa = np.searchsorted(np.sort(a), grid, side="right") / a.size
    fb = np.searchsorted(np.sort(b), grid, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


def wasserstein_1(a: np.ndarray, b: np.ndarray) -> float:
    """1-Wasserstein distance between two samples: the area between their empirical CDFs."""
    grid = np.union1d(a, b)
    if grid.size < 2:
        return 0.0
    fa = np.searchsorted(np.sort(a), grid[:-1], side="right") / a.size
    fb = np.searchsorted(np.sort(b), grid[:-1], side="right") / b.size
    return float(np.sum(np.abs(fa - fb) * np.diff(grid)))


def total_variation(a: np.ndarray, b: np.ndarray) -> float:
    """Half the L1 distance between the two frequency tables."""
    values = np.union1d(a, b)
    pa = np.array([np.mean(a == v) for v in values])
    pb = np.array([np.mean(b == v) for v in values])
    return float(0.5 * np.abs(pa - pb).sum())


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    labels = labels.astype(bool)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def logistic_fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 25) -> np.ndarray:
    """L2-penalised logistic regression by Newton's method; returns the weights, intercept last."""
    xb = np.column_stack([x, np.ones(x.shape[0])])
    beta = np.zeros(xb.shape[1])
    penalty = np.full(xb.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ beta, -30, 30)))
        grad = xb.T @ (p - y) + penalty * beta
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(penalty) + 1e-9 * np.eye(xb.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta


def domain_auc(logged: np.ndarray, simulated: np.ndarray, seed: int) -> float:
    """Held-out AUC of a logistic regression telling logged rows (1) from simulated ones (0)."""
    x = np.vstack([logged, simulated]).astype(np.float64)
    y = np.concatenate([np.ones(logged.shape[0]), np.zeros(simulated.shape[0])])
    keep = x.std(axis=0) > 0
    x = x[:, keep]
    if x.shape[1] == 0:
        return 0.5  # every feature constant on both sides: nothing tells them apart
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(9,)))
    train = rng.random(y.size) < 0.7
    mean, sd = x[train].mean(axis=0), x[train].std(axis=0)
    z = (x - mean) / np.where(sd > 0, sd, 1.0)
    beta = logistic_fit(z[train], y[train])
    scores = np.column_stack([z[~train], np.ones(int((~train).sum()))]) @ beta
    return auc(scores, y[~train])


@dataclass(frozen=True)
class ShiftResult:
    features: list[FeatureShift]
    domain_auc: float
    n_logged: int
    n_simulated: int
    material: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain_auc": self.domain_auc,
            "n_logged": self.n_logged,
            "n_simulated": self.n_simulated,
            "material": self.material,
            "features": [f.to_dict() for f in self.features],
        }


def _sample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if x.shape[0] <= n else x[np.sort(rng.choice(x.shape[0], n, replace=False))]


def covariate_shift(
    logged: np.ndarray, simulated: np.ndarray, names: list[str], cfg: ShiftReviewConfig
) -> ShiftResult:
    """Per-feature distances and the domain classifier's AUC between two ``(n, d)`` samples of observations."""
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(10,)))
    a = _sample(np.asarray(logged, dtype=np.float64), cfg.max_rows, rng)
    b = _sample(np.asarray(simulated, dtype=np.float64), cfg.max_rows, rng)
    feats = []
    for j, name in enumerate(names):
        x, y = a[:, j], b[:, j]
        state = name.endswith(ROUTING_STATE)
        if np.union1d(x, y).size <= cfg.categorical_max_values:
            d = total_variation(x, y)
            feats.append(FeatureShift(name, "categorical", d, None, not state and d > cfg.max_tv, state))
        else:
            d = ks_statistic(x, y)
            sd = float(np.concatenate([x, y]).std())
            w = wasserstein_1(x, y) / sd if sd > 0 else 0.0
            feats.append(FeatureShift(name, "continuous", d, w, not state and d > cfg.max_ks, state))
    traffic = [j for j, name in enumerate(names) if not name.endswith(ROUTING_STATE)]
    score = domain_auc(a[:, traffic], b[:, traffic], cfg.seed) if traffic else 0.5
    material = any(f.shifted for f in feats) or score > cfg.max_auc
    return ShiftResult(feats, score, int(a.shape[0]), int(b.shape[0]), material)


def shift_check(
    logged: np.ndarray | None,
    simulated: np.ndarray | None,
    names: list[str],
    cfg: ShiftReviewConfig,
    scenario: str,
) -> tuple[Check, ShiftResult | None]:
    """The review's covariate-shift check: WARN in words when the shift is material, PASS when not."""
    if not cfg.enabled:
        return Check("shift", "covariate shift", NOT_RUN, "disabled in the review config"), None
    if logged is None or simulated is None:
        return Check("shift", "covariate shift", NOT_RUN, "needs logged decisions (--logs) of a router"), None
    res = covariate_shift(logged, simulated, names, cfg)
    worst = sorted((f for f in res.features if f.shifted), key=lambda f: -f.distance)
    state = [f for f in res.features if f.routing_state]
    moved = sum(f.distance > (cfg.max_tv if f.kind == "categorical" else cfg.max_ks) for f in state)
    said = (
        f"a classifier tells the traffic of the log's {res.n_logged:,} contexts from {res.n_simulated:,} simulated "
        f"in {scenario!r} with held-out AUC {res.domain_auc:.3f} (0.5: indistinguishable; warn above "
        f"{cfg.max_auc:g})"
        + (
            f"; {moved} of {len(state)} routing-state features differ too, as they do when the bundle routes "
            "unlike the logger (not counted)"
            if moved
            else ""
        )
    )
    if res.material:
        named = ", ".join(
            f"{f.name} ({'TV' if f.kind == 'categorical' else 'KS'} {f.distance:.2f})" for f in worst[:5]
        )
        summary = (
            f"{said}; "
            + (
                f"{len(worst)} feature(s) shifted: {named}"
                if worst
                else "no single feature past its threshold"
            )
            + ": the log's traffic is not the review scenario's, so the off-policy estimates describe other "
            "traffic than the stress and constraint checks"
        )
        return Check(
            "shift", "covariate shift", WARN, summary, res.domain_auc, cfg.max_auc, res.to_dict()
        ), res
    summary = f"{said}; no feature past KS {cfg.max_ks:g} or TV {cfg.max_tv:g}"
    return Check("shift", "covariate shift", PASS, summary, res.domain_auc, cfg.max_auc, res.to_dict()), res


__all__ = [
    "FeatureShift",
    "ShiftResult",
    "ShiftReviewConfig",
    "auc",
    "covariate_shift",
    "domain_auc",
    "ks_statistic",
    "logistic_fit",
    "shift_check",
    "total_variation",
    "wasserstein_1",
]
