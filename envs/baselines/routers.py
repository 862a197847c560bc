"""Routing baselines that learn from outcomes, and the oracle.

What open-source payment orchestrators ship (see docs/calibration.md "Card authorization and routing"), and the
classic bandits, each usable two ways:

* bound into the world: ``decide(world, (tx, eligible)) -> (route_index, propensity)``; outcomes arrive
  through ``world.outcome_listeners``;
* as a plain Gymnasium policy: ``act(observation, info) -> route_index``, reading ``info["action_mask"]``,
  ``info["route_costs_cents"]``, ``info["transaction"]`` and learning from ``info["outcomes"]``.

==================  ==========================================================================================
``success_rate``    per route and dimension (segment, instrument, network) a sliding window of the last B
                    outcomes; a new window starts optimistic; 5% of traffic hedges (explores uniformly); routes
                    far below the leader get a fresh optimistic window; a burst of technical failures
                    (leaky bucket) eliminates a route for a cool-down
``cost_aware``      success-rate estimates, then the route with the highest approval x (price - cost): a
                    cheaper route wins only when its expected margin is strictly higher
``thompson``        Thompson sampling per segment x route on Beta posteriors, maximising sampled margin
``ucb``             UCB1 per segment x route on approval, maximising optimistic margin
``oracle``          knows every route's hidden state (health, this payment's approval probability, latency) and
                    fraud as the risk score allows (a posterior); routes by expected margin: the bound for routing
``clairvoyant``     the oracle that also knows whether the payment is fraud: a looser bound, for scale
==================  ==========================================================================================
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from payroute.envs.baselines.rules import retry_step
from payroute.envs.world.codes import DO_NOT_RETRY_ADVICE
from payroute.envs.world.decisions import GIVE_UP, RetryAction, RetryRequest
from payroute.envs.world.demand import Transaction
from payroute.envs.world.fraud import FraudPosterior, expected_fraud_loss_cents


@dataclass(frozen=True, slots=True)
class RouteChoice:
    """What a router knows when it decides: eligible routes, this payment's cost on each, its price, its keys."""

    eligible: tuple[int, ...]
    costs_cents: tuple[int, ...]
    price_cents: int
    amount_cents: int
    segment: int
    key: tuple


def _key(segment: int, instrument: str, network: str) -> tuple:
    return (segment, instrument, network)


def choice_from_world(world: Any, tx: Transaction, eligible: list) -> RouteChoice:
    costs = [0] * len(world.routes)
    for r in eligible:
        costs[r.index] = r.cost_cents(tx)
    return RouteChoice(
        tuple(r.index for r in eligible),
        tuple(costs),
        tx.price_cents,
        tx.amount_cents,
        tx.segment,
        _key(tx.segment, tx.instrument, tx.network),
    )


def choice_from_info(info: dict) -> RouteChoice:
    t = info["transaction"]
    mask = info["action_mask"]
    return RouteChoice(
        tuple(int(i) for i in np.flatnonzero(mask)),
        tuple(int(c) for c in info["route_costs_cents"]),
        int(t["price_cents"]),
        int(t["amount_cents"]),
        int(t["segment_index"]),
        _key(int(t["segment_index"]), t["instrument"], t["network"]),
    )


