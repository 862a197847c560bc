"""``payroute/Treasury-v0``: how much money to park in which settlement account, one treasury period at a time.

Prefunded rails draw on settlement accounts (the Fed master account, the RTP prefunding account, a nostro).
Money idle in them costs its opportunity rate; a payout that finds its account short waits in a queue (a
delay cost per hour of value waiting) and fails when its deadline passes (the service-level penalty);
intraday credit bridges the gap at a price. Treasury moves money between an account and its funding account
(the transfer takes time and costs a fee) and decides how much intraday credit to allow. Routing, risk,
pricing and fraud run on baselines.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from payroute.envs.scenarios import Scenario
from payroute.envs.single_agent.period import CALENDAR_FEATURES, PeriodDecisionEnv, calendar_features
from payroute.envs.world import TreasuryAction
from payroute.envs.world.clock import DAY_S, HOUR_S

# world totals (cents) that make up the treasury's costs -> their names in ``info["costs_usd"]``
_COST_KEYS = {
    "liquidity_cost": "opportunity_and_transfer_credit",
    "treasury_cost": "transfer_fees",
    "liquidity_cost_cents": "payout_credit",
    "delay_cost": "queue_delay",
    "liquidity_failure_cost_cents": "failed_payouts",
}


class TreasuryEnv(PeriodDecisionEnv):
    """Fund the settlement accounts and set intraday credit, once per treasury period.

    ## Description

    A day (or several) of the payment world of ``scenario``. At the start of each treasury period
    (``treasury_period_s``: an hour by default) the agent decides, for every account that has a funding
    account (``funded_from``; default: ``rtp_prefund`` and ``nostro``, funded from ``fed_master``), how much to
    transfer in (positive) or sweep back (negative), and for every account allowed intraday credit
    (``when_short: credit``; default: ``fed_master``) the credit line to allow for the period. A transfer
    arrives after the account's ``transfer_delay_s`` and costs ``transfer_fee_cents``; it moves at most what
    the source can pay (balance plus its credit line), and an overdraft it causes pays the credit rate.
    Payouts short of funds queue until money arrives or their deadline passes. Bank payouts are routed by the
    ``fastest`` baseline by default, so instant payouts draw on the RTP prefunding account.

    ## Action space

    ``Box(low, high, float32)`` of :attr:`action_names`: first one entry per fundable account in the
    scenario's account order, the transfer as a fraction of its target balance in ``[-1, 1]`` (``+0.5``: move
    half a target in; ``-1``: sweep one target back; ``|a| < min_transfer_fraction`` moves nothing); then one
    entry per credit account, the intraday credit line as a fraction of its scenario limit in ``[0, 1]``.

    ## Observation space

    A flat ``Box(float32)`` of :attr:`observation_names`. Money is divided by the account's scale
    (its target balance, or its opening balance if that is larger; at least $100). ``H`` = ``forecast_hours``.

    | names                                | per      | meaning                                              | range       |
    |--------------------------------------|----------|------------------------------------------------------|-------------|
    | ``balance[a]``                       | account  | balance (negative: intraday credit in use)           | (-inf, inf) |
    | ``in_transit[a]``                    | account  | transfers on their way in                            | [0, inf)    |
    | ``queued[a]``                        | account  | value of payouts waiting for funds                   | [0, inf)    |
    | ``credit_line[a]``                   | account  | credit line allowed now / the scenario's limit       | [0, 1]      |
    | ``queued_on[r]``                     | route    | value waiting on each prefunded route (rail)         | [0, inf)    |
    | ``inflow_next[a,k]``                 | account  | expected inflows in hour k = 1..H from now           | [0, inf)    |
    | ``outflow_next[a,k]``                | account  | expected payouts in hour k = 1..H from now           | [0, inf)    |
    | ``hour_sin`` .. ``episode_progress`` | 11       | calendar (as in Pricing-v0)                          | [-1, 1]     |

    Expected inflows are the scenario's inflow process in expectation (rate x mean amount, business hours
    where it says so). Expected payouts are the scenario's expected arrivals in that hour times the value the
    account has paid out per arrival so far this episode (0 before its first payout).

    ## Reward

    Minus the period's costs, in dollars: liquidity cost (opportunity cost of balances, intraday credit,
    transfer fees) + delay cost of queued payouts (``queue_delay_cost_bps_per_hour`` of the account, per hour
    of value waiting) + cost of failed payouts (the service-level penalty of each payout that expired in a
    queue or failed for lack of funds). The last step also carries what happens after the last arrival.

    ## Episode end

    Terminates after ``days`` days of arrivals, once the world has drained. No truncation.

    ## Arguments

    ``gym.make("payroute/Treasury-v0", scenario="default", seed=None, days=1, scenario_overrides=None,
    baselines=None, reward_scale=1.0, forecast_hours=6, min_transfer_fraction=0.01)``, as in Pricing-v0;
    ``baselines`` defaults to ``{"route": "fastest"}``. The reward is minus the costs in dollars times
    ``reward_scale``.

    ## Version history

    * v0: initial version.
    """

    decision_kind = "treasury"
    OBSERVATION_UNITS = {
        "balance": ("x account scale", "balance / max(target, opening balance, $100); < 0: credit in use"),
        "in_transit": ("x account scale", "transfers on their way in"),
        "queued": ("x account scale", "value of payouts waiting for funds"),
        "credit_line": ("share", "credit line allowed now / the scenario's limit"),
        "queued_on": ("x account scale", "value waiting on the prefunded route / its account's scale"),
        "inflow_next": ("x account scale", "expected inflows in hour k = 1..H from now"),
        "outflow_next": ("x account scale", "expected payouts in hour k = 1..H from now"),
    }

    def __init__(
        self,
        scenario: str | Path | Scenario = "default",
        seed: int | None = None,
        days: float = 1.0,
        scenario_overrides: dict[str, Any] | None = None,
        baselines: dict[str, str] | None = None,
        reward_scale: float = 1.0,
        forecast_hours: int = 6,
        min_transfer_fraction: float = 0.01,
        render_mode: str | None = None,
    ) -> None:
        baselines = {"route": "fastest", **(baselines or {})}
        super().__init__(scenario, seed, days, scenario_overrides, baselines, reward_scale, render_mode)
        if forecast_hours < 1:
            raise ValueError(f"forecast_hours must be >= 1, got {forecast_hours}")
        if not 0.0 <= min_transfer_fraction < 1.0:
            raise ValueError(f"min_transfer_fraction must be in [0, 1), got {min_transfer_fraction}")
        sc = self.scenario
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
        low += [-1.0, -1.0] + [0.0] * (len(CALENDAR_FEATURES) - 2)
        high += [1.0] * len(CALENDAR_FEATURES)
        self.observation_names: tuple[str, ...] = tuple(names)
        self.observation_space = spaces.Box(
            np.array(low, dtype=np.float32), np.array(high, dtype=np.float32), dtype=np.float32
        )
        self._inflow_mean = {
            n: a.inflow.per_hour * a.inflow.median_cents * math.exp(a.inflow.sigma**2 / 2.0)
            for n, a in sc.accounts.items()
        }

    # ------------------------------------------------------------------ episode bookkeeping
    def _costs(self) -> dict[str, int]:
        totals = self.world.totals
        return {k: int(totals[k]) for k in _COST_KEYS}

    def _start_episode(self) -> None:
        self._prev_costs = self._costs()
        self._last_costs = dict.fromkeys(_COST_KEYS, 0)

    def _to_world_action(self, action: Any) -> TreasuryAction:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != self.action_space.shape or not np.all(np.isfinite(a)):
            raise ValueError(
                f"Treasury-v0 action must be {len(self.action_names)} finite numbers {list(self.action_names)}, "
                f"got {action!r}"
            )
        a = np.clip(a, self.action_space.low, self.action_space.high)
        sc = self.scenario
        transfers: dict[str, int] = {}
        for name, x in zip(self.fundable, a[: len(self.fundable)], strict=True):
            if abs(x) >= self.min_transfer_fraction:
                transfers[name] = int(round(x * sc.accounts[name].target_balance_cents))
        credit_lines = {
            name: int(round(x * sc.accounts[name].credit_limit_cents))
            for name, x in zip(self.credit_accounts, a[len(self.fundable) :], strict=True)
        }
        return TreasuryAction(transfers=transfers, credit_lines=credit_lines)

    # ------------------------------------------------------------------ gymnasium hooks
    def _reward(self) -> float:
        costs = self._costs()
        self._last_costs = {k: costs[k] - self._prev_costs[k] for k in _COST_KEYS}
        self._prev_costs = costs
        return -sum(self._last_costs.values()) / 100.0

    def _observe(self) -> np.ndarray:
        w = self.world
        sc = self.scenario
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

    def _forecast(self, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected inflows and payouts per account for each of the next ``forecast_hours`` hours."""
        w = self.world
        h0 = int(math.ceil(w.now / HOUR_S - 1e-9))
        hours = range(h0, h0 + self.forecast_hours)
        arrivals = max(int(sum(w.quote_stats.potential)), 0)
        inflow = np.zeros((len(self.accounts), self.forecast_hours))
        outflow = np.zeros_like(inflow)
        for i, name in enumerate(self.accounts):
            spec = self.scenario.accounts[name].inflow
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

    def _info(self) -> dict[str, Any]:
        w = self.world
        return {
            "t_s": w.now,
            "costs_usd": {_COST_KEYS[k]: v / 100.0 for k, v in self._last_costs.items()},
            "liquidity_failures": int(w.totals["liquidity_failures"]),
            "balances_cents": {n: w.accounts[n].balance for n in self.accounts},
        }
