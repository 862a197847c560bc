"""How a router's and a risk desk's steps are paid: the realised outcomes, or each decision's expected margin.

Routing-v0's and Risk-v0's ``credit`` (and Routing-v0's ``baseline``) arguments choose (each class docstring is
the manual):

* ``credit="resolved"``: the ledger's money as it resolves (:meth:`Role.reward_usd`), the drain's outcomes in
  the last step. Exact money, but a step's reward belongs to other payments than the step's own, and the last
  step carries hundreds of times a normal step's reward.
* ``credit="expected_margin"``: each step is paid, at once, the expected margin of the decision it made,
  valued at that instant knowing the routes' hidden state, as the oracle values routes
  (:func:`~payroute.envs.baselines.routers.route_values`: P(success) x (price - cost - expected fraud loss) - the
  SLA penalty where the route cannot meet the deadline - P(decline) x the decline charge); the fraud loss is its
  expectation under the risk score's posterior (:class:`~payroute.envs.world.fraud.FraudPosterior`, with base
  rates from every day this environment has simulated since its last seeded reset). A masked action is
  declined: it earns nothing and costs ``invalid_penalty_usd``.
* ``baseline="route_mean"`` (with ``expected_margin``): minus the mean expected margin of the payment's eligible
  routes, which does not depend on the action.

For the risk desk (:class:`RiskExpectedMargin`), ``credit="expected_margin"`` pays what its decision settles at
once (a challenge's cost, a good customer it blocked or lost to the challenge: the friction charge) plus, for a
payment it let through, the expected margin of the route the bound router sends it to, valued at that instant as
above; a payment that passed a challenge is valued with the posterior updated by passing (the likelihood of
passing for a fraud: the challenge pass probabilities of the fraud patterns that attack such payments, weighted
by their attacks per day; for a good customer: not abandoning).

:class:`ExpectedMargin` and :class:`RiskExpectedMargin` are the ``expected_margin`` credits; the trainers'
decision credit (:mod:`payroute.agents.training_env`) values routes with the same :func:`route_values`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from payroute.envs.baselines.routers import observed_route_values, retry_values, route_values
from payroute.envs.world.decisions import CHALLENGE, RetryAction, RetryRequest
from payroute.envs.world.fraud import FraudPosterior

if TYPE_CHECKING:
    from collections.abc import Callable

    from payroute.envs.roles.risk import RiskRole
    from payroute.envs.roles.router import RouterRole
    from payroute.envs.world.decisions import DecisionPoint

STEP_CREDITS = ("resolved", "expected_margin")
"""How Routing-v0 and Risk-v0 pay a step (see the module docstring)."""

STEP_BASELINES = ("none", "route_mean")
"""What Routing-v0's expected-margin credit is measured against (see the module docstring)."""


def check_step_credit(credit: str, baseline: str = "none") -> None:
    """Refuse an unknown credit or baseline, or a baseline without expected-margin credit, in words."""
    if credit not in STEP_CREDITS:
        raise ValueError(f"credit must be one of {', '.join(map(repr, STEP_CREDITS))}, got {credit!r}")
    if baseline not in STEP_BASELINES:
        raise ValueError(f"baseline must be one of {', '.join(map(repr, STEP_BASELINES))}, got {baseline!r}")
    if baseline != "none" and credit != "expected_margin":
        raise ValueError(f"baseline={baseline!r} needs credit='expected_margin', got credit={credit!r}")


class ExpectedMargin:
    """Each routing decision's expected margin at the instant it is made, in cents (see the module docstring).

    One fraud history across the environment's days (the base rates a PSP knows from its past days), from its
    last :meth:`forget`: the object outlives the worlds it values decisions in. Call :meth:`credit_cents` once
    per decision, in order, before the world moves on.
    """

    def __init__(self, role: RouterRole, *, baseline: str = "none") -> None:
        self.role = role
        self.baseline = baseline
        self.posterior = FraudPosterior()

    def forget(self) -> None:
        """Start the fraud history afresh (a seeded reset: the same seed, the same credits)."""
        self.posterior = FraudPosterior()

    def bind(self, world: Any) -> None:
        """A new day's world: nothing to watch (a router's own decisions are valued as they are made)."""

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
        # the observation's feature pass has just visited every route for this payment at this instant
        values = observed_route_values(role.observer, world, tx, eligible, p_fraud, recovery, charge)
        reference = sum(values) / len(values) if self.baseline == "route_mean" else 0.0
        credits = {r.index: v - reference for r, v in zip(eligible, values, strict=True)}
        # a masked route: the payment is declined, nothing moves, the penalty is charged
        return credits, -float(role.invalid_penalty_cents) - reference

    def retry_credits_cents(self, point: DecisionPoint) -> tuple[dict[RetryAction, float], float]:
        """``({answer: credit}, credit of a masked action)`` for a retry decision (retries on): each answer's
        expected margin as the oracle values retries (:func:`~payroute.envs.baselines.routers.retry_values`;
        giving up is worth 0), less their mean with ``baseline="route_mean"``."""
        values, reference, masked = self._retry_values(point)
        return {a: v - reference for a, v in values}, masked

    def _retry_values(self, point: DecisionPoint) -> tuple[list[tuple[RetryAction, float]], float, float]:
        role = self.role
        request = point.payload
        p_fraud, recovery = self.posterior(role.world, request.tx, join=False)  # joined at its first attempt
        values = retry_values(role.world, request, p_fraud, recovery)
        reference = sum(v for _, v in values) / len(values) if self.baseline == "route_mean" else 0.0
        return values, reference, -float(role.invalid_penalty_cents) - reference

    def credit_cents(self, point: DecisionPoint, world_action: Any) -> float:
        """The credit of answering ``point`` with ``world_action`` (a route index, or a negative index: a
        masked action, declined; at a retry decision a :class:`RetryAction`)."""
        if isinstance(point.payload, RetryRequest):
            values, reference, masked = self._retry_values(point)
            for action, value in values:  # Routing-v0's answers are these very objects: found by identity
                if action is world_action or action == world_action:
                    return value - reference
            return masked
        credits, masked = self.route_credits_cents(point)
        return credits[world_action] if world_action >= 0 else masked


