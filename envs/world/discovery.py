"""Fraud that surfaces later: a settled fraud comes to light days after it was paid.

When a fraudulent payment settles, its discovery is scheduled after the pattern's lognormal delay
(:meth:`~payroute.envs.world.fraud.FraudStreams.discovery_delay_s`, drawn from the payment's own uniform). What
happens then depends on the rail it went by and whether the rail's return window is still open:

* **cards**: the cardholder disputes it; within the window the processor charges the amount back with a
  chargeback fee, a fraud loss to the PSP; after it, the fraud goes undisputed.
* **revocable bank rails**, within the window: the payment may be returned (the pattern's recovery
  probability), and the money comes back to the rail's settlement account.
* otherwise (irrevocable rails, too late, or not recovered): the PSP reimburses the customer, the whole
  amount, or the scenario's share for authorised push-payment scams.

Each event is counted in the world's ``post_settlement``, told to the fraudster's books and logged.
"""

from __future__ import annotations

from payroute.envs.scenarios.schema import Scenario
from payroute.envs.world.books import Books
from payroute.envs.world.clock import DAY_S
from payroute.envs.world.demand import Transaction
from payroute.envs.world.fraud import FraudsterBook, FraudStreams
from payroute.envs.world.liquidity import Liquidity
from payroute.envs.world.rails import RouteState


class Discovery:
    """Schedules the discovery of every settled fraud and books what it costs when it surfaces."""

    def __init__(
        self,
        scenario: Scenario,
        fraud: FraudStreams,
        fraudster: FraudsterBook,
        books: Books,
        liquidity: Liquidity,
    ) -> None:
        self.scenario = scenario
        self.fraud = fraud
        self.fraudster = fraudster
        self.books = books
        self.liquidity = liquidity
        self.env = books.env
        self.ledger = books.ledger

    def schedule(self, tx: Transaction, route: RouteState) -> None:
        """A fraud has settled on ``route``: it will come to light after its discovery delay."""
        delay = self.fraud.discovery_delay_s(tx.pattern, tx.z_discover)
        ev = self.env.timeout(delay)
        ev.callbacks.append(lambda _ev, tx=tx, route=route: self.discover(tx, route))

    def discover(self, tx: Transaction, route: RouteState) -> None:
        """A fraud comes to light: chargeback (cards), recovery or loss (bank rails)."""
        now = self.env.now
        spec = self.scenario.fraud.patterns[tx.pattern]
        within = now - tx.t_settled <= route.spec.return_window_days * DAY_S
        if route.is_card:
            if not within:
                return self._surfaced(tx, "undisputed", 0)
            loss = tx.amount_cents + self.scenario.interchange.chargeback_fee_cents
            self.ledger.transfer(now, "chargeback", "fraud_loss", "bank:operating", loss)
            self.books.attribute(tx, "fraud_loss_cents", -loss)
            tx.post_state = "charged_back"
            return self._surfaced(tx, "chargeback", loss)
        if not route.irrevocable and within and tx.u_recover < spec.recovery_probability_revocable:
            self.ledger.transfer(
                now,
                "return",
                route.account.key if route.account else "bank:operating",
                "customer_funds",
                tx.amount_cents,
            )
            tx.post_state = "returned"
            if route.account is not None:
                route.account.wake_waiters(self.liquidity.draw)
            return self._surfaced(tx, "return", 0)
        share = self.scenario.fraud.app_reimbursement_share if tx.pattern == "app_scam" else 1.0
        loss = int(round(tx.amount_cents * share))
        self.ledger.transfer(now, "reimbursement", "fraud_loss", "customer_funds", loss)
        self.books.attribute(tx, "fraud_loss_cents", -loss)
        tx.post_state = "reimbursed"
        return self._surfaced(tx, "reimbursement", loss)

    def _surfaced(self, tx: Transaction, kind: str, loss: int) -> None:
        """Count the post-settlement event, tell the fraudster's books, log it."""
        self.books.post_settlement[kind] += 1
        if tx.is_fraud:
            self.fraudster.discovered(tx, kind)
        self.books.log_post_settlement(tx, kind, loss)
