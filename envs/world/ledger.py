"""The PSP's books: a double-entry ledger in integer cents, and the prefunded settlement accounts.

Every money movement is a :class:`Posting` whose legs sum to zero (debits positive, credits negative),
so the sum of all account balances is zero at every instant. Accounts the world uses:

================================  ===============================================================
``bank:<account>``                a prefunded settlement account (Fed master, RTP prefunding, nostro)
``bank:operating``                the operating account card settlements land in
``receivable:<route>``            what a card processor owes us for approved payments
``payouts_in_flight``             payouts whose funds left a settlement account but are not final
``transit``                       treasury transfers on their way between accounts
``merchant_payable``              what we owe merchants for card payments
``customer_funds``                customer money we hold for payouts (and reimbursements)
``equity``                        opening balances
``fee_revenue``                   what we charge (credit balance)
``route_cost`` ...                costs: route fees, fraud losses, SLA penalties, liquidity, challenges,
                                  retry fees and network fines
``memo:opportunity``              contra account of opportunity cost (economic, not cash)
``memo:delay``                    contra account of the delay cost of payouts queued for funds (economic)
================================  ===============================================================

A settlement account may not go below zero unless its scenario allows intraday credit
(``when_short: credit``), and then never below its credit line; every draw on credit pays for it, from
``bank:operating`` (so the price of credit never pushes the account past its line).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from payroute.envs.scenarios.schema import SettlementAccount
from payroute.envs.world.clock import YEAR_S

if TYPE_CHECKING:
    import simpy

COST_ACCOUNTS = (
    "route_cost",
    "fraud_loss",
    "sla_penalty",
    "liquidity_cost",
    "challenge_cost",
    "treasury_cost",
    "delay_cost",
    "retry_fee",
    "network_fine",
)


class LedgerError(RuntimeError):
    """A posting that does not balance, or an account that would break its rules."""


@dataclass(frozen=True, slots=True)
class Posting:
    t: float
    kind: str
    legs: tuple[tuple[str, int], ...]


class Ledger:
    """Balances per account; every posting balances, so all balances sum to zero."""

    def __init__(self, keep_postings: bool = False) -> None:
        self.balances: dict[str, int] = {}
        self.postings: list[Posting] | None = [] if keep_postings else None
        self.n_postings = 0

    def post(self, t: float, kind: str, *legs: tuple[str, int]) -> None:
        total = 0
        for account, amount in legs:
            if type(amount) is not int:  # noqa: E721 - bool and numpy ints are not money
                raise LedgerError(
                    f"{kind}: amount for {account} must be int cents, got {type(amount).__name__}"
                )
            total += amount
        if total != 0:
            raise LedgerError(f"{kind}: posting does not balance (off by {total} cents): {legs}")
        b = self.balances
        for account, amount in legs:
            b[account] = b.get(account, 0) + amount
        self.n_postings += 1
        if self.postings is not None:
            self.postings.append(Posting(t, kind, tuple(legs)))

    def transfer(self, t: float, kind: str, debit: str, credit: str, amount: int) -> None:
        """A two-leg posting: ``amount`` into ``debit`` out of ``credit``."""
        if amount:
            self.post(t, kind, (debit, amount), (credit, -amount))

    def balance(self, account: str) -> int:
        return self.balances.get(account, 0)

    def total(self) -> int:
        return sum(self.balances.values())


class SettlementAccountState:
    """A prefunded account a rail draws on; short of funds it queues, borrows (priced) or fails."""

    def __init__(self, name: str, spec: SettlementAccount, ledger: Ledger, env: simpy.Environment) -> None:
        self.name = name
        self.key = f"bank:{name}"
        self.spec = spec
        self.ledger = ledger
        self.env = env
        self.when_short = spec.when_short
        self.credit_limit = spec.credit_limit_cents if spec.when_short == "credit" else 0
        self.credit_limit_override: int | None = None  # set by the treasury decision
        self.waiters: deque = deque()  # (amount, event) waiting for funds, first come first served
        self.target = spec.target_balance_cents
        self.in_transit = 0
        self.queued_cents = 0  # value of payments waiting for funds
        self.queued_value_s = 0.0  # integral of queued value over time since last taken (cent-seconds)
        self._queue_t = 0.0
        self.paid_out_cents = 0  # payouts drawn from the account, net of reversals

    def queue_change(self, delta_cents: int, now: float) -> None:
        """A payment joins (+) or leaves (-) the queue for funds at ``now``."""
        self.queued_value_s += self.queued_cents * (now - self._queue_t)
        self._queue_t = now
        self.queued_cents += delta_cents

    def take_queued_value_s(self, now: float) -> float:
        """Cent-seconds of waiting since the last call (what the delay cost is charged on)."""
        self.queue_change(0, now)
        value, self.queued_value_s = self.queued_value_s, 0.0
        return value

    @property
    def balance(self) -> int:
        return self.ledger.balances.get(self.key, 0)

    @property
    def credit_line(self) -> int:
        return (
            self.credit_limit
            if self.credit_limit_override is None
            else min(self.credit_limit_override, self.credit_limit)
        )

    def available(self) -> int:
        """What can be drawn now: the balance plus any unused intraday credit."""
        return self.balance + self.credit_line

    def can_cover(self, amount: int) -> bool:
        return amount <= self.available()

    def overdraft_cost_cents(self, amount: int, seconds_to_close: float) -> int:
        """Price of the part of a draw of ``amount`` that goes below zero, held until the day closes."""
        below = min(amount, amount - self.balance) if self.balance < amount else 0
        if below <= 0:
            return 0
        return round(
            below * self.spec.credit_rate_bps_annual / 10_000.0 * max(seconds_to_close, 0.0) / YEAR_S
        )

    def wake_waiters(self, draw) -> None:
        """Fund queued payments in order while the balance covers the one at the head.

        ``draw(tx, account)`` takes the funds at once, before the next waiter is considered; a waiter whose
        transaction already ended (it expired while waiting) is dropped.
        """
        while self.waiters:
            tx, event = self.waiters[0]
            if tx.state:
                self.waiters.popleft()
                continue
            if not self.can_cover(tx.amount_cents):
                break
            self.waiters.popleft()
            self.queue_change(-tx.amount_cents, self.env.now)
            draw(tx, self)
            event.succeed()
