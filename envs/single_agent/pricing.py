"""``payroute/Pricing-v0``: what to charge each payer segment for each product family, one pricing period at a time.

The PSP quotes every payment a fee: the list price of its family (card, bank payout, cross-border payout)
times a multiplier the pricing agent sets per payer segment and family, within the scenario's commercial
bounds and under the regulatory caps the world enforces whatever the action. Payers answer as
:mod:`payroute.envs.world.customers` describes: some walk away, some pay with a cheaper method they also
have, and a segment that is overcharged loses customers over days. Routing, risk, treasury and fraud run on
baselines, so the profit of a period is what pricing made of the same customers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from payroute.envs.scenarios import Scenario
from payroute.envs.scenarios.schema import FAMILIES
from payroute.envs.single_agent.period import CALENDAR_FEATURES, PeriodDecisionEnv, calendar_features


class PricingEnv(PeriodDecisionEnv):
    """Set the fee multiplier of every payer segment x product family, once per pricing period.

    ## Description

    A day (or several) of the payment world of ``scenario``. At the start of each pricing period
    (``prices.period_s`` of the scenario: a day by default, an hour with ``scenario_overrides={"prices":
    {"period_s": 3600}}``) the agent sets, for each payer segment (``consumer``, ``small_business``, ``enterprise`` in the
    default scenario) and each product family (``card``, ``bank``, ``cross_border``), the multiplier of the
    list price the PSP quotes. The world clips it to ``[prices.min_multiplier, prices.max_multiplier]`` and then
    applies ``prices.caps`` to every single payment whatever the multiplier (default: a credit-card surcharge of
    at most 3% above list, Visa US; no surcharge on debit). Customers respond (nested logit, see
    :mod:`payroute.envs.world.customers`): a higher fee raises abandonment, moves payers to a cheaper method they
    have (credit -> debit, instant -> standard payout), and, day after day, makes a segment's customers leave
    (churn) until prices come back down. With ``prices.competitor.enabled`` customers compare with a competitor
    whose price level wanders (mean-reverting); otherwise with our list price. Every other decision (route,
    risk, treasury, fraud) is taken by a baseline (``baselines`` names them).

    ## Action space

    ``Box(min_multiplier, max_multiplier, shape=(n_segments, n_families), float32)``: row = segment in the
    scenario's ``demand.segment_mix`` order, column = family in ``("card", "bank", "cross_border")`` order.
    ``1.0`` charges the list price. The multiplier scales the whole list price (fixed part, percentage, min
    and max, instant surcharge).

    With ``price_levels=[0.9, 1.0, 1.1, ...]``: ``Discrete(len(price_levels))`` instead, one price level for
    every segment and family (action ``i`` sets every multiplier to ``price_levels[i]``); ``action_names``
    are ``"x0.9"``, ``"x1"``, ... and ``action_values`` the levels. This is the form a policy bundle holds
    (a discrete choice), and the one ``experiments/pricing_levels.yaml`` trains.

    ## Observation space

    A flat ``Box(float32)`` of :attr:`observation_names`; "last period" is the period that just ended (zeros
    at the first decision). ``S`` segments, ``F`` = 3 families, cells in row-major (segment, family) order.

    | names                             | count | meaning                                                    | range      |
    |-----------------------------------|-------|------------------------------------------------------------|------------|
    | ``volume_index[s]``               | S     | payers quoted last period / the scenario's expected        | [0, inf)   |
    |                                   |       | arrivals of the segment in that period (1 = full demand)   |            |
    | ``mix[s,f]``                      | S*F   | share of the segment's quotes in each family               | [0, 1]     |
    | ``abandon_rate[s,f]``             | S*F   | share of quoted payers who walked away                     | [0, 1]     |
    | ``switch_rate[s,f]``              | S*F   | share of quoted payers who paid with the cheaper method    | [0, 1]     |
    | ``approval_rate``                 | 1     | approved / submitted payments last period                  | [0, 1]     |
    | ``price_multiplier[s,f]``         | S*F   | own multipliers in force (the last action, clipped)        | [min, max] |
    | ``quoted_price_index[s,f]``       | S*F   | quoted fees / list fees last period (after the caps)       | [0, inf)   |
    | ``fee_share[f]``                  | F     | quoted fees / payment value last period (0.03 = 3%)        | [0, inf)   |
    | ``competitor_multiplier[f]``      | F     | competitor's price level / our list price (1 if disabled)  | [0, inf)   |
    | ``active_customer_share[s]``      | S     | share of the segment's customers who have not churned      | [0, 1]     |
    | ``profit_per_payment_usd``        | 1     | last period's profit / payers quoted, in dollars           | (-inf,inf) |
    | ``hour_sin``, ``hour_cos``        | 2     | time of day                                                | [-1, 1]    |
    | ``weekday_mon`` .. ``weekday_sun``| 7     | day of week, one-hot                                       | {0, 1}     |
    | ``business_day``                  | 1     | 1 on a US business day                                     | {0, 1}     |
    | ``episode_progress``              | 1     | share of the episode's days gone                           | [0, 1]     |

    ## Reward

    The period's profit in dollars: the change of the world's margin (fee revenue - route cost - fraud losses
    - SLA penalties - liquidity and challenge costs - treasury costs) over the period, on an accrual basis.
    The last step also carries what resolves after the last arrival (late settlements, chargebacks).

    ## Episode end

    Terminates after ``days`` days of arrivals, once the world has drained (every payment ended, every
    chargeback arrived). No truncation.

    ## Arguments

    ``gym.make("payroute/Pricing-v0", scenario="default", seed=None, days=7, scenario_overrides=None,
    baselines=None, reward_scale=1.0, price_levels=None)``

    * ``scenario``: a shipped scenario name, a YAML path or a :class:`Scenario`.
    * ``seed``: the seed of the first ``reset()`` that passes none (``reset(seed=s)`` runs world seed ``s``).
    * ``days``: days of arrivals per episode (7 daily pricing decisions by default).
    * ``scenario_overrides``: nested overrides merged into the scenario (e.g. ``{"volume_scale": 0.05}``).
    * ``baselines``: baseline names for the other decision kinds, e.g. ``{"route": "fastest"}``.
    * ``reward_scale``: the reward is the profit in dollars times this.
    * ``price_levels``: a discrete action over these multipliers (each within the scenario's
      ``[prices.min_multiplier, prices.max_multiplier]``, increasing), applied to every segment and family.

    ## Version history

    * v0: initial version.
    """

    decision_kind = "price"
    OBSERVATION_UNITS = {
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

    def __init__(
        self,
        scenario: str | Path | Scenario = "default",
        seed: int | None = None,
        days: float = 7.0,
        scenario_overrides: dict[str, Any] | None = None,
        baselines: dict[str, str] | None = None,
        reward_scale: float = 1.0,
        render_mode: str | None = None,
        price_levels: list[float] | tuple[float, ...] | None = None,
    ) -> None:
        super().__init__(scenario, seed, days, scenario_overrides, baselines, reward_scale, render_mode)
        sc = self.scenario
        self.segments = sc.segments
        self.families = FAMILIES
        n_s, n_f = len(self.segments), len(FAMILIES)
        self._shape = (n_s, n_f)
        lo, hi = sc.prices.min_multiplier, sc.prices.max_multiplier
        self.price_levels = None if price_levels is None else _check_levels(price_levels, lo, hi)
        if self.price_levels is None:
            self.action_space = spaces.Box(lo, hi, shape=self._shape, dtype=np.float32)
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
        cal_lo = [-1.0, -1.0] + [0.0] * (len(CALENDAR_FEATURES) - 2)
        names += list(CALENDAR_FEATURES)
        low += cal_lo
        high += [1.0] * len(CALENDAR_FEATURES)
        self.observation_names: tuple[str, ...] = tuple(names)
        self.observation_space = spaces.Box(
            np.array(low, dtype=np.float32), np.array(high, dtype=np.float32), dtype=np.float32
        )
        self._segment_share = np.array([sc.demand.segment_mix[s] for s in self.segments], dtype=float)
        self._segment_share /= self._segment_share.sum()

    # ------------------------------------------------------------------ episode bookkeeping
    def _start_episode(self) -> None:
        w = self.world
        self._prev_t = 0.0
        self._prev_stats = w.quote_stats.snapshot()
        self._prev_attempts, self._prev_approved = 0, 0
        self._prev_margin = 0.0
        self._last_profit = 0.0
        self._period_stats = {k: np.zeros_like(v) for k, v in self._prev_stats.items()}
        self._period_attempts = self._period_approved = 0
        self._expected = np.zeros(len(self.segments))

    def _to_world_action(self, action: Any) -> np.ndarray:
        if self.price_levels is not None:
            a = np.asarray(action)
            if (
                a.size != 1
                or not np.issubdtype(a.dtype, np.integer)
                or not 0 <= int(a) < len(self.price_levels)
            ):
                raise ValueError(
                    f"Pricing-v0 action must be a price level index in 0..{len(self.price_levels) - 1} "
                    f"(levels {list(self.price_levels)}), got {action!r}"
                )
            return np.full(self._shape, self.price_levels[int(a)], dtype=np.float64)
        a = np.asarray(action, dtype=np.float64)
        if a.size != self._shape[0] * self._shape[1] or not np.all(np.isfinite(a)):
            raise ValueError(
                f"Pricing-v0 action must be {self._shape} finite multipliers "
                f"(segments {list(self.segments)} x families {list(FAMILIES)}), got {action!r}"
            )
        return a.reshape(self._shape)

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
        self._last_profit = margin - self._prev_margin
        self._prev_margin = margin
        self._expected = self._expected_arrivals(self._prev_t, w.now)
        self._prev_t = w.now

    def _expected_arrivals(self, t0: float, t1: float) -> np.ndarray:
        """The scenario's expected genuine arrivals per segment in [t0, t1) at full demand."""
        demand = self.world.demand
        hours = self._hours(t0, min(t1, self.world.horizon_s))
        total = sum(demand.hourly_rate(h) for h in hours)
        return total * self._segment_share

    # ------------------------------------------------------------------ gymnasium hooks
    def _reward(self) -> float:
        self._close_period()
        return float(self._last_profit)

    def _observe(self) -> np.ndarray:
        w = self.world
        st = self._period_stats
        quoted = st["quoted"].astype(float)
        per_seg = quoted.sum(axis=1)

        def ratio(num, den):
            num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
            return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)

        active = w.demand.segment_multiplier
        parts = [
            ratio(per_seg, self._expected),
            ratio(quoted, per_seg[:, None]).ravel(),
            ratio(st["abandoned"], quoted).ravel(),
            ratio(st["switched"], quoted).ravel(),
            [ratio(self._period_approved, self._period_attempts)],
            w.price_multipliers.ravel(),
            ratio(st["price_cents"], st["list_cents"]).ravel(),
            ratio(st["price_cents"].sum(axis=0), st["amount_cents"].sum(axis=0)),
            w.competitor.multipliers,
            np.ones(len(self.segments)) if active is None else active,
            [self._last_profit / quoted.sum() if quoted.sum() > 0 else 0.0],
            calendar_features(w),
        ]
        return np.concatenate([np.ravel(p) for p in parts]).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        w = self.world
        return {
            "t_s": w.now,
            "profit_usd": self._last_profit,
            "price_multipliers": w.price_multipliers.copy(),
            "competitor_multipliers": w.competitor.multipliers.copy(),
            "kpis": w.kpis(),
        }


def _check_levels(levels: Any, lo: float, hi: float) -> tuple[float, ...]:
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
