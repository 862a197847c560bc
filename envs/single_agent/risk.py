"""``payroute/Risk-v0``: allow, challenge or block each payment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from payroute.envs.features import TransactionFeatures
from payroute.envs.info import InfoKey, with_info_table
from payroute.envs.roles import RiskRole
from payroute.envs.roles.credit import STEP_CREDITS, RiskExpectedMargin, check_step_credit
from payroute.envs.scenarios import Scenario
from payroute.envs.single_agent.base import SingleAgentEnv
from payroute.envs.world.books import FINAL_KPIS, PAYMENT_FIELDS
from payroute.envs.world.decisions import RISK_ACTIONS, DecisionPoint


class RiskEnv(SingleAgentEnv):
    """Decide, for each payment, whether to allow it, challenge it (step-up authentication) or block it.

    ## Description

    Every payment that survives pricing reaches the risk desk with a risk score: a noisy signal of whether it is
    fraud (``risk.separability`` in the scenario is its d'). Fraudsters run card testing, account takeover,
    authorised push-payment scams and mule cash-outs. Allowed fraud that gets through becomes a loss when it
    is discovered, days later (a chargeback, an unrecovered return, an APP reimbursement). A challenge stops
    most fraud but some good customers abandon (about 25% of 3DS2 challenges, docs/calibration.md) and it costs a
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

    Dollars (times ``reward_scale``), how chosen by ``credit`` (:mod:`payroute.envs.roles.credit`). Whatever the
    credit, the evaluation numbers count what really happened: the last step's ``info["kpis"]``.

    * ``credit="expected_margin"`` (the default): each step is paid, at once, what its own decision settles and
      what it is expected to earn. Settled at once: a challenge's cost, and the friction charge of a good
      customer it blocked or who abandoned at its challenge (price − the cheapest eligible route's cost).
      Expected: for a payment it let through (allowed, or challenged and passed), the expected margin of the
      route the bound router sends it to, valued at that instant as Routing-v0's expected margin values it:
      P(success) x (price − route cost − expected fraud loss) − the SLA penalty where the route cannot meet the
      deadline, with P(fraud) the risk score's posterior given the payment's cell (base rates from every day this
      environment has simulated since its last seeded reset), updated by passing for a challenged payment (a
      fraud passes with the pass probability of the fraud patterns that attack such payments, weighted by their
      attacks per day; a good customer passes unless they abandon). No delay, no heavy-tailed fraud loss days
      later: ``gamma=0`` loses nothing. Bias: what that valuation leaves out (intraday credit cost, queueing, a
      route's health changing before it answers), the posterior's miscalibration on thin cells, and a challenge's
      evidence averaged over the patterns rather than the fraud's own.
    * ``credit="resolved"``: the ledger margin of the payments this agent passed whose outcomes resolved since
      its previous step (fee revenue − route cost − fraud loss − SLA penalty − challenge cost − credit cost),
      minus the margin lost on good customers it blocked (false declines) or who abandoned at its challenge
      (friction): price − the cheapest eligible route's cost. Losses from fraud it let through arrive when the
      fraud is discovered; what is still open when the day ends is paid in the last step's reward.

    ``payroute train`` (RLlib) pays a step its own payment's final margin once the day has drained
    (experiments' ``env.credit``; docs/experiments.md, Decision credit), with the realised loss kept for a payment
    that passed a challenge; the shipped risk desk trained with ``expected_outcome``.

    ## Starting state and episode end

    As Routing-v0: one simulated day (``days``) from midnight of the scenario's start date; no truncation.

    ## Info

    Every key, generated from ``RiskEnv.INFO_KEYS`` (:mod:`payroute.envs.info`): numbers of a fixed type
    (``int``, ``float``, numpy arrays), so a vector env stacks each into one numeric array (``transaction`` and
    ``kpis`` key by key); strings stay objects.

    ## Arguments

    ``gym.make("payroute/Risk-v0", scenario="fraud_surge", seed=0, days=1.0, scenario_overrides=None,
    baselines={"route": "cheapest"}, reward_scale=1.0, credit="expected_margin")``

    ## Version history

    * v0: initial release (22 features, ``risk_z`` among them). Bundles carry their feature names: a bundle whose
      card names other features is refused with the difference.
    """

    decision_kind = "risk"
    action_names = RISK_ACTIONS
    credits = STEP_CREDITS
    """What ``credit`` may be (:mod:`payroute.envs.roles.credit`)."""

    def __init__(
        self,
        scenario: str | Path | Scenario = "default",
        seed: int | None = None,
        days: float = 1.0,
        scenario_overrides: dict[str, Any] | None = None,
        baselines: dict[str, str] | None = None,
        reward_scale: float = 1.0,
        credit: str = "expected_margin",
        render_mode: str | None = None,
    ) -> None:
        check_step_credit(credit)
        self.credit = credit
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
        self._expected = RiskExpectedMargin(self.role) if credit == "expected_margin" else None

    @property
    def features(self) -> TransactionFeatures | None:
        """The features bound to the current world (``None`` before the first reset)."""
        return self.role.observer

    @property
    def lost_cents_by_tx(self) -> dict[int, int]:
        """The friction charge of each payment this episode (decision credit reads it)."""
        return self.role.lost_cents_by_tx

    def _open_credit(self, point: DecisionPoint, world_action: Any) -> Callable[[], float] | None:
        return None if self._expected is None else self._expected.open(point, world_action)

    INFO_KEYS: tuple[InfoKey, ...] = (
        InfoKey(
            "action_mask",
            "np.int8",
            "1 = allowed",
            "every action is always allowed: all ones (for clients that read a mask)",
            when=("reset", "step", "terminal"),
            shape=(3,),
        ),
        InfoKey("risk_score", "float", "0..1", "the waiting payment's risk score (also in the observation)"),
        InfoKey(
            "transaction",
            "dict",
            "",
            "the waiting payment",
            fields=(*PAYMENT_FIELDS,),
        ),
        FINAL_KPIS,
    )
    """Every key of Risk-v0's ``info`` (the docstring's ``## Info`` table, docs/environments.md)."""

    def action_masks(self) -> np.ndarray:
        """Every action is valid: all ones (bool), as ``info["action_mask"]``; for clients that ask every
        discrete environment for a mask (sb3-contrib's MaskablePPO)."""
        return np.ones(self.action_space.n, dtype=bool)

    def _info(self, point: DecisionPoint) -> dict:
        tx = point.payload
        return {
            "action_mask": np.ones(3, dtype=np.int8),
            "risk_score": float(tx.risk_score),
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


RiskEnv.__doc__ = with_info_table(RiskEnv.__doc__, RiskEnv.INFO_KEYS)
