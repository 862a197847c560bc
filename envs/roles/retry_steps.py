"""The router's retry steps: what it sees and may do when a softly declined payment comes back to it.

Only with the scenario's ``retries.enabled`` (with retries off the router's spaces, observations and every
number are those of the single-attempt world). The router is then also asked the world's retry decisions
(``hub.external_retries``): a step is either a payment's first routing decision or a retry decision for a payment
a card route softly declined (docs/world.md, "Response codes and retries").

Actions, ``Discrete(n_routes + 2 + n_delays)`` (``n_delays``: the scenario's ``retries.delays_s``):

====================================  ===========================================================================
action                                meaning
====================================  ===========================================================================
``0 .. n_routes-1``                   first attempt: send the payment on that route; retry: cascade to that route
                                      now (any eligible route but the one that just declined it)
``n_routes``                          retry: give up (the payment ends declined, or failed after a technical
                                      failure)
``n_routes + 1 .. n_routes+n_delays`` retry: the same route again after ``delays_s[i]``
``n_routes + 1 + n_delays``           retry: a step-up challenge, then the same route at once
====================================  ===========================================================================

The mask: at a first attempt the eligible routes only; at a retry the eligible routes but the one that
declined, give-up, each delay that starts inside the latency budget, and step-up. A masked action is handled as
the router's other masked actions are (declined with the invalid-action penalty, or ``ValueError``).

Observation: the routing features, then :data:`RETRY_FEATURES` and two flags per route (see
:func:`retry_features`); at a first attempt the retry part reads "no attempt yet, the whole budget left".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from payroute.envs.baselines.routers import STEP_UP, cascade_action, later_action
from payroute.envs.features import Feature
from payroute.envs.scenarios.retries import CARD_SOFT_CODES
from payroute.envs.world.codes import DO_NOT_RETRY_ADVICE
from payroute.envs.world.decisions import GIVE_UP, RetryAction, RetryRequest


def retry_features(sc: Any) -> list[Feature]:
    """The retry part of the router's observation with retries on (names, units, scaling, bounds)."""
    r = sc.retries
    f = [
        Feature("retry.is_retry", "flag", "1 at a retry decision, 0 at a first attempt", 0.0, 1.0),
        Feature("retry.attempts_made", "attempts", f"/ max_attempts ({r.max_attempts})", 0.0, 1.0),
        Feature("retry.attempts_left", "attempts", f"/ max_attempts ({r.max_attempts})", 0.0, 1.0),
        Feature(
            "retry.budget_left",
            "s",
            f"latency budget left / latency_budget_s ({r.latency_budget_s:g} s)",
            0.0,
            1.0,
        ),
        Feature(
            "retry.do_not_retry_advice", "flag", "the last decline carried Mastercard MAC 03/21", 0.0, 1.0
        ),
    ]
    f += [
        Feature(f"retry.last_code.{c}", "flag", "the last decline's reason", 0.0, 1.0)
        for c in CARD_SOFT_CODES
    ]
    f += [
        Feature(
            f"retry.codes_seen.{c}", "attempts", "declines with this reason so far / max_attempts", 0.0, 1.0
        )
        for c in CARD_SOFT_CODES
    ]
    for name in sc.routes:
        f += [
            Feature(
                f"retry.{name}.tried",
                "flag",
                "an earlier attempt of this payment went to this route",
                0.0,
                1.0,
            ),
            Feature(
                f"retry.{name}.declined_last", "flag", "the route that just declined the payment", 0.0, 1.0
            ),
        ]
    return f


