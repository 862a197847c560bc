"""Routes: the concrete ways a payment can travel, and what each costs and promises.

A :class:`RouteState` is the live form of a scenario ``Route``: its fee schedule (with the month's volume
tier), its opening hours and batch windows, its limit and eligibility, its capacity (:class:`Slots`, so queues
form under load), its approval model drifting slowly by payer segment, and a hidden health process (up / degraded / down) that agents never see directly, only through declines, failures and latency.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

import numpy as np
import simpy

from payroute.envs.scenarios.schema import FeeSchedule, Interchange, Route, hhmm_to_s
from payroute.envs.world.clock import DAY_S, HOUR_S, Calendar
from payroute.errors import PayrouteError

if TYPE_CHECKING:
    from payroute.envs.world.demand import Transaction

UP, DEGRADED, DOWN = 0, 1, 2
_CARD_NETWORK_QUOTE = -1  # key of a payment's interchange and assessment among its cost quotes (not a route)
OBSERVATION_WINDOW = 200  # outcomes per route a router can see (recent approval rate and latency)
HEALTH_NAMES = ("up", "degraded", "down")
RAIL_FAMILY = {
    "card": "card",
    "ach": "bank",
    "wire": "bank",
    "instant": "bank",
    "cross_border": "cross_border",
}


def fee_cents(schedule: FeeSchedule, amount_cents: int, month_count: int = 0, multiplier: float = 1.0) -> int:
    """fee = clip(fixed + bps * amount, min, max) in whole cents, with the volume tier for ``month_count``."""
    fixed, bps = schedule.fixed_cents, schedule.bps
    for tier in schedule.tiers:
        if month_count < tier.from_count:
            break
        bps = max(schedule.bps - tier.bps_discount, 0.0)
        if tier.fixed_cents is not None:
            fixed = tier.fixed_cents
    fee = round((fixed + amount_cents * bps / 10_000.0) * multiplier)
    if fee < schedule.min_cents:
        fee = schedule.min_cents
    if schedule.max_cents is not None and fee > schedule.max_cents:
        fee = schedule.max_cents
    return int(fee)


def _flat(schedule: FeeSchedule) -> tuple[int, float, int, int | None] | None:
    if schedule.tiers:
        return None
    return schedule.fixed_cents, schedule.bps, schedule.min_cents, schedule.max_cents


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def sigmoid(z: float) -> float:
    """1 / (1 + e^-z), without overflow for large negative ``z``."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class Slots:
    """A route's capacity: at most ``capacity`` payments in processing at once; the rest wait their turn in order.

    What ``simpy.Resource`` does for this, without an event for a slot that is free when asked for or for a
    release nobody waits on (the common case, and three SimPy events per payment otherwise).
    """

    __slots__ = ("env", "capacity", "busy", "waiting")

    def __init__(self, env: simpy.Environment, capacity: int) -> None:
        self.env = env
        self.capacity = capacity
        self.busy = 0
        self.waiting: deque[simpy.Event] = deque()

    def take(self) -> simpy.Event | None:
        """Take a slot: ``None`` if one was free (it is now yours), else an event that fires when one is yours."""
        if self.busy < self.capacity:
            self.busy += 1
            return None
        turn = self.env.event()
        self.waiting.append(turn)
        return turn

    def give_back(self) -> None:
        """Give a slot back: to the payment waiting longest, if any."""
        if self.waiting:
            self.waiting.popleft().succeed()
        else:
            self.busy -= 1


