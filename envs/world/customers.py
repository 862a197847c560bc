"""Customers' answer to a price: walk away, pay with a cheaper method, or, over days, leave for good.

Scenario: a payer arrives meaning to pay with one method (a credit card, an instant payout). We quote a price.
They compare it with a reference price: our list price, or, when the scenario's competitor is enabled, what
the competitor charges (our list price x the competitor's level for the family).

**At checkout: a nested logit.** Prices enter in basis points of the amount, relative to the reference
``r`` of the intended method ``k``. Utilities:

* walk away: ``V_0 = logit(base_abandon_probability)``;
* pay with ``k``: ``V_k = -beta * (p_k - r)``, with ``beta = abandon_slope_per_bps``;
* pay with the cheaper alternative ``a`` the payer may also have (credit -> debit for a card payer who holds a
  debit card, with probability ``credit_holds_debit_probability``; instant -> standard for a payout):
  ``V_a = -beta * (p_a - r) + alpha``, where the payer's preference ``alpha`` for their first choice is set so
  that at list prices a share ``switch_probability_at_list`` of them switch.

Paying with ``k`` or ``a`` share a nest with parameter ``lambda = switch_nest_lambda``: switching answers the
price gap ``1/lambda`` times more steeply than walking away does. A payer without an alternative faces the
binary logit ``P(abandon) = sigmoid(V_0 - V_k)`` (at the reference price exactly ``base_abandon_probability``).
With one::

    d = logit(switch_probability_at_list) + beta / lambda * (gap - gap_at_list)   # gap = p_k - p_a, in bps
    P(switch | pay) = sigmoid(d)
    P(abandon) = sigmoid(V_0 - V_k - lambda * log(1 + exp(d)))

Raising any price lowers ``V_k`` or ``V_a`` and so never lowers ``P(abandon)`` (the nested logit is a random
utility model for ``0 < lambda <= 1``): a higher fee never buys more volume.

**Over days: churn.** Each segment has a demand multiplier ``m`` in ``(0, 1]`` (1 = the scenario's demand):
at the end of each day, with ``e`` the average premium (bps over the reference) its payers were quoted that day,
``m <- m * (1 - leave) + winback_per_day * (1 - m)`` with ``leave = min(churn_per_day_per_bps * max(e, 0),
1 - winback_per_day)``. ``m`` never exceeds 1, falls further the higher the premium, and recovers when prices
come back to the reference. The world thins the segment's arrivals by ``m`` with a uniform drawn for every
potential arrival, so the customers who stay are the same ones (common random numbers) whatever the prices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from payroute.envs.scenarios.schema import FAMILIES, CustomerResponse
from payroute.envs.world.prices import PriceBook

FAMILY_INDEX = {f: i for i, f in enumerate(FAMILIES)}


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _softplus(z: float) -> float:
    return z + math.log1p(math.exp(-z)) if z > 0 else math.log1p(math.exp(z))


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1.0 - 1e-9)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True, slots=True)
class Alternative:
    """A cheaper way the payer may pay instead, and the probability they have it."""

    instrument: str
    network: str
    urgency: str
    probability: float


class Offer(NamedTuple):
    """A quote and how the payer answers it (probabilities; the world draws the outcome)."""

    price_cents: int
    list_cents: int
    reference_cents: float
    premium_bps: float
    p_abandon: float
    p_switch: float  # probability of paying with the alternative (and not walking away)
    alternative: Alternative | None
    alt_price_cents: int


class QuoteStats:
    """Running counts per segment x family of what genuine payers were quoted (``price_cents``: the quote for
    the method they came with; ``list_cents``: its list price) and did; per segment, the potential arrivals
    and those that never came because the customer had churned.

    Counted in flat Python lists (index ``segment * n_families + family``) because the world adds to them
    for every payment; :meth:`snapshot` gives numpy arrays (segments x families, or per segment).
    """

    CELL_FIELDS = ("quoted", "abandoned", "switched", "price_cents", "list_cents", "amount_cents")
    SEGMENT_FIELDS = ("potential", "churned")

    def __init__(self, n_segments: int) -> None:
        self.shape = (n_segments, len(FAMILIES))
        cells = n_segments * len(FAMILIES)
        for name in self.CELL_FIELDS:
            setattr(self, name, [0] * cells)
        for name in self.SEGMENT_FIELDS:
            setattr(self, name, [0] * n_segments)

    def snapshot(self) -> dict[str, np.ndarray]:
        out = {k: np.array(getattr(self, k), dtype=np.int64).reshape(self.shape) for k in self.CELL_FIELDS}
        out.update({k: np.array(getattr(self, k), dtype=np.int64) for k in self.SEGMENT_FIELDS})
        return out


class CustomerModel:
    """The payer's choice at checkout and each segment's churn over days."""

    def __init__(
        self, spec: CustomerResponse, book: PriceBook, debit_networks: list[str], n_segments: int
    ) -> None:
        self.spec = spec
        self.book = book
        self.beta = spec.abandon_slope_per_bps
        self.v_out = _logit(spec.base_abandon_probability)
        self.lam = spec.switch_nest_lambda
        self.logit_p0 = _logit(spec.switch_probability_at_list)
        self.p0 = spec.switch_probability_at_list
        self.p_base = _sigmoid(self.v_out)
        self.p_nested_at_list = _sigmoid(self.v_out - self.lam * _softplus(self.logit_p0))
        self.debit_networks = list(debit_networks)
        self._alternatives: dict[tuple[str, str, str], Alternative | None] = {}
        self.segment_multiplier = np.ones(n_segments)
        self._day_premium = [0.0] * n_segments
        self._day_quotes = [0] * n_segments

    # ------------------------------------------------------------------ at checkout
    def alternative(self, instrument: str, network: str, urgency: str) -> Alternative | None:
        """Credit -> debit (same network if it issues debit, else the first debit network); instant -> standard."""
        key = (instrument, network, urgency)
        if key in self._alternatives:
            return self._alternatives[key]
        alt = None
        if instrument == "card_credit" and self.debit_networks:
            net = network if network in self.debit_networks else self.debit_networks[0]
            alt = Alternative("card_debit", net, urgency, self.spec.credit_holds_debit_probability)
        elif urgency == "instant":
            alt = Alternative(instrument, network, "standard", 1.0)
        self._alternatives[key] = alt
        return alt

    def offer(
        self,
        family: str,
        instrument: str,
        network: str,
        urgency: str,
        amount_cents: int,
        multiplier: float,
        competitor_multiplier: float = 1.0,
    ) -> Offer:
        book = self.book
        listed = book.list_price(family, urgency, amount_cents)
        price = book.price_from_list(listed, family, instrument, network, urgency, amount_cents, multiplier)
        key = (instrument, network, urgency)
        alt = self._alternatives[key] if key in self._alternatives else self.alternative(*key)
        if price == listed and competitor_multiplier == 1.0:  # the common case: list price, no competitor
            premium, p_binary, reference = 0.0, self.p_base, float(listed)
            if alt is None:
                return Offer(price, listed, reference, 0.0, p_binary, 0.0, None, price)
        else:
            reference = listed * competitor_multiplier
            premium = (price - reference) * 10_000.0 / amount_cents
            p_binary = _sigmoid(self.v_out + self.beta * premium)
            if alt is None:
                return Offer(price, listed, reference, premium, p_binary, 0.0, None, price)
        v_k = -self.beta * premium
        # the alternative shares the family's schedule; payout speed only changes the instant surcharge
        alt_list = listed if alt.urgency == urgency else book.list_price(family, alt.urgency, amount_cents)
        alt_price = book.price_from_list(
            alt_list, family, alt.instrument, alt.network, alt.urgency, amount_cents, multiplier
        )
        excess_gap = ((price - alt_price) - (listed - alt_list)) * 10_000.0 / amount_cents
        q = alt.probability
        if premium == 0.0 and excess_gap == 0.0:  # list prices, no competitor: constants
            p_nested, p_alt = self.p_nested_at_list, self.p0
        else:
            d = self.logit_p0 + self.beta / self.lam * excess_gap
            p_nested = _sigmoid(self.v_out - v_k - self.lam * _softplus(d))
            p_alt = _sigmoid(d)
        p_abandon = q * p_nested + (1.0 - q) * p_binary
        p_switch = q * (1.0 - p_nested) * p_alt
        return Offer(price, listed, reference, premium, p_abandon, p_switch, alt, alt_price)

    # ------------------------------------------------------------------ over days
    def record_quote(self, segment: int, premium_bps: float) -> None:
        """Remember a quote for the segment's end-of-day churn."""
        if premium_bps != 0.0:
            self._day_premium[segment] += premium_bps
        self._day_quotes[segment] += 1

    def end_of_day(self) -> np.ndarray:
        """Update each segment's demand multiplier from the day's average premium; returns the multipliers."""
        spec = self.spec
        quotes = np.array(self._day_quotes, dtype=float)
        premium = np.divide(self._day_premium, quotes, out=np.zeros_like(quotes), where=quotes > 0)
        self.segment_multiplier = churn_step(
            self.segment_multiplier, premium, spec.churn_per_day_per_bps, spec.winback_per_day
        )
        n = len(self._day_quotes)
        self._day_premium, self._day_quotes = [0.0] * n, [0] * n
        return self.segment_multiplier