class RetrySteps:
    """The retry part of a router's observation, its action encoding and its mask (see the module docstring)."""

    def __init__(self, sc: Any, n_routes: int) -> None:
        r = sc.retries
        self.n = n_routes
        self.delays_s = tuple(r.delays_s)
        self.n_actions = n_routes + 2 + len(self.delays_s)
        self.give_up = n_routes
        self.step_up = n_routes + 1 + len(self.delays_s)
        self.max_attempts = r.max_attempts
        self.budget_s = r.latency_budget_s
        self.features = retry_features(sc)
        self._code_at = {c: i for i, c in enumerate(CARD_SOFT_CODES)}
        k = len(CARD_SOFT_CODES)
        self._last_code, self._seen, self._routes = 5, 5 + k, 5 + 2 * k
        first = np.zeros(len(self.features), dtype=np.float32)
        first[2] = (r.max_attempts - 1) / r.max_attempts
        first[3] = 1.0
        self._first_masks: dict[int, np.ndarray] = {}
        self._retry_masks: dict[tuple[int, int], np.ndarray] = {}
        self.first = first  # the retry part at a first attempt (read only)
        self.first_bytes = first.tobytes()
        # the shared answer objects of routers.retry_options (the training credit finds them by identity)
        self._actions = (
            [cascade_action(i) for i in range(n_routes)]
            + [GIVE_UP]
            + [later_action(i) for i in range(len(self.delays_s))]
            + [STEP_UP]
        )

    # ------------------------------------------------------------------ observation
    def tail(self, payload: Any) -> bytes:
        """The retry part of the router's observation of ``payload``, as packed float32 values (appended to the
        routing features by :meth:`~payroute.envs.features.RoutingFeatures.build`)."""
        if not isinstance(payload, RetryRequest):
            return self.first_bytes
        v = np.zeros(len(self.features), dtype=np.float32)
        m = self.max_attempts
        v[0] = 1.0
        v[1] = payload.attempt / m
        v[2] = payload.attempts_left / m
        v[3] = min(max(payload.budget_left_s / self.budget_s, 0.0), 1.0)
        v[4] = 1.0 if payload.merchant_advice in DO_NOT_RETRY_ADVICE else 0.0
        at = self._code_at
        last = at.get(payload.codes[-1])
        if last is not None:
            v[self._last_code + last] = 1.0
        for code in payload.codes:
            i = at.get(code)
            if i is not None:
                v[self._seen + i] += 1.0 / m
        for route in payload.routes:
            v[self._routes + 2 * route] = 1.0
        v[self._routes + 2 * payload.routes[-1] + 1] = 1.0
        return v.tobytes()

    # ------------------------------------------------------------------ actions
    def mask(self, payload: RetryRequest) -> np.ndarray:
        """The retry decision's mask (int8, 1 = allowed; a new array)."""
        last = payload.routes[-1]
        bits = 0
        for r in payload.eligible:
            if r.index != last:
                bits |= 1 << r.index
        elapsed, budget = payload.elapsed_s, self.budget_s
        delays = 0
        for i, delay in enumerate(self.delays_s):
            if elapsed + delay < budget:
                delays |= 1 << i
        key = (bits, delays)
        cached = self._retry_masks.get(key)
        if (
            cached is None
        ):  # a few shapes recur: the routes that may take a cascade, the delays still in budget
            cached = np.zeros(self.n_actions, dtype=np.int8)
            cached[: self.n] = (bits >> np.arange(self.n)) & 1
            cached[self.give_up] = 1
            cached[self.give_up + 1 : self.step_up] = (delays >> np.arange(len(self.delays_s))) & 1
            cached[self.step_up] = 1
            self._retry_masks[key] = cached
        return cached.copy()

    def allows(self, payload: RetryRequest, a: int) -> bool:
        """Whether :meth:`mask` allows action ``a`` (``0 <= a < n_actions``), without building the mask."""
        if a < self.n:
            return a != payload.routes[-1] and any(r.index == a for r in payload.eligible)
        if a == self.give_up or a == self.step_up:
            return True
        return payload.elapsed_s + self.delays_s[a - self.give_up - 1] < self.budget_s

    def first_mask(self, bits: int) -> np.ndarray:
        """A first attempt's mask (its eligible routes as the bits of ``bits``, no retry action; a new array)."""
        cached = self._first_masks.get(bits)
        if cached is None:
            cached = np.zeros(self.n_actions, dtype=np.int8)
            cached[: self.n] = (bits >> np.arange(self.n)) & 1
            self._first_masks[bits] = cached
        return cached.copy()

    def action(self, a: int) -> RetryAction:
        """The world's answer to a retry for action index ``a`` (see the module docstring)."""
        return self._actions[a]

    def describe(self, a: int, route_names: list[str]) -> str:
        """Action ``a`` in words (error messages)."""
        if a < self.n:
            return route_names[a]
        if a == self.give_up:
            return "give up"
        if a == self.step_up:
            return "step up"
        return f"later ({self.delays_s[a - self.give_up - 1]:g} s)"
