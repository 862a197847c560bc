"""What a router or risk desk can see when it decides: observation vectors with named, scaled features.

Only what a real PSP could observe goes in: the payment's attributes, the calendar, what each route has
recently done (approval rate and count over its last outcomes, latency, queue), this payment's fee on each
route, eligibility, whether the route's published hours, windows and median latency get this payment done by
its deadline, what fraud is expected to cost on each route (the risk desk's calibrated probability that the
payment is fraud times what a fraud loses there), and prefunded balances relative to their targets. Never the
hidden route health, the true approval probabilities, or whether the payment is fraud.

The fraud probability is :class:`~payroute.envs.world.fraud.FraudPosterior`, the oracle's: the score's
likelihood ratio at the risk model's separability and the base rate of fraud in the payment's cell
(instrument, urgency, corridor, half decade of amount) among this world's earlier payments. A PSP learns its
base rates as frauds surface, days later; here the earlier payments count at once (a simplification: one
payment moves a cell's rate by 1/n, and the payment being routed is never in its own rate).

Every feature has a name, a unit, its scaling and its bounds (:class:`Feature`); the schema travels with
exported policies so a reviewer can check a bundle against the scenario it was trained on.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

from payroute.envs.scenarios.schema import INSTRUMENTS, URGENCIES
from payroute.envs.world.clock import DAY_S
from payroute.envs.world.fraud import FraudPosterior, expected_fraud_loss_cents
from payroute.envs.world.rails import OBSERVATION_WINDOW

if TYPE_CHECKING:
    from payroute.envs.scenarios import Scenario
    from payroute.envs.world.demand import Transaction
    from payroute.envs.world.rails import RouteState
    from payroute.envs.world.world import PaymentWorld

_LOG_AMOUNT_SCALE = math.log1p(1e10)
_LOG_DEADLINE_SCALE = math.log1p(7 * DAY_S)
_LOG_LATENCY_SCALE = math.log1p(DAY_S)
_LOG_LOSS_SCALE = math.log1p(100_000.0)  # dollars


# (is_card, irrevocable) -> the kind of route a fraud loss is computed for: card, irrevocable, revocable
_LOSS_KIND = {(True, False): 0, (True, True): 0, (False, True): 1, (False, False): 2}

_NORMAL = NormalDist()
_Z_SCALE = 8.0


def signed_log_days(seconds: float) -> float:
    """A signed time span on a log scale, in [-1, 1]: sign(s) log(1 + |s|) / log(1 + 7 days), clipped.

    Seconds and days both stay visible: a card's deadline is seconds away, a payout's days.
    """
    x = math.log1p(abs(seconds)) / _LOG_DEADLINE_SCALE
    x = x if x < 1.0 else 1.0
    return x if seconds >= 0.0 else -x


def risk_z(score: float) -> float:
    """The risk score as a standard normal quantile, scaled to [-1, 1]: Phi^-1(score) / 8, clipped.

    The score is Phi(z) with z shifted by the model's separability for fraud, so the evidence it carries (the
    log likelihood ratio d' z - d'^2 / 2) is linear in z, and the odds that a payment is fraud grow by a factor
    e^(d') per unit of z. On the probability scale all of that lives in the top few hundredths (a posterior of
    1% and of 50% are scores of about 0.95 and 0.99999): the quantile spreads it out where a network can see it.
    """
    if score <= 0.0:
        return -1.0
    if score >= 1.0:
        return 1.0
    z = _NORMAL.inv_cdf(score) / _Z_SCALE
    return -1.0 if z < -1.0 else (1.0 if z > 1.0 else z)


@dataclass(frozen=True)
class Feature:
    name: str
    unit: str
    scaling: str
    low: float
    high: float


def _schema_dict(features: list[Feature]) -> list[dict]:
    return [f.__dict__ | {} for f in features]


def _networks(sc: Scenario) -> list[str]:
    return sorted(set(sc.demand.credit_networks) | set(sc.demand.debit_networks))


def transaction_features(sc: Scenario) -> list[Feature]:
    """The payment and calendar features (Risk-v0's observation, the start of Routing-v0's) of scenario ``sc``,
    in observation order: names, units, scaling and bounds depend on the scenario alone."""
    f = [Feature("log_amount", "log(1+cents)", "/ log(1+1e10)", 0.0, 1.0)]
    f += [Feature(f"segment={s}", "one-hot", "", 0.0, 1.0) for s in sc.demand.segment_mix]
    f += [Feature(f"instrument={i}", "one-hot", "", 0.0, 1.0) for i in INSTRUMENTS]
    f += [Feature(f"network={n}", "one-hot", "", 0.0, 1.0) for n in _networks(sc)]
    f += [
        Feature("cross_border", "flag", "", 0.0, 1.0),
        Feature("foreign_card", "flag", "", 0.0, 1.0),
    ]
    f += [Feature(f"urgency={u}", "one-hot", "", 0.0, 1.0) for u in URGENCIES]
    f += [
        Feature("time_to_deadline", "log(1+s)", "/ log(1+7 days)", 0.0, 1.0),
        Feature("risk_score", "probability", "", 0.0, 1.0),
        Feature("risk_z", "standard normal quantile of the score", "Phi^-1(risk_score) / 8", -1.0, 1.0),
        Feature("hour_sin", "", "sin(2 pi hour/24)", -1.0, 1.0),
        Feature("hour_cos", "", "cos(2 pi hour/24)", -1.0, 1.0),
        Feature("weekday", "Mon=0..Sun=6", "/ 6", 0.0, 1.0),
        Feature("business_day", "flag", "", 0.0, 1.0),
    ]
    return f


def routing_features(sc: Scenario) -> list[Feature]:
    """Routing-v0's observation features of scenario ``sc``, in observation order: the payment and calendar
    (:func:`transaction_features`), :attr:`RoutingFeatures.PER_ROUTE` per route in the scenario's order, then
    each prefunded account's balance; names, units, scaling and bounds depend on the scenario alone."""
    window = OBSERVATION_WINDOW
    f = transaction_features(sc)
    for name in sc.routes:
        f += [
            Feature(
                f"{name}.recent_approval", "share", f"over the last {window} outcomes (0.5 if none)", 0.0, 1.0
            ),
            Feature(f"{name}.recent_count", "outcomes", f"/ {window}", 0.0, 1.0),
            Feature(f"{name}.recent_latency", "log(1+s)", "/ log(1+1 day)", 0.0, 1.0),
            Feature(f"{name}.queue", "payments waiting", "/ capacity (or / 100), clipped to 5", 0.0, 5.0),
            Feature(f"{name}.fee_bps", "bps of amount", "/ 10,000, clipped to 10", 0.0, 10.0),
            Feature(f"{name}.time_to_cutoff", "hours", "/ 24, clipped to 1 (1 = round the clock)", 0.0, 1.0),
            Feature(f"{name}.eligible", "flag", "", 0.0, 1.0),
            Feature(
                f"{name}.deadline_slack",
                "log(1+s), signed",
                "deadline - when sent now it is done at the median latency by the published hours and"
                " windows (cards: answered; bank rails: settled); sign(s) log(1+|s|) / log(1+7 days);"
                " 0 where not eligible",
                -1.0,
                1.0,
            ),
            Feature(
                f"{name}.expected_fraud_loss",
                "log(1+$)",
                "P(fraud | risk score, the payment's instrument, urgency, corridor and amount band) x what a"
                " fraud loses on this route (cards: amount + chargeback fee; irrevocable rails: the amount; revocable:"
                " the share returns do not recover); / log(1+$100,000), clipped to 1; 0 where not eligible",
                0.0,
                1.0,
            ),
        ]
    f += [
        Feature(f"{a}.balance_to_target", "ratio", "balance / target, clipped to [-5, 5]", -5.0, 5.0)
        for a in sc.accounts
    ]
    return f