class RiskExpectedMargin:
    """Each risk decision's credit in cents: what it settles at once plus the expected margin of the route its
    payment goes to (see the module docstring).

    :meth:`bind` to each new world; :meth:`open` at each decision, before the world moves on; the function it
    returns, once the world has run to the next decision, pays what the step earned. One fraud history across
    the environment's days from its last :meth:`forget`, as :class:`ExpectedMargin`'s.
    """

    def __init__(self, role: RiskRole) -> None:
        self.role = role
        self.posterior = FraudPosterior()
        # payment id -> (P(fraud) it is sent with, recovery share), from its decision until it is routed
        self._watched: dict[int, tuple[float, float]] = {}
        self._routed_cents = 0.0  # the expected margin of watched payments routed since the last payment
        self._pass_likelihood: dict[tuple, float] = {}

    def forget(self) -> None:
        """Start the fraud history afresh (a seeded reset: the same seed, the same credits)."""
        self.posterior = FraudPosterior()

    def bind(self, world: Any) -> None:
        """A new day's world: watch where its bound router sends the payments this desk lets through."""
        self.world = world
        self._watched, self._routed_cents = {}, 0.0
        world.hub.bound_listeners.setdefault("route", []).append(self._on_route)

    def _fraud_pass_probability(self, tx: Any) -> float:
        """P(a fraud passes the challenge) for payments like ``tx``: the pass probabilities of the patterns that
        attack its instrument, urgency and corridor, weighted by their attacks per day (0 where none does)."""
        key = (tx.instrument, tx.urgency, tx.cross_border)
        known = self._pass_likelihood.get(key)
        if known is None:
            corridor = "cross_border" if tx.cross_border else "domestic"
            weight = passed = 0.0
            for pattern in self.world.scenario.fraud.patterns.values():
                if (
                    tx.instrument in pattern.instruments
                    and pattern.urgency == tx.urgency
                    and (corridor in pattern.corridors)
                ):
                    weight += pattern.attacks_per_day
                    passed += pattern.attacks_per_day * pattern.challenge_pass_probability
            known = self._pass_likelihood[key] = passed / weight if weight > 0 else 0.0
        return known

    def open(self, point: Any, world_action: int) -> Callable[[], float]:
        """Value the decision ``world_action`` on ``point``; the returned function pays it (cents) once the world
        has moved on."""
        tx = point.payload
        p_fraud, recovery = self.posterior(self.world, tx)  # the payment joins its cell's history
        if world_action == CHALLENGE:
            # passing is evidence: P(fraud | score, cell, passed), good customers pass unless they abandon
            stay = 1.0 - self.world.scenario.risk.challenge_abandon_probability
            fraud_pass = p_fraud * self._fraud_pass_probability(tx)
            p_fraud = fraud_pass / (fraud_pass + (1.0 - p_fraud) * stay) if fraud_pass > 0.0 else 0.0
        self._watched[tx.id] = (p_fraud, recovery)
        challenge = self.world.scenario.risk.challenge_cost_cents if world_action == CHALLENGE else 0

        def pay() -> float:
            self._watched.pop(tx.id, None)  # blocked, abandoned or routed by now
            routed, self._routed_cents = self._routed_cents, 0.0
            return routed - challenge - self.role.lost_cents_by_tx.get(tx.id, 0)

        return pay

    def _on_route(self, payload: Any, action: Any) -> None:
        tx, eligible = payload
        watched = self._watched.pop(tx.id, None)
        if watched is None:
            return
        route = next(r for r in eligible if r.index == int(action))
        self._routed_cents += route_values(self.world, tx, [route], *watched)[0]
