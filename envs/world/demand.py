"""Demand: who wants to pay, when, how much, with what, and whether it is really them.

Legitimate transactions arrive as a non-homogeneous Poisson process: the day's volume is spread over hours
by the scenario's intraday profile and over the week by its weekly profile (holidays carry less). Within an
hour arrivals are uniform, which makes the process exactly Poisson with a piecewise-constant rate.

Each transaction carries its attributes (amount, currency, corridor, payer segment, merchant category,
instrument, card network and issuing country, urgency and deadline) and its hidden truth (fraud or not,
which pattern), plus the per-transaction random numbers the world later uses to decide its fate
(approval, abandonment, challenge, latency, discovery). Drawing those up front from the demand generator
is what makes runs paired: two policies on the same seed see the same customers and the same luck.

Fraudulent transactions come from scripted fraudsters (:mod:`payroute.envs.world.fraud`) with their own
generator and the same attributes.
"""

from __future__ import annotations

import math

import numpy as np

from payroute.envs.scenarios.schema import URGENCIES, AmountModel, Scenario
from payroute.envs.world.clock import DAY_S, HOUR_S, Calendar

FAMILY_OF_INSTRUMENT = {"card_credit": "card", "card_debit": "card", "bank_account": "bank"}


class Transaction:
    """One payment from arrival to its terminal state (and, rarely, a chargeback or return after that)."""

    __slots__ = (
        "id", "t_arrival", "amount_cents", "currency", "cross_border", "segment", "category", "instrument",
        "network", "foreign_card", "urgency", "deadline_t", "family", "is_fraud", "pattern", "month_key",
        "u_approve", "u_abandon", "u_challenge", "z_latency", "z_discover", "u_recover", "u_switch", "risk_score",
        "price_cents", "route", "route_propensity", "eligible_mask", "risk_action", "risk_propensity",
        "state", "reason", "t_terminal", "t_settled", "latency_s", "revenue_cents", "route_cost_cents",
        "fraud_loss_cents", "sla_penalty_cents", "liquidity_cost_cents", "challenge_cost_cents", "agents",
        "post_state", "features", "cost_quotes", "u_code", "u_advice", "attempt", "response_code",
        "merchant_advice", "sequence_propensity", "retry", "retry_fee_cents", "network_fine_cents", "u_retry",
    )  # fmt: skip

    def __init__(self) -> None:
        self.price_cents = 0
        self.route = -1
        self.route_propensity = 1.0
        self.eligible_mask = 0
        self.risk_action = 0
        self.risk_propensity = 1.0
        self.state = ""
        self.reason = ""
        self.t_terminal = -1.0
        self.t_settled = -1.0
        self.latency_s = 0.0
        self.revenue_cents = 0
        self.route_cost_cents = 0
        self.fraud_loss_cents = 0
        self.sla_penalty_cents = 0
        self.liquidity_cost_cents = 0
        self.challenge_cost_cents = 0
        self.agents: tuple[str, ...] = ()
        self.post_state = ""
        self.features = None
        self.cost_quotes: dict[int, int] | None = None
        self.u_switch = 1.0  # set for genuine payers: the draw behind switching to a cheaper method
        # response codes and retries (payroute.envs.world.codes): attempts made, the last answer's reason
        self.attempt = 0
        self.response_code = ""
        self.merchant_advice = ""
        self.sequence_propensity = 1.0  # product of the propensities of every routing decision on it
        self.retry = None  # a RetryState once declined with retries enabled
        self.retry_fee_cents = 0
        self.network_fine_cents = 0

    @property
    def margin_cents(self) -> int:
        return (
            self.revenue_cents
            - self.route_cost_cents
            - self.fraud_loss_cents
            - self.sla_penalty_cents
            - self.liquidity_cost_cents
            - self.challenge_cost_cents
            - self.retry_fee_cents
            - self.network_fine_cents
        )

    def __repr__(self) -> str:
        return (
            f"Transaction(id={self.id}, t={self.t_arrival:.1f}, {self.amount_cents}c {self.currency}, "
            f"{self.instrument}, fraud={self.is_fraud}, state={self.state or 'in flight'})"
        )


