"""The payment world: a PSP's day of payments as a SimPy simulation.

Scenario: a payment service provider accepts card payments for merchants (through card processors) and sends
bank payouts for customers (ACH, Fedwire, RTP, FedNow, a cross-border corridor). Customers arrive, see a
price (within the regulatory caps), and some walk away or pay with a cheaper method they also have; a segment
that is overcharged day after day loses customers (:mod:`payroute.envs.world.customers`). The risk desk allows, challenges or blocks each payment on a noisy risk score.
The router picks a route among the eligible ones. The route takes its time (queues form when it is busy),
approves or declines by the payer's segment, or fails when its hidden health is bad. Prefunded rails draw
on a settlement account, which may be short: then the payment waits, borrows priced intraday credit, or
fails. Approved card payments settle in the processor's batch a day or two later; bank payouts settle when
their rail settles (ACH at its window). Fraud that got through surfaces days later as a chargeback, a return,
or a reimbursement. Treasury moves money between accounts, which takes time and costs.

The fraudster keeps its own books (``world.fraudster``, a :class:`~payroute.envs.world.fraud.FraudsterBook`):
what it makes on approved attacks and what attacking costs it; that money is not the PSP's and never enters
its ledger.

Every transaction ends in exactly one terminal state (``settled``, ``declined``, ``failed``, ``expired``,
``blocked``, ``abandoned``), so at every instant ``arrivals == sum(terminal) + in_flight``; every money
movement is a balanced posting in the :class:`~payroute.envs.world.ledger.Ledger`.

Randomness: one ``SeedSequence(seed)`` spawns one generator per component, in a fixed order. Demand (arrivals,
attributes, hidden truth, the per-transaction uniforms behind approval, abandonment, challenge, latency and
discovery) never depends on what policies do, so two policies on one seed are compared on the same customers.
Churn thins arrivals with a uniform drawn for every potential arrival from a side stream (as is the draw behind
switching methods), so at different prices the customers who still come are the same ones.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import numpy as np
import simpy

from payroute.envs.scenarios.schema import FAMILIES, URGENCIES, Scenario, hhmm_to_s
from payroute.envs.world.clock import DAY_S, HOUR_S, YEAR_S, Calendar
from payroute.envs.world.customers import CustomerModel, QuoteStats
from payroute.envs.world.decisions import (
    ALLOW,
    BLOCK,
    CHALLENGE,
    RISK_ACTIONS,
    DecisionHub,
    FraudAction,
    InvalidActionError,
    TreasuryAction,
)
from payroute.envs.world.demand import LegitimateDemand, Transaction, TransactionFactory
from payroute.envs.world.eventlog import EventLog
from payroute.envs.world.fraud import FraudsterBook, FraudStreams
from payroute.envs.world.ledger import Ledger, SettlementAccountState
from payroute.envs.world.prices import CompetitorProcess, PriceBook
from payroute.envs.world.rails import DEGRADED, DOWN, HEALTH_NAMES, RouteState
from payroute.vocabulary import TERMINAL_STATES

FAMILY_INDEX = {f: i for i, f in enumerate(FAMILIES)}
_RNG_STREAMS = ("demand", "fraud", "inflows", "health", "policy")
# side streams spawned by key, so adding them left every stream above unchanged
_CUSTOMER_STREAM, _COMPETITOR_STREAM = 2000, 2001


class PaymentWorld:
    """One episode of the payment world.

    Args:
        scenario: the resolved scenario.
        seed: the episode seed; everything random derives from ``SeedSequence(seed)``.
        policies: decision kind -> bound policy, or ``None`` for a kind answered from outside
            (:meth:`run_until_decision` hands those back). Kinds left out get no decisions: ``route`` and
            ``risk`` must be present; ``price``/``treasury``/``fraud`` default to the scenario's list prices,
            no treasury action and the scripted fraud mix.
        days: days of arrivals; afterwards the world drains (see ``drain``).
        log: an :class:`EventLog` to record every outcome and decision, or ``None``.
        drain: after the last arrival keep the clock running until every transaction has ended and every
            chargeback and return has arrived (periodic processes stop), so KPIs are complete.
        agent_ids: names of the agents per decision kind (defaults: router, risk, pricer, treasury, fraudster).
        reward_split: how a payment's money is credited to the agents that decided on it (``full`` or
            ``shared``; see :meth:`_attribute`).
    """

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        policies: dict[str, Any],
        days: float = 1,
        log: EventLog | None = None,
        drain: bool = True,
        agent_ids: dict[str, str] | None = None,
        reward_split: str = "full",
    ) -> None:
        if "route" not in policies or "risk" not in policies:
            raise ValueError("policies must say who answers 'route' and 'risk' (a bound policy or None)")
        if days <= 0:
            raise ValueError(f"days must be > 0, got {days}")
        if reward_split not in ("full", "shared"):
            raise ValueError(f"reward_split must be 'full' or 'shared', got {reward_split!r}")
        self.reward_split = reward_split
        self.scenario = scenario
        self.seed = int(seed)
        self.days = days
        self.horizon_s = float(days * DAY_S)
        self.drain = drain
        self.log = log
        self.env = simpy.Environment()
        self.calendar = Calendar(scenario.start_date, scenario.base_utc_offset_h, scenario.extra_holidays)
        seq = np.random.SeedSequence(self.seed)
        children = seq.spawn(len(_RNG_STREAMS) + len(scenario.routes))
        self.rngs = {name: np.random.default_rng(children[i]) for i, name in enumerate(_RNG_STREAMS)}
        self.hub = DecisionHub(self.env, policies, agent_ids or {}, world=self)
        self.policies = self.hub.bound

        # the world's parts
        self.ledger = Ledger()
        self.factory = TransactionFactory(scenario, self.calendar)
        self.segments = self.factory.segments
        self.demand = LegitimateDemand(scenario, self.calendar, self.factory)
        self.fraud = FraudStreams(scenario, self.factory)
        self.price_book = PriceBook(scenario.prices)
        self.customers = CustomerModel(
            scenario.customers, self.price_book, self.factory.debit_nets, len(self.segments)
        )
        self.quote_stats = QuoteStats(len(self.segments))
        self.competitor = CompetitorProcess(scenario.prices.competitor, self._side_rng(_COMPETITOR_STREAM))
        self._customer_rng = self._side_rng(_CUSTOMER_STREAM)
        fee_mult = {fc.route: fc.multiplier for fc in scenario.fee_changes}
        self.routes: list[RouteState] = [
            RouteState(
                i, name, spec, self.env, self.calendar, self.segments, scenario.interchange,
                fee_mult.get(name, 1.0), np.random.default_rng(children[len(_RNG_STREAMS) + i]),
            )
            for i, (name, spec) in enumerate(scenario.routes.items())
        ]  # fmt: skip
        self.route_index = {r.name: r.index for r in self.routes}
        self.accounts = {
            name: SettlementAccountState(name, spec, self.ledger, self.env)
            for name, spec in scenario.accounts.items()
        }
        for r in self.routes:
            r.account = self.accounts[r.prefunded_account] if r.prefunded_account else None
            r.unsettled = deque()
            r.settling = False  # is the route's batch settlement process running
        self._static_eligible: dict[tuple[str, bool, str], list[RouteState]] = {}

        # decisions in force
        self.price_multipliers = np.ones((len(self.segments), len(FAMILIES)))
        self._price_lists = {family: scenario.prices.for_family(family) for family in FAMILIES}
        self.fraud_intensity = np.ones(len(self.fraud.pattern_names))
        self.fraud_amount_multiplier = np.ones(len(self.fraud.pattern_names))
        # the fraudster's own money and view of its attacks (never part of the PSP's ledger)
        self.fraudster = FraudsterBook(scenario, self.fraud.pattern_names)

        # accounting of outcomes
        self.next_id = 0
        self.arrivals = 0
        self.live: dict[int, Transaction] = {}
        self.terminal: Counter[str] = Counter({s: 0 for s in TERMINAL_STATES})
        self.post_settlement: Counter[str] = Counter()
        self.totals: Counter[str] = Counter()
        self.agent_margin: Counter[str] = Counter()
        self.by_hour_attempts = np.zeros(24, dtype=np.int64)
        self.by_hour_approved = np.zeros(24, dtype=np.int64)
        self.route_counts = Counter()
        # +1 whenever a payment joins or leaves a route's queue (observers skip re-reading unchanged queues)
        self.queue_version = 0
        self.arrivals_open = True
        self.on_hour: Callable[[PaymentWorld], None] | None = None
        # called as listener(tx, route, approved, reason) when a route answers; bound policies that learn
        # from outcomes (success-rate routing, bandits) subscribe here in their bind()
        self.outcome_listeners: list[Callable[[Transaction, RouteState, bool, str], None]] = [
            self.fraudster.on_outcome
        ]
        # called as listener(tx) when a transaction reaches its terminal state
        self.terminal_listeners: list[Callable[[Transaction], None]] = [self.fraudster.on_terminal]
        self._opportunity_carry: dict[str, float] = {name: 0.0 for name in self.accounts}
        self._delay_carry: dict[str, float] = {name: 0.0 for name in self.accounts}

        prices_active = self.hub.answers("price")
        self._pricing_agents: tuple[str, ...] = (self.hub.agent_ids["price"],) if prices_active else ()
        for policy in self.policies.values():
            bind = getattr(policy, "bind", None)
            if bind is not None:
                bind(self)
        self._start()

    # ================================================================== set-up
    def _start(self) -> None:
        env = self.env
        for name, acct in self.accounts.items():
            opening = acct.spec.opening_balance_cents
            self.ledger.transfer(0.0, "opening", acct.key, "equity", opening)
            self._log_account(name, "opening", opening)
        env.process(self._legit_arrivals())
        env.process(self._fraud_arrivals())
        env.process(self._clock())
        for r in self.routes:
            env.process(r.drift_process(self._is_open))
            env.process(r.health_process(self._is_open))
            if r.is_card:
                self._start_card_settlement(r)
        for inc in self.scenario.incidents:
            r = self.routes[self.route_index[inc.route]]
            start = inc.day * DAY_S + hhmm_to_s(inc.at)
            env.process(
                r.incident_process(start, inc.duration_min * 60.0, DOWN if inc.state == "down" else DEGRADED)
            )
        for name, acct in self.accounts.items():
            if acct.spec.inflow.per_hour > 0:
                env.process(self._inflows(name, acct))
        if self.accounts:
            env.process(self._treasury_and_liquidity())
        if self.hub.answers("price"):
            env.process(self._pricing())
            env.process(self._customer_churn())

    def _is_open(self) -> bool:
        return self.arrivals_open

    def _side_rng(self, key: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(key,)))

    def policy_rng(self, kind: str) -> np.random.Generator:
        """A generator for a bound policy's own randomness (exploration), independent of demand."""
        seq = np.random.SeedSequence(
            self.seed, spawn_key=(1000 + ["route", "risk", "price", "treasury", "fraud"].index(kind),)
        )
        return np.random.default_rng(seq)

    # ================================================================== running
    def run(self, until: float | None = None) -> None:
        """Run with bound policies only (raises if an outside decision is needed)."""
        stop = until if until is not None else math.inf
        peek, step, pending = self.env.peek, self.env.step, self.hub.pending
        with _fewer_collections():
            if not self.hub.external:  # no decision can wait for an outside agent: the tight loop
                while (t := peek()) != math.inf and t <= stop:
                    step()
                return
            while (t := peek()) != math.inf and t <= stop:
                step()
                if pending:
                    raise RuntimeError(
                        f"an outside agent must answer a {pending[0].kind!r} decision: "
                        "use run_until_decision() or bind a policy to it"
                    )

    def run_until_decision(self, until: float | None = None):
        """Step the simulation until an outside decision is pending (returned) or the episode ends (``None``)."""
        stop = until if until is not None else math.inf
        peek, step, pending = self.env.peek, self.env.step, self.hub.pending
        inf = math.inf
        while not pending:
            t = peek()
            if t == inf or t > stop:
                return None
            step()
        return pending.pop(0)

    @property
    def now(self) -> float:
        return self.env.now

    @property
    def done(self) -> bool:
        return self.env.peek() == math.inf and not self.hub.pending

    @property
    def in_flight(self) -> int:
        return len(self.live)

    # ================================================================== processes
    def _clock(self):
        """Marks the hours (progress) and closes arrivals at the horizon."""
        hours = math.ceil(self.horizon_s / HOUR_S)
        for _ in range(hours):
            yield self.env.timeout(min(HOUR_S, self.horizon_s - self.env.now))
            if self.on_hour is not None:
                self.on_hour(self)
        self.arrivals_open = False

    def _arrive(self, cols: dict, i: int, is_fraud: bool, pattern: str):
        tx = self.factory.make(cols, i, is_fraud, pattern)
        if not is_fraud:
            tx.u_switch = float(cols["u_switch"][i])
        tx.id = self.next_id
        self.next_id += 1
        self.arrivals += 1
        self.live[tx.id] = tx
        if is_fraud:
            self.fraudster.attempt(tx)
        return self._admit(tx)

    def _legit_arrivals(self):
        rng = self.rngs["demand"]
        env = self.env
        horizon = self.horizon_s
        hours = math.ceil(horizon / HOUR_S)
        stats = self.quote_stats
        for h in range(hours):
            arrays = self.demand.hour_block(rng, h)
            # two uniforms for every potential arrival, whatever happens to it: staying (churn), switching
            u_stay, arrays["u_switch"] = self._customer_rng.random((2, len(arrays["t"])))
            u_stay = u_stay.tolist()
            cols = _as_lists(arrays)
            segments = cols["segment"]
            for i, t in enumerate(cols["t"]):
                if t >= horizon:
                    return
                if t > env.now:
                    yield env.timeout(t - env.now)
                seg = segments[i]
                stats.potential[seg] += 1
                kept = self.demand.segment_multiplier
                if kept is not None and u_stay[i] >= kept[seg]:
                    stats.churned[seg] += 1  # this customer has left us (churn): they never arrive
                    continue
                yield from self._arrive(cols, i, False, "")

    def _fraud_arrivals(self):
        rng = self.rngs["fraud"]
        env = self.env
        period_h = max(1, self.scenario.fraud_period_s // HOUR_S)
        hours = math.ceil(self.horizon_s / HOUR_S)
        for h in range(hours):
            if env.now < h * HOUR_S:
                yield env.timeout(h * HOUR_S - env.now)
            if h % period_h == 0:
                self.fraudster.new_period()
                yield from self._decide_fraud()
            events = []
            blocks = self.fraud.hour_blocks(rng, h, self.fraud_intensity, self.fraud_amount_multiplier)
            for pattern, arrays in blocks:
                cols = _as_lists(arrays)
                events.extend((t, pattern, cols, i) for i, t in enumerate(cols["t"]))
            events.sort(key=lambda e: (e[0], e[1]))
            for t, pattern, cols, i in events:
                if t >= self.horizon_s:
                    return
                if t > env.now:
                    yield env.timeout(t - env.now)
                yield from self._arrive(cols, i, True, pattern)

    def _decide_fraud(self):
        kind = "fraud"
        if not self.hub.answers(kind):
            return
        action, prop = yield from self.hub.ask(
            kind, None, shown=self, info={"patterns": self.fraud.pattern_names}
        )
        n = len(self.fraud_intensity)
        if isinstance(action, FraudAction):
            intensity = np.asarray(action.intensity, dtype=float).reshape(-1)
            amount = np.ones(n) if action.amount_multiplier is None else action.amount_multiplier
            amount = np.asarray(amount, dtype=float).reshape(-1)
            logged = {"intensity": intensity, "amount_multiplier": amount}
        else:
            intensity, amount, logged = np.asarray(action, dtype=float).reshape(-1), np.ones(n), action
        if (
            intensity.shape != (n,)
            or amount.shape != (n,)
            or not np.all(np.isfinite(intensity))
            or not np.all(np.isfinite(amount))
            or np.any(intensity < 0)
            or np.any(amount <= 0)
        ):
            raise InvalidActionError(
                f"fraud action must be {n} finite intensities >= 0 (and {n} amount multipliers > 0), "
                f"one per pattern {list(self.fraud.pattern_names)}; got {action!r}"
            )
        self.fraud_intensity = intensity
        self.fraud_amount_multiplier = amount
        self._log_decision(kind, logged, prop)

    # ------------------------------------------------------------------ one payment
    def price_for(self, tx: Transaction, multiplier: float | None = None) -> int:
        """What the PSP charges for ``tx`` at a multiplier of its list price (the one in force by default),
        within the scenario's regulatory caps whatever the multiplier."""
        if multiplier is None:
            multiplier = self.price_multipliers[tx.segment, FAMILY_INDEX[tx.family]]
        return self.price_book.price(
            tx.family, tx.instrument, tx.network, tx.urgency, tx.amount_cents, multiplier
        )

    def offer(self, tx: Transaction):
        """The quote for ``tx`` at the prices in force and how its payer answers it (probabilities)."""
        f = FAMILY_INDEX[tx.family]
        return self.customers.offer(
            tx.family, tx.instrument, tx.network, tx.urgency, tx.amount_cents,
            self.price_multipliers[tx.segment, f], self.competitor.multipliers[f],
        )  # fmt: skip

    def abandon_probability(self, tx: Transaction) -> float:
        """Probability the payer of ``tx`` walks away at the prices in force."""
        return self.offer(tx).p_abandon

    def _quote(self, tx: Transaction) -> bool:
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
            self._terminate(tx, "abandoned", "price")
            return False
        if offer.p_switch > 0.0 and tx.u_switch * (1.0 - offer.p_abandon) < offer.p_switch:
            alt = offer.alternative
            stats.switched[cell] += 1
            tx.instrument, tx.network, tx.price_cents = alt.instrument, alt.network, offer.alt_price_cents
            if alt.urgency != tx.urgency:
                tx.urgency = alt.urgency
                tx.deadline_t = tx.t_arrival + self.factory.deadline_by_urgency[URGENCIES.index(alt.urgency)]
        return True

    def eligible_routes(self, tx: Transaction) -> list[RouteState]:
        """Routes that may carry ``tx`` now: instrument, corridor, currency, limit, hours, liquidity."""
        key = (tx.instrument, tx.cross_border, tx.currency)
        static = self._static_eligible.get(key)
        if static is None:
            corridor = "cross_border" if tx.cross_border else "domestic"
            static = [
                r for r in self.routes
                if tx.instrument in r.instruments and corridor in r.corridors and tx.currency in r.currencies
            ]  # fmt: skip
            self._static_eligible[key] = static
        now = self.env.now
        out = []
        for r in static:
            if r.limit_cents is not None and tx.amount_cents > r.limit_cents:
                continue
            if r.hours_rule is not None and not r.accepts_now(now):
                continue
            acct = r.account
            if acct is not None and acct.when_short == "fail" and not acct.can_cover(tx.amount_cents):
                continue
            out.append(r)
        return out

    def _admit(self, tx: Transaction):
        """Price, risk and route decisions (no simulated time passes), then hand the payment to its route."""
        hub = self.hub
        if tx.is_fraud:
            tx.price_cents = self.price_for(tx)
        elif not self._quote(tx):
            return

        # risk
        action, prop = yield from hub.ask("risk", tx)
        if action not in (ALLOW, CHALLENGE, BLOCK):
            raise InvalidActionError(
                f"risk action must be 0 (allow), 1 (challenge) or 2 (block), got {action!r}"
            )
        tx.risk_action = int(action)
        tx.risk_propensity = prop
        tx.agents = (*self._pricing_agents, hub.agent_ids["risk"])
        if action == BLOCK:
            self._terminate(tx, "blocked", "risk")
            return
        if action == CHALLENGE:
            cost = self.scenario.risk.challenge_cost_cents
            self._book(tx, "challenge_cost", cost, "bank:operating")
            if tx.is_fraud:
                if tx.u_challenge >= self.scenario.fraud.patterns[tx.pattern].challenge_pass_probability:
                    self._terminate(tx, "blocked", "challenge_failed")
                    return
            elif tx.u_challenge < self.scenario.risk.challenge_abandon_probability:
                self._terminate(tx, "abandoned", "challenge")
                return

        # route
        eligible = self.eligible_routes(tx)
        mask = 0
        for r in eligible:
            mask |= 1 << r.index
        tx.eligible_mask = mask
        if not eligible:
            self._terminate(tx, "failed", "no_route")
            return
        action, prop = yield from hub.ask("route", (tx, eligible), shown=tx, info={"eligible": eligible})
        tx.agents = (*tx.agents, hub.agent_ids["route"])
        action = int(action)
        if action == -1 and hub.is_external("route"):
            # an outside router that cannot mask chose an ineligible route: the payment is declined
            self._terminate(tx, "declined", "invalid_action")
            return
        if not (0 <= action < len(self.routes)) or not (mask >> action) & 1:
            raise InvalidActionError(
                f"route {action} is not eligible for transaction {tx.id}; eligible: {[r.index for r in eligible]}"
            )
        tx.route = action
        tx.route_propensity = prop
        route = self.routes[action]
        self.route_counts[route.name] += 1
        self.env.process(self._send(tx, route))

    def _send(self, tx: Transaction, route: RouteState):
        """The payment on its route: hours, liquidity, capacity, latency, outcome, settlement."""
        env = self.env
        route.count_submission(tx.month_key)
        if route.hours_rule is not None and not route.is_open(env.now):
            opens = route.next_open_time(env.now)
            if opens > tx.deadline_t:
                yield env.timeout(max(tx.deadline_t - env.now, 0.0))
                self._expire(tx, "closed")
                return
            yield env.timeout(opens - env.now)

        acct = route.account
        if acct is not None:
            if not acct.can_cover(tx.amount_cents):
                if acct.when_short == "queue" or acct.when_short == "credit":
                    funded = env.event()
                    acct.waiters.append((tx, funded))
                    acct.queue_change(tx.amount_cents, env.now)
                    wait = max(tx.deadline_t - env.now, 0.0)
                    yield funded | env.timeout(wait)
                    if not funded.triggered:
                        acct.queue_change(-tx.amount_cents, env.now)
                        self._count_liquidity_failure(tx)
                        self._expire(tx, "liquidity")  # its waiter entry is dropped when it reaches the head
                        acct.wake_waiters(self._fund_waiter)
                        return
                else:
                    self._count_liquidity_failure(tx)
                    self._terminate(tx, "failed", "liquidity")
                    return
            else:
                self._draw(tx, acct)

        slots = route.slots
        if slots is not None:
            turn = slots.take()
            if turn is not None:  # every slot busy: wait in line
                route.in_queue += 1
                self.queue_version += 1
                yield turn
                route.in_queue -= 1
                self.queue_version += 1
            latency = route.latency_s(tx.z_latency)
            yield env.timeout(latency)
            slots.give_back()
        else:
            latency = route.latency_s(tx.z_latency)
            yield env.timeout(latency)
        tx.latency_s = env.now - tx.t_arrival

        approved, why = route.answer(tx)
        route.observe(approved, tx.latency_s)
        for listener in self.outcome_listeners:
            listener(tx, route, approved, why)
        hour = int((tx.t_arrival % DAY_S) // HOUR_S)
        self.by_hour_attempts[hour] += 1
        if tx.family == "card" and env.now > tx.deadline_t:
            self._sla_miss(tx)
        if not approved:
            if acct is not None:
                self._undraw(tx, acct)
            self._terminate(tx, "failed" if why != "declined" else "declined", why)
            return
        self.by_hour_approved[hour] += 1
        self.totals["approved"] += 1
        cost = route.cost_cents(tx)
        if route.is_card:
            # accrual: the processor owes us the amount less its cost; we owe the merchant the amount less our fee
            rec = f"receivable:{route.name}"
            self.ledger.post(
                env.now, "card_capture",
                (rec, tx.amount_cents - cost), ("merchant_payable", -(tx.amount_cents - tx.price_cents)),
                ("fee_revenue", -tx.price_cents), ("route_cost", cost),
            )  # fmt: skip
            self._attribute(tx, "revenue_cents", tx.price_cents)
            self._attribute(tx, "route_cost_cents", -cost)
            route.unsettled.append((env.now + route.spec.settlement_delay_s, tx, cost))
            if not route.settling:  # the batch process ended with the queue empty after arrivals closed
                self._start_card_settlement(route)
            return
        # bank payout: settles when the rail settles (ACH at its window)
        settle_at = route.settlement_time(env.now)
        if settle_at > env.now:
            yield env.timeout(settle_at - env.now)
        self.ledger.post(
            env.now, "payout_settled",
            ("payouts_in_flight", -tx.amount_cents), ("customer_funds", tx.amount_cents + tx.price_cents),
            ("fee_revenue", -tx.price_cents),
        )  # fmt: skip
        self.ledger.transfer(env.now, "route_fee", "route_cost", "bank:operating", cost)
        self._attribute(tx, "revenue_cents", tx.price_cents)
        self._attribute(tx, "route_cost_cents", -cost)
        tx.t_settled = env.now
        if env.now > tx.deadline_t:
            self._sla_miss(tx)
        self.totals["settled_value_cents"] += tx.amount_cents
        self._terminate(tx, "settled", "")
        if tx.is_fraud:
            self._schedule_discovery(tx, route)

    def _start_card_settlement(self, route: RouteState) -> None:
        route.settling = True
        self.env.process(self._card_settlement(route))

    def _card_settlement(self, route: RouteState):
        """The processor pays out its batch on every hour for captures whose settlement delay has passed."""
        env = self.env
        q = route.unsettled
        while self.arrivals_open or q or self.hub.pending:
            yield env.timeout((math.floor(env.now / HOUR_S) + 1) * HOUR_S - env.now)
            total = 0
            while q and q[0][0] <= env.now:
                _, tx, cost = q.popleft()
                total += tx.amount_cents - cost
                tx.t_settled = env.now
                self.totals["settled_value_cents"] += tx.amount_cents
                self._terminate(tx, "settled", "")
                if tx.is_fraud:
                    self._schedule_discovery(tx, route)
            if total:
                self.ledger.transfer(
                    env.now, "card_settlement", "bank:operating", f"receivable:{route.name}", total
                )
        route.settling = False

    # ------------------------------------------------------------------ liquidity
    def _seconds_to_close(self) -> float:
        t = self.env.now
        return (math.floor(t / DAY_S) + 1) * DAY_S - t

    def _count_liquidity_failure(self, tx: Transaction) -> None:
        """A payment that ended for lack of funds: counted with the service-level cost of failing it."""
        self.totals["liquidity_failures"] += 1
        self.totals["liquidity_failure_cost_cents"] += self.scenario.service_level.penalty_cents.get(
            tx.family, 0
        )

    def _draw(self, tx: Transaction, acct: SettlementAccountState) -> None:
        """Funds leave the settlement account when the payout is submitted (credit priced if it overdraws)."""
        cost = acct.overdraft_cost_cents(tx.amount_cents, self._seconds_to_close())
        self.ledger.transfer(self.env.now, "payout_submit", "payouts_in_flight", acct.key, tx.amount_cents)
        acct.paid_out_cents += tx.amount_cents
        # the price of credit is paid from the operating account: drawn on the settlement account it would
        # take the balance past its credit line
        self._book(tx, "liquidity_cost", cost, "bank:operating")

    def _undraw(self, tx: Transaction, acct: SettlementAccountState) -> None:
        self.ledger.transfer(self.env.now, "payout_reversed", acct.key, "payouts_in_flight", tx.amount_cents)
        acct.paid_out_cents -= tx.amount_cents
        acct.wake_waiters(self._fund_waiter)

    def _fund_waiter(self, tx: Transaction, acct: SettlementAccountState) -> None:
        self._draw(tx, acct)

    def _inflows(self, name: str, acct: SettlementAccountState):
        """Incoming payments for our customers credit the account (Poisson, lognormal amounts)."""
        rng = self.rngs["inflows"]
        spec = acct.spec.inflow
        env = self.env
        h = 0
        while self.arrivals_open:
            day = h // 24
            rate = spec.per_hour
            if spec.only_business_hours and not (self.calendar.is_business_day(day) and 8 <= h % 24 < 18):
                rate = 0.0
            n = int(rng.poisson(rate))
            times = np.sort(h * HOUR_S + rng.random(n) * HOUR_S)
            amounts = np.maximum(
                1, np.rint(spec.median_cents * np.exp(spec.sigma * rng.standard_normal(n)))
            ).astype(np.int64)
            for t, amount in zip(times, amounts, strict=True):
                if t >= self.horizon_s:
                    return
                yield env.timeout(float(t) - env.now)
                self.ledger.transfer(env.now, "inflow", acct.key, "customer_funds", int(amount))
                self._log_account(name, "inflow", int(amount))
                acct.wake_waiters(self._fund_waiter)
            h += 1
            if h * HOUR_S > env.now:
                yield env.timeout(h * HOUR_S - env.now)

    def _treasury_and_liquidity(self):
        """Each treasury period: take the treasury decision, then charge the opportunity cost of idle balances
        and the delay cost of payments that waited for funds."""
        env = self.env
        period = float(self.scenario.treasury_period_s)
        has_treasury = self.hub.answers("treasury")
        while self.arrivals_open and env.now < self.horizon_s:
            if has_treasury:
                yield from self._decide_treasury()
            yield env.timeout(period)
            for name, acct in self.accounts.items():
                exact = (
                    max(acct.balance, 0) * acct.spec.opportunity_rate_bps_annual / 10_000.0 * period / YEAR_S
                )
                cents = self._carry_cents(self._opportunity_carry, name, exact)
                if cents:
                    self.ledger.transfer(
                        env.now, "opportunity_cost", "liquidity_cost", "memo:opportunity", cents
                    )
                    self.totals["liquidity_cost"] += cents
                    self.agent_margin[self.hub.agent_ids["treasury"]] -= cents
                    self._log_account(name, "opportunity_cost", cents)
                waited = acct.take_queued_value_s(env.now)
                exact = waited * acct.spec.queue_delay_cost_bps_per_hour / 10_000.0 / HOUR_S
                cents = self._carry_cents(self._delay_carry, name, exact)
                if cents:
                    self.ledger.transfer(env.now, "delay_cost", "delay_cost", "memo:delay", cents)
                    self.totals["delay_cost"] += cents
                    self.agent_margin[self.hub.agent_ids["treasury"]] -= cents
                    self._log_account(name, "delay_cost", cents)

    @staticmethod
    def _carry_cents(carry: dict[str, float], name: str, exact: float) -> int:
        """Whole cents of an accruing cost; the fraction carries to the next period."""
        total = carry[name] + exact
        cents = int(total)
        carry[name] = total - cents
        return cents

    def _decide_treasury(self):
        kind = "treasury"
        action, prop = yield from self.hub.ask(kind, None, shown=self)
        if not isinstance(action, TreasuryAction):
            raise InvalidActionError(f"treasury action must be a TreasuryAction, got {type(action).__name__}")
        for name, cents in action.credit_lines.items():
            if name not in self.accounts:
                raise InvalidActionError(
                    f"treasury credit line for unknown account {name!r}; accounts: {sorted(self.accounts)}"
                )
            acct = self.accounts[name]
            acct.credit_limit_override = max(0, int(cents))
            acct.wake_waiters(self._fund_waiter)  # a wider line funds payments queued for funds now
        for name, cents in action.transfers.items():
            if name not in self.accounts or self.accounts[name].spec.funded_from is None:
                raise InvalidActionError(f"treasury transfer to {name!r}: not an account that can be funded")
            if cents:
                self.env.process(self._transfer(name, int(cents)))
        self._log_decision(kind, {"transfers": action.transfers, "credit_lines": action.credit_lines}, prop)

    def _transfer(self, name: str, cents: int):
        """Move money between an account and its funding account; it takes time and costs a fee."""
        dst = self.accounts[name]
        src = self.accounts[dst.spec.funded_from]
        if cents < 0:  # sweep back to the funding account
            src, dst, cents = dst, src, -cents
            delay, fee = (
                self.accounts[name].spec.transfer_delay_s,
                self.accounts[name].spec.transfer_fee_cents,
            )
        else:
            delay, fee = dst.spec.transfer_delay_s, dst.spec.transfer_fee_cents
        cents = min(cents, max(src.available() - fee, 0))
        if cents <= 0:
            return
        now = self.env.now
        credit = src.overdraft_cost_cents(cents + fee, self._seconds_to_close())
        self.ledger.transfer(now, "transfer_out", "transit", src.key, cents)
        self.ledger.transfer(now, "transfer_fee", "treasury_cost", src.key, fee)
        self.ledger.transfer(now, "credit_cost", "liquidity_cost", "bank:operating", credit)
        self.totals["treasury_cost"] += fee
        self.totals["liquidity_cost"] += credit
        self.agent_margin[self.hub.agent_ids["treasury"]] -= fee + credit
        self._log_account(src.name, "transfer_out", cents)
        if fee:
            self._log_account(src.name, "transfer_fee", fee)
        if credit:
            self._log_account(src.name, "credit_cost", credit)
        dst.in_transit += cents
        yield self.env.timeout(delay)
        dst.in_transit -= cents
        self.ledger.transfer(self.env.now, "transfer_in", dst.key, "transit", cents)
        self._log_account(dst.name, "transfer_in", cents)
        dst.wake_waiters(self._fund_waiter)

    def _pricing(self):
        """Each pricing period: the competitor moves, then the price decision sets this period's multipliers
        (clipped to the scenario's bounds; the regulatory caps apply per payment in :meth:`price_for`)."""
        env = self.env
        period = float(self.scenario.prices.period_s)
        lo, hi = self.scenario.prices.min_multiplier, self.scenario.prices.max_multiplier
        first = True
        while self.arrivals_open and env.now < self.horizon_s:
            if not first:
                self.competitor.step(period)
            first = False
            kind = "price"
            action, prop = yield from self.hub.ask(kind, None, shown=self)
            mult = np.asarray(action, dtype=float)
            if mult.shape != self.price_multipliers.shape or not np.all(np.isfinite(mult)):
                raise InvalidActionError(
                    f"price action must be finite multipliers of shape {self.price_multipliers.shape}"
                )
            self.price_multipliers = np.clip(mult, lo, hi)
            self._log_decision(kind, self.price_multipliers.tolist(), prop)
            yield env.timeout(period)

    def _customer_churn(self):
        """At each midnight, segments quoted a premium lose customers; those quoted none win some back."""
        env = self.env
        while self.arrivals_open and env.now < self.horizon_s:
            yield env.timeout(DAY_S - env.now % DAY_S)
            self.demand.segment_multiplier = self.customers.end_of_day().copy()

    # ------------------------------------------------------------------ fraud losses
    def _schedule_discovery(self, tx: Transaction, route: RouteState) -> None:
        delay = self.fraud.discovery_delay_s(tx.pattern, tx.z_discover)
        ev = self.env.timeout(delay)
        ev.callbacks.append(lambda _ev, tx=tx, route=route: self._discover(tx, route))

    def _discover(self, tx: Transaction, route: RouteState) -> None:
        """A fraud comes to light: chargeback (cards), recovery or loss (bank rails)."""
        now = self.env.now
        spec = self.scenario.fraud.patterns[tx.pattern]
        within = now - tx.t_settled <= route.spec.return_window_days * DAY_S
        if route.is_card:
            if not within:
                return self._post_event(tx, "undisputed", 0)
            loss = tx.amount_cents + self.scenario.interchange.chargeback_fee_cents
            self.ledger.transfer(now, "chargeback", "fraud_loss", "bank:operating", loss)
            self._attribute(tx, "fraud_loss_cents", -loss)
            tx.post_state = "charged_back"
            return self._post_event(tx, "chargeback", loss)
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
                route.account.wake_waiters(self._fund_waiter)
            return self._post_event(tx, "return", 0)
        share = self.scenario.fraud.app_reimbursement_share if tx.pattern == "app_scam" else 1.0
        loss = int(round(tx.amount_cents * share))
        self.ledger.transfer(now, "reimbursement", "fraud_loss", "customer_funds", loss)
        self._attribute(tx, "fraud_loss_cents", -loss)
        tx.post_state = "reimbursed"
        return self._post_event(tx, "reimbursement", loss)

    # ------------------------------------------------------------------ bookkeeping
    def _attribute(self, tx: Transaction, field: str, signed_cents: int) -> None:
        """Add money to a transaction's components, the world's totals and its deciding agents' margins.

        ``reward_split="full"``: every agent that decided on the payment is credited all of it (what a
        single learning agent should see). ``"shared"``: the amount is split between them in whole cents
        (the remainder to the first), so the agents' margins add up to the ledger's profit exactly.
        """
        setattr(tx, field, getattr(tx, field) + abs(signed_cents))
        self.totals[field] += abs(signed_cents)
        agents = tx.agents or ("psp",)
        if self.reward_split == "full":
            for agent in agents:
                self.agent_margin[agent] += signed_cents
            return
        share, rest = divmod(signed_cents, len(agents))
        for agent in agents:
            self.agent_margin[agent] += share
        self.agent_margin[agents[0]] += rest

    def _book(self, tx: Transaction, cost_account: str, cents: int, credit_account: str) -> None:
        if cents:
            self.ledger.transfer(self.env.now, cost_account, cost_account, credit_account, cents)
            self._attribute(tx, f"{cost_account}_cents", -cents)

    def _sla_miss(self, tx: Transaction) -> None:
        penalty = self.scenario.service_level.penalty_cents.get(tx.family, 0)
        self.totals["sla_misses"] += 1
        credit = "merchant_payable" if tx.family == "card" else "customer_funds"
        self._book(tx, "sla_penalty", penalty, credit)

    def _expire(self, tx: Transaction, reason: str) -> None:
        self._sla_miss(tx)
        self._terminate(tx, "expired", reason)

    def _terminate(self, tx: Transaction, state: str, reason: str) -> None:
        if self.live.pop(tx.id, None) is None:
            raise RuntimeError(
                f"transaction {tx.id} reached a second terminal state ({state} after {tx.state})"
            )
        tx.state = state
        tx.reason = reason
        tx.t_terminal = self.env.now
        self.terminal[state] += 1
        for listener in self.terminal_listeners:
            listener(tx)
        if self.log is not None:
            self._log_transaction(tx)

    def _post_event(self, tx: Transaction, kind: str, loss: int) -> None:
        self.post_settlement[kind] += 1
        if tx.is_fraud:
            self.fraudster.discovered(tx, kind)
        if self.log is not None:
            self.log.append(
                {"record": "post_settlement", "t": self.env.now, "tx_id": tx.id, "t_arrival": tx.t_arrival,
                 "amount_cents": tx.amount_cents, "is_fraud": tx.is_fraud, "fraud_pattern": tx.pattern,
                 "route": self.routes[tx.route].name, "route_index": tx.route, "kind": kind,
                 "fraud_loss_cents": loss, "agents": ",".join(tx.agents)}
            )  # fmt: skip

    def _log_transaction(self, tx: Transaction) -> None:
        self.log.append(
            {
                "record": "transaction", "t": tx.t_terminal, "tx_id": tx.id, "t_arrival": tx.t_arrival,
                "amount_cents": tx.amount_cents, "currency": tx.currency, "cross_border": tx.cross_border,
                "segment": self.segments[tx.segment], "merchant_category": self.factory.categories[tx.category],
                "instrument": tx.instrument, "network": tx.network, "foreign_card": tx.foreign_card,
                "urgency": tx.urgency, "deadline_t": tx.deadline_t, "is_fraud": tx.is_fraud,
                "fraud_pattern": tx.pattern, "risk_score": tx.risk_score, "price_cents": tx.price_cents,
                "risk_action": RISK_ACTIONS[tx.risk_action], "risk_propensity": tx.risk_propensity,
                "route": self.routes[tx.route].name if tx.route >= 0 else "", "route_index": tx.route,
                "route_propensity": tx.route_propensity, "eligible_mask": tx.eligible_mask,
                "agents": ",".join(tx.agents), "state": tx.state, "reason": tx.reason, "t_settled": tx.t_settled,
                "latency_s": tx.latency_s, "revenue_cents": tx.revenue_cents, "route_cost_cents": tx.route_cost_cents,
                "fraud_loss_cents": 0, "sla_penalty_cents": tx.sla_penalty_cents,
                "liquidity_cost_cents": tx.liquidity_cost_cents, "challenge_cost_cents": tx.challenge_cost_cents,
            }
        )  # fmt: skip

    def _log_account(self, account: str, kind: str, cents: int) -> None:
        if self.log is not None:
            self.log.append(
                {
                    "record": "account",
                    "t": self.env.now,
                    "account": account,
                    "kind": kind,
                    "amount_cents": cents,
                }
            )

    def _log_decision(self, kind: str, action: Any, propensity: float) -> None:
        if self.log is not None:
            self.log.append(
                {"record": "decision", "t": self.env.now, "kind": kind, "agent": self.hub.agent_ids[kind],
                 "action_json": json.dumps(action, sort_keys=True, default=_jsonable), "propensity": propensity}
            )  # fmt: skip

    # ------------------------------------------------------------------ reporting
    def health_snapshot(self) -> dict[str, str]:
        """The hidden health of every route (for the oracle and for analysts, never for agents)."""
        return {r.name: HEALTH_NAMES[r.health_now] for r in self.routes}

    def kpis(self) -> dict[str, float]:
        """Headline numbers of the run so far (money in dollars, rates in bps or shares)."""
        tot = self.totals
        arrivals = max(self.arrivals, 1)
        submitted = int(self.by_hour_attempts.sum())
        settled_value = max(tot["settled_value_cents"], 1)
        cost_keys = (
            "route_cost_cents",
            "fraud_loss_cents",
            "sla_penalty_cents",
            "liquidity_cost_cents",
            "challenge_cost_cents",
        )
        margin = (
            tot["revenue_cents"]
            - sum(tot[k] for k in cost_keys)
            - tot["liquidity_cost"]
            - tot["treasury_cost"]
            - tot["delay_cost"]
        )
        return {
            "approval_rate": tot["approved"] / submitted if submitted else 0.0,
            "margin_per_tx_usd": margin / arrivals / 100.0,
            "margin_usd": margin / 100.0,
            "revenue_usd": tot["revenue_cents"] / 100.0,
            "route_cost_bps": tot["route_cost_cents"] / settled_value * 10_000.0,
            "fraud_loss_bps": tot["fraud_loss_cents"] / settled_value * 10_000.0,
            "sla_misses": float(tot["sla_misses"]),
            "liquidity_cost_usd": (tot["liquidity_cost_cents"] + tot["liquidity_cost"] + tot["treasury_cost"])
            / 100.0,
            "settled_value_usd": tot["settled_value_cents"] / 100.0,
            "delay_cost_usd": tot["delay_cost"] / 100.0,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "days": self.days,
            "sim_time_s": self.env.now,
            "arrivals": self.arrivals,
            "in_flight": self.in_flight,
            "terminal": dict(self.terminal),
            "post_settlement": dict(self.post_settlement),
            "kpis": self.kpis(),
            "route_mix": dict(self.route_counts),
        }


@contextlib.contextmanager
def _fewer_collections(young_threshold: int = 50_000):
    """Run the cyclic garbage collector's young generation less often while the world runs.

    Every payment allocates a few dozen short-lived containers (events, tuples, generator frames) that
    reference counting frees at once; with the default threshold of 700 allocations the collector would
    still sweep them thousands of times a simulated day, about a tenth of the run time. The previous
    thresholds are restored on the way out.
    """
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], young_threshold), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _as_lists(cols: dict[str, np.ndarray]) -> dict[str, list]:
    """A block of transaction attributes as Python lists: reading one row from lists is much cheaper."""
    return {name: values.tolist() for name, values in cols.items()}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
