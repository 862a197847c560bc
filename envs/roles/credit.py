"""How a router's steps are paid: the realised outcomes, or each decision's expected margin at once.

Routing-v0's ``credit`` and ``baseline`` arguments choose (the class docstring is the manual):

* ``credit="resolved"``: the ledger's money as it resolves (:meth:`Role.reward_usd`), the drain's outcomes in
  the last step. Exact money, but a step's reward belongs to other payments than the step's own, and the last
  step carries hundreds of times a normal step's reward.
* ``credit="expected_margin"``: each step is paid, at once, the expected margin of the decision it made,
  valued at that instant knowing the routes' hidden state, as the oracle values routes
  (:func:`~payroute.envs.baselines.routers.route_values`: P(success) x (price - cost - expected fraud loss) - the
  SLA penalty where the route cannot meet the deadline - P(decline) x the decline charge); the fraud loss is its
  expectation under the risk score's posterior (:class:`~payroute.envs.world.fraud.FraudPosterior`, with base
  rates from every day this environment has simulated since its last seeded reset). A masked action is declined: it earns nothing and costs
  ``invalid_penalty_usd``.
* ``baseline="route_mean"`` (with ``expected_margin``): minus the mean expected margin of the payment's eligible
  routes, which does not depend on the action.

:class:`ExpectedMargin` is the second; the trainers' decision credit
(:mod:`payroute.agents.training_env`) values routes with the same :func:`route_values`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from payroute.envs.baselines.routers import route_values
from payroute.envs.world.fraud import FraudPosterior

if TYPE_CHECKING:
    from payroute.envs.roles.router import RouterRole
    from payroute.envs.world.decisions import DecisionPoint

ROUTER_CREDITS = ("resolved", "expected_margin")
"""How Routing-v0 pays a step (see the module docstring)."""

ROUTER_BASELINES = ("none", "route_mean")
"""What Routing-v0's expected-margin credit is measured against (see the module docstring)."""


def check_router_credit(credit: str, baseline: str) -> None:
    """Refuse an unknown credit or baseline, or a baseline without expected-margin credit, in words."""
    if credit not in ROUTER_CREDITS:
        raise ValueError(f"credit must be one of {', '.join(map(repr, ROUTER_CREDITS))}, got {credit!r}")
    if baseline not in ROUTER_BASELINES:
        raise ValueError(
            f"baseline must be one of {', '.join(map(repr, ROUTER_BASELINES))}, got {baseline!r}"
        )
    if baseline != "none" and credit != "expected_margin":
        raise ValueError(f"baseline={baseline!r} needs credit='expected_margin', got credit={credit!r}")


class ExpectedMargin:
    """Each routing decision's expected margin at the instant it is made, in cents (see the module docstring).

    One fraud history across the environment's days (the base rates a PSP knows from its past days), from its
    last :meth:`forget`: the object outlives the worlds it values decisions in. Call :meth:`credit_cents` once per decision, in order,
    before the world moves on.
    """

    def __init__(self, role: RouterRole, *, baseline: str = "none") -> None:
        self.role = role
        self.baseline = baseline
        self.posterior = FraudPosterior()

    def forget(self) -> None:
        """Start the fraud history afresh (a seeded reset: the same seed, the same credits)."""
        self.posterior = FraudPosterior()

    def route_credits_cents(self, point: DecisionPoint) -> tuple[dict[int, float], float]:
        """``({route index: credit of sending the payment there}, credit of a masked action)`` for ``point``.

        The payment joins the fraud history here: call it once per decision, in order, before the world moves on.
        """
        role = self.role
        world = role.world
        tx = point.payload
        eligible = point.info["eligible"]
        p_fraud, recovery = self.posterior(world, tx)
        charge = role.decline_charge_cents if role.decline_cost else None
        values = route_values(world, tx, eligible, p_fraud, recovery, charge)
        reference = sum(values) / len(values) if self.baseline == "route_mean" else 0.0
        credits = {r.index: v - reference for r, v in zip(eligible, values, strict=True)}
        # a masked route: the payment is declined, nothing moves, the penalty is charged
        return credits, -float(role.invalid_penalty_cents) - reference

    def credit_cents(self, point: DecisionPoint, world_action: int) -> float:
        """The credit of answering ``point`` with ``world_action`` (a route index, or a negative index: a
        masked action, declined)."""
        credits, masked = self.route_credits_cents(point)
        return credits[world_action] if world_action >= 0 else masked
