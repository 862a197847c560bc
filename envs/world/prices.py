"""What the PSP charges: the list price, the pricing decision's multiplier, the regulatory caps, the competitor.

The list price of a payment is its family's fee schedule (fixed + bps, with the schedule's own min and max)
plus the instant surcharge for instant payouts. A pricing decision multiplies the whole list price by a
factor for the payer's segment and the payment's family. Whatever the factor, the scenario's regulatory
caps then apply (:class:`~payroute.envs.scenarios.schema.PriceCap`): a ceiling on the whole fee (a zero-fee
rail) or on the part above the list price (the surcharge a payer sees: at most 3% on US credit cards, none on
debit). No price is ever negative.

The competitor sets its own price level per family, a multiplier of our list price that wanders as a
mean-reverting random walk in log space (Ornstein-Uhlenbeck, exact discretisation), drawn from its own
generator so it never disturbs the demand stream.
"""

from __future__ import annotations

import math

import numpy as np

from payroute.envs.scenarios.schema import FAMILIES, CompetitorPrices, PriceCap, PriceList
from payroute.envs.world.clock import DAY_S
from payroute.envs.world.rails import fee_cents


def cap_ceiling_cents(cap: PriceCap, amount_cents: int, list_cents: int) -> int:
    """The most a cap allows for a payment of ``amount_cents`` whose list price is ``list_cents``."""
    ceiling = cap.max_fixed_cents + math.floor(amount_cents * cap.max_bps / 10_000.0)
    return ceiling + list_cents if cap.basis == "above_list" else ceiling


class PriceBook:
    """Prices per payment: list price x multiplier, then the regulatory caps."""

    def __init__(self, prices: PriceList) -> None:
        self.prices = prices
        self.caps = prices.caps
        # above-list caps never bind at or below list price: at multiplier 1 only total caps can
        self.list_is_final = not any(c.basis == "total" for c in prices.caps)
        self._caps_for: dict[tuple[str, str, str, str], tuple[PriceCap, ...]] = {}

    def caps_for(self, family: str, instrument: str, network: str, urgency: str) -> tuple[PriceCap, ...]:
        key = (family, instrument, network, urgency)
        found = self._caps_for.get(key)
        if found is None:
            found = tuple(c for c in self.caps if c.matches(family, instrument, network, urgency))
            self._caps_for[key] = found
        return found

    def list_price(self, family: str, urgency: str, amount_cents: int) -> int:
        """The list price: the family's fee schedule, plus the instant surcharge for instant payouts."""
        fee = fee_cents(self.prices.for_family(family), amount_cents)
        if urgency == "instant":
            fee += self.prices.instant_surcharge_cents
        return int(fee)

    def price(
        self, family: str, instrument: str, network: str, urgency: str, amount_cents: int, multiplier: float
    ) -> int:
        """What we charge: ``round(list x multiplier)``, never above any matching cap, never below zero."""
        listed = self.list_price(family, urgency, amount_cents)
        return self.price_from_list(listed, family, instrument, network, urgency, amount_cents, multiplier)

    def price_from_list(
        self,
        listed: int,
        family: str,
        instrument: str,
        network: str,
        urgency: str,
        amount_cents: int,
        multiplier: float,
    ) -> int:
        """:meth:`price` when the list price ``listed`` is already known."""
        if multiplier == 1.0:
            if self.list_is_final:
                return listed
            fee = listed
        else:
            fee = round(listed * multiplier)
        caps = self._caps_for.get((family, instrument, network, urgency))
        if caps is None:
            caps = self.caps_for(family, instrument, network, urgency)
        for cap in caps:
            fee = min(fee, cap_ceiling_cents(cap, amount_cents, listed))
        return max(int(fee), 0)


class CompetitorProcess:
    """The competitor's price level per family (multiplier of our list price): a log-space OU process."""

    def __init__(self, spec: CompetitorPrices, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self.multipliers = np.full(len(FAMILIES), spec.mean_multiplier if spec.enabled else 1.0)

    def step(self, dt_s: float) -> np.ndarray:
        """Advance ``dt_s`` seconds (exact OU transition) and return the new multipliers."""
        spec = self.spec
        if not spec.enabled:
            return self.multipliers
        dt = dt_s / DAY_S
        mu = math.log(spec.mean_multiplier)
        theta, sigma = spec.mean_reversion_per_day, spec.volatility_per_sqrt_day
        if theta > 0:
            decay = math.exp(-theta * dt)
            sd = sigma * math.sqrt((1.0 - decay * decay) / (2.0 * theta))
        else:
            decay, sd = 1.0, sigma * math.sqrt(dt)
        x = mu + (np.log(self.multipliers) - mu) * decay + sd * self.rng.standard_normal(len(FAMILIES))
        self.multipliers = np.clip(np.exp(x), spec.min_multiplier, spec.max_multiplier)
        return self.multipliers
