r"""Exploration for logging: epsilon-greedy around any router, recording the behaviour propensity of each decision.

Off-policy evaluation can only credit a target policy with actions the logging policy sometimes took. A router
that always takes its favourite route leaves every other route unlogged; :class:`EpsilonGreedyRoute` wraps any
route policy (a baseline or a bound bundle) and, with probability :math:`\varepsilon`, replaces its choice by a
route drawn uniformly from the eligible ones. The propensity logged with the decision is

.. math::  \mu(a \mid x) = (1 - \varepsilon)\, 1\{a = g\} + \varepsilon / |E(x)|

where :math:`g` is the wrapped router's choice and :math:`E(x)` the eligible routes. When the wrapped router
randomises on its own (success-rate hedging, Thompson sampling), :math:`g` is its realised choice: the
propensity is then conditional on that draw, which comes from the policy's own generator and is independent of
the payment's outcome, so importance weights built on it stay unbiased. The exploration coin and the uniform
draw come from a generator of their own (:data:`EXPLORATION_SPAWN_KEY` under the episode seed), so the demand
and the wrapped router's randomness are the same with and without exploration.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from payroute.errors import PayrouteError

EXPLORATION_SPAWN_KEY = (2000,)
"""``SeedSequence(seed, spawn_key=EXPLORATION_SPAWN_KEY)`` seeds the exploration draws of an episode."""


class EpsilonGreedyRoute:
    """Takes the wrapped router's route with probability 1 - epsilon, a uniformly drawn eligible route otherwise."""

    kind = "route"

    def __init__(self, base: Any, epsilon: float) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise PayrouteError(f"--explore (epsilon) must be in [0, 1], got {epsilon}")
        if getattr(base, "kind", "route") != "route":
            raise PayrouteError(f"epsilon-greedy routing needs a route policy, got a {base.kind!r} policy")
        self.base = base
        self.epsilon = float(epsilon)
        self.rng = np.random.default_rng(np.random.SeedSequence(0, spawn_key=EXPLORATION_SPAWN_KEY))
        self.decisions = 0
        self.explored = 0

    def bind(self, world: Any) -> None:
        bind = getattr(self.base, "bind", None)
        if bind is not None:
            bind(world)
        self.rng = np.random.default_rng(np.random.SeedSequence(world.seed, spawn_key=EXPLORATION_SPAWN_KEY))
        self.decisions = self.explored = 0

    def decide(self, world: Any, payload: Any) -> tuple[int, float]:
        _tx, eligible = payload
        greedy, _p = self.base.decide(world, payload)
        greedy = int(greedy)
        n = len(eligible)
        self.decisions += 1
        # both draws every decision, so the stream does not depend on which branch came before
        explore = self.rng.random() < self.epsilon
        pick = eligible[int(self.rng.integers(n))].index
        action = pick if explore else greedy
        self.explored += explore
        propensity = (1.0 - self.epsilon) * (action == greedy) + self.epsilon / n
        return action, float(propensity)
