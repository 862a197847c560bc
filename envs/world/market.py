"""The market around the PSP: the prices it quotes, how payers answer them, the competitor, and churn.

Each pricing period the competitor moves its prices, then the pricer sets this period's fee multipliers per
segment and payment family (clipped to the scenario's bounds). A genuine payer is quoted the list price times
the multiplier, within the regulatory caps (:class:`~payroute.envs.world.prices.PriceBook`), and answers it
(:class:`~payroute.envs.world.customers.CustomerModel`): pays, pays with a cheaper method they also have, or
walks away. At each midnight a segment quoted a premium loses customers, one quoted none wins some back; the
customers who leave simply stop arriving (:mod:`payroute.envs.world.arrivals`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import simpy

from payroute.envs.scenarios.schema import FAMILIES, URGENCIES, Scenario
from payroute.envs.world.books import Books
from payroute.envs.world.clock import DAY_S
from payroute.envs.world.customers import FAMILY_INDEX, CustomerModel, Offer, QuoteStats
from payroute.envs.world.decisions import DecisionHub, InvalidActionError
from payroute.envs.world.demand import LegitimateDemand, Transaction, TransactionFactory
from payroute.envs.world.prices import CompetitorProcess, PriceBook


class Market:
    """The prices in force, the quote each genuine payer gets and answers, the pricing and churn processes."""

    def __init__(
        self,
        env: simpy.Environment,
        scenario: Scenario,
        factory: TransactionFactory,
        demand: LegitimateDemand,
        books: Books,
        hub: DecisionHub,
        competitor_rng: np.random.Generator,
        horizon_s: float,
        arrivals_open: Callable[[], bool],
    ) -> None:
        self.env = env
        self.scenario = scenario
        self.factory = factory
        self.demand = demand
        self.books = books
        self.hub = hub
        self.horizon_s = horizon_s
        self.arrivals_open = arrivals_open
        n_segments = len(factory.segments)
        self.price_book = PriceBook(scenario.prices)
        self.customers = CustomerModel(scenario.customers, self.price_book, factory.debit_nets, n_segments)
        self.quote_stats = QuoteStats(n_segments)
        self.competitor = CompetitorProcess(scenario.prices.competitor, competitor_rng)
        # the pricer's multipliers in force, per segment and family (list prices until it decides)
        self.price_multipliers = np.ones((n_segments, len(FAMILIES)))

    def start(self) -> None:
        """Start the pricing periods and the nightly churn (only when someone sets prices)."""
        if self.hub.answers("price"):
            self.env.process(self.pricing_periods())
            self.env.process(self.churn())

    # ------------------------------------------------------------------ one quote
    def price_for(self, tx: Transaction, multiplier: float | None = None) -> int:
        """What the PSP charges for ``tx`` at a multiplier of its list price (the one in force by default),
        within the scenario's regulatory caps whatever the multiplier."""
        if multiplier is None:
            multiplier = self.price_multipliers[tx.segment, FAMILY_INDEX[tx.family]]
        return self.price_book.price(
            tx.family, tx.instrument, tx.network, tx.urgency, tx.amount_cents, multiplier
        )

    def offer(self, tx: Transaction) -> Offer:
        """The quote for ``tx`` at the prices in force and how its payer answers it (probabilities)."""
        f = FAMILY_INDEX[tx.family]
        return self.customers.offer(
            tx.family, tx.instrument, tx.network, tx.urgency, tx.amount_cents,
            self.price_multipliers[tx.segment, f], self.competitor.multipliers[f],
        )  # fmt: skip

    def quote(self, tx: Transaction) -> bool:
        """Quote a genuine payer; they pay (maybe with a cheaper method they also have) or walk away (False)."""
        offer = self.offer(tx)
        stats, s = self.quote_stats, tx.segment
        cell = s * len(FAMILIES) + FAMILY_INDEX[tx.family]
        self.customers.record_quote(s, offer.premium_bps)
        stats.quoted[cell] += 1
        stats.amount_cents[cell] += tx.amount_cents
        stats.list_cents[cell] += offer.list_cents
        stats.price_cents[cell] += offer.price_cents
        tx.price_cents = offer.price_cents
        if tx.u_abandon < offer.p_abandon:
            stats.abandoned[cell] += 1
            return False
        if offer.p_switch > 0.0 and tx.u_switch * (1.0 - offer.p_abandon) < offer.p_switch:
            alt = offer.alternative
            stats.switched[cell] += 1
            tx.instrument, tx.network, tx.price_cents = alt.instrument, alt.network, offer.alt_price_cents
            if alt.urgency != tx.urgency:
                tx.urgency = alt.urgency
                tx.deadline_t = tx.t_arrival + self.factory.deadline_by_urgency[URGENCIES.index(alt.urgency)]
        return True

    # ------------------------------------------------------------------ processes
    def pricing_periods(self):
        """Each pricing period: the competitor moves, then the price decision sets this period's multipliers
        (clipped to the scenario's bounds; the regulatory caps apply per payment in :meth:`price_for`)."""
        env = self.env
        prices = self.scenario.prices
        period = float(prices.period_s)
        lo, hi = prices.min_multiplier, prices.max_multiplier
        first = True
        while self.arrivals_open() and env.now < self.horizon_s:
            if not first:
                self.competitor.step(period)
            first = False
            kind = "price"
            action, prop = yield from self.hub.ask(kind, None, shown=self.hub.world)
            mult = np.asarray(action, dtype=float)
            if mult.shape != self.price_multipliers.shape or not np.all(np.isfinite(mult)):
                raise InvalidActionError(
                    f"price action must be finite multipliers of shape {self.price_multipliers.shape}"
                )
            self.price_multipliers = np.clip(mult, lo, hi)
            self.books.log_decision(kind, self.price_multipliers.tolist(), prop)
            yield env.timeout(period)

    def churn(self):
        """At each midnight, segments quoted a premium lose customers; those quoted none win some back."""
        env = self.env
        while self.arrivals_open() and env.now < self.horizon_s:
            yield env.timeout(DAY_S - env.now % DAY_S)
            self.demand.segment_multiplier = self.customers.end_of_day().copy()
