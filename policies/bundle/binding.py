"""Bundles inside the payment world: the observation a bound bundle sees, built from the world it joins.

A route bundle sees what ``payroute/Routing-v0`` shows a learning router (:class:`~payroute.envs.features.RoutingFeatures`:
the payment, the calendar, each route's recent record, this payment's fee on each route, eligibility and prefunded
balances); a risk bundle sees what ``payroute/Risk-v0`` shows (:class:`~payroute.envs.features.TransactionFeatures`).
The builders here are :class:`~payroute.policies.bundle.runtime.ObservationBuilder` objects: each world gets its own
feature state when the bundle is bound into it, so one loaded bundle can drive many worlds, one after another.

:func:`bound_bundle` is the one call the simulator, the stress suite and the constraint checks use::

    policy = load_bundle("router.zip")
    world = PaymentWorld(scenario, seed=0, policies={**bound_policies(), "route": bound_bundle(policy)})

Whether a bundle fits a scenario (:func:`check_bundle_fits_scenario`) is decided before any world is built: the
observation schemas (:func:`~payroute.envs.features.routing_features`,
:func:`~payroute.envs.features.transaction_features`) and the route names depend on the scenario alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from payroute.envs.features import (
    Feature,
    RoutingFeatures,
    TransactionFeatures,
    routing_features,
    transaction_features,
)
from payroute.envs.roles import FraudsterRole, PricerRole, TreasurerRole
from payroute.errors import PayrouteError
from payroute.policies.bundle.card import FeatureSpec, check_observation_schema
from payroute.policies.bundle.runtime import BundlePolicy

if TYPE_CHECKING:
    from payroute.envs.scenarios import Scenario


class RoutingObservation:
    """The routing observation of a ``route`` decision (payload ``(transaction, eligible routes)``)."""

    def __init__(self) -> None:
        self.features: RoutingFeatures | None = None
        self.feature_names: list[str] | None = None
        self._world: Any = None

    def bind(self, world: Any) -> None:
        self.features = RoutingFeatures(world)
        self.feature_names = self.features.names
        self._world = world

    def __call__(self, world: Any, payload: Any) -> np.ndarray:
        if world is not self._world:
            self.bind(world)
        tx, _eligible = payload
        return self.features.build(tx, world.now)


class RiskObservation:
    """The transaction observation of a ``risk`` decision (payload: the transaction)."""

    def __init__(self) -> None:
        self.features: TransactionFeatures | None = None
        self.feature_names: list[str] | None = None
        self._world: Any = None

    def bind(self, world: Any) -> None:
        self.features = TransactionFeatures(world)
        self.feature_names = [f.name for f in self.features.features]
        self._world = world

    def __call__(self, world: Any, payload: Any) -> np.ndarray:
        if world is not self._world:
            self.bind(world)
        out = np.zeros(self.features.size, dtype=np.float32)
        self.features.fill(out, payload, world.now)
        return out


OBSERVATIONS = {"route": RoutingObservation, "risk": RiskObservation}


def observation_features(kind: str, scenario: Scenario) -> list[Feature]:
    """The observation schema a ``kind`` bundle must have to act in a world of ``scenario`` (names, units,
    scaling, bounds): computed from the scenario alone, no world is built."""
    if kind == "route":
        return routing_features(scenario)
    if kind == "risk":
        return transaction_features(scenario)
    if kind == "price":
        return list(PricerRole(scenario).features)
    if kind in PERIOD_ROLES:
        return list(PERIOD_ROLES[kind](scenario).features)
    raise PayrouteError(f"no world observation for {kind!r} decisions; bindable kinds: {list(OBSERVATIONS)}")


def check_bundle_fits_scenario(policy: BundlePolicy, scenario: Scenario) -> None:
    """Raise unless the bundle's card matches ``scenario``: the observation names in order, and units, scaling
    and bounds wherever the card declares them, and (route bundles) the action names, the scenario's routes in
    order. Computed from the scenario alone, no world is built."""
    role = None
    if policy.decision_kind in PERIOD_ROLES:
        role = period_role(policy, scenario)
        expected = list(role.features)
    else:
        expected = observation_features(policy.decision_kind, scenario)
    have = policy.card.observation
    problems = []
    if len(have) != len(expected):
        problems.append(
            f"the bundle has {len(have)} features, this scenario's observation has {len(expected)}"
        )
    for i, (got, want) in enumerate(zip(have, expected, strict=False)):
        if got.name != want.name:
            problems.append(f"feature {i} is {got.name!r}, the scenario's is {want.name!r}")
            continue
        for attr in ("unit", "scaling", "low", "high"):
            declared = getattr(got, attr)
            if declared not in (None, "") and declared != getattr(want, attr):
                problems.append(
                    f"feature {got.name!r} {attr} is {declared!r}, the scenario's is {getattr(want, attr)!r}"
                )
    names = list(scenario.routes) if policy.decision_kind == "route" else None
    if role is not None:
        names = list(role.action_names)
    if names is not None and policy.action_names != names:
        what = "routes" if role is None else f"{policy.decision_kind} actions"
        problems.append(f"actions {policy.action_names} are not this scenario's {what} {names}")
    if role is not None:
        problems += _continuous_problems(policy, role)
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise PayrouteError(
            f"bundle {policy.source.name}: card.json does not fit scenario {scenario.name!r}: {shown}"
        )


def feature_specs(kind: str, scenario: Scenario) -> list[FeatureSpec]:
    """:func:`observation_features` of ``scenario`` as card feature specs (what an exporter writes into
    ``card.json``)."""
    return [FeatureSpec(**f.__dict__) for f in observation_features(kind, scenario)]


class BoundPriceBundle:
    """A price-level bundle (``Pricing-v0`` with ``price_levels``) as the world's pricing policy: at each pricing
    period it sees what Pricing-v0 shows the pricer (:class:`~payroute.envs.roles.PricerRole`) and sets every
    segment and family to the level it chooses (greedy, propensity 1)."""

    kind = "price"

    def __init__(self, policy: BundlePolicy) -> None:
        if policy.card.action_values is None:
            raise PayrouteError(
                f"bundle {policy.source.name}: a price bundle bound into the world needs its price levels "
                "(card action_values)"
            )
        self.policy = policy
        self.role: PricerRole | None = None

    def bind(self, world: Any) -> None:
        self.role = PricerRole(world.scenario, price_levels=list(self.policy.card.action_values))
        self.role.bind(world)
        check_observation_schema(self.policy.card, list(self.role.observation_names), self.policy.source.name)

    def decide(self, world: Any, payload: Any) -> tuple[np.ndarray, float]:
        if self.role is None or self.role.world is not world:
            self.bind(world)
        action = int(self.policy.act(self.role.observe(None)))
        return self.role.to_world(np.int64(action)), 1.0


def _treasurer(scenario: Scenario, env_kwargs: dict[str, Any] | None = None) -> TreasurerRole:
    """Treasury-v0's role with the environment's settings (``forecast_hours``, ``min_transfer_fraction``)."""
    kwargs = env_kwargs or {}
    keep = {k: kwargs[k] for k in ("forecast_hours", "min_transfer_fraction") if k in kwargs}
    return TreasurerRole(scenario, **keep)


def _fraudster(scenario: Scenario, env_kwargs: dict[str, Any] | None = None) -> FraudsterRole:
    return FraudsterRole(scenario)


PERIOD_ROLES = {"treasury": _treasurer, "fraud": _fraudster}
"""Per-period decision kinds whose bundles are continuous: kind -> ``(scenario, env_kwargs)`` -> the role
(observation, action box); ``env_kwargs`` as trained (a card's ``reward.env_kwargs``)."""


def period_role(policy: BundlePolicy, scenario: Scenario) -> Any:
    """The role a treasury or fraud bundle acts as in ``scenario``, with the settings on its card."""
    return PERIOD_ROLES[policy.decision_kind](scenario, dict(policy.card.reward.get("env_kwargs") or {}))


def _continuous_problems(policy: BundlePolicy, role: Any) -> list[str]:
    card = policy.card
    if not card.continuous:
        return [
            f"a {policy.decision_kind} bundle acts with one number per action entry (card action_low and "
            "action_high); this card declares none"
        ]
    low, high = role.action_space.low.astype(float), role.action_space.high.astype(float)
    wider = [
        f"{n} [{lo:g}, {hi:g}] (the role allows [{rlo:g}, {rhi:g}])"
        for n, lo, hi, rlo, rhi in zip(
            role.action_names, card.action_low, card.action_high, low, high, strict=False
        )
        if lo < rlo - 1e-6 or hi > rhi + 1e-6
    ]
    return [f"declared action bounds wider than the role's: {', '.join(wider)}"] if wider else []


class BoundPeriodBundle:
    """A continuous per-period bundle (``treasury``, ``fraud``) as the world's policy for its kind: at each
    period it sees what its role shows (:class:`~payroute.envs.roles.TreasurerRole`: Treasury-v0's observation;
    :class:`~payroute.envs.roles.FraudsterRole`: the ecosystem fraudster's) and acts with the graph's output
    (the trained Gaussian's mean) clipped to the card's ``action_low``/``action_high``, then to the role's own
    limits (greedy, propensity 1). ``raw`` keeps every unclipped output (the constraint checks read it)."""

    def __init__(self, policy: BundlePolicy, keep_raw: bool = False) -> None:
        if policy.decision_kind not in PERIOD_ROLES or not policy.card.continuous:
            raise PayrouteError(
                f"bundle {policy.source.name}: a {policy.decision_kind!r} bundle bound per period needs "
                "decision_kind treasury or fraud and continuous actions (card action_low/action_high)"
            )
        self.policy = policy
        self.kind = policy.decision_kind
        self.low = np.asarray(policy.card.action_low, dtype=np.float64)
        self.high = np.asarray(policy.card.action_high, dtype=np.float64)
        self.role: Any = None
        self.keep_raw = keep_raw
        self.raw: list[np.ndarray] = []

    def bind(self, world: Any) -> None:
        self.role = period_role(self.policy, world.scenario)
        self.role.bind(world)
        check_bundle_fits_scenario(self.policy, world.scenario)

    def decide(self, world: Any, payload: Any) -> tuple[Any, float]:
        if self.role is None or self.role.world is not world:
            self.bind(world)
        obs = np.asarray(self.role.observe(None), dtype=np.float32)
        out = self.policy.logits(obs[None])[0].astype(np.float64)
        if self.keep_raw:
            self.raw.append(out)
        return self.role.to_world(np.clip(out, self.low, self.high), None), 1.0


def bound_bundle(policy: BundlePolicy, *, sample: bool = False) -> Any:
    """The bundle as the world's policy for its decision kind, seeing the observation of the matching env (a
    price bundle: :class:`BoundPriceBundle`, greedy; a treasury or fraud bundle: :class:`BoundPeriodBundle`)."""
    if policy.decision_kind == "price" and not sample:
        return BoundPriceBundle(policy)
    if policy.decision_kind in PERIOD_ROLES:
        return BoundPeriodBundle(policy)
    builder = OBSERVATIONS.get(policy.decision_kind)
    if builder is None:
        raise PayrouteError(
            f"a {policy.decision_kind!r} bundle cannot act in the world yet; bindable kinds: {list(OBSERVATIONS)}"
        )
    return policy.bound(builder(), sample=sample)


__all__ = [
    "OBSERVATIONS",
    "PERIOD_ROLES",
    "BoundPeriodBundle",
    "BoundPriceBundle",
    "RiskObservation",
    "RoutingObservation",
    "bound_bundle",
    "check_bundle_fits_scenario",
    "feature_specs",
    "observation_features",
]
