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
