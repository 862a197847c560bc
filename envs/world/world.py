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
switching methods), so at different prices the customers who still come are the same ones. Response codes and
retries draw from two more side streams, dealt to every payment on arrival (:mod:`payroute.envs.world.codes`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import simpy

from payroute.envs.scenarios.schema import Scenario, hhmm_to_s
from payroute.envs.world.arrivals import Arrivals
from payroute.envs.world.books import Books
from payroute.envs.world.clock import DAY_S, HOUR_S, Calendar
from payroute.envs.world.collector import fewer_collections
from payroute.envs.world.customers import FAMILY_INDEX, Offer
from payroute.envs.world.decisions import DecisionHub, DecisionPoint, InvalidActionError
from payroute.envs.world.demand import LegitimateDemand, Transaction, TransactionFactory
from payroute.envs.world.discovery import Discovery
from payroute.envs.world.eventlog import CODE_FIELDS, EventLog
from payroute.envs.world.fraud import FraudsterBook, FraudStreams
from payroute.envs.world.ledger import Ledger
from payroute.envs.world.liquidity import Liquidity
from payroute.envs.world.market import Market
from payroute.envs.world.payment import Payments
from payroute.envs.world.rails import DEGRADED, DOWN, HEALTH_NAMES, RouteState
from payroute.errors import PayrouteError

__all__ = ["FAMILY_INDEX", "InvalidActionError", "PaymentWorld"]

_RNG_STREAMS = ("demand", "fraud", "inflows", "health", "policy")
# side streams spawned by key, so adding them left every stream above unchanged (2002 and 2003: response codes
# and retries, payroute.envs.world.codes)
_CUSTOMER_STREAM, _COMPETITOR_STREAM = 2000, 2001


class PaymentWorld:
    """One episode of the payment world: builds its parts, starts their processes, runs, hands out decisions.

    The parts, each a job of the PSP: :class:`~payroute.envs.world.books.Books` (payments opened and closed,
    postings, log rows, KPIs), :class:`~payroute.envs.world.liquidity.Liquidity` (settlement accounts,
    inflows, treasury), :class:`~payroute.envs.world.market.Market` (prices, quotes, churn),
    :class:`~payroute.envs.world.payment.Payments` (one payment's life),
    :class:`~payroute.envs.world.discovery.Discovery` (fraud that surfaces later) and
    :class:`~payroute.envs.world.arrivals.Arrivals` (customers and fraudsters). What callers read of them
    (``routes``, ``accounts``, ``ledger``, ``terminal``, ``totals``, ``kpis()`` ...) is on the world itself.

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
            ``shared``; see :meth:`Books.attribute <payroute.envs.world.books.Books.attribute>`).
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
        self.env = env = simpy.Environment()
        self.calendar = Calendar(scenario.start_date, scenario.base_utc_offset_h, scenario.extra_holidays)
        seq = np.random.SeedSequence(self.seed)
        children = seq.spawn(len(_RNG_STREAMS) + len(scenario.routes))
        self.rngs = {name: np.random.default_rng(children[i]) for i, name in enumerate(_RNG_STREAMS)}
        self.hub = DecisionHub(env, policies, agent_ids or {}, world=self)
        self.policies = self.hub.bound
        self.arrivals_open = True
        self.on_hour: Callable[[PaymentWorld], None] | None = None

        # what the world is made of: routes, demand, fraud
        self.ledger = Ledger()
        self.factory = TransactionFactory(scenario, self.calendar)
        self.segments = self.factory.segments
        self.demand = LegitimateDemand(scenario, self.calendar, self.factory)
        self.fraud = FraudStreams(scenario, self.factory)
        fee_mult = {fc.route: fc.multiplier for fc in scenario.fee_changes}
        self.routes: list[RouteState] = [
            RouteState(
                i, name, spec, env, self.calendar, self.segments, scenario.interchange,
                fee_mult.get(name, 1.0), np.random.default_rng(children[len(_RNG_STREAMS) + i]),
            )
            for i, (name, spec) in enumerate(scenario.routes.items())
        ]  # fmt: skip
        self.route_index = {r.name: r.index for r in self.routes}
        # the fraudster's own money and view of its attacks (never part of the PSP's ledger)
        self.fraudster = FraudsterBook(scenario, self.fraud.pattern_names)

        # the PSP's jobs
        is_open = self._is_open
        self.books = books = Books(
            env, scenario, self.ledger, self.routes, self.factory, self.hub, log, reward_split
        )
        self.liquidity = Liquidity(
            env,
            scenario,
            self.calendar,
            self.ledger,
            books,
            self.hub,
            self.rngs["inflows"],
            self.horizon_s,
            is_open,
        )
        self.market = Market(
            env, scenario, self.factory, self.demand, books, self.hub,
            self._side_rng(_COMPETITOR_STREAM), self.horizon_s, is_open,
        )  # fmt: skip
        self.discovery = Discovery(scenario, self.fraud, self.fraudster, books, self.liquidity)
        self.payments = Payments(
            scenario, self.routes, self.hub, books, self.liquidity, self.discovery, self.market, is_open,
            self.seed,
        )  # fmt: skip
        if log is not None and scenario.retries.enabled:
            log.add_fields(CODE_FIELDS)
        self.arrivals_desk = Arrivals(
            env, scenario, self.factory, self.demand, self.fraud, self.fraudster, self.market, books,
            self.payments, self.hub, self.rngs, self._side_rng(_CUSTOMER_STREAM), self.horizon_s,
        )  # fmt: skip

        # the parts' state, read by name on the world (the same objects)
        self.accounts = self.liquidity.accounts
        self.price_book = self.market.price_book
        self.customers = self.market.customers
        self.quote_stats = self.market.quote_stats
        self.competitor = self.market.competitor
        self.live = books.live
        self.terminal = books.terminal
        self.post_settlement = books.post_settlement
        self.totals = books.totals
        self.agent_margin = books.agent_margin
        self.by_hour_attempts = books.by_hour_attempts
        self.by_hour_approved = books.by_hour_approved
        self.route_counts = books.route_counts
        # called as listener(tx, route, approved, reason) when a route answers; bound policies that learn
        # from outcomes (success-rate routing, bandits) subscribe here in their bind()
        self.outcome_listeners = self.payments.outcome_listeners
        self.outcome_listeners.append(self.fraudster.on_outcome)
        # called as listener(tx) when a transaction reaches its terminal state
        self.terminal_listeners = books.terminal_listeners
        self.terminal_listeners.append(self.fraudster.on_terminal)

        for policy in self.policies.values():
            bind = getattr(policy, "bind", None)
            if bind is not None:
                bind(self)
        self._start()

    # ================================================================== set-up
    def _start(self) -> None:
        """Open the accounts, then start every process, in an order the seeded results depend on."""
        env = self.env
        self.liquidity.open_accounts()
        env.process(self.arrivals_desk.customers())
        env.process(self.arrivals_desk.fraudsters())
        env.process(self._clock())
        for r in self.routes:
            env.process(r.drift_process(self._is_open))
            env.process(r.health_process(self._is_open))
            if r.is_card:
                self.payments.start_card_settlement(r)
        for inc in self.scenario.incidents:
            r = self.routes[self.route_index[inc.route]]
            start = inc.day * DAY_S + hhmm_to_s(inc.at)
            env.process(
                r.incident_process(start, inc.duration_min * 60.0, DOWN if inc.state == "down" else DEGRADED)
            )
        self.liquidity.start()
        self.market.start()

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
        with fewer_collections():
            if not self.hub.external:  # no decision can wait for an outside agent: the tight loop
                while (t := peek()) != math.inf and t <= stop:
                    step()
            else:
                while (t := peek()) != math.inf and t <= stop:
                    step()
                    if pending:
                        raise RuntimeError(
                            f"an outside agent must answer a {pending[0].kind!r} decision: "
                            "use run_until_decision() or bind a policy to it"
                        )
        if t == math.inf:
            self.check_drained()

    def run_until_decision(self, until: float | None = None) -> DecisionPoint | None:
        """Step the simulation until an outside decision is pending (returned) or the episode ends (``None``)."""
        stop = until if until is not None else math.inf
        peek, step, pending = self.env.peek, self.env.step, self.hub.pending
        inf = math.inf
        while not pending:
            t = peek()
            if t == inf or t > stop:
                if t == inf:
                    self.check_drained()
                return None
            step()
        return pending.pop(0)

    def check_drained(self) -> None:
        """Nothing is left to happen: every payment must have reached its terminal state, or the KPIs would
        count only the ones that did (a payment stuck forever, e.g. behind an endless latency, is never a
        decline). Raises :class:`~payroute.errors.PayrouteError` naming how many and the scenario."""
        if self.live:
            raise PayrouteError(
                f"scenario {self.scenario.name!r}: the world ran out of events with {len(self.live):,} of "
                f"{self.books.arrivals:,} payments unfinished (never settled, declined, failed or expired); "
                "its KPIs would be wrong. Check the routes' latency, hours and windows"
            )

    def _clock(self):
        """Marks the hours (progress) and closes arrivals at the horizon."""
        hours = math.ceil(self.horizon_s / HOUR_S)
        for _ in range(hours):
            yield self.env.timeout(min(HOUR_S, self.horizon_s - self.env.now))
            if self.on_hour is not None:
                self.on_hour(self)
        self.arrivals_open = False

    # ================================================================== state
    @property
    def now(self) -> float:
        return self.env.now

    @property
    def done(self) -> bool:
        return self.env.peek() == math.inf and not self.hub.pending

    @property
    def in_flight(self) -> int:
        return len(self.live)

    @property
    def arrivals(self) -> int:
        """Payments that have arrived so far (genuine and fraudulent)."""
        return self.books.arrivals

    @property
    def next_id(self) -> int:
        return self.books.next_id

    @property
    def queue_version(self) -> int:
        """+1 whenever a payment joins or leaves a route's queue (observers skip re-reading unchanged queues)."""
        return self.payments.queue_version

    @property
    def price_multipliers(self) -> np.ndarray:
        """The pricer's fee multipliers in force, per segment and payment family."""
        return self.market.price_multipliers

    @price_multipliers.setter
    def price_multipliers(self, value: np.ndarray) -> None:
        self.market.price_multipliers = value

    @property
    def fraud_intensity(self) -> np.ndarray:
        """The fraudster's attack intensity in force, per pattern (1.0: the scenario's rate)."""
        return self.arrivals_desk.fraud_intensity

    @property
    def fraud_amount_multiplier(self) -> np.ndarray:
        """The fraudster's amount multiplier in force, per pattern (1.0: the pattern's usual band)."""
        return self.arrivals_desk.fraud_amount_multiplier

    # ================================================================== asked by policies and observers
    def price_for(self, tx: Transaction, multiplier: float | None = None) -> int:
        """What the PSP charges for ``tx`` at a multiplier of its list price (the one in force by default),
        within the scenario's regulatory caps whatever the multiplier."""
        return self.market.price_for(tx, multiplier)

    def offer(self, tx: Transaction) -> Offer:
        """The quote for ``tx`` at the prices in force and how its payer answers it (probabilities)."""
        return self.market.offer(tx)

    def abandon_probability(self, tx: Transaction) -> float:
        """Probability the payer of ``tx`` walks away at the prices in force."""
        return self.market.offer(tx).p_abandon

    def eligible_routes(self, tx: Transaction) -> list[RouteState]:
        """Routes that may carry ``tx`` now: instrument, corridor, currency, limit, hours, liquidity."""
        return self.payments.eligible_routes(tx)

    def health_snapshot(self) -> dict[str, str]:
        """The hidden health of every route (for the oracle and for analysts, never for agents)."""
        return {r.name: HEALTH_NAMES[r.health_now] for r in self.routes}

    def kpis(self) -> dict[str, float]:
        """Headline numbers of the run so far (money in dollars, rates in bps or shares)."""
        return self.books.kpis()

    def summary(self) -> dict[str, Any]:
        """The run in one dictionary: counts, terminal states, post-settlement events, KPIs, route mix."""
        return self.books.summary(self.seed, self.days)
