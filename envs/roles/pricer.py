"""The pricer: the fee multiplier of every payer segment x product family, once per pricing period.

Observation (a flat ``Box``, :attr:`PricerRole.observation_names`): what the period since the last pricing
decision did — volumes, product mix, abandonment, switching, approval, own and competitor prices, churn, profit
per payment — then the calendar; the table is Pricing-v0's manual
(:class:`~payroute.envs.single_agent.pricing.PricingEnv`). Action: ``Box(min_multiplier, max_multiplier,
(S, F))`` (``flat=True``: the same, flattened row-major to ``(S * F,)``, for trainers that need a 1-D ``Box``),
or with ``price_levels`` ``Discrete(len(price_levels))``, one level for every cell.

Money: the ledger's margin attributed to the pricer. Reward in Pricing-v0: the period's profit, the change of
the world's margin (``kpis()["margin_usd"]``) over the period.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

from payroute.envs.roles.base import Role, box_action, discrete_action
from payroute.envs.roles.calendar import (
    CALENDAR_FEATURES,
    CALENDAR_HIGH,
    CALENDAR_LOW,
    CALENDAR_UNITS,
    calendar_features,
    named_features,
)
from payroute.envs.scenarios.schema import FAMILIES
from payroute.envs.world.clock import HOUR_S

if TYPE_CHECKING:
    from payroute.envs.scenarios import Scenario
    from payroute.envs.world.decisions import DecisionPoint
    from payroute.envs.world.world import PaymentWorld

OBSERVATION_UNITS: dict[str, tuple[str, str]] = {
    "volume_index": (
        "x expected arrivals",
        "payers quoted last period / expected arrivals (1 = full demand)",
    ),
    "mix": ("share", "of the segment's quotes in this family"),
    "abandon_rate": ("share", "of quoted payers who walked away"),
    "switch_rate": ("share", "of quoted payers who paid with the cheaper method"),
    "approval_rate": ("share", "approved / submitted payments last period"),
    "price_multiplier": ("x list price", "own multiplier in force (the last action, clipped)"),
    "quoted_price_index": ("ratio", "quoted fees / list fees last period, after the caps"),
    "fee_share": ("share of value", "quoted fees / payment value last period"),
    "competitor_multiplier": ("x our list price", "competitor's price level (1 if disabled)"),
    "active_customer_share": ("share", "of the segment's customers who have not churned"),
    "profit_per_payment_usd": ("dollars", "last period's profit / payers quoted"),
}
"""Observation block (the name before ``[``) -> (unit, scaling)."""


def _ratio(num: Any, den: Any) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def check_price_levels(levels: Any, lo: float, hi: float) -> tuple[float, ...]:
    """``levels`` as increasing multipliers within ``[lo, hi]`` (a ``ValueError`` that says why not)."""
    try:
        values = tuple(float(v) for v in levels)
    except (TypeError, ValueError):
        raise ValueError(f"price_levels must be a list of numbers, got {levels!r}") from None
    if len(values) < 2 or any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"price_levels must be at least two increasing multipliers, got {list(values)}")
    if values[0] < lo or values[-1] > hi:
        raise ValueError(
            f"price_levels {list(values)} must lie within the scenario's multipliers [{lo}, {hi}]"
        )
    return values


class PricerRole(Role):
    """The pricer (see the module docstring)."""

    name = "pricer"

    def __init__(
        self,
        scenario: Scenario,
        *,
        price_levels: list[float] | tuple[float, ...] | None = None,
        flat: bool = False,
    ) -> None:
        super().__init__()
        sc = scenario
        self.segments = sc.segments
        self.families = FAMILIES
        n_s, n_f = len(self.segments), len(FAMILIES)
        self._shape = (n_s, n_f)
        lo, hi = sc.prices.min_multiplier, sc.prices.max_multiplier
        self.price_levels = None if price_levels is None else check_price_levels(price_levels, lo, hi)
        if self.price_levels is None:
            shape = (n_s * n_f,) if flat else self._shape
            self.action_space = spaces.Box(lo, hi, shape=shape, dtype=np.float32)
        else:
            self.action_space = spaces.Discrete(len(self.price_levels))
            self.action_values = list(self.price_levels)
            self.action_names = tuple(f"x{v:g}" for v in self.price_levels)
        cells = [f"{s}.{f}" for s in self.segments for f in FAMILIES]
        blocks: list[tuple[str, list[str], float, float]] = [
            ("volume_index", list(self.segments), 0.0, np.inf),
            ("mix", cells, 0.0, 1.0),
            ("abandon_rate", cells, 0.0, 1.0),
            ("switch_rate", cells, 0.0, 1.0),
            ("approval_rate", [""], 0.0, 1.0),
            ("price_multiplier", cells, lo, hi),
            ("quoted_price_index", cells, 0.0, np.inf),
            ("fee_share", list(FAMILIES), 0.0, np.inf),
            ("competitor_multiplier", list(FAMILIES), 0.0, np.inf),
            ("active_customer_share", list(self.segments), 0.0, 1.0),
            ("profit_per_payment_usd", [""], -np.inf, np.inf),
        ]
        names, low, high = [], [], []
        for block, keys, b_lo, b_hi in blocks:
            for k in keys:
                names.append(f"{block}[{k}]" if k else block)
                low.append(b_lo)
                high.append(b_hi)
        names += list(CALENDAR_FEATURES)
        low += list(CALENDAR_LOW)
        high += list(CALENDAR_HIGH)
        self.observation_names: tuple[str, ...] = tuple(names)
        self.observation_space = spaces.Box(
            np.array(low, dtype=np.float32), np.array(high, dtype=np.float32), dtype=np.float32
        )
        space = self.observation_space
        self.features = named_features(
            self.observation_names, space.low, space.high, {**CALENDAR_UNITS, **OBSERVATION_UNITS}
        )
        self._segment_share = np.array([sc.demand.segment_mix[s] for s in self.segments], dtype=float)
        self._segment_share /= self._segment_share.sum()
        self.last_profit = 0.0

    # ------------------------------------------------------------------ an episode
    def bind(self, world: PaymentWorld) -> None:
        super().bind(world)
        w = world
        self._first = True
        self._prev_t = 0.0
        self._prev_stats = w.quote_stats.snapshot()
        self._prev_attempts, self._prev_approved = 0, 0
        self._prev_margin = 0.0
        self.last_profit = 0.0
        self._period_stats = {k: np.zeros_like(v) for k, v in self._prev_stats.items()}
        self._period_attempts = self._period_approved = 0
        self._expected = np.zeros(len(self.segments))

    def to_world(self, action: Any, point: DecisionPoint | None = None) -> np.ndarray:
        if self.price_levels is not None:
            levels = f" (levels {list(self.price_levels)})"
            i = discrete_action(action, len(self.price_levels), "Pricing-v0", "a price level index", levels)
            return np.full(self._shape, self.price_levels[i], dtype=np.float64)
        names = f"segments {list(self.segments)} x families {list(FAMILIES)}"
        return box_action(action, self._shape, "Pricing-v0", detail=names, unit="multipliers")

    def _close_period(self) -> None:
        """Counts of the period that just ended, and its profit."""
        w = self.world
        stats = w.quote_stats.snapshot()
        self._period_stats = {k: stats[k] - self._prev_stats[k] for k in stats}
        self._prev_stats = stats
        attempts, approved = int(w.by_hour_attempts.sum()), int(w.totals["approved"])
        self._period_attempts = attempts - self._prev_attempts
        self._period_approved = approved - self._prev_approved
        self._prev_attempts, self._prev_approved = attempts, approved
        margin = w.kpis()["margin_usd"]
        self.last_profit = margin - self._prev_margin
        self._prev_margin = margin
        self._expected = self._expected_arrivals(self._prev_t, w.now)
        self._prev_t = w.now

    def _expected_arrivals(self, t0: float, t1: float) -> np.ndarray:
        """The scenario's expected genuine arrivals per segment in [t0, t1) at full demand."""
        demand = self.world.demand
        hours = range(int(t0 // HOUR_S), int(math.ceil(min(t1, self.world.horizon_s) / HOUR_S)))
        total = sum(demand.hourly_rate(h) for h in hours)
        return total * self._segment_share

    def observe(self, point: DecisionPoint | None) -> np.ndarray:
        """The observation at a pricing decision (``None``: the episode's end), closing the period before it."""
        if not self._first:
            self._close_period()
        self._first = False
        w = self.world
        st = self._period_stats
        quoted = st["quoted"].astype(float)
        per_seg = quoted.sum(axis=1)
        active = w.demand.segment_multiplier
        parts = [
            _ratio(per_seg, self._expected),
            _ratio(quoted, per_seg[:, None]).ravel(),
            _ratio(st["abandoned"], quoted).ravel(),
            _ratio(st["switched"], quoted).ravel(),
            [_ratio(self._period_approved, self._period_attempts)],
            w.price_multipliers.ravel(),
            _ratio(st["price_cents"], st["list_cents"]).ravel(),
            _ratio(st["price_cents"].sum(axis=0), st["amount_cents"].sum(axis=0)),
            w.competitor.multipliers,
            np.ones(len(self.segments)) if active is None else active,
            [self.last_profit / quoted.sum() if quoted.sum() > 0 else 0.0],
            calendar_features(w),
        ]
        return np.concatenate([np.ravel(p) for p in parts]).astype(np.float32)

    def final_observation(self, last: Any) -> np.ndarray:
        return self.observe(None)

    def reward_usd(self) -> float:
        """Pricing-v0's reward: the profit of the period closed by the last observation, in dollars."""
        return float(self.last_profit)
