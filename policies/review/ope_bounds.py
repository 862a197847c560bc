r"""What the off-policy estimates with bootstrap intervals do not say: a high-confidence lower bound on the bundle's
value, and the tail of a day's fraud loss under the bundle, both from the same log.

**High-confidence lower bound** (Thomas, Theocharous and Ghavamzadeh 2015, "High confidence off-policy
evaluation", with the empirical Bernstein bound of Maurer and Pontil 2009, Theorem 4). The rewards are shifted to
be non-negative by a floor :math:`r_0` (no decision earns less): :math:`X_i = w_i (r_i - r_0) \ge 0` has mean
:math:`V(\pi) - r_0` under the log (the weights average to 1 per context), and clipping it at :math:`c`,
:math:`Y_i = \min(X_i, c)`, can only lower that mean, so a lower bound on :math:`E[Y]` is one on
:math:`V(\pi) - r_0`. For :math:`Y \in [0, c]`, with probability at least :math:`1 - \delta`,

.. math::

    E[Y] \ge \bar Y - \sqrt{\frac{2\, \widehat{\mathrm{Var}}(Y) \ln(2/\delta)}{n}} - \frac{7 c \ln(2/\delta)}{3(n-1)}.

:math:`c` trades the bias of clipping against the range term; it is chosen on a held-out fifth of the decisions
(seeded; the c that maximises the bound those decisions predict for the rest) and the bound is computed on the
other four fifths, so the choice does not spend the guarantee. :math:`\delta = 1 -` ``ope.confidence``. The
bound holds for any reward distribution above the floor, given correct propensities and independent decisions;
it pays for that: with fraud losses of thousands of dollars below a margin of cents the floor is far below the
typical reward, and the bound is far below the estimate. The floor is ``ope.hcope_reward_floor_cents``, or the
smallest reward in the log (then the guarantee assumes no decision can lose more than the worst one logged); a
stated floor above a logged reward is lowered to it.

**Tail of a day's fraud loss.** The value at risk :math:`\mathrm{VaR}_q` (the ``q`` quantile) and
:math:`\mathrm{CVaR}_q` (the mean beyond it) of the fraud loss of one day of payments routed by the bundle,
off-policy: a day is ``decisions_per_day`` payments (the log's mean per day) drawn independently from the log's
decisions with per-decision self-normalised importance weights :math:`w_i / \sum_j w_j`, and its loss the sum of
their logged fraud losses; ``tail_days`` such days are drawn (seeded) and their quantile taken. The logging
policy's own tail is the same computation with weights 1, on the same random draws (a bundle that routes like
the logger has the logger's tail to the cent). Limits: it assumes a day's payments are independent
(no fraud waves, outages or fraudster adapting within the day, which fatten the real tail); it cannot see a loss
larger than any in the log; and a loss the logger rarely explored on the bundle's route carries a large weight
(``lossy_effective_sample_size``: the effective number of fraud losses behind the estimate).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from payroute.policies.review.checks import Check, status

HOLDOUT_SHARE = 0.2
_DAY_S = 86_400.0


@dataclass(frozen=True)
class HCOPEBound:
    """The high-confidence lower bound on the bundle's value per decision (cents) and how it was made."""

    lower_bound: float
    confidence: float
    reward_floor: float
    floor_source: str  # config | log minimum
    clip: float
    clipped_share: float
    n_bound: int
    n_holdout: int

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()
        }


@dataclass(frozen=True)
class FraudTail:
    """VaR and CVaR of a day's fraud loss (cents) under the bundle and the logging policy, off-policy."""

    level: float
    bundle_var: float
    bundle_cvar: float
    logged_var: float
    logged_cvar: float
    bundle_mean: float
    logged_mean: float
    decisions_per_day: int
    days_in_log: int
    lossy_decisions: int
    lossy_effective_sample_size: float
    simulated_days: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def empirical_bernstein_lower(y: np.ndarray, c: float, delta: float) -> float:
    """Maurer and Pontil's bound (module docstring) on the mean of ``y`` in [0, c], holding with 1 - delta."""
    n = y.size
    if n < 2:
        return float("-inf")
    log_term = math.log(2.0 / delta)
    return float(
        y.mean() - math.sqrt(2.0 * y.var(ddof=1) * log_term / n) - 7.0 * c * log_term / (3.0 * (n - 1))
    )


