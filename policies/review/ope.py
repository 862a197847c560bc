r"""Off-policy evaluation of a bundle on a log: every estimator of
:mod:`~payroute.policies.review.ope_estimators` with bootstrap intervals, and the weight diagnostics.

Intervals are bootstrap percentile intervals: :math:`B` multinomial resamples of the :math:`n` decisions (counts
:math:`c_{bi}`), each estimator recomputed from the resampled column sums. The reward model is held fixed across
resamples (its fitting noise is not in the interval; cross-fitting keeps its own-sample bias out of DR). The
resampling is vectorised: counts for a chunk of draws are one ``bincount``, and every estimator's sums for the
chunk are one matrix product.

Diagnostics: the smallest propensity, the largest and mean weight (near 1 when the propensities are right and the
behaviour policy covers the target), the effective sample size :math:`(\sum_i w_i)^2 / \sum_i w_i^2`, the share
of weights clipped at :math:`M`, and the share of decisions where switch-DR used the model alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from payroute.errors import PayrouteError
from payroute.policies.logs.reading import FraudLabels
from payroute.policies.review.ope_estimators import (
    _R,
    ESTIMATORS,
    MODEL_ESTIMATORS,
    _clip,
    _estimates_from_sums,
    _reward_estimates,
    _terms,
    fit_reward_model,
    importance_weights,
    validate_logged_arrays,
)

_BOOTSTRAP_CHUNK_ELEMENTS = (
    1 << 22
)  # resampled rows per chunk (~32 MiB per array): memory stays flat at any n


# ====================================================================== results
@dataclass(frozen=True)
class Estimate:
    """One estimator's value per decision with its bootstrap standard error and percentile interval."""

    estimator: str
    value: float
    std_error: float
    ci_low: float
    ci_high: float

    def covers(self, value: float) -> bool:
        return self.ci_low <= value <= self.ci_high


@dataclass(frozen=True)
class PropensityDiagnostics:
    """How trustworthy the weights are (see the module docstring)."""

    n: int
    min_propensity: float
    max_weight: float
    mean_weight: float
    effective_sample_size: float
    effective_sample_share: float
    clip_weight: float | None
    clipped_share: float
    switch_tau: float
    switch_model_share: float


@dataclass(frozen=True)
class OPEResult:
    """Estimates of the target policy's value per decision, the behaviour policy's logged mean, diagnostics."""

    estimates: dict[str, Estimate]
    logged_mean: Estimate
    diagnostics: PropensityDiagnostics
    confidence: float
    n_bootstrap: int
    seed: int
    reward_model: str = "none"  # none | given | ridge | per-action mean | fraud-aware ridge
    hcope: dict[str, Any] | None = None  # the high-confidence lower bound (review.ope_bounds), when computed
    tail: dict[str, Any] | None = None  # VaR/CVaR of a day's fraud loss (review.ope_bounds), when computed

    def __getitem__(self, estimator: str) -> Estimate:
        return self.estimates[estimator]

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimates": {k: asdict(v) for k, v in self.estimates.items()},
            "logged_mean": asdict(self.logged_mean),
            "diagnostics": asdict(self.diagnostics),
            "confidence": self.confidence,
            "n_bootstrap": self.n_bootstrap,
            "reward_model": self.reward_model,
            "seed": self.seed,
            "hcope": self.hcope,
            "tail": self.tail,
        }


