"""The router: which eligible route carries each payment.

Observation: :class:`~payroute.envs.features.RoutingFeatures` (the payment, the calendar, what each route has
recently done, this payment's cost and eligibility on each route, prefunded balances), names and bounds from the
scenario alone (:func:`~payroute.envs.features.routing_features`). Action: ``Discrete(n_routes)``, ineligible
routes masked; the mask is in the info (``info["action_mask"]``) or, with ``mask_in_observation``, in the
observation (``{"observations": Box, "action_mask": Box(0, 1, (n,))}``, what RLlib's action-masking modules
read). A masked action raises ``ValueError`` with ``invalid_action="raise"``; with ``"decline"`` the payment is
declined (terminal state ``declined``, reason ``invalid_action``) and ``invalid_penalty_cents`` is charged.

``record_outcomes`` keeps the outcomes of the router's payments (route, approved, reason, ...) in
:attr:`RouterRole.outcomes` until taken (Routing-v0's ``info["outcomes"]``).

Money: the ledger's margin attributed to the router. Charges (Routing-v0 only, ``decline_cost=True``): the
margin a declined or failed payment would have earned on its route (price - the route's cost), and the
invalid-action penalty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

from payroute.envs.features import RoutingFeatures, routing_features
from payroute.envs.info import InfoKey
from payroute.envs.roles.base import Role, box, discrete_action
from payroute.envs.roles.retry_steps import RetrySteps
from payroute.envs.world.decisions import RetryAction, RetryRequest

if TYPE_CHECKING:
    from payroute.envs.scenarios import Scenario
    from payroute.envs.world.decisions import DecisionPoint
    from payroute.envs.world.world import PaymentWorld

DECLINE_ACTION = -1
"""The world's route action that declines a payment instead of routing it."""