class LearningRouter:
    """Shared plumbing: bound and plain-policy entry points, outcome feed, exploration generator."""

    kind = "route"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self._bound = False

    def bind(self, world: Any) -> None:
        self._bound = True
        self.rng = world.policy_rng("route")
        self.reset_state(len(world.routes))
        world.outcome_listeners.append(self._on_outcome)

    def _on_outcome(self, tx: Transaction, route: Any, approved: bool, reason: str) -> None:
        self.update(
            _key(tx.segment, tx.instrument, tx.network), route.index, approved, reason, float(route.env.now)
        )

    def decide(self, world: Any, payload: Any) -> tuple[int, float]:
        tx, eligible = payload
        return self.choose(choice_from_world(world, tx, eligible), world.now)

    def act(self, observation: Any, info: dict) -> int:
        if not hasattr(self, "n_routes"):
            self.reset_state(len(info["action_mask"]))
        for o in info.get("outcomes", ()):
            self.update(
                _key(o["segment_index"], o["instrument"], o["network"]),
                o["route"],
                o["approved"],
                o["reason"],
                o["t"],
            )
        if retry_step(info):
            return self.act_retry(info)
        action, _p = self.choose(choice_from_info(info), float(info.get("t", 0.0)))
        return action

    def act_retry(self, info: dict) -> int:
        """A Routing-v0 retry step (retries on) as a plain policy: give up, as the world does for a router that
        does not take retries (the retry routers of :mod:`.cascades` cascade)."""
        return len(info["route_names"])

    # subclasses
    def reset_state(self, n_routes: int) -> None:
        self.n_routes = n_routes

    def update(self, key: tuple, route: int, approved: bool, reason: str, t: float) -> None:
        raise NotImplementedError

    def choose(self, c: RouteChoice, t: float) -> tuple[int, float]:
        raise NotImplementedError