# ====================================================================== the whole evaluation
def evaluate_policy(
    rewards: np.ndarray,
    actions: np.ndarray,
    propensities: np.ndarray,
    target_probs: np.ndarray,
    *,
    features: np.ndarray | None = None,
    reward_estimates: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    estimators: Sequence[str] = ESTIMATORS,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    max_weight: float | None = None,
    switch_tau: float = 10.0,
    ridge_alpha: float = 1.0,
    cross_fit_folds: int = 2,
    fraud: FraudLabels | None = None,
    continuation: np.ndarray | None = None,
) -> OPEResult:
    """Estimate the target policy's value per decision on a log, with bootstrap intervals and diagnostics.

    Args:
        rewards: ``(n,)`` reward of each logged decision.
        actions: ``(n,)`` logged action indices.
        propensities: ``(n,)`` behaviour policy's probability of the logged action, in [1e-9, 1] (MIN_PROPENSITY).
        target_probs: ``(n, A)`` target policy's action probabilities on each logged context (rows sum to 1).
        features: ``(n, d)`` context features for the reward model (``None``: per-action mean reward).
        reward_estimates: ``(n, A)`` reward model predictions to use instead of fitting one.
        masks: ``(n, A)`` allowed actions; the logged action must be allowed and the target must put no
            probability on a disallowed one.
        estimators: which of :data:`ESTIMATORS` to compute.
        n_bootstrap: bootstrap resamples (0: no intervals, NaN bounds).
        confidence: interval coverage.
        seed: seeds the bootstrap and the cross-fitting folds (same seed, same numbers).
        max_weight: clip importance weights at this value (``None``: no clipping) in ips, snips, dr and sndr.
        switch_tau: switch-DR's weight threshold.
        ridge_alpha, cross_fit_folds: the reward model (:func:`fit_reward_model`).
        fraud: fraud labels for a fraud-aware reward model (:class:`FraudLabels`; ``None``: ridge alone).
        continuation: ``(n,)`` for payments decided several times (retries): each payment's importance ratio of
            its decisions after the first (:func:`payroute.policies.logs.sequences.continuation_weights`); the rows
            are then the payments' first decisions and ``rewards`` their whole rewards. The estimators value the
            target's whole sequence of decisions: each runs on the reward times its continuation ratio (the
            logged mean stays the mean logged reward). ``None``: one decision per row.
    """
    unknown = sorted(set(estimators) - set(ESTIMATORS))
    if unknown:
        raise PayrouteError(f"unknown estimators {unknown}; available: {', '.join(ESTIMATORS)}")
    if not 0 < confidence < 1:
        raise PayrouteError(f"confidence must be in (0, 1), got {confidence}")
    if n_bootstrap < 0:
        raise PayrouteError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    if max_weight is not None and not max_weight > 0:
        raise PayrouteError(f"max_weight must be > 0 or None, got {max_weight}")
    r, a, p, pi, m = validate_logged_arrays(rewards, actions, propensities, target_probs, masks)
    n, n_actions = pi.shape
    logged = r
    if continuation is not None:
        c = np.asarray(continuation, dtype=np.float64)
        if c.shape != (n,) or not (np.isfinite(c) & (c >= 0)).all():
            raise PayrouteError(f"continuation must be {n} finite ratios >= 0, got shape {c.shape}")
        r = r * c  # the later decisions' ratios fold into the reward (docs/review.md, "Retries")
        if fraud is not None:
            fraud = replace(fraud, losses=np.asarray(fraud.losses, dtype=np.float64) * c)
    q = None
    model = "none"
    if any(e in MODEL_ESTIMATORS for e in estimators):
        if reward_estimates is not None:
            q = _reward_estimates(reward_estimates, (n, n_actions))
            model = "given"
        else:
            model = (
                ("ridge" if features is not None else "per-action mean")
                if fraud is None
                else "fraud-aware ridge"
            )
            if features is not None:
                features = np.asarray(features, dtype=np.float64)
                if features.ndim != 2 or features.shape[0] != n or not np.isfinite(features).all():
                    raise PayrouteError(
                        f"features must be a finite ({n}, d) array, got shape {features.shape}"
                    )
            q = fit_reward_model(
                features, a, r, n_actions, alpha=ridge_alpha, folds=cross_fit_folds, seed=seed, fraud=fraud
            )
    terms = _terms(r, a, p, pi, q, max_weight, switch_tau)
    terms[:, _R] = logged

    point = _estimates_from_sums(terms.sum(axis=0))
    boot = _bootstrap_sums(terms, n_bootstrap, seed)
    draws = _estimates_from_sums(boot)
    alpha = 1.0 - confidence

    def summarise(name: str) -> Estimate:
        values = draws[name]
        if n_bootstrap == 0 or np.isnan(point[name]):
            return Estimate(name, float(point[name]), float("nan"), float("nan"), float("nan"))
        lo, hi = np.nanquantile(values, [alpha / 2, 1 - alpha / 2])
        return Estimate(name, float(point[name]), float(np.nanstd(values, ddof=1)), float(lo), float(hi))

    raw = importance_weights(a, p, pi)
    w = _clip(raw, max_weight)
    sum_w2 = float(np.sum(w * w))
    ess = float(np.sum(w)) ** 2 / sum_w2 if sum_w2 > 0 else 0.0
    diagnostics = PropensityDiagnostics(
        n=n,
        min_propensity=float(p.min()),
        max_weight=float(raw.max()),
        mean_weight=float(raw.mean()),
        effective_sample_size=ess,
        effective_sample_share=ess / n,
        clip_weight=max_weight,
        clipped_share=float(np.mean(raw > max_weight)) if max_weight is not None else 0.0,
        switch_tau=switch_tau,
        switch_model_share=float(np.mean(raw > switch_tau)),
    )
    return OPEResult(
        estimates={e: summarise(e) for e in estimators},
        logged_mean=summarise("logged_mean"),
        diagnostics=diagnostics,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        seed=seed,
        reward_model=model,
    )


def _bootstrap_sums(terms: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    """Column sums of ``terms`` under ``n_bootstrap`` multinomial resamples of its rows, ``(B, k)``.

    Chunks of draws are sized from ``n`` alone, so the numbers depend on the seed only.
    """
    n, k = terms.shape
    out = np.empty((n_bootstrap, k))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    # NaN columns (no reward model) would poison the matrix product; their draws stay NaN
    finite_cols = ~np.isnan(terms).any(axis=0)
    t = np.ascontiguousarray(terms[:, finite_cols])
    out[:, ~finite_cols] = np.nan
    chunk = max(1, min(n_bootstrap, _BOOTSTRAP_CHUNK_ELEMENTS // max(n, 1)))
    offsets = None
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        idx = rng.integers(0, n, size=(b, n))
        if offsets is None or offsets.shape[0] != b:
            offsets = (np.arange(b, dtype=np.int64) * n)[:, None]
        counts = np.bincount((idx + offsets).ravel(), minlength=b * n).reshape(b, n)
        out[start : start + b, finite_cols] = counts.astype(np.float64) @ t
    return out
