"""``payroute/Treasury-v0``: how much money to park in which settlement account, one treasury period at a time.

Prefunded rails draw on settlement accounts (the Fed master account, the RTP prefunding account, a nostro).
Money idle in them costs its opportunity rate; a payout that finds its account short waits in a queue (a
delay cost per hour of value waiting) and fails when its deadline passes (the service-level penalty);
intraday credit bridges the gap at a price. Treasury moves money between an account and its funding account
(the transfer takes time and costs a fee) and decides how much intraday credit to allow. Routing, risk,
pricing and fraud run on baselines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from payroute.envs.info import ELAPSED_S, InfoKey, with_info_table
from payroute.envs.roles import TreasurerRole
from payroute.envs.roles.treasurer import COST_KEYS, OBSERVATION_UNITS
from payroute.envs.scenarios import Scenario
from payroute.envs.single_agent.base import SingleAgentEnv


class TreasuryEnv(SingleAgentEnv):
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

    ## Info

    The same keys at reset and at every step, generated from ``TreasuryEnv.INFO_KEYS``
    (:mod:`payroute.envs.info`): ``int`` and ``float`` of a fixed type, so a vector env stacks each into one numeric
    array (the dicts key by key).

    ## Arguments

    ``gym.make("payroute/Treasury-v0", scenario="default", seed=None, days=1, scenario_overrides=None,
    baselines=None, reward_scale=1.0, forecast_hours=6, min_transfer_fraction=0.01)``, as in Pricing-v0;
    ``baselines`` defaults to ``{"route": "fastest"}``. The reward is minus the costs in dollars times
    ``reward_scale``.

    ## Version history

    * v0: initial version.
    """

    decision_kind = "treasury"
    OBSERVATION_UNITS = OBSERVATION_UNITS

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
        super().__init__(
            scenario,
            seed,
            days,
            scenario_overrides,
            {"route": "fastest", **(baselines or {})},
            reward_scale,
            render_mode,
            role=lambda sc: TreasurerRole(
                sc, forecast_hours=forecast_hours, min_transfer_fraction=min_transfer_fraction
            ),
        )
        role = self.role
        self.forecast_hours = role.forecast_hours
        self.min_transfer_fraction = role.min_transfer_fraction
        self.accounts = role.accounts
        self.fundable = role.fundable
        self.credit_accounts = role.credit_accounts
        self.prefunded_routes = role.prefunded_routes
        self.action_names = role.action_names
        self.observation_names: tuple[str, ...] = role.observation_names

    INFO_KEYS: tuple[InfoKey, ...] = (
        ELAPSED_S,
        InfoKey(
            "costs_usd",
            "dict",
            "$",
            "the costs of the period that just ended (minus their sum is the reward before `reward_scale`; "
            "zeros at reset)",
            when=("reset", "step", "terminal"),
            fields=(
                InfoKey("opportunity_and_transfer_credit", "float", "$", "idle balances and intraday credit"),
                InfoKey("transfer_fees", "float", "$", "fees of the transfers"),
                InfoKey("payout_credit", "float", "$", "intraday credit the payouts drew"),
                InfoKey("queue_delay", "float", "$", "delay cost of payouts waiting for funds"),
                InfoKey(
                    "failed_payouts", "float", "$", "service-level penalties of payouts failed for funds"
                ),
            ),
        ),
        InfoKey(
            "liquidity_failures",
            "int",
            "payouts",
            "payouts failed for lack of funds so far this episode",
            when=("reset", "step", "terminal"),
        ),
        InfoKey(
            "balances_cents",
            "dict[str, ...]",
            "cents",
            "every settlement account's balance now, by account name (scenario order)",
            when=("reset", "step", "terminal"),
            fields=(InfoKey("account", "int", "cents", "the balance (negative: intraday credit in use)"),),
        ),
    )
    """Every key of Treasury-v0's ``info`` (the docstring's ``## Info`` table, docs/environments.md)."""

    def _info(self, point: Any) -> dict[str, Any]:
        w = self.world
        return {
            "t_s": float(w.now),  # an int (0) at the first reset: always a float
            "costs_usd": {COST_KEYS[k]: v / 100.0 for k, v in self.role.last_costs.items()},
            "liquidity_failures": int(w.totals["liquidity_failures"]),
            "balances_cents": {n: int(w.accounts[n].balance) for n in self.accounts},
        }


TreasuryEnv.__doc__ = with_info_table(TreasuryEnv.__doc__, TreasuryEnv.INFO_KEYS)
