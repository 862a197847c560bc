"""Family-wise stress gates: every stress comparison of a review tested together, and what more seeds would do.

A stress check passes when the lower confidence bound of (bundle - best reference), paired by seed, is at least
its threshold: a one-sided test of H0 "the bundle is worse than the threshold allows" (mean difference below
it), where passing the check is rejecting H0. Alone, each check's bound is the lower end of the two-sided
``stress.confidence`` Student-t interval: a one-sided error of ``alpha = (1 - confidence) / 2`` (2.5% at 95%).
A review makes one such claim per scenario and metric (ten with the shipped config), so the chance that at
least one claim it prints is false is up to ten times ``alpha``.

``stress.multiplicity`` chooses the correction over the family of all stress comparisons of the review:

- ``holm`` (default): Holm's step-down procedure on the one-sided p-values ``P(T_{n-1} >= t)``,
  ``t = (mean - threshold) / (sd / sqrt(n))``. The checks are taken from the smallest p-value up; the ``k``-th
  (counting from 1) passes when its p-value is at most ``alpha / (m - k + 1)`` and every check before it passed;
  once one fails, the rest fail. It controls the family-wise error at ``alpha`` under any dependence between
  the comparisons (the margin and approval of one scenario share seeds): the probability that any passed check
  claims more than is true is at most ``alpha``. The *adjusted bound* of a check is its lower bound at the level
  its step used (the later checks after a failure: the level of the failing step), so a check passes exactly
  when its adjusted bound clears its threshold; with one comparison it is the unadjusted bound.
- ``none``: each check at ``alpha`` alone (the gate before issue 24).

A stepwise bootstrap (max-t) is not offered: with the 5 to 40 seeds a review runs, a bootstrap of seeds has too
few distinct resamples for its tail quantiles to be trusted.

**More seeds.** A failed check says whether more seeds could change its verdict. If the mean difference is at or
below the threshold, no: more seeds narrow the interval around a value that fails. Otherwise, if the mean and
the spread between seeds held, the bound at the check's level would clear the threshold at ``seeds_needed``
seeds (a new run of that size passes about half the time), and a run of ``seeds_for_80pct_power`` seeds passes
with probability 0.8 (the noncentral t).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

MULTIPLICITY = ("holm", "none")
MAX_SEEDS = 10_000  # the most seeds a stress scenario may run (StressConfig)


@dataclass(frozen=True)
class Comparison:
    """One stress comparison: the per-seed paired differences (bundle - reference), its threshold, and the
    unadjusted two-sided interval the stress suite computed for it."""

    scenario: str
    metric: str  # margin | approval
    diffs: np.ndarray
    threshold: float
    low: float
    high: float

    @property
    def key(self) -> tuple[str, str]:
        return self.scenario, self.metric


@dataclass(frozen=True)
class GateResult:
    """The verdict of one comparison within its family, with the numbers behind it."""

    scenario: str
    metric: str
    method: str
    family_size: int
    rank: int  # 1 = the smallest p-value
    level: float  # one-sided level its bound was taken at
    adjusted_low: float
    unadjusted_low: float
    unadjusted_high: float
    mean: float
    sd: float
    seeds: int
    threshold: float
    p_value: float
    adjusted_p_value: float
    passed: bool
    seeds_needed: int | None  # failed checks: seeds for the bound to clear if the mean held; None: none would
    seeds_for_80pct_power: int | None
    more_seeds_help: bool | None  # None when it passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "multiplicity": self.method,
            "family_size": self.family_size,
            "rank": self.rank,
            "level": self.level,
            "adjusted_low": _finite(self.adjusted_low),
            "unadjusted_low": _finite(self.unadjusted_low),
            "unadjusted_high": _finite(self.unadjusted_high),
            "sd": _finite(self.sd),
            "seeds": self.seeds,
            "p_value": _finite(self.p_value),
            "adjusted_p_value": _finite(self.adjusted_p_value),
            "seeds_needed": self.seeds_needed,
            "seeds_for_80pct_power": self.seeds_for_80pct_power,
            "more_seeds_help": self.more_seeds_help,
        }

    def bound_words(self, scale: float = 1.0, fmt: str = "{:+.4f}") -> str:
        """'; Holm-adjusted lower bound +0.0123 (one-sided 0.25%, rank 3 of 10 comparisons)', or '' for none."""
        if self.method == "none" or self.family_size == 1:
            return ""
        return (
            f"; Holm-adjusted lower bound {fmt.format(self.adjusted_low * scale)} (one-sided {self.level:.3%}, "
            f"rank {self.rank} of {self.family_size} comparisons)"
        )

    @property
    def bound_name(self) -> str:
        return "lower bound" if self.method == "none" or self.family_size == 1 else "adjusted lower bound"

    def more_seeds_words(self) -> str:
        """Whether more seeds could change a failed verdict, in words ('' when it passed)."""
        if self.passed:
            return ""
        if not self.more_seeds_help:
            return (
                "more seeds would not change this: the mean difference itself is not above the threshold, so "
                "more seeds only narrow the interval around a failing value"
            )
        if self.seeds_needed is None:
            return (
                f"more seeds could change this only past {MAX_SEEDS:,} seeds: the mean is barely above the "
                "threshold for the spread between seeds"
            )
        power = (
            f"{self.seeds_for_80pct_power:,}"
            if self.seeds_for_80pct_power is not None
            else f"more than {MAX_SEEDS:,}"
        )
        return (
            f"more seeds could change this: if the mean and the spread between seeds held, the bound would clear "
            f"the threshold at {self.seeds_needed:,} seeds (a run that size passes about half the time; "
            f"{power} seeds pass with probability 0.8), against {self.seeds} run "
            f"(stress.seeds_by_scenario: {{{self.scenario}: N}})"
        )


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def family_alpha(confidence: float) -> float:
    """The one-sided error of one check's bound, and the family-wise error Holm controls: (1 - confidence) / 2."""
    return (1.0 - confidence) / 2.0


