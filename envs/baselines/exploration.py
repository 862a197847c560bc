r"""Exploration for logging: epsilon-greedy around any router or risk policy, recording the behaviour propensity of
each decision.

Off-policy evaluation can only credit a target policy with actions the logging policy sometimes took. A router
that always takes its favourite route leaves every other route unlogged; :class:`EpsilonGreedyRoute` wraps any
route policy (a baseline or a bound bundle) and, with probability :math:`\varepsilon`, replaces its choice by a
route drawn uniformly from the eligible ones. The propensity logged with the decision is

.. math::  \mu(a \mid x) = (1 - \varepsilon)\, 1\{a = g\} + \varepsilon / |E(x)|

where :math:`g` is the wrapped router's choice and :math:`E(x)` the eligible routes. When the wrapped router
randomises on its own (success-rate hedging, Thompson sampling), :math:`g` is its realised choice: the
propensity is then conditional on that draw, which comes from the policy's own generator and is independent of
the payment's outcome, so importance weights built on it stay unbiased. The exploration coin and the uniform
draw come from a generator of their own (:func:`exploration_spawn_key` under the episode seed), so the demand
and the wrapped router's randomness are the same with and without exploration.

:class:`EpsilonGreedy` does the same for a ``risk`` policy, whose eligible actions are always all three (allow,
challenge, block): ``payroute dataset --env payroute/Risk-v0 --explore E`` logs with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from payroute.envs.baselines.routers import retry_options
from payroute.envs.world.decisions import RISK_ACTIONS, RetryAction, RetryRequest
from payroute.errors import PayrouteError
from payroute.vocabulary import DECISION_KINDS

EXPLORATION_SPAWN_KEY = (2000,)
"""``SeedSequence(seed, spawn_key=EXPLORATION_SPAWN_KEY)`` seeds the exploration draws of a routing episode."""

EXPLORABLE_KINDS = ("route", "risk")
"""The decision kinds epsilon-greedy exploration wraps: one discrete action per payment."""


def exploration_spawn_key(kind: str) -> tuple[int]:
    """The spawn key of ``kind``'s exploration draws: :data:`EXPLORATION_SPAWN_KEY` for ``route``, the next
    keys for the other kinds (in :data:`~payroute.vocabulary.DECISION_KINDS` order)."""
    return (EXPLORATION_SPAWN_KEY[0] + DECISION_KINDS.index(kind),)


class EpsilonGreedy:
    """Takes the wrapped policy's action with probability 1 - epsilon, a uniformly drawn eligible action
    otherwise; for a ``route`` or ``risk`` policy (``kind``: the wrapped policy's own by default)."""

    def __init__(self, base: Any, epsilon: float, kind: str | None = None) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise PayrouteError(f"--explore (epsilon) must be in [0, 1], got {epsilon}")
        kind = kind or getattr(base, "kind", "route")
        if kind not in EXPLORABLE_KINDS or getattr(base, "kind", kind) != kind:
            raise PayrouteError(
                f"epsilon-greedy exploration needs a {' or '.join(EXPLORABLE_KINDS)} policy, "
                f"got a {getattr(base, 'kind', kind)!r} policy"
            )
        self.kind = kind
        self.base = base
        self.epsilon = float(epsilon)
        self.spawn_key = exploration_spawn_key(kind)
        self.rng = np.random.default_rng(np.random.SeedSequence(0, spawn_key=self.spawn_key))
        self.decisions = 0
        self.explored = 0

    def bind(self, world: Any) -> None:
        bind = getattr(self.base, "bind", None)
        if bind is not None:
            bind(world)
        self.rng = np.random.default_rng(np.random.SeedSequence(world.seed, spawn_key=self.spawn_key))
        self.decisions = self.explored = 0

    def decide(self, world: Any, payload: Any) -> tuple[int, float]:
        if self.kind == "route":
            _tx, eligible = payload
            choices = [r.index for r in eligible]
        else:
            choices = range(len(RISK_ACTIONS))
        greedy, _p = self.base.decide(world, payload)
        greedy = int(greedy)
        n = len(choices)
        self.decisions += 1
        # both draws every decision, so the stream does not depend on which branch came before
        explore = self.rng.random() < self.epsilon
        pick = choices[int(self.rng.integers(n))]
        action = pick if explore else greedy
        self.explored += explore
        propensity = (1.0 - self.epsilon) * (action == greedy) + self.epsilon / n
        return action, float(propensity)


def same_retry(a: RetryAction, b: RetryAction, last: int) -> bool:
    """Whether two retry answers do the same thing (``-1`` and ``last`` name the same route for later and step-up;
    give-up ignores its route and delay, a delay counts only for ``later``)."""
    if a.kind != b.kind:
        return False
    if a.kind == "give_up":
        return True
    route_a = last if a.route < 0 else a.route
    route_b = last if b.route < 0 else b.route
    return route_a == route_b and (a.kind != "later" or a.delay_index == b.delay_index)


class EpsilonGreedyRoute(EpsilonGreedy):
    """:class:`EpsilonGreedy` around a router: the wrapped router's route with probability 1 - epsilon, a uniformly
    drawn eligible route otherwise (what ``payroute simulate --explore`` logs with).

    Around a router that takes retry decisions (``handles_retries``), each retry decision is explored the same
    way: the wrapped router's answer with probability 1 - epsilon, otherwise one drawn uniformly from the answers
    a Routing-v0 retry step allows (:func:`~payroute.envs.baselines.routers.retry_options`: give up, a cascade to
    each eligible route but the one that declined, the same route after each delay inside the latency budget, a
    step-up); its propensity is ``(1 - epsilon) * 1[a = the router's answer] + epsilon * 1[a in the
    options] / (number of options)``. Around a router that does not, the world never asks (it gives up at once).
    """

    def __init__(self, base: Any, epsilon: float) -> None:
        super().__init__(base, epsilon, kind="route")
        self.handles_retries = bool(getattr(base, "handles_retries", False))

    def decide(self, world: Any, payload: Any) -> tuple[Any, float]:
        if not isinstance(payload, RetryRequest):
            return super().decide(world, payload)
        greedy, _p = self.base.decide(world, payload)
        last = payload.routes[-1]
        options = retry_options(payload, last, world.scenario.retries.latency_budget_s)
        n = len(options)
        self.decisions += 1
        explore = self.rng.random() < self.epsilon
        pick = options[int(self.rng.integers(n))]
        action = pick if explore else greedy
        self.explored += explore
        listed = any(same_retry(action, o, last) for o in options)
        propensity = (1.0 - self.epsilon) * same_retry(action, greedy, last) + self.epsilon * listed / n
        return action, float(propensity)
