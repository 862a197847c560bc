"""The scenario's money: what routes charge (fee schedules, volume tiers, interchange), the list prices, regulatory
caps, competitors' prices and the customer response (:mod:`payroute.envs.scenarios.schema` re-exports them)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

import payroute.envs.scenarios.bounds as b
from payroute.envs.scenarios.vocabulary import Family, Instrument, Model, Urgency


class VolumeTier(Model):
    """From this many transactions in the month on the route: the bps is lowered and/or the fixed part replaced."""

    from_count: b.Count
    bps_discount: b.Bps = 0.0
    fixed_cents: b.Cents | None = None


class FeeSchedule(Model):
    """fee = clip(fixed + bps * amount, min, max), with volume tiers lowering the bps.

    ``fixed_fraction_cents`` is the part of a per-item fee below a cent (0.2 of Same Day ACH's 5.2 cents): a
    route's quotes carry the whole cents, and its billing adds a cent each time the fractions it has billed add up
    to one, so what it bills over a day is the published per-item fee times the items, to within a cent.
    ``month_to_date_count`` is how many payments the route has already carried this calendar month when the run
    starts (volume tiers count from it; the next month counts from zero).
    """

    fixed_cents: b.Cents = 0
    fixed_fraction_cents: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    bps: b.Bps = 0.0
    min_cents: b.Cents = 0
    max_cents: b.Cents | None = None
    tiers: tuple[VolumeTier, ...] = ()
    month_to_date_count: b.Count = 0
    source: str = ""

    @model_validator(mode="after")
    def _check(self) -> FeeSchedule:
        if self.max_cents is not None and self.max_cents < self.min_cents:
            raise ValueError(f"max_cents ({self.max_cents}) must be >= min_cents ({self.min_cents})")
        counts = [t.from_count for t in self.tiers]
        if counts != sorted(counts):
            raise ValueError("tiers must be sorted by from_count")
        return self


class Interchange(Model):
    """Card-scheme costs a card route passes through, by instrument and network.

    ``amex``: the merchant discount of American Express cards (a closed network, issuer and acquirer in one): it
    replaces ``credit`` interchange and the network assessment for them; left out, Amex is priced like the
    open networks.
    """

    credit: FeeSchedule
    debit_regulated: FeeSchedule
    network_assessment_bps: dict[str, b.Bps]
    foreign_card_bps: b.Bps = 0.0
    # American Express is a closed network: its merchant discount replaces interchange and the scheme assessment
    amex: FeeSchedule | None = None
    chargeback_fee_cents: b.Cents = 1500
    source: str = ""


PriceCapBasis = Literal["total", "above_list"]


class PriceCap(Model):
    """A regulatory ceiling on what may be charged for the payments it matches, whatever the pricing decision.

    The ceiling is ``max_fixed_cents + max_bps * amount`` (rounded down to a whole cent). ``basis: total`` caps
    the whole fee (``0`` and ``0`` make a zero-fee rail, e.g. UPI in India); ``basis: above_list`` caps only
    what is charged above the list price, i.e. the surcharge the payer sees (e.g. Visa US: at most 3% on credit;
    ``0`` forbids any surcharge, e.g. on debit). A field left ``null`` matches every value.
    """

    instrument: Instrument | None = None
    family: Family | None = None
    network: str | None = None
    urgency: Urgency | None = None
    basis: PriceCapBasis = "total"
    max_fixed_cents: b.Cents = 0
    max_bps: b.Bps = 0.0
    source: str = ""

    def matches(self, family: str, instrument: str, network: str, urgency: str) -> bool:
        return (
            (self.instrument is None or self.instrument == instrument)
            and (self.family is None or self.family == family)
            and (self.network is None or self.network == network)
            and (self.urgency is None or self.urgency == urgency)
        )


class CompetitorPrices(Model):
    """The competitor's price level per product family, as a multiplier of our list price.

    A mean-reverting random walk in log space (Ornstein-Uhlenbeck), stepped at each pricing period:
    ``log m`` reverts to ``log mean_multiplier`` at ``mean_reversion_per_day`` and moves with
    ``volatility_per_sqrt_day``, clipped to ``[min_multiplier, max_multiplier]``. Disabled, customers compare
    our price with our own list price.
    """

    enabled: bool = False
    mean_multiplier: b.Multiplier = 1.0
    mean_reversion_per_day: Annotated[float, Field(ge=0.0, le=100.0)] = 0.2
    volatility_per_sqrt_day: Annotated[float, Field(ge=0.0, le=10.0)] = 0.05
    min_multiplier: b.Multiplier = 0.5
    max_multiplier: b.Multiplier = 2.0
    source: str = "assumed"

    @model_validator(mode="after")
    def _check(self) -> CompetitorPrices:
        if not self.min_multiplier <= self.mean_multiplier <= self.max_multiplier:
            raise ValueError("need min_multiplier <= mean_multiplier <= max_multiplier")
        return self


class PriceList(Model):
    """What the PSP charges per transaction, by product family: fixed + bps, capped.

    A pricing decision multiplies the list price of each payer segment x family by a factor within
    ``[min_multiplier, max_multiplier]``; the regulatory ``caps`` then apply whatever the factor.
    """

    card: FeeSchedule
    bank: FeeSchedule
    cross_border: FeeSchedule
    instant_surcharge_cents: b.Cents = 0
    period_s: b.PeriodS = 86400
    min_multiplier: b.Multiplier = 0.5
    max_multiplier: b.Multiplier = 2.0
    caps: tuple[PriceCap, ...] = ()
    competitor: CompetitorPrices = CompetitorPrices()
    source: str = ""

    @model_validator(mode="after")
    def _check(self) -> PriceList:
        if self.min_multiplier > self.max_multiplier:
            raise ValueError(
                f"min_multiplier ({self.min_multiplier}) must be <= max_multiplier ({self.max_multiplier})"
            )
        return self

    def for_family(self, family: str) -> FeeSchedule:
        return getattr(self, family)


class CustomerResponse(Model):
    """How payers answer a price (see :mod:`payroute.envs.world.customers` for the model).

    At checkout a nested logit: buy with the intended method, buy with a cheaper method the payer also has
    (credit -> debit, instant -> standard payout), or walk away. ``P(abandon)`` at the reference price is
    ``base_abandon_probability`` and rises with ``abandon_slope_per_bps`` per basis point charged above it;
    a payer with an alternative switches with ``switch_probability_at_list`` at list prices, more steeply
    (slope ``abandon_slope_per_bps / switch_nest_lambda``) as the price gap between the methods widens.
    Over days, a segment that pays more than the reference loses ``churn_per_day_per_bps`` of its customers
    per day per bp of premium, and wins back ``winback_per_day`` of those it lost.
    """

    base_abandon_probability: b.Probability = 0.02
    abandon_slope_per_bps: Annotated[float, Field(ge=0.0, le=10.0)] = 0.01
    credit_holds_debit_probability: b.Probability = 0.8
    switch_probability_at_list: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.002
    switch_nest_lambda: Annotated[float, Field(gt=0.0, le=1.0)] = 0.2
    churn_per_day_per_bps: b.Probability = 0.0
    winback_per_day: b.Probability = 0.1
    source: str = "assumed: no public elasticity figure (docs/calibration.md, Pricing)"