def _summary(c: Comparison) -> tuple[float, float, int]:
    x = np.asarray(c.diffs, dtype=float)
    n = int(x.size)
    mean = float(x.mean()) if n else float("nan")
    sd = float(x.std(ddof=1)) if n > 1 else float("nan")
    return mean, sd, n


def p_value(mean: float, sd: float, n: int, threshold: float) -> float:
    """One-sided p-value of H0 'mean difference <= threshold' (Student t, n - 1 degrees of freedom)."""
    if not (math.isfinite(mean) and n >= 2 and math.isfinite(sd)):
        return 1.0
    if sd == 0.0:
        return 0.0 if mean >= threshold else 1.0
    t = (mean - threshold) / (sd / math.sqrt(n))
    return float(stats.t.sf(t, n - 1))


def lower_bound(mean: float, sd: float, n: int, level: float) -> float:
    """The one-sided lower confidence bound of the mean at ``level`` (Student t)."""
    if not (math.isfinite(mean) and n >= 2 and math.isfinite(sd)):
        return float("nan")
    return mean - float(stats.t.ppf(1.0 - level, n - 1)) * sd / math.sqrt(n)


def seeds_needed(mean: float, sd: float, threshold: float, level: float) -> tuple[int | None, int | None]:
    """Seeds for the bound at ``level`` to clear ``threshold`` if ``mean`` and ``sd`` held, and seeds for a run to
    pass with probability 0.8; ``None`` when it would take more than :data:`MAX_SEEDS` (or never). Both grow
    monotonically with the seeds, so each is a bisection."""
    if not (math.isfinite(mean) and math.isfinite(sd)) or mean <= threshold:
        return None, None
    if sd == 0.0:
        return 2, 2

    def clears(n: int) -> bool:
        return mean - float(stats.t.ppf(1.0 - level, n - 1)) * sd / math.sqrt(n) >= threshold

    def powered(n: int) -> bool:
        crit = float(stats.t.ppf(1.0 - level, n - 1))
        return float(stats.nct.sf(crit, n - 1, (mean - threshold) / (sd / math.sqrt(n)))) >= 0.8

    return _first(clears), _first(powered)