def churn_step(
    multiplier: np.ndarray, premium_bps: np.ndarray, churn_per_day_per_bps: float, winback_per_day: float
) -> np.ndarray:
    """One day of churn: ``m * (1 - leave) + winback * (1 - m)``; non-increasing in the premium, at most 1."""
    leave = np.clip(churn_per_day_per_bps * np.maximum(premium_bps, 0.0), 0.0, 1.0 - winback_per_day)
    return np.minimum(multiplier * (1.0 - leave) + winback_per_day * (1.0 - multiplier), 1.0)


@dataclass(frozen=True, slots=True)
class Quote:
    """What a payer brings to checkout (a row of demand), for :func:`expected_purchases`."""

    segment: int
    family: str
    instrument: str
    network: str
    urgency: str
    amount_cents: int


def expected_purchases(
    model: CustomerModel,
    day_of_quotes: list[Quote],
    multipliers: np.ndarray,
    competitor: np.ndarray | None = None,
    days: int = 1,
) -> np.ndarray:
    """Expected payments made (not abandoned) per segment when ``day_of_quotes`` arrive every day for ``days``
    days at fixed price multipliers (segments x families): the demand model the world runs, in expectation."""
    n_seg = len(model.segment_multiplier)
    comp = np.ones(len(FAMILIES)) if competitor is None else np.asarray(competitor, dtype=float)
    m = np.ones(n_seg)
    total = np.zeros(n_seg)
    bought = np.zeros(n_seg)
    premium = np.zeros(n_seg)
    count = np.zeros(n_seg)
    for q in day_of_quotes:
        f = FAMILY_INDEX[q.family]
        o = model.offer(
            q.family, q.instrument, q.network, q.urgency, q.amount_cents, multipliers[q.segment, f], comp[f]
        )
        bought[q.segment] += 1.0 - o.p_abandon
        premium[q.segment] += o.premium_bps
        count[q.segment] += 1
    mean_premium = np.divide(premium, count, out=np.zeros(n_seg), where=count > 0)
    spec = model.spec
    for _ in range(days):
        total += m * bought
        m = churn_step(m, mean_premium, spec.churn_per_day_per_bps, spec.winback_per_day)
    return total