class SuccessRateRouter(LearningRouter):
    """Success-rate routing with sliding windows, optimistic start, hedging, resets and elimination."""

    def __init__(
        self,
        window: int = 150,
        optimistic_prior: int = 10,
        hedge_share: float = 0.05,
        reset_gap: float = 0.25,
        burst_failures: int = 8,
        burst_window_s: float = 60.0,
        cooldown_s: float = 300.0,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.window = window
        self.optimistic_prior = optimistic_prior
        self.hedge_share = hedge_share
        self.reset_gap = reset_gap
        self.burst_failures = burst_failures
        self.burst_window_s = burst_window_s
        self.cooldown_s = cooldown_s

    def reset_state(self, n_routes: int) -> None:
        super().reset_state(n_routes)
        self.windows: dict[tuple, deque] = {}
        self.sums: dict[tuple, int] = {}
        self.failures: list[deque] = [deque() for _ in range(n_routes)]
        self.eliminated_until = [0.0] * n_routes

    def score(self, key: tuple, route: int) -> float:
        w = self.windows.get((key, route))
        n = len(w) if w else 0
        # optimistic start: a new window counts `optimistic_prior` imaginary successes
        prior = max(self.optimistic_prior - n, 0)
        return (self.sums.get((key, route), 0) + prior) / (n + prior) if n + prior else 1.0

    def update(self, key: tuple, route: int, approved: bool, reason: str, t: float) -> None:
        k = (key, route)
        w = self.windows.get(k)
        if w is None:
            w = self.windows[k] = deque()
            self.sums[k] = 0
        w.append(1 if approved else 0)
        self.sums[k] += 1 if approved else 0
        if len(w) > self.window:
            self.sums[k] -= w.popleft()
        if reason in ("route_down", "route_error"):
            f = self.failures[route]
            f.append(t)
            while f and f[0] < t - self.burst_window_s:
                f.popleft()
            if len(f) >= self.burst_failures:
                self.eliminated_until[route] = t + self.cooldown_s
                f.clear()
                self._reset(key, route)

    def _reset(self, key: tuple, route: int) -> None:
        for k in [k for k in self.windows if k[1] == route]:
            del self.windows[k]
            del self.sums[k]

    def _candidates(self, c: RouteChoice, t: float) -> list[int]:
        live = [r for r in c.eligible if self.eliminated_until[r] <= t]
        return live or list(c.eligible)

    def _ranked(self, c: RouteChoice, cands: list[int]) -> list[tuple[float, int]]:
        return [(self.score(c.key, r), r) for r in cands]

    def choose(self, c: RouteChoice, t: float) -> tuple[int, float]:
        cands = self._candidates(c, t)
        scored = self._ranked(c, cands)
        best_score = max(s for s, _ in scored)
        best = min(r for s, r in scored if s == best_score)
        # routes far below the leader get a fresh window, so they can prove they recovered
        for s, r in scored:
            w = self.windows.get((c.key, r))
            if s < best_score - self.reset_gap and w is not None and len(w) >= self.window:
                del self.windows[(c.key, r)]
                del self.sums[(c.key, r)]
        n = len(cands)
        if n > 1 and self.hedge_share > 0 and self.rng.random() < self.hedge_share:
            pick = cands[int(self.rng.integers(n))]
        else:
            pick = best
        prop = (1 - self.hedge_share) * (pick == best) + (
            self.hedge_share / n if n > 1 else 1 - self.hedge_share
        )
        return pick, float(prop if n > 1 else 1.0)


class CostAwareRouter(SuccessRateRouter):
    """Success-rate estimates, then the highest approval x (price - cost); ties to the better approval."""

    def _ranked(self, c: RouteChoice, cands: list[int]) -> list[tuple[float, int]]:
        return [(self.score(c.key, r) * (c.price_cents - c.costs_cents[r]), r) for r in cands]

    def choose(self, c: RouteChoice, t: float) -> tuple[int, float]:
        cands = self._candidates(c, t)
        scored = self._ranked(c, cands)
        best_score = max(s for s, _ in scored)
        best = min(r for s, r in scored if s == best_score)
        n = len(cands)
        if n > 1 and self.hedge_share > 0 and self.rng.random() < self.hedge_share:
            pick = cands[int(self.rng.integers(n))]
        else:
            pick = best
        prop = (1 - self.hedge_share) * (pick == best) + self.hedge_share / n
        return pick, float(prop if n > 1 else 1.0)


class _BanditRouter(LearningRouter):
    """Per segment x route Beta-Bernoulli counts of approvals."""

    def reset_state(self, n_routes: int) -> None:
        super().reset_state(n_routes)
        self.successes: dict[tuple[int, int], int] = {}
        self.trials: dict[tuple[int, int], int] = {}

    def update(self, key: tuple, route: int, approved: bool, reason: str, t: float) -> None:
        k = (key[0], route)
        self.trials[k] = self.trials.get(k, 0) + 1
        self.successes[k] = self.successes.get(k, 0) + (1 if approved else 0)


class ThompsonRouter(_BanditRouter):
    """Thompson sampling: draw each route's approval from Beta(1 + s, 1 + f), maximise approval x margin."""

    def __init__(self, propensity_draws: int = 64, seed: int = 0) -> None:
        super().__init__(seed)
        self.propensity_draws = propensity_draws

    def choose(self, c: RouteChoice, t: float) -> tuple[int, float]:
        routes = list(c.eligible)
        if len(routes) == 1:
            return routes[0], 1.0
        a = np.array([1 + self.successes.get((c.segment, r), 0) for r in routes], dtype=float)
        b = np.array(
            [1 + self.trials.get((c.segment, r), 0) - self.successes.get((c.segment, r), 0) for r in routes],
            dtype=float,
        )
        margin = np.array([max(c.price_cents - c.costs_cents[r], 1e-6) for r in routes])
        draws = self.rng.beta(a, b, size=(self.propensity_draws + 1, len(routes))) * margin
        picks = np.argmax(draws, axis=1)
        pick = int(picks[0])
        # the propensity is estimated from further posterior draws (it has no closed form)
        prop = max(float(np.mean(picks[1:] == pick)), 1.0 / (self.propensity_draws + 1))
        return routes[pick], prop


class UCBRouter(_BanditRouter):
    """UCB1: approval estimate plus sqrt(c ln N / n), times the margin; untried routes first."""

    def __init__(self, c: float = 2.0, seed: int = 0) -> None:
        super().__init__(seed)
        self.c = c

    def choose(self, ch: RouteChoice, t: float) -> tuple[int, float]:
        routes = list(ch.eligible)
        total = sum(self.trials.get((ch.segment, r), 0) for r in routes)
        best, best_val = routes[0], -math.inf
        for r in routes:
            n = self.trials.get((ch.segment, r), 0)
            if n == 0:
                return r, 1.0
            p = self.successes.get((ch.segment, r), 0) / n
            val = min(p + math.sqrt(self.c * math.log(max(total, 1)) / n), 1.0) * (
                ch.price_cents - ch.costs_cents[r]
            )
            if val > best_val:
                best, best_val = r, val
        return best, 1.0


def route_values(
    world: Any,
    tx: Transaction,
    eligible: Any,
    p_fraud: float,
    recovery: float,
    decline_charge: Callable[[Transaction, Any], float] | None = None,
    *,
    costs: list[int] | None = None,
    done_times: list[float] | None = None,
) -> list[float]:
    """The expected margin (cents) of sending ``tx`` to each of ``eligible`` now, knowing the routes' hidden state.

    P(success) x (price - cost - the expected fraud loss on that route, :func:`expected_fraud_loss_cents`) - the
    SLA penalty if the route cannot meet the deadline; a payout sent to a route that stays closed until after
    its deadline waits and expires unsent, which is worth - the SLA penalty only. ``decline_charge(tx, route)``,
    when given, is what a decline there costs on top (P(decline) x it is subtracted): Routing-v0's charge for
    the margin a decline lost. What :class:`OracleRouter` maximises; the reference of a router's training credit
    (the route baseline, docs/experiments.md).

    ``costs`` and ``done_times`` (by route index: each route's cost for ``tx`` and
    :meth:`~payroute.envs.world.rails.RouteState.expected_done_time` now) are what the observation's feature pass
    has just computed for the same payment at the same instant (:class:`~payroute.envs.features.RoutingFeatures`,
    ``last_costs`` and ``last_done_times``): given, they are used instead of asking the routes again (the same
    numbers).
    """
    now = world.now
    penalty = world.scenario.service_level.penalty_cents.get(tx.family, 0)
    card = tx.family == "card"
    price = tx.price_cents
    deadline = tx.deadline_t
    losses: dict[bool, float] = {}  # for one payment the expected fraud loss depends on irrevocability only
    out = []
    for r in eligible:
        # quoted for every eligible route, as when the payment was offered them
        cost = r.cost_cents(tx) if costs is None else costs[r.index]
        if not card and r.next_open_time(now) > deadline:
            # closed until after the deadline: the payment waits, then expires unsent (no money moves)
            out.append(float(-penalty))
            continue
        p = r.success_probability(tx)
        loss = losses.get(r.irrevocable)
        if loss is None:
            loss = losses[r.irrevocable] = expected_fraud_loss_cents(world, tx, r, p_fraud, recovery)
        value = p * (price - cost - loss)
        if not card:
            done = r.expected_done_time(now) if done_times is None else done_times[r.index]
            if done > deadline:
                value -= p * penalty
        elif r.latency_s(tx.z_latency) > deadline - now:
            value -= penalty
        if decline_charge is not None:
            value -= (1.0 - p) * decline_charge(tx, r)
        out.append(float(value))
    return out


def observed_route_values(
    observer: Any,
    world: Any,
    tx: Transaction,
    eligible: Any | None,
    p_fraud: float,
    recovery: float,
    decline_charge: Callable[[Transaction, Any], float] | None = None,
) -> list[float]:
    """:func:`route_values` of ``tx`` now, reusing what ``observer`` (the router's
    :class:`~payroute.envs.features.RoutingFeatures`) computed when it last observed a payment: when that was
    ``tx`` at this instant, its eligible routes, costs and done times are the same numbers and are not asked of
    the routes again. ``eligible=None``: ``tx``'s eligible routes, in route order."""
    if observer.last_tx is tx and observer.last_now == world.now:
        return route_values(
            world, tx, observer.last_routes if eligible is None else eligible, p_fraud, recovery, decline_charge,
            costs=observer.last_costs, done_times=observer.last_done_times,
        )  # fmt: skip
    if eligible is None:
        eligible = [r for r in world.routes if (tx.eligible_mask >> r.index) & 1]
    return route_values(world, tx, eligible, p_fraud, recovery, decline_charge)


STEP_UP = RetryAction("step_up")
_CASCADES: list[RetryAction] = []  # RetryAction("cascade", i), made once (answers are immutable)
_LATERS: list[RetryAction] = []  # RetryAction("later", -1, i)


def cascade_action(i: int) -> RetryAction:
    """``RetryAction("cascade", i)``, one shared object per route index."""
    while len(_CASCADES) <= i:
        _CASCADES.append(RetryAction("cascade", len(_CASCADES)))
    return _CASCADES[i]


def later_action(i: int) -> RetryAction:
    """``RetryAction("later", -1, i)``, one shared object per delay index."""
    while len(_LATERS) <= i:
        _LATERS.append(RetryAction("later", -1, len(_LATERS)))
    return _LATERS[i]


def retry_options(request: RetryRequest, last: int, budget_s: float) -> list[RetryAction]:
    """Every answer the world can carry out for ``request`` (``last``: the route that declined it), in the
    order of Routing-v0's retry actions: give up, a cascade to each eligible route but ``last``, the same
    route after each delay that starts inside the latency budget ``budget_s``, a step-up."""
    options = [GIVE_UP]
    options += [cascade_action(r.index) for r in request.eligible if r.index != last]
    elapsed = request.elapsed_s
    options += [later_action(i) for i, delay in enumerate(request.delays_s) if elapsed + delay < budget_s]
    options.append(STEP_UP)
    return options


def retry_values(
    world: Any, request: RetryRequest, p_fraud: float, recovery: float
) -> list[tuple[RetryAction, float]]:
    """Each of :func:`retry_options` with its expected margin (cents), knowing the routes' hidden state.

    Giving up is worth 0. A retry is worth P(approved on this attempt) x (price - cost - expected fraud loss) -
    the attempt fee - the network's fine; a step-up is weighed by the chance the payer passes it (a fraud by
    its pattern's pass probability, the patterns' mean where the fraud is not known) and pays its cost. A retry
    that would start after the payer's patience is worth 0 (the payer leaves; nothing is paid). One step
    ahead: what a later retry could still add is not counted; nor is a late card payment's SLA penalty.
    """
    tx, payments = request.tx, world.payments
    desk, sc = payments.codes, world.scenario
    r, st = sc.retries, tx.retry
    fee = r.attempt_fee_cents
    rule = r.networks.get(tx.network)
    if rule is not None:
        fee += rule.excess_fine_cents if st.retries + 1 > rule.max_retries else 0
        if request.merchant_advice in DO_NOT_RETRY_ADVICE:
            fee += rule.do_not_retry_fine_cents
    routes = payments.routes
    last_index = request.routes[-1]
    last = routes[last_index]
    price = tx.price_cents
    retry_success = desk.retry_success
    # a card's expected fraud loss is the same on every card route: priced once
    card_loss = expected_fraud_loss_cents(world, tx, last, p_fraud, recovery) if tx.family == "card" else None

    def worth(route: Any, mode: str) -> float:
        p = retry_success(tx, route, mode)
        loss = (
            card_loss
            if card_loss is not None
            else expected_fraud_loss_cents(world, tx, route, p_fraud, recovery)
        )
        return p * (price - route.cost_cents(tx) - loss) - fee

    # in the order of retry_options; an answer that would start after the payer's patience is worth 0
    elapsed, patience = request.elapsed_s, st.patience_s
    now_ok = not elapsed > patience
    out: list[tuple[RetryAction, float]] = [(GIVE_UP, 0.0)]
    for route in request.eligible:
        i = route.index
        if i != last_index:
            out.append((cascade_action(i), worth(routes[i], "cascade") if now_ok else 0.0))
    later: float | None = None
    budget = r.latency_budget_s
    for i, delay in enumerate(request.delays_s):
        if elapsed + delay < budget:
            if elapsed + delay > patience:
                out.append((later_action(i), 0.0))
                continue
            if later is None:
                later = worth(last, "later")  # the same for every delay: the route's state now
            out.append((later_action(i), later))
    if not now_ok:
        out.append((STEP_UP, 0.0))
        return out
    risk, patterns = sc.risk, sc.fraud.patterns
    if p_fraud >= 1.0 and tx.is_fraud:
        fraud_pass = patterns[tx.pattern].challenge_pass_probability
    else:
        fraud_pass = sum(p.challenge_pass_probability for p in patterns.values()) / max(len(patterns), 1)
    passes = (1.0 - p_fraud) * (1.0 - risk.challenge_abandon_probability) + p_fraud * fraud_pass
    out.append((STEP_UP, passes * worth(last, "step_up") - risk.challenge_cost_cents))
    return out


def best_retry(world: Any, request: RetryRequest, p_fraud: float, recovery: float) -> RetryAction:
    """The answer of highest :func:`retry_values` (the first of equals: giving up first)."""
    best, best_value = GIVE_UP, 0.0
    for action, value in retry_values(world, request, p_fraud, recovery):
        if value > best_value:
            best, best_value = action, value
    return best


class OracleRouter:
    """Routes by the expected margin knowing every route's hidden state; fraud only as the risk score allows.

    The best a router could do if it saw everything about the routes: their hidden health, this payment's true
    approval probability on each, the latency it would really see, hours and settlement. What no router can see
    is whether this payment is fraud; the oracle knows what the risk desk knows: the posterior of
    :class:`FraudPosterior`. For each eligible route: P(success) x (price - cost - the expected fraud loss on
    that route, :func:`expected_fraud_loss_cents`) - the SLA penalty if the route cannot meet the deadline; a
    payout sent to a route that stays closed until after its deadline waits and expires unsent, which is worth
    - the SLA penalty only. It bounds what a routing policy can reach; the :class:`ClairvoyantOracleRouter` also
    knows the fraud truth (its edge is the price of fraud uncertainty, a risk decision rather than a routing
    one). Only usable bound into the world.
    """

    kind = "route"
    handles_retries = True

    def bind(self, world: Any) -> None:
        self.fraud_probability = FraudPosterior()

    def decide(self, world: Any, payload: Any) -> tuple[Any, float]:
        if isinstance(payload, RetryRequest):  # the payment joined the history at its first attempt
            p_fraud, recovery = self.fraud_probability(world, payload.tx, join=False)
            return best_retry(world, payload, p_fraud, recovery), 1.0
        tx, eligible = payload
        p_fraud, recovery = self.fraud_probability(world, tx)
        return self.best_route(world, tx, eligible, p_fraud, recovery), 1.0

    @staticmethod
    def best_route(world: Any, tx: Transaction, eligible: Any, p_fraud: float, recovery: float) -> int:
        values = route_values(world, tx, eligible, p_fraud, recovery)
        return eligible[values.index(max(values))].index  # the first of equals


class ClairvoyantOracleRouter(OracleRouter):
    """:class:`OracleRouter` that also knows whether this payment is fraud (and which pattern): a bound no
    routing policy can reach, shown for scale. Sending a known fraud to a route that fails it is blocking by
    routing, the risk desk's decision."""

    def decide(self, world: Any, payload: Any) -> tuple[Any, float]:
        if isinstance(payload, RetryRequest):
            tx = payload.tx
            if not tx.is_fraud:
                return best_retry(world, payload, 0.0, 0.0), 1.0
            recovery = world.scenario.fraud.patterns[tx.pattern].recovery_probability_revocable
            return best_retry(world, payload, 1.0, recovery), 1.0
        tx, eligible = payload
        if not tx.is_fraud:
            return self.best_route(world, tx, eligible, 0.0, 0.0), 1.0
        recovery = world.scenario.fraud.patterns[tx.pattern].recovery_probability_revocable
        return self.best_route(world, tx, eligible, 1.0, recovery), 1.0


ROUTING_LEARNERS = {
    "success_rate": SuccessRateRouter,
    "cost_aware": CostAwareRouter,
    "thompson": ThompsonRouter,
    "ucb": UCBRouter,
    "oracle": OracleRouter,
    "clairvoyant": ClairvoyantOracleRouter,
}
ORACLES = ("oracle", "clairvoyant")
"""Routers that see hidden state: bounds for scale, never references a policy must beat."""
