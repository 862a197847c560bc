"""The scenario schema: every parameter of the payment world, with units in the names.

A scenario is a frozen pydantic model (``extra="forbid"``), loaded from YAML. Money is integer
minor units (``*_cents``), rates are basis points (``*_bps``) or probabilities (``*_probability``),
durations are seconds (``*_s``), hours (``*_h``) or days (``*_days``). Times of day are ``"HH:MM"``
in the route's own time zone (``utc_offset_h``). A value that traces to a public figure carries its
source in the YAML next to it; one that is assumed says so there.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

import payroute.envs.scenarios.bounds as b

# the schema's vocabulary and its price sections live in their own modules; importers find them here too
from payroute.envs.scenarios.money import (  # noqa: F401
    CompetitorPrices,
    CustomerResponse,
    FeeSchedule,
    Interchange,
    PriceCap,
    PriceCapBasis,
    PriceList,
    VolumeTier,
)
from payroute.envs.scenarios.provenance import Provenance
from payroute.envs.scenarios.retries import ResponseCodes, Retries
from payroute.envs.scenarios.vocabulary import (  # noqa: F401
    CORRIDORS,
    FAMILIES,
    FRAUD_PATTERNS,
    INSTRUMENTS,
    URGENCIES,
    Corridor,
    DayRule,
    Family,
    FraudPattern,
    Instrument,
    Model,
    RailKind,
    TimeOfDay,
    Urgency,
    WhenShort,
    hhmm_to_s,
)

# --------------------------------------------------------------------------- routes


class Hours(Model):
    """When a route accepts work, in its own time zone."""

    utc_offset_h: b.UtcOffsetH = -5.0
    open: TimeOfDay = "00:00"
    close: TimeOfDay = "24:00"
    days: DayRule = "all"
    outside_hours: Literal["hold", "reject"] = "hold"
    source: str = ""

    @model_validator(mode="after")
    def _check(self) -> Hours:
        if hhmm_to_s(self.open) >= hhmm_to_s(self.close):
            raise ValueError(f"open ({self.open}) must be before close ({self.close})")
        return self


class SettlementWindow(Model):
    """A batch window: work submitted by ``submit_by`` settles at ``settle_at`` the same business day."""

    submit_by: TimeOfDay
    settle_at: TimeOfDay


class Latency(Model):
    """Processing time, lognormal with this median and log-sd, in seconds (a median of at most a day: a
    settlement days later is ``settle_business_days`` or a window)."""

    median_s: b.LatencyS
    sigma: b.LatencySigma = 0.5


class Approval(Model):
    """Probability the route (and the issuer behind it) approves, by payer segment.

    Drifts slowly: a random walk in logit space with ``drift_sigma_per_day`` per day, stepped hourly.
    ``fraud_logit_offset`` is added for fraudulent transactions (issuers decline some fraud themselves).
    """

    by_segment: dict[str, b.Probability]
    foreign_card_logit_offset: b.LogitOffset = 0.0
    fraud_logit_offset: b.LogitOffset = -1.0
    drift_sigma_per_day: Annotated[float, Field(ge=0.0, le=2.0)] = 0.05


class Health(Model):
    """Hidden Markov-modulated health: up -> degraded -> (up | down) -> up.

    Agents never see it; it shows only in outcomes (declines, failures, latency).
    """

    mean_up_h: b.PosHours = 72.0
    mean_degraded_min: b.PosMinutes = 30.0
    mean_down_min: b.PosMinutes = 10.0
    degraded_to_down_probability: b.Probability = 0.2
    degraded_approval_logit_offset: b.LogitOffset = -1.0
    degraded_latency_multiplier: Annotated[float, Field(ge=1.0, le=10.0)] = 3.0
    degraded_failure_probability: b.Probability = 0.05


class Route(Model):
    """A concrete way to send a transaction: a card processor, an ACH window, Fedwire, RTP, FedNow, SWIFT."""

    rail: RailKind
    instruments: tuple[Instrument, ...]
    corridors: tuple[Corridor, ...] = ("domestic",)
    currencies: tuple[str, ...] = ("USD",)
    fee: FeeSchedule
    latency: Latency
    capacity: Annotated[int, Field(gt=0, le=1_000_000)] | None = None
    hours: Hours | None = None
    windows: tuple[SettlementWindow, ...] = ()
    settle_business_days: Annotated[int, Field(ge=0, le=30)] = 0
    limit_cents: b.PosCents | None = None
    settlement_delay_s: b.Seconds = 0
    irrevocable: bool = False
    return_window_days: b.Days = 0
    prefunded_account: str | None = None
    approval: Approval
    health: Health = Health()
    source: str = ""

    @field_validator("instruments", "corridors", "currencies")
    @classmethod
    def _non_empty(cls, v: tuple) -> tuple:
        if not v:
            raise ValueError("must list at least one value")
        return v


# --------------------------------------------------------------------------- liquidity


class Inflow(Model):
    """Incoming payments that credit a settlement account (Poisson, per hour, lognormal amounts)."""

    per_hour: b.PerHour = 0.0
    median_cents: b.AmountCents = 100_000
    sigma: b.LogSigma = 1.0
    only_business_hours: bool = False


class SettlementAccount(Model):
    """A prefunded account a rail draws on when it sends (Fed master account, RTP prefunding, nostro).

    ``queue_delay_cost_bps_per_hour`` prices waiting: payouts queued for funds cost this many bps of their value
    per hour they wait (an economic cost, charged each treasury period).
    """

    opening_balance_cents: b.Cents
    target_balance_cents: b.Cents
    when_short: WhenShort = "queue"
    credit_limit_cents: b.Cents = 0
    credit_rate_bps_annual: b.RateBps = 50.0
    opportunity_rate_bps_annual: b.RateBps = 400.0
    inflow: Inflow = Inflow()
    funded_from: str | None = None
    transfer_delay_s: b.Seconds = 3600
    transfer_fee_cents: b.Cents = 0
    queue_delay_cost_bps_per_hour: b.RateBps = 0.0
    source: str = ""


# --------------------------------------------------------------------------- demand


class AmountModel(Model):
    """Lognormal amount with this median, clipped to [min, max]."""

    median_cents: b.AmountCents
    sigma: b.LogSigma = 1.0
    min_cents: b.AmountCents = 100
    max_cents: b.AmountCents = 10_000_000

    @model_validator(mode="after")
    def _check(self) -> AmountModel:
        if not self.min_cents <= self.median_cents <= self.max_cents:
            raise ValueError("need min_cents <= median_cents <= max_cents")
        return self


def _check_mix(name: str, mix: dict[str, float], allowed: tuple[str, ...] | None = None) -> None:
    if not mix:
        raise ValueError(f"{name} must not be empty")
    if allowed is not None:
        bad = sorted(set(mix) - set(allowed))
        if bad:
            raise ValueError(f"{name} has unknown keys {bad}; allowed: {list(allowed)}")
    if any(v < 0 for v in mix.values()):
        raise ValueError(f"{name} weights must be >= 0")
    if sum(mix.values()) <= 0:
        raise ValueError(f"{name} weights must sum to more than 0")


class Demand(Model):
    """Legitimate demand: a non-homogeneous Poisson process and the attributes of each transaction."""

    transactions_per_day: Annotated[int, Field(gt=0, le=b.MAX_TRANSACTIONS_PER_DAY)] = 100_000
    intraday_profile: tuple[b.Weight, ...] = Field(min_length=24, max_length=24)
    weekly_profile: tuple[b.Weight, ...] = Field(min_length=7, max_length=7)
    holiday_factor: Annotated[float, Field(ge=0.0, le=10.0)] = 0.6
    instrument_mix: dict[str, b.Weight]
    cross_border_share: b.Probability = 0.05
    foreign_card_share: b.Probability = 0.05
    credit_networks: dict[str, b.Weight]
    debit_networks: dict[str, b.Weight]
    segment_mix: dict[str, b.Weight]
    merchant_category_mix: dict[str, b.Weight]
    card_amount: AmountModel
    bank_amount: AmountModel
    cross_border_amount: AmountModel
    cross_border_currencies: dict[str, b.Weight] = {"EUR": 0.5, "MXN": 0.5}
    urgency_mix: dict[str, b.Weight] = {"standard": 0.6, "same_day": 0.25, "instant": 0.15}
    deadline_s: dict[str, b.DeadlineS] = {"standard": 3 * 86400, "same_day": 86400, "instant": 120}
    card_deadline_s: Annotated[int, Field(gt=0, le=86_400)] = 10

    @model_validator(mode="after")
    def _check(self) -> Demand:
        _check_mix("instrument_mix", self.instrument_mix, INSTRUMENTS)
        _check_mix("segment_mix", self.segment_mix)
        _check_mix("merchant_category_mix", self.merchant_category_mix)
        _check_mix("credit_networks", self.credit_networks)
        _check_mix("debit_networks", self.debit_networks)
        _check_mix("cross_border_currencies", self.cross_border_currencies)
        _check_mix("urgency_mix", self.urgency_mix, URGENCIES)
        missing = sorted(set(URGENCIES) - set(self.deadline_s))
        if missing:
            raise ValueError(f"deadline_s is missing {missing}")
        if sum(self.intraday_profile) <= 0 or sum(self.weekly_profile) <= 0:
            raise ValueError("intraday_profile and weekly_profile must have positive weight")
        return self


# --------------------------------------------------------------------------- fraud and risk


class FraudPatternSpec(Model):
    """A fraud pattern: how often it attacks, on what, when its losses surface, and what it earns and costs
    the fraudster."""

    attacks_per_day: b.PerDay
    instruments: tuple[Instrument, ...]
    corridors: tuple[Corridor, ...] = ("domestic",)
    urgency: Urgency = "instant"
    amount: AmountModel
    discovery_median_days: Annotated[float, Field(gt=0.0, le=b.MAX_DAYS)] = 30.0
    discovery_sigma: b.LogSigma = 0.6
    recovery_probability_revocable: b.Probability = 0.5
    challenge_pass_probability: b.Probability = 0.1
    # the fraudster's own economics (what a learning fraudster maximises)
    proceeds_share: b.Probability = Field(
        1.0,
        description="share of an approved attempt's amount the fraudster keeps (resale discount, mule's cut)",
    )
    proceeds_per_success_cents: b.Cents = Field(
        0,
        description="value of each approved attempt besides its amount (card testing: a card known to work)",
    )
    attempt_cost_cents: b.Cents = Field(
        0, description="cost of one attempt: stolen credentials or card data, bot traffic, a scam's calls"
    )
    blocked_cost_cents: b.Cents = Field(
        0,
        description="extra cost when the risk desk or a challenge stops the attempt (card or account burned)",
    )
    detection_cost_cents: b.Cents = Field(
        0,
        description="extra cost when the fraud is discovered later (card stops working, mule account closed)",
    )
    source: str = ""


class Fraud(Model):
    """Fraud patterns, and how a learning fraudster's choices change what the defender sees.

    A learning fraudster (the ``fraud`` decision) sets per pattern an intensity (times the pattern's
    ``attacks_per_day``; its action space goes up to ``max_intensity``) and an amount multiplier (the
    pattern's amount band, median, min and max, scaled; its action space spans ``amount_multiplier_range``).
    Attacking faster or bigger than usual stands out: the fraud's risk-score signal (d',
    ``risk.separability``) moves by
    ``velocity_separability_per_log_intensity * ln(max(intensity, 1))`` plus
    ``amount_separability_per_log_multiplier * ln(max(amount multiplier, 1))``: slower or smaller than usual
    does not hide an attack any better, and at intensity 1 and multiplier 1 (the scripted fraudster) nothing
    changes.
    """

    patterns: dict[FraudPattern, FraudPatternSpec]
    app_reimbursement_share: b.Probability = 0.5
    max_intensity: Annotated[float, Field(gt=0.0, le=100.0)] = Field(
        5.0,
        description="a learning fraudster's highest intensity per pattern, x the pattern's attacks_per_day",
    )
    amount_multiplier_range: tuple[b.Multiplier, b.Multiplier] = Field(
        (0.25, 4.0), description="a learning fraudster's [min, max] multiplier of each pattern's amount band"
    )
    velocity_separability_per_log_intensity: b.Separability = Field(
        0.5, description="rise of the fraud's risk-score d' per log unit of intensity above 1"
    )
    amount_separability_per_log_multiplier: b.Separability = Field(
        0.5, description="rise of the fraud's risk-score d' per log unit of amount multiplier above 1"
    )
    source: str = ""

    @model_validator(mode="after")
    def _check(self) -> Fraud:
        lo, hi = self.amount_multiplier_range
        if not lo <= 1.0 <= hi:
            raise ValueError(f"amount_multiplier_range must contain 1.0 (min <= 1 <= max), got {[lo, hi]}")
        return self


class RiskScore(Model):
    """The defender's risk score: Phi(z) with z ~ N(0, 1) for legitimate and N(separability, 1) for fraud.

    ``separability`` is d' (signal-detection sensitivity); 2.0 means a useful but imperfect score.
    """

    separability: b.Separability = 2.0
    challenge_abandon_probability: b.Probability = 0.25
    challenge_cost_cents: b.Cents = 5
    source: str = ""


# --------------------------------------------------------------------------- pricing and customers


class ServiceLevel(Model):
    """Penalties for missing the customer's deadline (cents per miss), by product family."""

    penalty_cents: dict[str, b.Cents] = {"card": 25, "bank": 200, "cross_border": 500}
    source: str = "assumed"


