"""The fraudster: how hard to attack, with which patterns, at which amounts, each fraud period (an hour by default).

Action: ``Box`` of ``2 P`` numbers (``P`` patterns in the scenario's order, ``pattern_names``): the intensity per
pattern, times the scenario's attack rate, in ``[0, fraud.max_intensity]``; then the amount multiplier per
pattern on the pattern's amount band, in ``fraud.amount_multiplier_range``. Out-of-range values are clipped.

Observation: only what an attacker sees of its own attacks in the period since its last decision, per pattern:
attempts relative to the scenario's rate (clipped to ``2 max_intensity``), the shares approved, challenged,
blocked and failed on the route, frauds discovered (chargebacks, returns, reimbursements) relative to the
scenario's rate (clipped to 10), its proceeds and its costs (log(1+dollars)/log(1+1e6)), the intensity in force
/ max and the amount multiplier in force (log, scaled to [-1, 1]); then the calendar.

Money: proceeds not recovered minus costs (:class:`~payroute.envs.world.fraud.FraudsterBook`): not the PSP's
money, the other side of its fraud loss.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

from payroute.envs.features import Feature
from payroute.envs.roles.base import Role, box
from payroute.envs.roles.calendar import FRAUDSTER_CALENDAR, write_fraudster_calendar
from payroute.envs.scenarios.schema import FRAUD_PATTERNS
from payroute.envs.world.clock import HOUR_S
from payroute.envs.world.decisions import FraudAction

if TYPE_CHECKING:
    from payroute.envs.scenarios import Scenario
    from payroute.envs.world.decisions import DecisionPoint
    from payroute.envs.world.fraud import FraudsterBook
    from payroute.envs.world.world import PaymentWorld


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _log_usd(cents: np.ndarray, scale_usd: float = 1e6) -> np.ndarray:
    """log(1 + dollars) / log(1 + scale), clipped to [0, 1]."""
    return np.clip(np.log1p(np.maximum(cents, 0) / 100.0) / math.log1p(scale_usd), 0.0, 1.0)


class FraudsterRole(Role):
    """The fraudster (see the module docstring)."""

    name = "fraudster"
    PER_PATTERN = (
        "attempts",
        "approved_rate",
        "challenged_rate",
        "blocked_rate",
        "failed_rate",
        "detected",
        "proceeds",
        "costs",
        "intensity",
        "amount_multiplier",
    )

    def __init__(self, scenario: Scenario) -> None:
        super().__init__()
        sc = scenario
        fraud = sc.fraud
        # the world's pattern order (FraudStreams): the known patterns the scenario configures
        self.pattern_names = [name for name in FRAUD_PATTERNS if name in fraud.patterns]
        p = len(self.pattern_names)
        self.max_intensity = fraud.max_intensity
        self.amount_range = tuple(fraud.amount_multiplier_range)
        self._log_amount_scale = max(
            abs(math.log(self.amount_range[0])), abs(math.log(self.amount_range[1])), 1e-9
        )
        f: list[Feature] = []
        units = {
            "attempts": ("x scenario rate", "clipped to 2 x max_intensity", 0, 2 * self.max_intensity),
            "approved_rate": ("share of attempts", "", 0, 1),
            "challenged_rate": ("share of attempts", "", 0, 1),
            "blocked_rate": ("share of attempts", "", 0, 1),
            "failed_rate": ("share of attempts", "", 0, 1),
            "detected": ("x scenario rate", "clipped to 10", 0, 10),
            "proceeds": ("log(1+dollars)", "/ log(1+1e6)", 0, 1),
            "costs": ("log(1+dollars)", "/ log(1+1e6)", 0, 1),
            "intensity": ("x scenario rate", "/ max_intensity", 0, 1),
            "amount_multiplier": ("log(multiplier)", "/ max |log| of the range", -1, 1),
        }
        for name in self.PER_PATTERN:
            unit, scaling, lo, hi = units[name]
            f += [Feature(f"{name}[{pat}]", unit, scaling, lo, hi) for pat in self.pattern_names]
        self.features = f + list(FRAUDSTER_CALENDAR)
        self.observation_space = box(self.features)
        lo = [0.0] * p + [self.amount_range[0]] * p
        hi = [self.max_intensity] * p + [self.amount_range[1]] * p
        self.action_space = spaces.Box(np.array(lo, np.float32), np.array(hi, np.float32), dtype=np.float32)
        self.action_names = tuple(
            [f"intensity[{n}]" for n in self.pattern_names]
            + [f"amount_multiplier[{n}]" for n in self.pattern_names]
        )
        period_h = max(1, sc.fraud_period_s // HOUR_S)
        self._rate_per_period = np.array(
            [
                sc.fraud.patterns[n].attacks_per_day * sc.volume_scale * period_h / 24.0
                for n in self.pattern_names
            ]
        )

    def money_cents(self) -> int:
        return self.world.fraudster.net_cents

    def bind(self, world: PaymentWorld) -> None:
        super().bind(world)
        book = world.fraudster
        self._counts0 = book.counts.copy()
        self._money0 = book.money.copy()

    def observe(self, point: DecisionPoint | None) -> np.ndarray:
        """The observation of the period since the fraudster's last decision (which it then closes)."""
        out = self._observe()
        book = self.world.fraudster
        self._counts0 = book.counts.copy()
        self._money0 = book.money.copy()
        return out

    def final_observation(self, last: Any) -> np.ndarray:
        return self._observe()

    def _observe(self) -> np.ndarray:
        w = self.world
        book: FraudsterBook = w.fraudster
        c = book.counts - self._counts0
        m = book.money - self._money0
        attempts = c[0]
        parts = [
            np.clip(_ratio(attempts, self._rate_per_period), 0, 2 * self.max_intensity),
            _ratio(c[3], attempts),
            _ratio(c[1], attempts),
            _ratio(c[2], attempts),
            _ratio(c[4], attempts),
            np.clip(_ratio(c[5], self._rate_per_period), 0, 10),
            _log_usd(m[0] - m[1]),
            _log_usd(m[2:].sum(axis=0)),
            np.clip(w.fraud_intensity / self.max_intensity, 0, 1),
            np.clip(np.log(w.fraud_amount_multiplier) / self._log_amount_scale, -1, 1),
        ]
        out = np.empty(self.observation_space.shape, dtype=np.float32)
        k = 0
        for part in parts:
            out[k : k + part.size] = part
            k += part.size
        write_fraudster_calendar(w, out, k)
        return out

    def to_world(self, action: Any, point: DecisionPoint) -> FraudAction:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        p = len(self.pattern_names)
        if a.shape != (2 * p,) or not np.all(np.isfinite(a)):
            raise ValueError(
                f"fraudster action must be {2 * p} finite numbers: intensities for {self.pattern_names}, "
                f"then amount multipliers for the same patterns; got {action!r}"
            )
        a = np.clip(a, self.action_space.low, self.action_space.high)
        return FraudAction(intensity=tuple(a[:p]), amount_multiplier=tuple(a[p:]))
