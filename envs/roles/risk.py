"""The risk desk: allow, challenge (step-up authentication) or block each payment.

Observation: :class:`~payroute.envs.features.TransactionFeatures` (the payment, its risk score and the calendar),
names and bounds from the scenario alone (:func:`~payroute.envs.features.transaction_features`). Action:
``Discrete(3)``, 0 allow, 1 challenge, 2 block; every action is always valid.

Money: the ledger's margin attributed to the risk desk. Charges (Risk-v0 only, ``friction_cost=True``): the
margin lost on a good customer it blocked (a false decline) or who abandoned at its challenge (friction):
price - the cheapest eligible route's cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

from payroute.envs.features import TransactionFeatures, transaction_features
from payroute.envs.roles.base import Role, box, discrete_action
from payroute.envs.world.decisions import RISK_ACTIONS

if TYPE_CHECKING:
    from payroute.envs.scenarios import Scenario
    from payroute.envs.world.decisions import DecisionPoint
    from payroute.envs.world.world import PaymentWorld


class RiskRole(Role):
    """The risk desk (see the module docstring)."""

    name = "risk"
    action_names = RISK_ACTIONS

    def __init__(self, scenario: Scenario, *, friction_cost: bool = False) -> None:
        super().__init__()
        self.friction_cost = bool(friction_cost)
        self.features = transaction_features(scenario)
        self.observation_space = box(self.features)
        self.action_space = spaces.Discrete(len(RISK_ACTIONS))
        self.observer: TransactionFeatures | None = None
        self.lost_cents_by_tx: dict[int, int] = {}

    def bind(self, world: PaymentWorld) -> None:
        super().bind(world)
        self.observer = TransactionFeatures(world)
        self.lost_cents_by_tx = {}  # the friction charge of each payment (decision credit reads it)
        if self.friction_cost:
            world.terminal_listeners.append(self._on_terminal)

    def _on_terminal(self, tx: Any) -> None:
        if tx.is_fraud or self.agent_id not in tx.agents:
            return
        if (tx.state == "blocked" and tx.reason == "risk") or (
            tx.state == "abandoned" and tx.reason == "challenge"
        ):
            eligible = self.world.eligible_routes(tx)
            cheapest = min((r.cost_cents(tx) for r in eligible), default=tx.price_cents)
            lost = max(tx.price_cents - cheapest, 0)
            self.charges_cents += lost
            self.lost_cents_by_tx[tx.id] = lost

    def observe(self, point: DecisionPoint | None) -> np.ndarray:
        out = np.zeros(self.observer.size, dtype=np.float32)
        self.observer.fill(out, point.payload, self.world.now)
        return out

    def to_world(self, action: Any, point: DecisionPoint) -> int:
        return discrete_action(action, 3, "risk", detail=" (0 allow, 1 challenge, 2 block)")
