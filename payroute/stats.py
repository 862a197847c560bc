"""Paired comparisons with confidence intervals: how payroute reports one policy against another.

Policies run on the same seeds see the same demand (common random numbers), so their difference is measured
seed by seed and the interval is on the mean paired difference (Student t), which is far tighter than
comparing two unpaired means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.mean:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


def mean_interval(values: np.ndarray, confidence: float = 0.95) -> Interval:
    """The mean of ``values`` with a Student-t interval (degenerate for a single value)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("need at least one value")
    m = float(x.mean())
    if n == 1:
        return Interval(m, m, m, 1)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    return Interval(m, m - half, m + half, n)


def paired_interval(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> Interval:
    """Interval of mean(a - b) over paired observations (same seeds)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same shape, got {a.shape} and {b.shape}")
    return mean_interval(a - b, confidence)


def paired_ratio_interval(num: np.ndarray, den: np.ndarray, confidence: float = 0.95) -> Interval:
    """Interval of mean(num) / mean(den) over paired observations (same seeds), by the delta method.

    The ratio ``R`` of the two means is estimated from the same seeds, so its standard error is that of the mean
    of the linearised residuals ``num - R * den``, divided by ``|mean(den)|``; the interval is Student t with
    ``n - 1`` degrees of freedom. When ``num`` is ``den`` (or zero) the residuals vanish and the interval is the
    point itself. A zero ``mean(den)`` has no ratio: ``ValueError``.
    """
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if num.shape != den.shape:
        raise ValueError(f"paired samples must have the same shape, got {num.shape} and {den.shape}")
    n = len(num)
    if n == 0:
        raise ValueError("need at least one value")
    scale = float(den.mean())
    if scale == 0.0:
        raise ValueError("the denominator's mean is zero: no ratio")
    ratio = float(num.mean()) / scale
    if n == 1:
        return Interval(ratio, ratio, ratio, 1)
    resid = num - ratio * den
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * resid.std(ddof=1) / np.sqrt(n) / abs(scale))
    return Interval(ratio, ratio - half, ratio + half, n)