class TransactionFeatures:
    """The payment and the calendar: shared by the routing and risk observations."""

    def __init__(self, world: PaymentWorld) -> None:
        sc = world.scenario
        self.world = world
        self.segments = list(world.segments)
        self.networks = _networks(sc)
        f = transaction_features(sc)
        self.features = f
        self._seg_off = 1
        self._inst_off = self._seg_off + len(self.segments)
        self._net_off = self._inst_off + len(INSTRUMENTS)
        self._net_index = {n: i for i, n in enumerate(self.networks)}
        self._xb_off = self._net_off + len(self.networks)
        self._urg_off = self._xb_off + 2
        self._urg_index = {u: i for i, u in enumerate(URGENCIES)}
        self._inst_index = {n: i for i, n in enumerate(INSTRUMENTS)}
        self.size = len(f)
        self._cont_off = self._urg_off + len(URGENCIES)  # time to deadline, risk score and z, calendar
        self._onehots: dict[tuple, list[float]] = {}
        self._day = -1  # calendar features are the same all day: computed once per day
        self._weekday = self._business = 0.0

    def values(self, tx: Transaction, now: float) -> list[float]:
        """The features as a list of floats, in :attr:`features` order."""
        v = [0.0] * self.size
        self.write(v, tx, now)
        return v

    def write(self, v: list[float], tx: Transaction, now: float) -> None:
        """Write the features into the list ``v``, at ``v[: self.size]``."""
        key = (tx.segment, tx.instrument, tx.network, tx.cross_border, tx.foreign_card, tx.urgency)
        onehots = self._onehots.get(key)
        if onehots is None:
            onehots = self._onehots[key] = self._categorical(tx)
        v[: self.size] = onehots
        x = math.log1p(tx.amount_cents) / _LOG_AMOUNT_SCALE
        v[0] = x if x < 1.0 else 1.0
        k = self._cont_off
        left = tx.deadline_t - now
        x = math.log1p(left) / _LOG_DEADLINE_SCALE if left > 0.0 else 0.0
        v[k] = x if x < 1.0 else 1.0
        v[k + 1] = tx.risk_score
        v[k + 2] = risk_z(tx.risk_score)
        day = int(now // DAY_S)
        if day != self._day:
            self._day = day
            cal = self.world.calendar
            self._weekday = cal.weekday(now) / 6.0
            self._business = 1.0 if cal.is_business_day(day) else 0.0
        angle = 2.0 * math.pi * (now - day * DAY_S) / DAY_S
        v[k + 3] = math.sin(angle)
        v[k + 4] = math.cos(angle)
        v[k + 5] = self._weekday
        v[k + 6] = self._business

    def _categorical(self, tx: Transaction) -> list[float]:
        """The one-hots and flags of ``tx`` (every other feature 0): the same for many payments, so cached."""
        v = [0.0] * self.size
        v[self._seg_off + tx.segment] = 1.0
        v[self._inst_off + self._inst_index[tx.instrument]] = 1.0
        net = self._net_index.get(tx.network)
        if net is not None:
            v[self._net_off + net] = 1.0
        if tx.cross_border:
            v[self._xb_off] = 1.0
        if tx.foreign_card:
            v[self._xb_off + 1] = 1.0
        urg = self._urg_index.get(tx.urgency)
        if urg is not None:
            v[self._urg_off + urg] = 1.0
        return v

    def fill(self, out: np.ndarray, tx: Transaction, now: float) -> None:
        """Write the features into ``out[: self.size]``."""
        out[: self.size] = self.values(tx, now)


class RoutingFeatures:
    """The routing observation: payment, calendar, per-route view, prefunded balances."""

    PER_ROUTE = (
        "recent_approval",
        "recent_count",
        "recent_latency",
        "queue",
        "fee_bps",
        "time_to_cutoff",
        "eligible",
        "deadline_slack",
        "expected_fraud_loss",
    )

    def __init__(self, world: PaymentWorld) -> None:
        self.world = world
        self.tx_features = TransactionFeatures(world)
        self.routes = world.routes
        self.accounts = list(world.accounts.values())
        f = routing_features(world.scenario)
        self.features = f
        self.size = len(f)
        n = len(self.routes)
        width = len(self.PER_ROUTE)
        self._bits = np.arange(n, dtype=np.int64)
        # the observation as a list, kept between builds: the payment's features, then PER_ROUTE values per
        # route from offset ``base``, then the accounts' balances from offset ``self._acct_off``
        base = self.tx_features.size
        self._vec = [0.0] * self.size
        for i in range(n):
            self._vec[base + i * width + 5] = 1.0  # round-the-clock routes: no cut-off
        self._acct_off = base + n * width
        self._pack = struct.Struct(f"={self.size}f").pack
        self._base = base
        self._versions = [-1] * n
        # routes that reported an outcome since the last build (all of them at first): only their recent
        # approval, count and latency need computing again
        self._stale = set(range(n))
        world.outcome_listeners.append(self._on_outcome)
        # (route, its first slot in the observation, ...) for the loops of build()
        self._queue_slots = [
            (r, base + i * width + 3, r.spec.capacity or 100)
            for i, r in enumerate(self.routes)
            if r.slots is not None
        ]
        self._queue_seen = -1
        self._timed = [r.index for r in self.routes if r.windows or r.hours_rule is not None]
        self._cut_slots = [(i, base + i * width + 5) for i in self._timed]
        self._cut_at = [math.inf] * n
        self._cut_valid = [-math.inf] * n
        self._cut_valid_min = -math.inf if self._timed else math.inf
        self._width = width
        self._last_eligible: list[int] = []
        # eligible mask -> ((index, route, first slot, loss kind) of each eligible route, their first slots, the
        # eligible routes)
        self._eligible_slots: dict[int, tuple[list[tuple[int, RouteState, int, int]], list[int], list]] = {}
        self._balances = world.ledger.balances
        self._account_keys = [(k, a.key, a.target or 1) for k, a in enumerate(self.accounts, self._acct_off)]
        self._mask_cache: dict[int, np.ndarray] = {}
        self.last_tx: Transaction | None = None
        self.last_now = -math.inf
        self.last_routes: list[RouteState] = []
        self.last_done_times: list[float] = [0.0] * n
        # the risk desk's posterior P(fraud | score, cell), with the base rates of this world's payments so far
        self._posterior = FraudPosterior()
        self._p_fraud = (0.0, 0.0)
        self.last_costs: list[int] = [0] * n
        self.low = np.array([x.low for x in f], dtype=np.float32)
        self.high = np.array([x.high for x in f], dtype=np.float32)
        self.names = [x.name for x in f]

    def schema(self) -> list[dict]:
        return _schema_dict(self.features)

    def build(self, tx: Transaction, now: float, tail: bytes = b"") -> np.ndarray:
        """The observation of ``tx`` at ``now`` (float32, :attr:`names` order), followed by the float32 values
        packed in ``tail`` (the retry part of a router's observation with retries on: one array, no concatenation).

        As a by-product, ``last_tx`` is ``tx``, ``last_now`` is ``now``, ``last_routes`` its eligible routes,
        ``last_costs`` its cost in cents on each route and ``last_done_times`` when each route would get it done
        (:meth:`~payroute.envs.world.rails.RouteState.expected_done_time`; both by route index, 0 where it is not
        eligible): a caller that reports costs or values the routes for the same payment at the same instant (the
        info, the route baseline of a trainer's credit) need not ask the routes again.
        """
        vec = self._vec
        # recent approval, count and latency change only when a route reports an outcome
        stale = self._stale
        if stale:
            versions, routes, width, base = self._versions, self.routes, self._width, self._base
            for i in stale:
                r = routes[i]
                if r.stats_version != versions[i]:
                    versions[i] = r.stats_version
                    n = r.recent_count
                    j = base + i * width
                    vec[j] = r.recent_approved / n if n else 0.5
                    vec[j + 1] = n / r.window
                    mean_latency = r.recent_latency_sum / n if n else r.latency_median_s
                    vec[j + 2] = min(math.log1p(mean_latency) / _LOG_LATENCY_SCALE, 1.0)
            stale.clear()
        if self.world.queue_version != self._queue_seen:  # a queue changed since the last build
            self._queue_seen = self.world.queue_version
            for r, j, cap in self._queue_slots:
                waiting = r.in_queue
                vec[j] = min(waiting / cap, 5.0) if waiting else 0.0
        cut_at = self._cut_at
        if now >= self._cut_valid_min:
            cut_valid, routes = self._cut_valid, self.routes
            for i in self._timed:
                if now >= cut_valid[i]:
                    cut_at[i], cut_valid[i] = routes[i].next_cutoff(now)
            self._cut_valid_min = min(cut_valid[i] for i in self._timed)
        for i, j in self._cut_slots:
            days = (cut_at[i] - now) / DAY_S  # clipped to [0, 1]
            vec[j] = (days if days < 1.0 else 1.0) if days > 0.0 else 0.0
        # this payment's cost and eligibility: clear the last payment's eligible routes, fill this one's
        for j in self._last_eligible:
            vec[j + 4] = 0.0
            vec[j + 6] = 0.0
            vec[j + 7] = 0.0
            vec[j + 8] = 0.0
        mask = tx.eligible_mask
        known = self._eligible_slots.get(mask)
        if known is None:
            slots = [
                (i, r, self._base + i * self._width, _LOSS_KIND[r.is_card, r.irrevocable])
                for i, r in enumerate(self.routes)
                if (mask >> i) & 1
            ]
            known = self._eligible_slots[mask] = (slots, [slot[2] for slot in slots], [s[1] for s in slots])
        slots, self._last_eligible, routes = known
        amount = tx.amount_cents
        deadline = tx.deadline_t
        world = self.world
        if tx is not self.last_tx:  # each payment joins its cell's fraud history once (a retry has joined it)
            self._p_fraud = self._posterior(world, tx, tx.retry is None)
        p_fraud, recovery = self._p_fraud
        costs = [0] * len(self.routes)
        done_times = [0.0] * len(self.routes)
        # what fraud loses depends only on the kind of route (card, irrevocable, revocable): once per kind
        losses = [-1.0, -1.0, -1.0]
        for i, r, j, kind in slots:
            cost = costs[i] = r.cost_cents(tx)
            share = cost / amount
            vec[j + 4] = share if share < 10.0 else 10.0
            vec[j + 6] = 1.0
            done = done_times[i] = r.expected_done_time(now)
            vec[j + 7] = signed_log_days(deadline - done)
            loss = losses[kind]
            if loss < 0.0:
                usd = expected_fraud_loss_cents(world, tx, r, p_fraud, recovery) / 100.0
                loss = losses[kind] = min(math.log1p(usd) / _LOG_LOSS_SCALE, 1.0)
            vec[j + 8] = loss
        self.last_tx, self.last_now, self.last_routes = tx, now, routes
        self.last_costs, self.last_done_times = costs, done_times
        self.tx_features.write(vec, tx, now)
        balances = self._balances
        for k, key, target in self._account_keys:
            ratio = balances.get(key, 0) / target  # clipped to [-5, 5]
            vec[k] = (ratio if ratio < 5.0 else 5.0) if ratio > -5.0 else -5.0
        # packed to float32 by struct and wrapped, writable, without a copy: cheaper than np.array or np.fromiter
        # from a list (the same rounding; every feature is clipped far inside float32's range)
        packed = bytearray(self._pack(*vec))
        if tail:
            packed += tail
        return np.frombuffer(packed, np.float32)

    def _on_outcome(self, tx: Transaction, route: RouteState, approved: bool, reason: str) -> None:
        self._stale.add(route.index)

    def mask(self, tx: Transaction) -> np.ndarray:
        """The eligible-route mask of ``tx`` as int8 (1 = eligible), in route order (a new array)."""
        bits = tx.eligible_mask
        cached = self._mask_cache.get(bits)
        if cached is None:
            cached = self._mask_cache[bits] = ((bits >> self._bits) & 1).astype(np.int8)
        return cached.copy()