def hcope_lower_bound(
    rewards: np.ndarray,
    weights: np.ndarray,
    confidence: float,
    seed: int,
    floor: float | None = None,
) -> HCOPEBound:
    """The bound of the module docstring: ``rewards`` (n,) cents, ``weights`` (n,) pi(a_i|x_i) / mu(a_i|x_i)."""
    r = np.asarray(rewards, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    delta = 1.0 - confidence
    r0 = float(r.min()) if floor is None else min(float(floor), float(r.min()))  # never above a logged reward
    x = w * (r - r0)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
    held = rng.random(x.size) < HOLDOUT_SHARE
    pre, post = x[held], x[~held]
    n_post = post.size
    candidates = np.unique(np.quantile(pre, np.linspace(0.5, 1.0, 51))) if pre.size else np.array([1.0])
    candidates = candidates[candidates > 0] if (candidates > 0).any() else np.array([1.0])

    def predicted(c: float) -> float:  # the bound the held-out part predicts for n_post decisions
        y = np.minimum(pre, c)
        if y.size < 2:
            return float("-inf")
        log_term = math.log(2.0 / delta)
        return float(
            y.mean()
            - math.sqrt(2.0 * y.var(ddof=1) * log_term / n_post)
            - 7.0 * c * log_term / (3.0 * (n_post - 1))
        )

    c = float(max(candidates, key=predicted)) if n_post > 1 else 1.0
    bound = empirical_bernstein_lower(np.minimum(post, c), c, delta) + r0
    return HCOPEBound(
        float(bound), confidence, r0, "config" if floor is not None else "log minimum", c,
        float(np.mean(post > c)) if n_post else 0.0, int(n_post), int(pre.size),
    )  # fmt: skip


def fraud_loss_tail(
    losses: np.ndarray,
    weights: np.ndarray,
    arrival_s: np.ndarray,
    level: float,
    days: int,
    seed: int,
) -> FraudTail:
    """The tail of a day's fraud loss of the module docstring: ``losses`` (n,) cents >= 0, ``weights`` (n,),
    ``arrival_s`` (n,) arrival times in seconds (for the decisions per day), ``days`` simulated days."""
    loss = np.asarray(losses, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    day = np.floor(np.asarray(arrival_s, dtype=np.float64) / _DAY_S).astype(np.int64)
    n_days = int(np.unique(day).size)
    per_day = max(1, round(loss.size / n_days))
    lossy = np.nonzero(loss > 0)[0]

    def simulate(p: np.ndarray) -> np.ndarray:  # the same draws for both policies: common random numbers
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(8,)))
        total = float(p.sum())
        if total <= 0 or lossy.size == 0:
            return np.zeros(days)
        p_lossy = p[lossy] / total
        share = float(p_lossy.sum())
        counts = rng.binomial(per_day, min(share, 1.0), size=days)  # lossy payments in each day
        out = np.zeros(days)
        if share > 0 and counts.sum():
            picks = rng.choice(lossy, size=int(counts.sum()), p=p_lossy / share)
            out = np.bincount(np.repeat(np.arange(days), counts), weights=loss[picks], minlength=days)
        return out

    def var_cvar(x: np.ndarray) -> tuple[float, float]:
        var = float(np.quantile(x, level))
        tail = x[x >= var]
        return var, float(tail.mean()) if tail.size else var

    bundle = simulate(w)
    logged = simulate(np.ones_like(w))
    wl = w[lossy]
    ess = float(wl.sum() ** 2 / (wl**2).sum()) if lossy.size and (wl**2).sum() > 0 else 0.0
    b_var, b_cvar = var_cvar(bundle)
    l_var, l_cvar = var_cvar(logged)
    return FraudTail(
        level, b_var, b_cvar, l_var, l_cvar, float(bundle.mean()), float(logged.mean()), int(per_day), n_days,
        int(lossy.size), ess, int(days),
    )  # fmt: skip


def hcope_check(bound: dict[str, Any], logged_mean: float, threshold: float | None) -> list[Check]:
    """The gate ``ope.min_hcope_lower_bound_vs_logged_cents`` on a bound (:meth:`HCOPEBound.to_dict`); none when
    the threshold is null (the bound is then reported only)."""
    if threshold is None:
        return []
    low = float("-inf") if bound["lower_bound"] is None else float(bound["lower_bound"])
    gap = low - logged_mean
    ok = bool(math.isfinite(gap) and gap >= threshold)
    said = (
        f"with probability at least {bound['confidence']:.0%} the bundle earns at least {low:.2f} cents per "
        f"decision (empirical Bernstein on importance-weighted rewards clipped at {bound['clip']:.4g}, floor "
        f"{bound['reward_floor']:.0f} cents from the {bound['floor_source']}) against {logged_mean:.2f} logged: "
        f"{gap:+.2f} cents"
    )
    if ok:
        summary = f"{said}, within the allowed {threshold:+.2f}"
    else:
        summary = (
            f"{said}, below the allowed {threshold:+.2f}: the log cannot guarantee the bundle is no worse than "
            "the logging policy (the guarantee pays for the fraud losses' range: more logged decisions or a "
            "higher stated reward floor, ope.hcope_reward_floor_cents, tighten it)"
        )
    return [
        Check(
            "ope", "high-confidence bound vs logged", status(ok), summary, float(gap), threshold, dict(bound)
        )
    ]


__all__ = [
    "FraudTail",
    "HCOPEBound",
    "empirical_bernstein_lower",
    "fraud_loss_tail",
    "hcope_check",
    "hcope_lower_bound",
]