class RouteState:
    """One route in the running world."""

    def __init__(
        self,
        index: int,
        name: str,
        spec: Route,
        env: simpy.Environment,
        calendar: Calendar,
        segments: tuple[str, ...],
        interchange: Interchange,
        fee_multiplier: float,
        rng: np.random.Generator,
    ) -> None:
        self.index = index
        self.name = name
        self.spec = spec
        self.rail = spec.rail
        self.family = RAIL_FAMILY[spec.rail]
        self.is_card = spec.rail == "card"
        self.env = env
        self.calendar = calendar
        self.interchange = interchange
        self.fee_multiplier = fee_multiplier
        self.rng = rng
        self.slots = Slots(env, spec.capacity) if spec.capacity else None
        self.limit_cents = spec.limit_cents
        self.prefunded_account = spec.prefunded_account
        self.irrevocable = spec.irrevocable
        self.instruments = frozenset(spec.instruments)
        self.corridors = frozenset(spec.corridors)
        self.currencies = frozenset(spec.currencies)
        # approval: base logit per segment index, plus a slow random walk
        self.base_logit = [logit(spec.approval.by_segment[s]) for s in segments]
        self.drift = [0.0] * len(segments)
        self.foreign_offset = spec.approval.foreign_card_logit_offset
        self.fraud_offset = spec.approval.fraud_logit_offset
        self.latency_median_s = spec.latency.median_s
        self.latency_sigma = spec.latency.sigma
        # hidden health
        self.health = UP
        self.forced: int | None = None
        # monthly volume for fee tiers: the run starts with the month's earlier payments already counted
        start = calendar.date(0)
        self.month_key = start.year * 12 + start.month
        self.month_count = spec.fee.month_to_date_count
        # billed sub-cent remainder of the per-item fee (FeeSchedule.fixed_fraction_cents)
        self.fee_fraction = spec.fee.fixed_fraction_cents * fee_multiplier
        self.fee_fraction_due = 0.0
        # opening hours, cached as the current/next open interval
        h = spec.hours
        if h is None:
            self.hours_rule = None
        else:
            self.hours_rule = h.days
            self.open_s = hhmm_to_s(h.open)
            self.close_s = hhmm_to_s(h.close)
            self.shift = calendar.shift_s(h.utc_offset_h)
            self.reject_outside = h.outside_hours == "reject"
        # the cached interval answers for times in [_asked_at, _open_until): closed before _open_from, open after
        self._asked_at = 0.0
        self._open_from = 0.0
        self._open_until = -1.0
        self.windows = [(hhmm_to_s(w.submit_by), hhmm_to_s(w.settle_at)) for w in spec.windows]
        # open round the clock and without windows: expected_done_time(t) is t + latency + settlement delay,
        # these two (else None); added in that order, to the bit the same as the general path
        self.done_delays_s: tuple[float, float] | None = None
        if self.hours_rule is None and not self.windows:
            self.done_delays_s = (self.latency_median_s, 0 if self.is_card else spec.settlement_delay_s)
        # fee schedules without volume tiers, unpacked for cost_cents (None: evaluate with fee_cents)
        self._flat_fee = _flat(spec.fee)
        self._flat_credit = _flat(interchange.credit)
        self._flat_debit = _flat(interchange.debit_regulated)
        self._assessment_bps: dict[tuple[str, bool], float] = {}
        self.window_shift = calendar.shift_s(h.utc_offset_h) if h is not None else 0.0
        # what a router can observe: a sliding window of recent outcomes and latencies
        self.window = OBSERVATION_WINDOW
        self._recent: deque[tuple[int, float]] = deque()
        self.recent_approved = 0
        self.recent_latency_sum = 0.0
        self.stats_version = 0
        self.in_queue = 0

    # ------------------------------------------------------------------ hours
    def _refresh_hours(self, t: float) -> None:
        self._asked_at = t
        try:
            self._open_from, self._open_until = self.calendar.next_open(
                t, self.open_s, self.close_s, self.hours_rule, self.shift
            )
        except PayrouteError as err:
            raise PayrouteError(f"route {self.name!r}: {err}") from None

    def is_open(self, t: float) -> bool:
        if self.hours_rule is None:
            return True
        if t >= self._open_until or t < self._asked_at:
            self._refresh_hours(t)
        return self._open_from <= t

    def open_state(self, t: float) -> tuple[bool, float]:
        """``(is_open(t), until)``: whether the route is open at ``t``, and until when that answer holds."""
        if self.hours_rule is None:
            return True, math.inf
        if t >= self._open_until or t < self._asked_at:
            self._refresh_hours(t)
        if self._open_from <= t:
            return True, self._open_until
        return False, self._open_from

    def next_open_time(self, t: float) -> float:
        """Now if open, else the time the route next opens."""
        if self.hours_rule is None:
            return t
        if t >= self._open_until or t < self._asked_at:
            self._refresh_hours(t)
        return max(self._open_from, t)

    def accepts_now(self, t: float) -> bool:
        """False only for routes that reject work outside their hours."""
        return self.hours_rule is None or not self.reject_outside or self.is_open(t)

    def settlement_time(self, t_submit: float) -> float:
        """When an item submitted at ``t_submit`` settles.

        Batch routes (ACH) settle at the first window whose submission deadline has not passed, on a
        business day, ``settle_business_days`` later; other routes settle ``settlement_delay_s`` after
        they complete.
        """
        if not self.windows:
            return t_submit + self.spec.settlement_delay_s
        cal, shift = self.calendar, self.window_shift
        local = t_submit + shift
        day = int(local // DAY_S)
        sod = local - day * DAY_S
        if cal.is_business_day(day):
            for submit_by, settle_at in self.windows:
                if sod <= submit_by:
                    settle_day = (
                        cal.next_business_day(day, self.spec.settle_business_days)
                        if self.spec.settle_business_days
                        else day
                    )
                    return cal.at(settle_day, settle_at, shift)
        day = cal.next_business_day(day)
        settle_day = (
            cal.next_business_day(day, self.spec.settle_business_days)
            if self.spec.settle_business_days
            else day
        )
        return cal.at(settle_day, self.windows[0][1], shift)

    def expected_done_time(self, t: float) -> float:
        """When a payment sent at ``t`` is done if it takes the median latency, by the published hours and windows.

        Cards: when the processor answers. Bank rails: when the payment settles (waiting for the route to
        open, then the median latency, then the settlement window). Public knowledge: hours, windows and the
        median latency are published; the hidden health and this payment's own latency are not used.
        """
        delays = self.done_delays_s
        if delays is not None:
            return t + delays[0] + delays[1]
        done = self.next_open_time(t) + self.latency_median_s
        return done if self.is_card else self.settlement_time(done)

    def next_cutoff(self, t: float) -> tuple[float, float]:
        """``(cutoff, valid_until)``: when this route next stops taking work for its batch or session.

        Batch routes: the next window's submission deadline. Routes with hours: the close if open now, and
        ``-inf`` while closed (until it opens). Round-the-clock routes: ``+inf`` forever. The answer holds
        until ``valid_until``.
        """
        if self.windows:
            local = t + self.window_shift
            day = int(local // DAY_S)
            sod = local - day * DAY_S
            if self.calendar.is_business_day(day):
                for submit_by, _settle in self.windows:
                    if sod <= submit_by:
                        cut = t + (submit_by - sod)
                        return cut, cut
            nxt = self.calendar.next_business_day(day)
            cut = self.calendar.at(nxt, self.windows[0][0], self.window_shift)
            return cut, cut
        if self.hours_rule is None:
            return math.inf, math.inf
        if not self.is_open(t):
            return -math.inf, self.next_open_time(t)
        return self._open_until, self._open_until

    def seconds_to_cutoff(self, t: float) -> float:
        """Seconds until the next cut-off (0 while closed, inf for round-the-clock routes)."""
        cut, _ = self.next_cutoff(t)
        return max(cut - t, 0.0)

    # ------------------------------------------------------------------ money
    def cost_cents(self, tx: Transaction) -> int:
        """What sending ``tx`` on this route costs the PSP, in cents (interchange included for cards).

        Quoted once per transaction and route (the volume tier in force when first asked), then remembered.
        Routers call this for every eligible route of every payment, so schedules without volume tiers are
        evaluated inline (the same arithmetic as :func:`fee_cents`, to the cent).
        """
        quotes = tx.cost_quotes
        if quotes is None:
            quotes = tx.cost_quotes = {}
        else:
            cached = quotes.get(self.index)
            if cached is not None:
                return cached
        amount = tx.amount_cents
        flat = self._flat_fee
        if flat is None:
            count = self.month_count if tx.month_key == self.month_key else 0
            cost = fee_cents(self.spec.fee, amount, count, self.fee_multiplier)
        else:
            fixed, bps, lo, hi = flat
            cost = round((fixed + amount * bps / 10_000.0) * self.fee_multiplier)
            if cost < lo:
                cost = lo
            if hi is not None and cost > hi:
                cost = hi
        if self.is_card:
            # interchange and network assessment are the same on every card route: priced once per payment
            network_cents = quotes.get(_CARD_NETWORK_QUOTE)
            if network_cents is None:
                network_cents = quotes[_CARD_NETWORK_QUOTE] = self._card_network_cents(tx)
            cost += network_cents
        quotes[self.index] = cost = int(cost)
        return cost

    def billed_cents(self, tx: Transaction) -> int:
        """What the route bills for ``tx`` when it goes through: the quote, plus a cent whenever the sub-cent
        parts of its per-item fee billed so far add up to one (so billed totals match the published fee)."""
        cost = self.cost_cents(tx)
        if self.fee_fraction:
            due = self.fee_fraction_due + self.fee_fraction
            whole = int(due)
            self.fee_fraction_due = due - whole
            cost += whole
        return cost

    def _card_network_cents(self, tx: Transaction) -> int:
        """Interchange plus network assessment for ``tx`` (for Amex its merchant discount), in cents."""
        ic = self.interchange
        amount = tx.amount_cents
        if ic.amex is not None and tx.network == "amex":
            cost = fee_cents(ic.amex, amount)
            return cost + (round(amount * ic.foreign_card_bps / 10_000.0) if tx.foreign_card else 0)
        debit = tx.instrument == "card_debit"
        flat = self._flat_debit if debit else self._flat_credit
        if flat is None:
            cost = fee_cents(ic.debit_regulated if debit else ic.credit, amount)
        else:
            fixed, bps, lo, hi = flat
            cost = round(fixed + amount * bps / 10_000.0)
            if cost < lo:
                cost = lo
            if hi is not None and cost > hi:
                cost = hi
        key = (tx.network, tx.foreign_card)
        bps = self._assessment_bps.get(key)
        if bps is None:
            bps = ic.network_assessment_bps.get(tx.network, 0.0)
            if tx.foreign_card:
                bps += ic.foreign_card_bps
            self._assessment_bps[key] = bps
        return cost + round(amount * bps / 10_000.0)

    def count_submission(self, month_key: int) -> None:
        if month_key != self.month_key:
            self.month_key = month_key
            self.month_count = 0
        self.month_count += 1

    # ------------------------------------------------------------------ truth (hidden from agents)
    @property
    def health_now(self) -> int:
        return self.health if self.forced is None else self.forced

    def approval_probability(self, tx: Transaction) -> float:
        """The true probability this route approves ``tx`` now (what the oracle knows)."""
        z = self.base_logit[tx.segment] + self.drift[tx.segment]
        if tx.foreign_card:
            z += self.foreign_offset
        if tx.is_fraud:
            z += self.fraud_offset
        if self.health_now == DEGRADED:
            z += self.spec.health.degraded_approval_logit_offset
        return sigmoid(z)

    def success_probability(self, tx: Transaction) -> float:
        """P(approved) including technical failure from the current health state."""
        state = self.health_now
        if state == DOWN:
            return 0.0
        p = self.approval_probability(tx)
        if state == DEGRADED:
            p *= 1.0 - self.spec.health.degraded_failure_probability
        return p

    def answer(self, tx: Transaction) -> tuple[bool, str]:
        """How the route answers ``tx`` now: ``(approved, why not)``, drawn with the payment's own uniform.

        A route that is down fails every payment (``route_down``). Otherwise the payment goes through with
        :meth:`success_probability`; of those that do not, the ones the issuer would have approved failed on
        the degraded route (``route_error``), the rest were declined (``declined``).
        """
        if self.health_now == DOWN:
            return False, "route_down"
        u = tx.u_approve
        if u < self.success_probability(tx):
            return True, ""
        return False, ("route_error" if u < self.approval_probability(tx) else "declined")

    def latency_s(self, z: float) -> float:
        lat = self.latency_median_s * math.exp(self.latency_sigma * z)
        if self.health_now == DEGRADED:
            lat *= self.spec.health.degraded_latency_multiplier
        return lat

    def observe(self, approved: bool, latency_s: float) -> None:
        """Record an outcome a router could see (approved or not, and how long it took)."""
        ok = 1 if approved else 0
        recent = self._recent
        recent.append((ok, latency_s))
        self.recent_approved += ok
        self.recent_latency_sum += latency_s
        if len(recent) > self.window:
            old_ok, old_lat = recent.popleft()
            self.recent_approved -= old_ok
            self.recent_latency_sum -= old_lat
        self.stats_version += 1

    @property
    def recent_count(self) -> int:
        return len(self._recent)

    def recent_approval_rate(self, prior: float = 0.5) -> float:
        n = len(self._recent)
        return self.recent_approved / n if n else prior

    def recent_mean_latency_s(self) -> float:
        n = len(self._recent)
        return self.recent_latency_sum / n if n else self.latency_median_s

    # ------------------------------------------------------------------ processes
    def drift_process(self, until_open):
        """Each hour, every segment's approval logit takes a small random step (mean-reverting)."""
        sigma_h = self.spec.approval.drift_sigma_per_day / math.sqrt(24.0)
        n = len(self.drift)
        while until_open():
            yield self.env.timeout(HOUR_S)
            if sigma_h > 0:
                steps = self.rng.normal(0.0, sigma_h, size=n)
                self.drift = [0.995 * d + float(s) for d, s in zip(self.drift, steps, strict=True)]

    def health_process(self, until_open):
        """Up for an exponential time, then degraded; a degradation ends in recovery or an outage."""
        h = self.spec.health
        while until_open():
            yield self.env.timeout(float(self.rng.exponential(h.mean_up_h * HOUR_S)))
            self.health = DEGRADED
            yield self.env.timeout(float(self.rng.exponential(h.mean_degraded_min * 60.0)))
            if self.rng.random() < h.degraded_to_down_probability:
                self.health = DOWN
                yield self.env.timeout(float(self.rng.exponential(h.mean_down_min * 60.0)))
            self.health = UP

    def incident_process(self, start_s: float, duration_s: float, state: int):
        """A scheduled outage or degradation (the scenario's ``incidents``)."""
        if start_s > self.env.now:
            yield self.env.timeout(start_s - self.env.now)
        self.forced = state
        yield self.env.timeout(duration_s)
        self.forced = None
