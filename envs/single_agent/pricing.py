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

from payroute.envs.info import ELAPSED_S, InfoKey, with_info_table
from payroute.envs.roles import PricerRole
from payroute.envs.roles.pricer import OBSERVATION_UNITS
from payroute.envs.scenarios import Scenario
from payroute.envs.scenarios.schema import FAMILIES
from payroute.envs.single_agent.base import SingleAgentEnv
from payroute.envs.world.books import KPI_FIELDS


class PricingEnv(SingleAgentEnv):
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

    ## Info

    The same keys at reset and at every step, generated from ``PricingEnv.INFO_KEYS``
    (:mod:`payroute.envs.info`): ``float`` and numpy arrays of a fixed dtype, so a vector env stacks each into
    one numeric array (``kpis`` key by key). ``n_segments`` = ``len(env.segments)``.

    ## Arguments

    ``gym.make("payroute/Pricing-v0", scenario="default", seed=None, days=7, scenario_overrides=None,
    baselines=None, reward_scale=1.0, price_levels=None)``

    * ``scenario``: a shipped scenario name, a YAML path or a :class:`Scenario`.
    * ``seed``: the world seed of the first ``reset()`` if it passes none; ``reset(seed=s)`` runs world seed ``s``,
      and a later ``reset()`` without one draws the next world seed from the generator seeded by the first seed
      given (:mod:`payroute.envs.episode`, the same rule for every environment).
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
    OBSERVATION_UNITS = OBSERVATION_UNITS

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
        super().__init__(
            scenario,
            seed,
            days,
            scenario_overrides,
            baselines,
            reward_scale,
            render_mode,
            role=lambda sc: PricerRole(sc, price_levels=price_levels),
        )
        role = self.role
        self.segments = role.segments
        self.families = FAMILIES
        self.price_levels = role.price_levels
        if self.price_levels is not None:
            self.action_values = role.action_values
            self.action_names = role.action_names
        self.observation_names: tuple[str, ...] = role.observation_names

    INFO_KEYS: tuple[InfoKey, ...] = (
        ELAPSED_S,
        InfoKey(
            "profit_usd",
            "float",
            "$",
            "the profit of the period that just ended (the reward before `reward_scale`; 0 at reset)",
            when=("reset", "step", "terminal"),
        ),
        InfoKey(
            "price_multipliers",
            "np.float64",
            "x list price",
            "the multipliers in force, row = segment, column = family (a copy)",
            when=("reset", "step", "terminal"),
            shape=("n_segments", 3),
        ),
        InfoKey(
            "competitor_multipliers",
            "np.float64",
            "x our list price",
            "the competitor's price level per family (1 when the scenario has no competitor)",
            when=("reset", "step", "terminal"),
            shape=(3,),
        ),
        InfoKey(
            "kpis",
            "dict",
            "",
            "the episode's KPIs so far: what really happened",
            when=("reset", "step", "terminal"),
            fields=KPI_FIELDS,
        ),
    )
    """Every key of Pricing-v0's ``info`` (the docstring's ``## Info`` table, docs/environments.md)."""

    def _info(self, point: Any) -> dict[str, Any]:
        w = self.world
        return {
            "t_s": float(w.now),  # an int (0) at the first reset: always a float
            "profit_usd": float(self.role.last_profit),
            "price_multipliers": np.array(w.price_multipliers, dtype=np.float64),
            "competitor_multipliers": np.array(w.competitor.multipliers, dtype=np.float64),
            "kpis": w.kpis(),
        }


PricingEnv.__doc__ = with_info_table(PricingEnv.__doc__, PricingEnv.INFO_KEYS)