class RouterRole(Role):
    """The router (see the module docstring)."""

    name = "router"
    INFO_KEYS = (
        InfoKey(
            "action_mask",
            "np.int8",
            "1 = eligible",
            "router only: the eligible routes of the waiting payment, in action order (a new array each time)",
            when=("decision",),
            shape=("n_routes",),
        ),
    )

    def __init__(
        self,
        scenario: Scenario,
        *,
        mask_in_observation: bool = False,
        invalid_action: str = "raise",
        invalid_penalty_cents: int = 0,
        decline_cost: bool = False,
        record_outcomes: bool = False,
        invalid_hint: str = "Use the action mask.",
    ) -> None:
        super().__init__()
        if invalid_action not in ("raise", "decline"):
            raise ValueError(f"router invalid_action must be 'raise' or 'decline', got {invalid_action!r}")
        self.invalid_action = invalid_action
        self.invalid_penalty_cents = int(invalid_penalty_cents)
        self.decline_cost = bool(decline_cost)
        self.record_outcomes = bool(record_outcomes)
        self.invalid_hint = invalid_hint
        self.mask_in_observation = bool(mask_in_observation)
        self.route_names = list(scenario.routes)
        self._routes_named = f" ({', '.join(f'{i} {n}' for i, n in enumerate(self.route_names))})"
        self.route_latency_s = [spec.latency.median_s for spec in scenario.routes.values()]
        self.features = routing_features(scenario)
        self._n = n = len(self.route_names)
        # retries on: the router is also asked the retry decisions (:mod:`payroute.envs.roles.retry_steps`)
        self.retries = RetrySteps(scenario, n) if scenario.retries.enabled else None
        n_actions = n
        if self.retries is not None:
            self.features = [*self.features, *self.retries.features]
            n_actions = self.retries.n_actions
        self._n_actions = n_actions
        self.action_space = spaces.Discrete(n_actions)
        obs = box(self.features)
        if self.mask_in_observation:
            mask = spaces.Box(0.0, 1.0, (n_actions,), dtype=np.float32)
            # keys in the order observe() returns them (from a plain dict the space would sort them)
            self.observation_space = spaces.Dict([("observations", obs), ("action_mask", mask)])
        else:
            self.observation_space = obs
        self.observer: RoutingFeatures | None = None
        self.lost_cents_by_tx: dict[int, int] = {}
        self.outcomes: list[dict] = []

    def bind(self, world: PaymentWorld) -> None:
        super().bind(world)
        self.observer = RoutingFeatures(world)
        self.lost_cents_by_tx = {}  # the decline charge of each payment (decision credit reads it)
        self.outcomes = []  # the outcomes of its payments since they were last taken (Routing-v0's info)
        self._env = world.env
        if self.retries is not None and world.hub.is_external("route"):
            world.hub.external_retries = True  # softly declined payments come back to this router
        if self.decline_cost or self.record_outcomes:
            world.outcome_listeners.append(self._on_outcome)

    def decline_charge_cents(self, tx: Any, route: Any) -> int:
        """What a decline of ``tx`` on ``route`` is charged on top of the margin it did not earn (0 without
        ``decline_cost``): the margin the payment would have made there."""
        return max(tx.price_cents - route.cost_cents(tx), 0) if self.decline_cost else 0

    def _on_outcome(self, tx: Any, route: Any, approved: bool, reason: str) -> None:
        if self.agent_id not in tx.agents:
            return
        if not approved and self.decline_cost:
            lost = self.decline_charge_cents(tx, route)
            self.charges_cents += lost
            self.lost_cents_by_tx[tx.id] = self.lost_cents_by_tx.get(tx.id, 0) + lost
        if self.record_outcomes:
            self.outcomes.append(
                {
                    "route": route.index,
                    "approved": approved,
                    "reason": reason,
                    "segment_index": tx.segment,
                    "instrument": tx.instrument,
                    "network": tx.network,
                    "t": self._env.now,
                }
            )

    # ------------------------------------------------------------------ a decision
    def mask(self, payload: Any) -> np.ndarray:
        """The action mask of a decision's payload (int8, 1 = allowed; a new array): the eligible routes of a
        payment, or with retries on the allowed answers of a :class:`RetryRequest`."""
        retries = self.retries
        if retries is None:
            return self.observer.mask(payload)
        if isinstance(payload, RetryRequest):
            return retries.mask(payload)
        return retries.first_mask(payload.eligible_mask)

    def observe(self, point: DecisionPoint | None) -> Any:
        payload = point.payload
        if self.retries is None:
            obs = self.observer.build(payload, self._env.now)
        else:
            tx = payload.tx if isinstance(payload, RetryRequest) else payload
            obs = self.observer.build(tx, self._env.now, self.retries.tail(payload))
        if self.mask_in_observation:
            return {"observations": obs, "action_mask": self.mask(payload).astype(np.float32)}
        return obs

    def info(self, point: DecisionPoint) -> dict:
        return {"action_mask": self.mask(point.payload)}

    def to_world(self, action: Any, point: DecisionPoint) -> Any:
        retries = self.retries
        if retries is None:
            a = discrete_action(action, self._n, "router", "a route index", self._routes_named)
            if (point.payload.eligible_mask >> a) & 1:
                return a
        else:
            a = discrete_action(action, self._n_actions, "router", "an action", " (docs/environments.md)")
            if isinstance(point.payload, RetryRequest):
                if retries.allows(point.payload, a):
                    return retries.action(a)
            elif a < self._n and (point.payload.eligible_mask >> a) & 1:
                return a
        if self.invalid_action == "raise":
            allowed = np.flatnonzero(self.mask(point.payload))
            if retries is None:
                raise ValueError(
                    f"router action {a} ({self.route_names[a]}) is masked for this payment; eligible routes: "
                    f"{[self.route_names[i] for i in allowed]}. {self.invalid_hint}"
                )
            names = self.route_names
            raise ValueError(
                f"router action {a} ({retries.describe(a, names)}) is masked for this decision; allowed: "
                f"{[f'{i} {retries.describe(i, names)}' for i in allowed]}. {self.invalid_hint}"
            )
        self.charges_cents += self.invalid_penalty_cents
        if isinstance(point.payload, RetryRequest):
            return RetryAction("cascade", DECLINE_ACTION)  # the world declines the payment (invalid_action)
        return DECLINE_ACTION
