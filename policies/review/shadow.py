r"""Shadow replay: what a route bundle would have done on every logged decision, where it disagrees with what was
done, and what that would have been worth.

``payroute review BUNDLE --shadow LOG`` shows the bundle the observation and the eligible routes of every routed
decision in the log (batched onnxruntime calls) and takes its greedy action: the route it takes when it routes
(:func:`~payroute.policies.bundle.binding.bound_bundle`, propensity 1). Then:

* **agreement**: the share of decisions where the shadow route is the logged one, overall and by payer segment,
  instrument, logged route and hour of day (the log's ``t_arrival`` modulo a day);
* **flow**: for every (logged route, shadow route) pair, the decisions, their payment amount and the estimated
  value moved; per route, the traffic it would gain and lose;
* **largest disagreements**: the disagreeing decisions with the largest estimated value difference
  :math:`\Delta_i = \hat q(x_i, s_i) - \hat q(x_i, a_i)` (shadow route :math:`s_i`, logged route :math:`a_i`),
  where :math:`\hat q` is the off-policy evaluation's reward model (the cross-fitted, fraud-aware ridge of
  :func:`~payroute.policies.review.ope_estimators.fit_reward_model`, fitted on the same log with the same seed);
* **the difference** (bundle - logged) in cents per decision, by every estimator of
  :mod:`~payroute.policies.review.ope_estimators` written as a per-decision difference, with a paired bootstrap
  interval (the same resamples for both sides). With :math:`w_i = 1\{s_i = a_i\} / p_i` (clipped at
  ``ope.max_weight``), residual :math:`e_i = r_i - \hat q(x_i, a_i)`:

  ================  ==========================================================================================
  estimator         difference per decision, summed over the log and divided as shown
  ================  ==========================================================================================
  ``ips``           :math:`\frac1n \sum_i (w_i - 1)\, r_i`
  ``snips``         :math:`\sum_i w_i r_i / \sum_i w_i - \frac1n \sum_i r_i`
  ``dm``            :math:`\frac1n \sum_i \Delta_i`
  ``dr``            :math:`\frac1n \sum_i [\Delta_i + (w_i - 1)\, e_i]`
  ``sndr``          :math:`\frac1n \sum_i \Delta_i + \sum_i w_i e_i / \sum_i w_i - \frac1n \sum_i e_i`
  ``switch_dr``     :math:`\frac1n \sum_i [\Delta_i + (w_i 1\{w_i \le \tau\} - 1)\, e_i]`
  ================  ==========================================================================================

  Each is the estimator of :mod:`~payroute.policies.review.ope_estimators` for the greedy bundle minus the same
  estimator for the logging policy (which, on its own log, is the logged mean reward; DM compares the model's
  prediction for both routes). On a decision where the bundle agrees with a logger that had no choice
  (propensity 1) every term is exactly 0, so on a log the bundle wrote itself without exploration the
  difference and its interval are exactly 0.

Shadow replay is evidence, not a gate, unless ``shadow.max_disagreement`` is set in the review config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field

from payroute.config_model import ConfigModel
from payroute.errors import PayrouteError
from payroute.files import atomic_write_text
from payroute.policies.bundle import BundlePolicy
from payroute.policies.logs import LoggedDecisions, read_logged_decisions
from payroute.policies.logs.csv_log import csv_columns, is_csv_log
from payroute.policies.logs.reading import OBS_PREFIX
from payroute.policies.review.checks import NOT_RUN, Check, status
from payroute.policies.review.ope import _bootstrap_sums
from payroute.policies.review.ope_estimators import (
    ESTIMATORS,
    _clip,
    _ratio,
    fit_reward_model,
    validate_logged_arrays,
)

BATCH = 8192  # decisions per onnxruntime call
BY = ("segment", "instrument", "logged_route", "hour")
_DAY_S, _HOUR_S = 86_400.0, 3_600.0
# columns of the per-decision difference terms: 1, w, w r, r, Δ, w e, e, switch-weighted e
_ONE, _W, _WR, _R, _D, _WE, _E, _SWE = range(8)


class ShadowReviewConfig(ConfigModel):
    """Shadow replay (``--shadow LOG``): evidence, and an optional gate."""

    max_disagreement: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="fail the review when the bundle disagrees with more than this share of the logged "
        "decisions; null: shadow replay is evidence, not a gate",
    )
    top_disagreements: int = Field(
        default=20, ge=0, le=1000, description="how many of the largest-value disagreements to report"
    )


class _OPESettings(Protocol):
    estimator: str
    n_bootstrap: int
    confidence: float
    seed: int
    max_weight: float | None
    switch_tau: float


# ====================================================================== reading the log
def read_shadow_log(path: str | Path, policy: BundlePolicy, route_names: list[str]) -> LoggedDecisions:
    """The routed decisions of ``path`` with the observation ``policy`` sees; a log the bundle cannot be replayed
    on (another decision kind, no observations, another scenario's routes or features) raises
    :class:`~payroute.errors.PayrouteError` in one line."""
    name = Path(path).name
    if policy.decision_kind != "route":
        raise PayrouteError(
            f"--shadow {name}: a log holds routing decisions; bundle {policy.source.name} decides "
            f"{policy.decision_kind!r}, and only route bundles are replayed on a log"
        )
    try:
        columns = csv_columns(path) if is_csv_log(path) else pq.read_schema(path).names
    except (OSError, ValueError):
        columns = None  # not a readable log: the reader says so, naming it
    if columns is not None:
        have = [c for c in columns if c.startswith(OBS_PREFIX)]
        want = [OBS_PREFIX + f for f in policy.feature_names]
        if not have:
            raise PayrouteError(
                f"--shadow {name}: no observations recorded (no {OBS_PREFIX}<feature> columns); shadow replay "
                "shows the bundle the observation of every logged decision: log with payroute simulate --log, "
                "which records them (docs/log_schema.md)"
            )
        missing = [c for c in want if c not in have]
        if missing:
            extra = [c for c in have if c not in want]
            raise PayrouteError(
                f"--shadow {name}: the log records an observation other than the bundle's (another scenario's "
                f"routes or features): it has no column "
                f"{missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                + (f" but has {extra[0]}" if extra else "")
                + f"; bundle {policy.source.name} routes over {', '.join(route_names)}"
            )  # fmt: skip
    return read_logged_decisions(path, route_names=route_names, observation_names=policy.feature_names)


# ====================================================================== the result
@dataclass(frozen=True)
class ShadowResult:
    """The shadow replay of one bundle on one log (per-decision arrays aligned with the log's routed rows)."""

    log: str
    route_names: list[str]
    tx_id: np.ndarray
    logged: np.ndarray  # route index taken
    shadow: np.ndarray  # route index the bundle takes
    propensity: np.ndarray
    reward: np.ndarray  # realised margin, cents
    q: np.ndarray  # (n, routes) estimated margin of every route, cents (the OPE reward model)
    reward_model: str
    by: dict[str, list[dict[str, Any]]]
    flow: list[dict[str, Any]]
    routes: list[dict[str, Any]]
    largest: list[dict[str, Any]]
    difference: dict[str, dict[str, float]]  # estimator -> value, std_error, ci_low, ci_high
    estimator: str
    logged_mean: float
    confidence: float
    n_bootstrap: int

    @property
    def n(self) -> int:
        return int(self.tx_id.shape[0])

    @property
    def agree(self) -> np.ndarray:
        return self.shadow == self.logged

    @property
    def agreement(self) -> float:
        return float(self.agree.mean())

    @property
    def value_diff(self) -> np.ndarray:
        """:math:`\\Delta_i`: the estimated margin of the shadow route minus the logged one, cents."""
        rows = np.arange(self.n)
        return self.q[rows, self.shadow] - self.q[rows, self.logged]

    def to_dict(self) -> dict[str, Any]:
        """The summary for the review JSON (no per-decision rows: :meth:`write_decisions` has those)."""
        return {
            "log": self.log,
            "decisions": self.n,
            "agree": int(self.agree.sum()),
            "agreement": self.agreement,
            "by": self.by,
            "flow": self.flow,
            "routes": self.routes,
            "largest_disagreements": self.largest,
            "difference": {
                "estimator": self.estimator,
                **self.difference[self.estimator],
                "logged_mean": self.logged_mean,
                "confidence": self.confidence,
                "n_bootstrap": self.n_bootstrap,
                "estimators": self.difference,
            },
            "reward_model": self.reward_model,
        }

    def decisions(self) -> dict[str, Any]:
        """Every decision, column by column: what the per-decision JSON holds."""
        names = np.asarray(self.route_names, dtype=object)
        rows = np.arange(self.n)
        return {
            "tx_id": self.tx_id.tolist(),
            "logged_route": names[self.logged].tolist(),
            "shadow_route": names[self.shadow].tolist(),
            "agree": self.agree.tolist(),
            "propensity": self.propensity.tolist(),
            "reward_cents": self.reward.tolist(),
            "q_logged_cents": np.round(self.q[rows, self.logged], 4).tolist(),
            "q_shadow_cents": np.round(self.q[rows, self.shadow], 4).tolist(),
            "value_diff_cents": np.round(self.value_diff, 4).tolist(),
        }

    def write_decisions(self, path: str | Path, bundle: str) -> None:
        """The per-decision JSON at ``path``, written whole or not at all."""
        doc = {
            "bundle": bundle,
            "log": self.log,
            "decisions": self.n,
            "agreement": self.agreement,
            "reward_model": self.reward_model,
            "columns": self.decisions(),
        }
        atomic_write_text(path, json.dumps(doc, allow_nan=False) + "\n")


# ====================================================================== the replay
def shadow_actions(policy: BundlePolicy, logged: LoggedDecisions) -> np.ndarray:
    """The bundle's greedy route on every logged decision, in batches of :data:`BATCH` decisions."""
    obs, masks = logged.observations, logged.masks
    if obs is None:
        raise PayrouteError(
            "shadow replay needs the logged observations (read the log with the bundle's features)"
        )
    return np.concatenate(
        [policy.act(obs[i : i + BATCH], masks[i : i + BATCH]) for i in range(0, logged.n, BATCH)]
    )


def run_shadow(
    policy: BundlePolicy,
    logged: LoggedDecisions,
    config: ShadowReviewConfig,
    ope: _OPESettings,
    loss_classes: list[int],
    log: str = "log",
) -> ShadowResult:
    """Replay ``policy`` on ``logged`` (read from ``log``): agreement, flows, largest disagreements, and the
    estimated difference (``ope``: the review's off-policy settings: estimator, bootstrap, seed, clipping;
    ``loss_classes``: each route's fraud-loss class for the reward model)."""
    shadow = shadow_actions(policy, logged)
    fraud = logged.fraud_labels(loss_classes)
    q = fit_reward_model(
        logged.model_features, logged.actions, logged.rewards, logged.n_routes, seed=ope.seed, fraud=fraud
    )
    model = "fraud-aware ridge" if fraud is not None else "ridge"
    difference, logged_mean = estimate_difference(logged, shadow, q, ope)
    names = list(policy.action_names)
    rows = np.arange(logged.n)
    diff = q[rows, shadow] - q[rows, logged.actions]
    amount = _column(logged, "amount_cents").astype(np.float64)
    groups = _groups(logged, names)
    return ShadowResult(
        log=log,
        route_names=names,
        tx_id=logged.tx_id,
        logged=logged.actions,
        shadow=shadow,
        propensity=logged.propensities,
        reward=logged.rewards,
        q=q,
        reward_model=model,
        by=_breakdowns(groups, logged.actions == shadow, diff),
        flow=_flow(logged.actions, shadow, amount, diff, names),
        routes=_route_moves(logged.actions, shadow, names),
        largest=_largest(logged, shadow, q, names, groups, config.top_disagreements),
        difference=difference,
        estimator=ope.estimator,
        logged_mean=logged_mean,
        confidence=ope.confidence,
        n_bootstrap=ope.n_bootstrap,
    )


def difference_terms(
    logged: LoggedDecisions, shadow: np.ndarray, q: np.ndarray, max_weight: float | None, tau: float
) -> np.ndarray:
    """Per-decision terms (one column each: 1, w, w r, r, Δ, w e, e, switch-weighted e) whose column sums every
    difference estimator is a function of (module docstring)."""
    n, k = q.shape
    target = np.zeros((n, k))
    target[np.arange(n), shadow] = 1.0
    r, a, p, _pi, _m = validate_logged_arrays(
        logged.rewards, logged.actions, logged.propensities, target, logged.masks
    )
    rows = np.arange(n)
    raw = (shadow == a) / p
    w = _clip(raw, max_weight)
    e = r - q[rows, a]
    t = np.empty((n, 8))
    t[:, _ONE] = 1.0
    t[:, _W] = w
    t[:, _WR] = w * r
    t[:, _R] = r
    t[:, _D] = q[rows, shadow] - q[rows, a]
    t[:, _WE] = w * e
    t[:, _E] = e
    t[:, _SWE] = np.where(raw <= tau, raw, 0.0) * e
    return t


def differences_from_sums(s: np.ndarray) -> dict[str, np.ndarray]:
    """Every estimator's (bundle - logged) from the column sums of :func:`difference_terms`, ``s`` ``(..., 8)``."""
    n = s[..., _ONE]
    return {
        "ips": (s[..., _WR] - s[..., _R]) / n,
        "snips": _ratio(s[..., _WR], s[..., _W]) - s[..., _R] / n,
        "dm": s[..., _D] / n,
        "dr": (s[..., _D] + s[..., _WE] - s[..., _E]) / n,
        "sndr": s[..., _D] / n + _ratio(s[..., _WE], s[..., _W]) - s[..., _E] / n,
        "switch_dr": (s[..., _D] + s[..., _SWE] - s[..., _E]) / n,
    }


def estimate_difference(
    logged: LoggedDecisions, shadow: np.ndarray, q: np.ndarray, ope: _OPESettings
) -> tuple[dict[str, dict[str, float]], float]:
    """(bundle - logged) per decision by every estimator with its paired bootstrap interval, and the logged mean."""
    terms = difference_terms(logged, shadow, q, ope.max_weight, ope.switch_tau)
    sums = terms.sum(axis=0)
    point = differences_from_sums(sums)
    draws = differences_from_sums(_bootstrap_sums(terms, ope.n_bootstrap, ope.seed))
    alpha = 1.0 - ope.confidence
    out = {}
    for name in ESTIMATORS:
        value = float(point[name])
        if ope.n_bootstrap == 0 or not np.isfinite(value) or np.isnan(draws[name]).all():
            out[name] = {
                "value": value,
                "std_error": float("nan"),
                "ci_low": float("nan"),
                "ci_high": float("nan"),
            }
            continue
        lo, hi = np.nanquantile(draws[name], [alpha / 2, 1 - alpha / 2])
        se = float(np.nanstd(draws[name], ddof=1))
        out[name] = {"value": value, "std_error": se, "ci_low": float(lo), "ci_high": float(hi)}
    return out, float(sums[_R] / sums[_ONE])


# ---------------------------------------------------------------------- tables
def _column(logged: LoggedDecisions, name: str) -> np.ndarray:
    col = logged.table.column(name)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        col = pc.fill_null(col, "")
    return np.asarray(col.to_numpy(zero_copy_only=False))


def _groups(logged: LoggedDecisions, names: list[str]) -> dict[str, np.ndarray]:
    hour = (np.floor((_column(logged, "t_arrival").astype(np.float64) % _DAY_S) / _HOUR_S)).astype(np.int64)
    return {
        "segment": _column(logged, "segment").astype(str),
        "instrument": _column(logged, "instrument").astype(str),
        "logged_route": np.asarray(names, dtype=object)[logged.actions].astype(str),
        "hour": hour,
    }


def _breakdowns(
    groups: dict[str, np.ndarray], agree: np.ndarray, diff: np.ndarray
) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for by, values in groups.items():
        keys, inverse = np.unique(values, return_inverse=True)
        n = np.bincount(inverse, minlength=len(keys))
        same = np.bincount(inverse, weights=agree, minlength=len(keys))
        moved = np.bincount(inverse, weights=diff, minlength=len(keys))
        out[by] = [
            {
                "value": keys[i].item() if hasattr(keys[i], "item") else keys[i],
                "decisions": int(n[i]),
                "agree": int(same[i]),
                "agreement": float(same[i] / n[i]),
                "value_diff_cents_per_decision": float(moved[i] / n[i]),
            }
            for i in range(len(keys))
        ]
    return out


def _flow(
    logged: np.ndarray, shadow: np.ndarray, amount: np.ndarray, diff: np.ndarray, names: list[str]
) -> list[dict[str, Any]]:
    k = len(names)
    cell = logged * k + shadow
    count = np.bincount(cell, minlength=k * k)
    value = np.bincount(cell, weights=amount, minlength=k * k)
    moved = np.bincount(cell, weights=diff, minlength=k * k)
    return [
        {
            "logged": names[c // k],
            "shadow": names[c % k],
            "decisions": int(count[c]),
            "amount_usd": float(value[c] / 100.0),
            "value_diff_cents": float(moved[c]),
        }
        for c in np.flatnonzero(count)
    ]


def _route_moves(logged: np.ndarray, shadow: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
    k = len(names)
    differ = logged != shadow
    before = np.bincount(logged, minlength=k)
    after = np.bincount(shadow, minlength=k)
    gains = np.bincount(shadow[differ], minlength=k)
    losses = np.bincount(logged[differ], minlength=k)
    return [
        {
            "route": names[i],
            "logged": int(before[i]),
            "shadow": int(after[i]),
            "moved_in": int(gains[i]),
            "moved_out": int(losses[i]),
            "net": int(after[i] - before[i]),
        }
        for i in range(k)
        if before[i] or after[i]
    ]


def _largest(
    logged: LoggedDecisions,
    shadow: np.ndarray,
    q: np.ndarray,
    names: list[str],
    groups: dict[str, np.ndarray],
    top: int,
) -> list[dict[str, Any]]:
    rows = np.arange(logged.n)
    diff = q[rows, shadow] - q[rows, logged.actions]
    differ = np.flatnonzero(shadow != logged.actions)
    if top == 0 or differ.size == 0:
        return []
    order = differ[np.lexsort((logged.tx_id[differ], -np.abs(diff[differ])))][:top]
    amount = _column(logged, "amount_cents")
    risk = _column(logged, "risk_score")
    cross = _column(logged, "cross_border")
    fraud = logged.is_fraud
    support = np.bincount(logged.actions, minlength=len(names))  # how often the log tried each route
    out = []
    for i in order:
        out.append(
            {
                "tx_id": int(logged.tx_id[i]),
                "hour": int(groups["hour"][i]),
                "amount_usd": float(amount[i]) / 100.0,
                "segment": str(groups["segment"][i]),
                "instrument": str(groups["instrument"][i]),
                "cross_border": bool(cross[i]),
                "risk_score": float(risk[i]),
                "is_fraud": None if fraud is None else bool(fraud[i]),
                "logged_route": names[int(logged.actions[i])],
                "shadow_route": names[int(shadow[i])],
                "shadow_route_logged_decisions": int(support[shadow[i]]),
                "propensity": float(logged.propensities[i]),
                "reward_cents": float(logged.rewards[i]),
                "q_logged_cents": float(q[i, logged.actions[i]]),
                "q_shadow_cents": float(q[i, shadow[i]]),
                "value_diff_cents": float(diff[i]),
            }
        )
    return out


# ---------------------------------------------------------------------- the optional gate
def shadow_checks(result: ShadowResult, config: ShadowReviewConfig) -> list[Check]:
    """The shadow check: a gate on the disagreement share when ``max_disagreement`` is set, else evidence."""
    est = result.difference[result.estimator]
    disagree = 1.0 - result.agreement
    said = (
        f"on {result.n:,} logged decisions the bundle takes the logged route on {result.agreement:.1%}; "
        f"{result.estimator.upper()} estimates (bundle - logged) at {est['value']:+.2f} cents per decision "
        f"({result.confidence:.0%} interval [{est['ci_low']:+.2f}, {est['ci_high']:+.2f}])"
    )
    thr = config.max_disagreement
    if thr is None:
        return [
            Check("shadow", "agreement", NOT_RUN, f"{said}; evidence, not a gate (shadow.max_disagreement: null)",
                  disagree, None, {"agreement": result.agreement})
        ]  # fmt: skip
    ok = disagree <= thr
    verdict = "within" if ok else "more than"
    return [
        Check("shadow", "agreement", status(ok),
              f"{said}; it disagrees on {disagree:.1%}, {verdict} the allowed {thr:.1%}",
              disagree, thr, {"agreement": result.agreement})
    ]  # fmt: skip


__all__ = [
    "ShadowResult",
    "ShadowReviewConfig",
    "difference_terms",
    "differences_from_sums",
    "estimate_difference",
    "read_shadow_log",
    "run_shadow",
    "shadow_actions",
    "shadow_checks",
]