class Incident(Model):
    """A scheduled health change: the route is forced ``down`` or ``degraded`` for a while."""

    route: str
    day: Annotated[int, Field(ge=0, lt=b.MAX_DAYS)] = 0
    at: TimeOfDay
    duration_min: b.PosMinutes
    state: Literal["down", "degraded"] = "down"


class FeeChange(Model):
    """A scheduled change of a route's fee (e.g. a processor raises its markup 20%)."""

    route: str
    multiplier: b.Multiplier


# --------------------------------------------------------------------------- the scenario


class Scenario(Model):
    """A whole payment world: calendar, demand, routes, accounts, costs, fraud, prices and incidents."""

    name: str
    description: str = ""
    start_date: b.StartDate = dt.date(2026, 3, 2)
    base_utc_offset_h: b.UtcOffsetH = -5.0
    volume_scale: Annotated[float, Field(gt=0.0, le=100.0)] = 1.0
    demand: Demand
    routes: dict[str, Route]
    accounts: dict[str, SettlementAccount] = {}
    interchange: Interchange
    fraud: Fraud
    risk: RiskScore = RiskScore()
    prices: PriceList
    customers: CustomerResponse = CustomerResponse()
    service_level: ServiceLevel = ServiceLevel()
    incidents: tuple[Incident, ...] = ()
    fee_changes: tuple[FeeChange, ...] = ()
    response_codes: ResponseCodes = ResponseCodes()
    retries: Retries = Retries()
    extra_holidays: tuple[dt.date, ...] = ()
    treasury_period_s: b.PeriodS = 3600
    fraud_period_s: b.PeriodS = 3600
    provenance: Provenance | None = Field(None, exclude=True)  # what `payroute calibrate` fitted it from

    @model_validator(mode="after")
    def _check_references(self) -> Scenario:
        if not self.routes:
            raise ValueError("routes: at least one route is needed")
        per_day = self.demand.transactions_per_day * self.volume_scale
        if per_day > b.MAX_TRANSACTIONS_PER_DAY:
            raise ValueError(
                f"demand.transactions_per_day x volume_scale = {per_day:,.0f}: allowed at most "
                f"{b.MAX_TRANSACTIONS_PER_DAY:,} payments a day"
            )
        segments = set(self.demand.segment_mix)
        for name, route in self.routes.items():
            missing = sorted(segments - set(route.approval.by_segment))
            if missing:
                raise ValueError(f"routes.{name}.approval.by_segment is missing segments {missing}")
            if route.prefunded_account is not None and route.prefunded_account not in self.accounts:
                raise ValueError(
                    f"routes.{name}.prefunded_account: {route.prefunded_account!r} is not an account; "
                    f"accounts: {sorted(self.accounts)}"
                )
            if route.rail == "ach" and not route.windows:
                raise ValueError(f"routes.{name}: an ach route needs settlement windows")
        for name, acct in self.accounts.items():
            if acct.funded_from is not None and acct.funded_from not in self.accounts:
                raise ValueError(f"accounts.{name}.funded_from: {acct.funded_from!r} is not an account")
        for i, inc in enumerate(self.incidents):
            if inc.route not in self.routes:
                raise ValueError(
                    f"incidents.{i}.route: {inc.route!r} is not a route; routes: {sorted(self.routes)}"
                )
        networks = set(self.demand.credit_networks) | set(self.demand.debit_networks)
        for i, cap in enumerate(self.prices.caps):
            if cap.network is not None and cap.network not in networks:
                raise ValueError(
                    f"prices.caps.{i}.network: {cap.network!r} is not a card network; networks: {sorted(networks)}"
                )
        for i, fc in enumerate(self.fee_changes):
            if fc.route not in self.routes:
                raise ValueError(
                    f"fee_changes.{i}.route: {fc.route!r} is not a route; routes: {sorted(self.routes)}"
                )
        # every instrument/corridor the demand produces must have at least one route
        needs = [(i, "domestic") for i, w in self.demand.instrument_mix.items() if w > 0]
        if self.demand.cross_border_share > 0 and self.demand.instrument_mix.get("bank_account", 0) > 0:
            needs.append(("bank_account", "cross_border"))
        for instrument, corridor in needs:
            if not any(instrument in r.instruments and corridor in r.corridors for r in self.routes.values()):
                raise ValueError(f"no route carries {instrument} on the {corridor} corridor")
        return self

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.demand.segment_mix)
