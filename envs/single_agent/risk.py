"""``payroute/Risk-v0``: allow, challenge or block each payment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from payroute.envs.features import TransactionFeatures
from payroute.envs.roles import RiskRole
from payroute.envs.scenarios import Scenario
from payroute.envs.single_agent.base import SingleAgentEnv
from payroute.envs.world.decisions import RISK_ACTIONS, DecisionPoint


class RiskEnv(SingleAgentEnv):
    """Decide, for each payment, whether to allow it, challenge it (step-up authentication) or block it.

    ## Description

    Every payment that survives pricing reaches the risk desk with a risk score: a noisy signal of whether it is
    fraud (``risk.separability`` in the scenario is its d'). Fraudsters run card testing, account takeover,
    authorised push-payment scams and mule cash-outs. Allowed fraud that gets through becomes a loss when it
    is discovered, days later (a chargeback, an unrecovered return, an APP reimbursement). A challenge stops
    most fraud but some good customers abandon (about 25% of 3DS2 challenges, CALIBRATION.md) and it costs a
    few cents. Blocking a good customer loses the sale. Routing and the other decisions are bound to baselines.

    ## Action space

    ``Discrete(3)``: 0 allow, 1 challenge, 2 block. Every action is always valid: ``info["action_mask"]`` and
    ``env.action_masks()`` (for sb3-contrib's MaskablePPO) are all ones.

    ## Observation space

    ``Box(low, high, (n_features,), float32)`` with the payment and calendar features of Routing-v0
    (``env.feature_names``): log amount, segment / instrument / network / urgency one-hots, cross-border,
    foreign card, time to deadline, the risk score (also as its normal quantile, ``risk_z``: the evidence it
    carries is linear there), hour sin/cos, weekday, business day. Never the hidden truth.

    ## Rewards

    Dollars (times ``reward_scale``): the ledger margin of the payments this agent passed whose outcomes resolved
    since its previous step (fee revenue − route cost − fraud loss − SLA penalty − challenge cost − credit cost),
    minus the margin lost on good customers it blocked (false declines) or who abandoned at its challenge
    (friction): price − the cheapest eligible route's cost. Losses from fraud it let through arrive when the
    fraud is discovered; what is still open when the day ends is paid in the last step's reward.

    ## Starting state and episode end

    As Routing-v0: one simulated day (``days``) from midnight of the scenario's start date; no truncation.

    ## Arguments

    ``gym.make("payroute/Risk-v0", scenario="fraud_surge", seed=0, days=1.0, scenario_overrides=None,
    baselines={"route": "cheapest"}, reward_scale=1.0)``

    ## Version history

    * v0: initial release (22 features, ``risk_z`` among them). Bundles carry their feature names: a bundle whose
      card names other features is refused with the difference.
    """

    decision_kind = "risk"
    action_names = RISK_ACTIONS

    def __init__(
        self,
        scenario: str | Path | Scenario = "default",
        seed: int | None = None,
        days: float = 1.0,
        scenario_overrides: dict[str, Any] | None = None,
        baselines: dict[str, str] | None = None,
        reward_scale: float = 1.0,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            scenario,
            seed,
            days,
            scenario_overrides,
            baselines,
            reward_scale,
            render_mode,
            role=lambda sc: RiskRole(sc, friction_cost=True),
        )
        self.feature_names = self.role.feature_names

    @property
    def features(self) -> TransactionFeatures | None:
        """The features bound to the current world (``None`` before the first reset)."""
        return self.role.observer

    @property
    def lost_cents_by_tx(self) -> dict[int, int]:
        """The friction charge of each payment this episode (decision credit reads it)."""
        return self.role.lost_cents_by_tx

    def action_masks(self) -> np.ndarray:
        """Every action is valid: all ones (bool), as ``info["action_mask"]``; for clients that ask every
        discrete environment for a mask (sb3-contrib's MaskablePPO)."""
        return np.ones(self.action_space.n, dtype=bool)

    def _info(self, point: DecisionPoint) -> dict:
        tx = point.payload
        return {
            "action_mask": np.ones(3, dtype=np.int8),
            "risk_score": tx.risk_score,
            "transaction": {
                "id": tx.id,
                "amount_cents": tx.amount_cents,
                "price_cents": tx.price_cents,
                "instrument": tx.instrument,
            },
        }

    def _final_info(self) -> dict:
        # the episode is over: no payment waits, the next action (a vector env's autoreset step) is ignored, and
        # every action is allowed, as action_masks() says; a masked sampler must find at least one
        return {"action_mask": np.ones(self.action_space.n, dtype=np.int8), "kpis": self.world.kpis()}