def _first(ok: Any) -> int | None:
    """The smallest n in 2 .. MAX_SEEDS with ok(n), for ok monotone in n; None if there is none."""
    if not ok(MAX_SEEDS):
        return None
    lo, hi = 2, MAX_SEEDS
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def family_gates(
    comparisons: list[Comparison], method: str, confidence: float, power: bool = True
) -> dict[tuple[str, str], GateResult]:
    """The verdict of every comparison of the family under ``method`` (``holm`` or ``none``), by (scenario, metric);
    ``power``: say for each failed one how many seeds would clear it (:func:`seeds_needed`).

    With ``none`` (and with Holm's last step) the bound is the comparison's own unadjusted ``low``, so the gate
    is the one-at-a-time gate to the bit."""
    if method not in MULTIPLICITY:
        raise ValueError(f"multiplicity {method!r}; allowed: {', '.join(MULTIPLICITY)}")
    alpha = family_alpha(confidence)
    m = len(comparisons)
    summaries = [_summary(c) for c in comparisons]
    pvals = [
        p_value(mean, sd, n, c.threshold) for c, (mean, sd, n) in zip(comparisons, summaries, strict=True)
    ]
    order = sorted(range(m), key=lambda i: pvals[i]) if method == "holm" else list(range(m))
    out: dict[tuple[str, str], GateResult] = {}
    failed_at: int | None = None  # the divisor of the first failing step
    adjusted_running = 0.0
    for step, i in enumerate(order):
        c, (mean, sd, n), p = comparisons[i], summaries[i], pvals[i]
        divisor = (m - step) if method == "holm" else 1
        if failed_at is not None:
            divisor = failed_at
        level = alpha / divisor
        low = c.low if divisor == 1 else lower_bound(mean, sd, n, level)
        passed = failed_at is None and bool(math.isfinite(low) and low >= c.threshold)
        if method == "holm":
            adjusted_running = max(adjusted_running, min(1.0, (m - step) * p))
            adjusted_p = adjusted_running
        else:
            adjusted_p = p
        if not passed and failed_at is None and method == "holm":
            failed_at = divisor
        needed = power80 = None
        helps = None
        if not passed and power:
            needed, power80 = seeds_needed(mean, sd, c.threshold, level)
        if not passed:
            helps = bool(math.isfinite(mean) and mean > c.threshold)
        out[c.key] = GateResult(
            c.scenario, c.metric, method, m, step + 1, level, float(low), float(c.low), float(c.high),
            mean, sd, n, c.threshold, p, adjusted_p, passed, needed, power80, helps,
        )  # fmt: skip
    return out


def stress_comparisons(stress: Any, cfg: Any) -> list[Comparison]:
    """The family of a review's stress gates: per scenario the candidate bundle was run on to the end, margin per
    transaction (and approval rate when gated) against the best reference, with its per-seed differences."""
    out = []
    runs = stress.runs
    for scenario in cfg.scenarios:
        if scenario in stress.errors or scenario not in stress.best:
            continue
        ref = stress.best[scenario]
        row = stress.comparison(scenario, ref)
        group = runs[runs.scenario == scenario]
        metrics = [("margin", "margin_per_tx_usd", cfg.min_margin_diff_vs_best_usd, "margin_diff")]
        if cfg.min_approval_diff_vs_best is not None:
            metrics.append(("approval", "approval_rate", cfg.min_approval_diff_vs_best, "approval_diff"))
        for metric, kpi, thr, col in metrics:
            table = group.pivot(index="seed", columns="policy", values=kpi)
            diffs = (table["candidate"] - table[ref]).to_numpy(dtype=float)
            out.append(
                Comparison(
                    scenario, metric, diffs, float(thr), float(row[f"{col}_low"]), float(row[f"{col}_high"])
                )
            )
    return out


def stress_gates(stress: Any, cfg: Any) -> dict[tuple[str, str], GateResult]:
    """Every stress gate of a review (:class:`~payroute.policies.review.stress.StressResult` and the review's
    stress config), family-wise under ``cfg.multiplicity``."""
    return family_gates(stress_comparisons(stress, cfg), cfg.multiplicity, cfg.confidence)


__all__ = [
    "MULTIPLICITY",
    "Comparison",
    "GateResult",
    "family_alpha",
    "family_gates",
    "lower_bound",
    "p_value",
    "seeds_needed",
    "stress_comparisons",
    "stress_gates",
]
