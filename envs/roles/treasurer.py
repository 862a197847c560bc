"""The treasurer: how much money to move into which settlement account, and how much intraday credit to allow.

Observation (a flat ``Box``, :attr:`TreasurerRole.observation_names`): balances, transfers in transit, queued
payouts, credit lines, value queued per prefunded route, expected inflows and payouts for the next
``forecast_hours`` hours, the calendar; the table is Treasury-v0's manual
(:class:`~payroute.envs.single_agent.treasury.TreasuryEnv`). Action: a ``Box`` of :attr:`action_names`: per
fundable account the transfer as a fraction of its target balance in ``[-1, 1]``, then per credit account the
credit line as a fraction of its limit in ``[0, 1]``.

Money: the ledger's margin attributed to the treasurer (its period costs). Reward in Treasury-v0: minus the
period's liquidity, transfer, queue-delay and failed-payout costs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

from payroute.envs.roles.base import Role, box_action
from payroute.envs.roles.calendar import (
    CALENDAR_FEATURES,
    CALENDAR_HIGH,
    CALENDAR_LOW,
    CALENDAR_UNITS,
    calendar_features,
    named_features,
)
from payroute.envs.world.clock import DAY_S, HOUR_S
from payroute.envs.world.decisions import TreasuryAction

if TYPE_CHECKING:
    from payroute.envs.scenarios import Scenario
    from payroute.envs.world.decisions import DecisionPoint
    from payroute.envs.world.world import PaymentWorld

COST_KEYS = {
    "liquidity_cost": "opportunity_and_transfer_credit",
    "treasury_cost": "transfer_fees",
    "liquidity_cost_cents": "payout_credit",
    "delay_cost": "queue_delay",
    "liquidity_failure_cost_cents": "failed_payouts",
}
"""World totals (cents) that make up the treasury's costs -> their names in Treasury-v0's ``info["costs_usd"]``."""

OBSERVATION_UNITS: dict[str, tuple[str, str]] = {
    "balance": ("x account scale", "balance / max(target, opening balance, $100); < 0: credit in use"),
    "in_transit": ("x account scale", "transfers on their way in"),
    "queued": ("x account scale", "value of payouts waiting for funds"),
    "credit_line": ("share", "credit line allowed now / the scenario's limit"),
    "queued_on": ("x account scale", "value waiting on the prefunded route / its account's scale"),
    "inflow_next": ("x account scale", "expected inflows in hour k = 1..H from now"),
    "outflow_next": ("x account scale", "expected payouts in hour k = 1..H from now"),
}
"""Observation block (the name before ``[``) -> (unit, scaling)."""


class TreasurerRole(Role):
    """The treasurer (see the module docstring)."""

    name = "treasury"

    def __init__(
        self, scenario: Scenario, *, forecast_hours: int = 6, min_transfer_fraction: float = 0.01
    ) -> None:
        super().__init__()
        if forecast_hours < 1:
            raise ValueError(f"forecast_hours must be >= 1, got {forecast_hours}")
        if not 0.0 <= min_transfer_fraction < 1.0:
            raise ValueError(f"min_transfer_fraction must be in [0, 1), got {min_transfer_fraction}")
        sc = scenario
        if not sc.accounts:
            raise ValueError(f"scenario {sc.name!r} has no settlement accounts: nothing for treasury to do")
        self.forecast_hours = forecast_hours
        self.min_transfer_fraction = min_transfer_fraction
        self.accounts = tuple(sc.accounts)
        self.fundable = tuple(n for n, a in sc.accounts.items() if a.funded_from is not None)
        self.credit_accounts = tuple(
            n for n, a in sc.accounts.items() if a.when_short == "credit" and a.credit_limit_cents > 0
        )
        if not self.fundable and not self.credit_accounts:
            raise ValueError(f"scenario {sc.name!r}: no account can be funded or given credit")
        self.prefunded_routes = tuple(n for n, r in sc.routes.items() if r.prefunded_account is not None)
        self._scale = {
            n: float(max(a.target_balance_cents, a.opening_balance_cents, 10_000))
            for n, a in sc.accounts.items()
        }
        self.action_names = tuple(
            [f"transfer[{n}]" for n in self.fundable] + [f"credit_line[{n}]" for n in self.credit_accounts]
        )
        self.action_space = spaces.Box(
            np.array([-1.0] * len(self.fundable) + [0.0] * len(self.credit_accounts), dtype=np.float32),
            np.ones(len(self.action_names), dtype=np.float32),
            dtype=np.float32,
        )
        names: list[str] = []
        low: list[float] = []
        for block, lo in (("balance", -np.inf), ("in_transit", 0.0), ("queued", 0.0), ("credit_line", 0.0)):
            names += [f"{block}[{a}]" for a in self.accounts]
            low += [lo] * len(self.accounts)
        names += [f"queued_on[{r}]" for r in self.prefunded_routes]
        low += [0.0] * len(self.prefunded_routes)
        for block in ("inflow_next", "outflow_next"):
            names += [f"{block}[{a},{k}]" for a in self.accounts for k in range(1, forecast_hours + 1)]
            low += [0.0] * (len(self.accounts) * forecast_hours)
        high = [np.inf] * len(names)
        credit = slice(3 * len(self.accounts), 4 * len(self.accounts))
        high[credit] = [1.0] * len(self.accounts)
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
        self._inflow_mean = {
            n: a.inflow.per_hour * a.inflow.median_cents * math.exp(a.inflow.sigma**2 / 2.0)
            for n, a in sc.accounts.items()
        }
        self.last_costs = dict.fromkeys(COST_KEYS, 0)

    # ------------------------------------------------------------------ an episode
    def _costs(self) -> dict[str, int]:
        totals = self.world.totals
        return {k: int(totals[k]) for k in COST_KEYS}

    def bind(self, world: PaymentWorld) -> None:
        super().bind(world)
        self._first = True
        self._prev_costs = self._costs()
        self.last_costs = dict.fromkeys(COST_KEYS, 0)

    def to_world(self, action: Any, point: DecisionPoint | None = None) -> TreasuryAction:
        a = box_action(action, self.action_space.shape, "Treasury-v0", detail=", ".join(self.action_names))
        a = np.clip(a, self.action_space.low, self.action_space.high)
        sc = self.world.scenario  # the day's scenario (a training mix may change it between episodes)
        transfers: dict[str, int] = {}
        for name, x in zip(self.fundable, a[: len(self.fundable)], strict=True):
            if abs(x) >= self.min_transfer_fraction:
                transfers[name] = int(round(x * sc.accounts[name].target_balance_cents))
        credit_lines = {
            name: int(round(x * sc.accounts[name].credit_limit_cents))
            for name, x in zip(self.credit_accounts, a[len(self.fundable) :], strict=True)
        }
        return TreasuryAction(transfers=transfers, credit_lines=credit_lines)

    def _close_period(self) -> None:
        costs = self._costs()
        self.last_costs = {k: costs[k] - self._prev_costs[k] for k in COST_KEYS}
        self._prev_costs = costs

    def reward_usd(self) -> float:
        """Treasury-v0's reward: minus the costs of the period closed by the last observation, in dollars."""
        return -sum(self.last_costs.values()) / 100.0

    def observe(self, point: DecisionPoint | None) -> np.ndarray:
        """The observation at a treasury decision (``None``: the episode's end), closing the period before it."""
        if not self._first:
            self._close_period()
        self._first = False
        w = self.world
        sc = w.scenario
        accts = [w.accounts[n] for n in self.accounts]
        scale = np.array([self._scale[n] for n in self.accounts])
        balance = np.array([a.balance for a in accts], dtype=float) / scale
        transit = np.array([a.in_transit for a in accts], dtype=float) / scale
        queued = np.array([a.queued_cents for a in accts], dtype=float) / scale
        credit = np.array(
            [a.credit_line / a.credit_limit if a.credit_limit > 0 else 0.0 for a in accts], dtype=float
        )
        by_route = dict.fromkeys(self.prefunded_routes, 0)
        for a in accts:
            for tx, _event in a.waiters:
                if not tx.state:
                    by_route[w.routes[tx.route].name] += tx.amount_cents
        queued_on = np.array(
            [by_route[r] / self._scale[sc.routes[r].prefunded_account] for r in self.prefunded_routes]
        )
        inflow, outflow = self._forecast(scale)
        parts = [
            balance,
            transit,
            queued,
            credit,
            queued_on,
            inflow.ravel(),
            outflow.ravel(),
            calendar_features(w),
        ]
        return np.concatenate(parts).astype(np.float32)

    def final_observation(self, last: Any) -> np.ndarray:
        return self.observe(None)

    def _forecast(self, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected inflows and payouts per account for each of the next ``forecast_hours`` hours."""
        w = self.world
        h0 = int(math.ceil(w.now / HOUR_S - 1e-9))
        hours = range(h0, h0 + self.forecast_hours)
        arrivals = max(int(sum(w.quote_stats.potential)), 0)
        inflow = np.zeros((len(self.accounts), self.forecast_hours))
        outflow = np.zeros_like(inflow)
        for i, name in enumerate(self.accounts):
            spec = w.scenario.accounts[name].inflow
            acct = w.accounts[name]
            per_arrival = acct.paid_out_cents / arrivals if arrivals else 0.0
            for k, h in enumerate(hours):
                if h * HOUR_S >= w.horizon_s:
                    break
                open_now = not spec.only_business_hours or (
                    w.calendar.is_business_day(h * HOUR_S // DAY_S) and 8 <= h % 24 < 18
                )
                inflow[i, k] = self._inflow_mean[name] if open_now else 0.0
                outflow[i, k] = max(per_arrival, 0.0) * w.demand.hourly_rate(h)
        return inflow / scale[:, None], outflow / scale[:, None]