def _mix(mix: dict[str, float]) -> tuple[list[str], np.ndarray]:
    keys = list(mix)
    p = np.array([mix[k] for k in keys], dtype=float)
    return keys, p / p.sum()


def draw_amounts(rng: np.random.Generator, model: AmountModel, n: int) -> np.ndarray:
    """Lognormal amounts in whole cents, clipped to the model's range."""
    raw = model.median_cents * np.exp(model.sigma * rng.standard_normal(n))
    return np.clip(np.rint(raw), model.min_cents, model.max_cents).astype(np.int64)


class TransactionFactory:
    """Draws transaction attributes in vectorised blocks and turns rows into :class:`Transaction` objects."""

    def __init__(self, scenario: Scenario, calendar: Calendar) -> None:
        d = scenario.demand
        self.scenario = scenario
        self.calendar = calendar
        self.segments, self.segment_p = _mix(d.segment_mix)
        self.categories, self.category_p = _mix(d.merchant_category_mix)
        self.instruments, self.instrument_p = _mix(d.instrument_mix)
        self.credit_nets, self.credit_p = _mix(d.credit_networks)
        self.debit_nets, self.debit_p = _mix(d.debit_networks)
        self.xb_ccys, self.xb_p = _mix(d.cross_border_currencies)
        self.urgencies, self.urgency_p = _mix(d.urgency_mix)
        self.deadline_by_urgency = [d.deadline_s[u] for u in URGENCIES]
        self.card_deadline_s = d.card_deadline_s
        self.separability = scenario.risk.separability
        self._month_key: dict[int, int] = {}  # day index -> year * 12 + month

    def block(
        self,
        rng: np.random.Generator,
        times: np.ndarray,
        instruments: np.ndarray | None = None,
        amount_override: AmountModel | None = None,
        cross_border: np.ndarray | None = None,
        urgency: str | None = None,
    ) -> dict[str, np.ndarray]:
        """Attributes for ``len(times)`` transactions; fraud streams pass their own instruments and amounts."""
        n = len(times)
        d = self.scenario.demand
        if instruments is None:
            instruments = rng.choice(len(self.instruments), size=n, p=self.instrument_p)
            inst_names = np.array(self.instruments, dtype=object)[instruments]
        else:
            inst_names = instruments
        is_bank = inst_names == "bank_account"
        if cross_border is None:
            cross_border = is_bank & (rng.random(n) < d.cross_border_share)
        foreign = (~is_bank) & (rng.random(n) < d.foreign_card_share)
        segment = rng.choice(len(self.segments), size=n, p=self.segment_p)
        category = rng.choice(len(self.categories), size=n, p=self.category_p)
        credit_net = np.array(self.credit_nets, dtype=object)[
            rng.choice(len(self.credit_nets), size=n, p=self.credit_p)
        ]
        debit_net = np.array(self.debit_nets, dtype=object)[
            rng.choice(len(self.debit_nets), size=n, p=self.debit_p)
        ]
        network = np.where(
            inst_names == "card_credit", credit_net, np.where(inst_names == "card_debit", debit_net, "")
        )
        ccy = np.array(self.xb_ccys, dtype=object)[rng.choice(len(self.xb_ccys), size=n, p=self.xb_p)]
        currency = np.where(cross_border, ccy, "USD")
        if urgency is None:
            urg = rng.choice(len(self.urgencies), size=n, p=self.urgency_p)
            urg_names = np.array(self.urgencies, dtype=object)[urg]
        else:
            urg_names = np.full(n, urgency, dtype=object)
        if amount_override is not None:
            amount = draw_amounts(rng, amount_override, n)
        else:
            card_amt = draw_amounts(rng, d.card_amount, n)
            bank_amt = draw_amounts(rng, d.bank_amount, n)
            xb_amt = draw_amounts(rng, d.cross_border_amount, n)
            amount = np.where(is_bank, np.where(cross_border, xb_amt, bank_amt), card_amt)
        return {
            "t": times,
            "amount": amount,
            "instrument": inst_names,
            "cross_border": cross_border,
            "foreign": foreign,
            "segment": segment,
            "category": category,
            "network": network,
            "currency": currency,
            "urgency": np.where(is_bank, urg_names, ""),
            "u_approve": rng.random(n),
            "u_abandon": rng.random(n),
            "u_challenge": rng.random(n),
            "z_latency": rng.standard_normal(n),
            "z_discover": rng.standard_normal(n),
            "u_recover": rng.random(n),
            "z_risk": rng.standard_normal(n),
        }

    def make(self, cols: dict[str, np.ndarray], i: int, is_fraud: bool, pattern: str) -> Transaction:
        """Row ``i`` of a block as a :class:`Transaction` (ids are given at arrival by the world)."""
        tx = Transaction()
        t = float(cols["t"][i])
        tx.t_arrival = t
        tx.amount_cents = int(cols["amount"][i])
        tx.instrument = cols["instrument"][i]
        tx.family = "cross_border" if cols["cross_border"][i] else FAMILY_OF_INSTRUMENT[tx.instrument]
        tx.cross_border = bool(cols["cross_border"][i])
        tx.foreign_card = bool(cols["foreign"][i])
        tx.segment = int(cols["segment"][i])
        tx.category = int(cols["category"][i])
        tx.network = cols["network"][i]
        tx.currency = cols["currency"][i]
        tx.urgency = cols["urgency"][i]
        if tx.family == "card":
            tx.deadline_t = t + self.card_deadline_s
        else:
            tx.deadline_t = t + self.deadline_by_urgency[URGENCIES.index(tx.urgency)]
        tx.is_fraud = is_fraud
        tx.pattern = pattern
        day = int(t // DAY_S)
        month_key = self._month_key.get(day)
        if month_key is None:
            d = self.calendar.date(day)
            month_key = self._month_key[day] = d.year * 12 + d.month
        tx.month_key = month_key
        tx.u_approve = float(cols["u_approve"][i])
        tx.u_abandon = float(cols["u_abandon"][i])
        tx.u_challenge = float(cols["u_challenge"][i])
        tx.z_latency = float(cols["z_latency"][i])
        tx.z_discover = float(cols["z_discover"][i])
        tx.u_recover = float(cols["u_recover"][i])
        z = float(cols["z_risk"][i]) + (self.separability if is_fraud else 0.0)
        tx.risk_score = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
        return tx


class LegitimateDemand:
    """The non-homogeneous Poisson arrival stream of genuine customers."""

    def __init__(self, scenario: Scenario, calendar: Calendar, factory: TransactionFactory) -> None:
        d = scenario.demand
        self.calendar = calendar
        self.factory = factory
        self.per_day = d.transactions_per_day * scenario.volume_scale
        self.intraday = np.asarray(d.intraday_profile) / sum(d.intraday_profile)
        self.weekly = np.asarray(d.weekly_profile) / np.mean(d.weekly_profile)
        self.holiday_factor = d.holiday_factor
        self.segment_multiplier: np.ndarray | None = None  # set by churn (pricing), 1.0 by default

    def hourly_rate(self, hour_index: int) -> float:
        """Expected arrivals in absolute hour ``hour_index`` of the simulation."""
        day = hour_index // 24
        rate = self.per_day * self.weekly[self.calendar.weekday(day * DAY_S)] * self.intraday[hour_index % 24]
        if self.calendar.is_holiday(day):
            rate *= self.holiday_factor
        return float(rate)

    def hour_block(self, rng: np.random.Generator, hour_index: int) -> dict[str, np.ndarray]:
        n = int(rng.poisson(self.hourly_rate(hour_index)))
        times = np.sort(hour_index * HOUR_S + rng.random(n) * HOUR_S)
        return self.factory.block(rng, times)
