"""Liquidity and treasury: the settlement accounts prefunded rails draw on, and how they are kept funded.

A bank payout on a prefunded rail draws its amount from the rail's settlement account when it is submitted
(:meth:`Liquidity.draw`); overdrawing borrows priced intraday credit up to the account's line. A payout the
account cannot cover waits for funds, or fails, as the account's ``when_short`` says; funds that arrive
(customer inflows, treasury transfers, reversed payouts, returns) pay the waiting payouts in order.

Each treasury period the treasurer decides: transfers between an account and its funding account (they take
time and cost a fee; negative amounts sweep back) and the intraday credit lines to allow. Then the period is
charged for what liquidity cost: the opportunity cost of idle balances and the delay cost of payments that
waited for funds, in whole cents, the fractions carried to the next period.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import simpy

from payroute.envs.scenarios.schema import Scenario
from payroute.envs.world.books import Books
from payroute.envs.world.clock import DAY_S, HOUR_S, YEAR_S, Calendar
from payroute.envs.world.decisions import DecisionHub, InvalidActionError, TreasuryAction
from payroute.envs.world.demand import Transaction
from payroute.envs.world.ledger import Ledger, SettlementAccountState


class Liquidity:
    """The settlement accounts, their inflows, the treasurer's transfers and credit lines, and their costs."""

    def __init__(
        self,
        env: simpy.Environment,
        scenario: Scenario,
        calendar: Calendar,
        ledger: Ledger,
        books: Books,
        hub: DecisionHub,
        rng: np.random.Generator,
        horizon_s: float,
        arrivals_open: Callable[[], bool],
    ) -> None:
        self.env = env
        self.scenario = scenario
        self.calendar = calendar
        self.ledger = ledger
        self.books = books
        self.hub = hub
        self.rng = rng
        self.horizon_s = horizon_s
        self.arrivals_open = arrivals_open
        self.accounts = {
            name: SettlementAccountState(name, spec, ledger, env) for name, spec in scenario.accounts.items()
        }
        self._opportunity_carry: dict[str, float] = {name: 0.0 for name in self.accounts}
        self._delay_carry: dict[str, float] = {name: 0.0 for name in self.accounts}

    def open_accounts(self) -> None:
        """Every account starts the episode with its opening balance, funded from equity."""
        for name, acct in self.accounts.items():
            opening = acct.spec.opening_balance_cents
            self.ledger.transfer(0.0, "opening", acct.key, "equity", opening)
            self.books.log_account(name, "opening", opening)

    def start(self) -> None:
        """Start the inflows of every account that has them, and the treasury period."""
        for name, acct in self.accounts.items():
            if acct.spec.inflow.per_hour > 0:
                self.env.process(self.inflows(name, acct))
        if self.accounts:
            self.env.process(self.treasury_periods())

    # ------------------------------------------------------------------ a payout's funds
    def seconds_to_close(self) -> float:
        t = self.env.now
        return (math.floor(t / DAY_S) + 1) * DAY_S - t

    def count_failure(self, tx: Transaction) -> None:
        """A payment that ended for lack of funds: counted with the service-level cost of failing it."""
        totals = self.books.totals
        totals["liquidity_failures"] += 1
        totals["liquidity_failure_cost_cents"] += self.scenario.service_level.penalty_cents.get(tx.family, 0)

    def draw(self, tx: Transaction, acct: SettlementAccountState) -> None:
        """Funds leave the settlement account when the payout is submitted (credit priced if it overdraws)."""
        cost = acct.overdraft_cost_cents(tx.amount_cents, self.seconds_to_close())
        self.ledger.transfer(self.env.now, "payout_submit", "payouts_in_flight", acct.key, tx.amount_cents)
        acct.paid_out_cents += tx.amount_cents
        # the price of credit is paid from the operating account: drawn on the settlement account it would
        # take the balance past its credit line
        self.books.book(tx, "liquidity_cost", cost, "bank:operating")

    def undraw(self, tx: Transaction, acct: SettlementAccountState) -> None:
        """A payout the rail did not take: its funds go back to the account, and may pay a waiting one."""
        self.ledger.transfer(self.env.now, "payout_reversed", acct.key, "payouts_in_flight", tx.amount_cents)
        acct.paid_out_cents -= tx.amount_cents
        acct.wake_waiters(self.draw)

    # ------------------------------------------------------------------ processes
    def inflows(self, name: str, acct: SettlementAccountState):
        """Incoming payments for our customers credit the account (Poisson, lognormal amounts)."""
        rng = self.rng
        spec = acct.spec.inflow
        env = self.env
        h = 0
        while self.arrivals_open():
            day = h // 24
            rate = spec.per_hour
            if spec.only_business_hours and not (self.calendar.is_business_day(day) and 8 <= h % 24 < 18):
                rate = 0.0
            n = int(rng.poisson(rate))
            times = np.sort(h * HOUR_S + rng.random(n) * HOUR_S)
            amounts = np.maximum(
                1, np.rint(spec.median_cents * np.exp(spec.sigma * rng.standard_normal(n)))
            ).astype(np.int64)
            for t, amount in zip(times, amounts, strict=True):
                if t >= self.horizon_s:
                    return
                yield env.timeout(float(t) - env.now)
                self.ledger.transfer(env.now, "inflow", acct.key, "customer_funds", int(amount))
                self.books.log_account(name, "inflow", int(amount))
                acct.wake_waiters(self.draw)
            h += 1
            if h * HOUR_S > env.now:
                yield env.timeout(h * HOUR_S - env.now)

    def treasury_periods(self):
        """Each treasury period: take the treasury decision, then charge the opportunity cost of idle balances
        and the delay cost of payments that waited for funds."""
        env = self.env
        period = float(self.scenario.treasury_period_s)
        has_treasury = self.hub.answers("treasury")
        totals, margin = self.books.totals, self.books.agent_margin
        while self.arrivals_open() and env.now < self.horizon_s:
            if has_treasury:
                yield from self.decide_treasury()
            yield env.timeout(period)
            for name, acct in self.accounts.items():
                exact = (
                    max(acct.balance, 0) * acct.spec.opportunity_rate_bps_annual / 10_000.0 * period / YEAR_S
                )
                cents = _carry_cents(self._opportunity_carry, name, exact)
                if cents:
                    self.ledger.transfer(
                        env.now, "opportunity_cost", "liquidity_cost", "memo:opportunity", cents
                    )
                    totals["liquidity_cost"] += cents
                    margin[self.hub.agent_ids["treasury"]] -= cents
                    self.books.log_account(name, "opportunity_cost", cents)
                waited = acct.take_queued_value_s(env.now)
                exact = waited * acct.spec.queue_delay_cost_bps_per_hour / 10_000.0 / HOUR_S
                cents = _carry_cents(self._delay_carry, name, exact)
                if cents:
                    self.ledger.transfer(env.now, "delay_cost", "delay_cost", "memo:delay", cents)
                    totals["delay_cost"] += cents
                    margin[self.hub.agent_ids["treasury"]] -= cents
                    self.books.log_account(name, "delay_cost", cents)

    def decide_treasury(self):
        """The treasurer's decision: credit lines take effect at once, transfers start on their way."""
        kind = "treasury"
        action, prop = yield from self.hub.ask(kind, None, shown=self.hub.world)
        if not isinstance(action, TreasuryAction):
            raise InvalidActionError(f"treasury action must be a TreasuryAction, got {type(action).__name__}")
        for name, cents in action.credit_lines.items():
            if name not in self.accounts:
                raise InvalidActionError(
                    f"treasury credit line for unknown account {name!r}; accounts: {sorted(self.accounts)}"
                )
            acct = self.accounts[name]
            acct.credit_limit_override = max(0, int(cents))
            acct.wake_waiters(self.draw)  # a wider line funds payments queued for funds now
        for name, cents in action.transfers.items():
            if name not in self.accounts or self.accounts[name].spec.funded_from is None:
                raise InvalidActionError(f"treasury transfer to {name!r}: not an account that can be funded")
            if cents:
                self.env.process(self.transfer(name, int(cents)))
        self.books.log_decision(
            kind, {"transfers": action.transfers, "credit_lines": action.credit_lines}, prop
        )

    def transfer(self, name: str, cents: int):
        """Move money between an account and its funding account; it takes time and costs a fee."""
        dst = self.accounts[name]
        src = self.accounts[dst.spec.funded_from]
        if cents < 0:  # sweep back to the funding account
            src, dst, cents = dst, src, -cents
            delay, fee = (
                self.accounts[name].spec.transfer_delay_s,
                self.accounts[name].spec.transfer_fee_cents,
            )
        else:
            delay, fee = dst.spec.transfer_delay_s, dst.spec.transfer_fee_cents
        cents = min(cents, max(src.available() - fee, 0))
        if cents <= 0:
            return
        now = self.env.now
        credit = src.overdraft_cost_cents(cents + fee, self.seconds_to_close())
        self.ledger.transfer(now, "transfer_out", "transit", src.key, cents)
        self.ledger.transfer(now, "transfer_fee", "treasury_cost", src.key, fee)
        self.ledger.transfer(now, "credit_cost", "liquidity_cost", "bank:operating", credit)
        self.books.totals["treasury_cost"] += fee
        self.books.totals["liquidity_cost"] += credit
        self.books.agent_margin[self.hub.agent_ids["treasury"]] -= fee + credit
        self.books.log_account(src.name, "transfer_out", cents)
        if fee:
            self.books.log_account(src.name, "transfer_fee", fee)
        if credit:
            self.books.log_account(src.name, "credit_cost", credit)
        dst.in_transit += cents
        yield self.env.timeout(delay)
        dst.in_transit -= cents
        self.ledger.transfer(self.env.now, "transfer_in", dst.key, "transit", cents)
        self.books.log_account(dst.name, "transfer_in", cents)
        dst.wake_waiters(self.draw)


def _carry_cents(carry: dict[str, float], name: str, exact: float) -> int:
    """Whole cents of an accruing cost; the fraction carries to the next period."""
    total = carry[name] + exact
    cents = int(total)
    carry[name] = total - cents
    return cents
