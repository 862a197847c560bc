"""Every non-learning decision maker the world can bind, by name: what ``--policy NAME``, experiment configs
and the environments' ``baselines=`` refer to.

They are part of the world a learner faces (the rest of the payment business keeps running while one agent
learns), so they live beside the environments, below every learner. Each implements ``decide(world, payload)
-> (action, propensity)`` for one decision kind; the per-transaction ones also ``act(observation, info) ->
action`` for use with the Gymnasium environments. They are what a payments team runs today, and what any
learned policy has to beat.

========================  ========  ===============================================================
name                      kind      what it does
========================  ========  ===============================================================
``cheapest``              route     the eligible route that costs least for this payment
``fastest``               route     the eligible route with the shortest typical latency
``priority``              route     a fixed preference list (the scenario's route order by default)
``no_retry`` ...          route     routers that also decide after a soft decline (:mod:`.cascades`)
``allow_all``             risk      allows every payment
``threshold``             risk      challenges above one risk score, blocks above another
``card_blocker``          risk      blocks card payments from a lower risk score; thresholds elsewhere
``static_pricing``        price     the scenario's list prices, always
``cost_plus``             price     the cheapest route's cost plus a markup, per segment x family
``target_balance``        treasury  tops accounts up to their target, sweeps the excess back
``hold``                  treasury  no transfers at all (the do-nothing reference)
``scripted_fraud``        fraud     the scenario's attack mix at intensity 1
``post_all`` ...          rtgs      banks of the RTGS liquidity game (:mod:`payroute.envs.baselines.rtgs`)
========================  ========  ===============================================================

Routers that learn from outcomes (success rate, bandits) and the oracle are in :mod:`.routers`; the clairvoyant
risk bound (:class:`ClairvoyantRisk`, not a named baseline: it sees the fraud truth) in :mod:`.rules`; the fixed rules in
:mod:`.rules`; the RTGS game's banks in :mod:`.rtgs`; epsilon-greedy exploration around any router in
:mod:`.exploration`.
"""

from __future__ import annotations

from typing import Any

from payroute.envs.baselines.cascades import RETRY_ROUTERS
from payroute.envs.baselines.routers import ORACLES, ROUTING_LEARNERS
from payroute.envs.baselines.rtgs import RTGS_BASELINES
from payroute.envs.baselines.rules import (
    AllowAll,
    CardBlocker,
    CheapestRoute,
    ClairvoyantRisk,
    CostPlusPricing,
    FastestRoute,
    HoldTreasury,
    PriorityRoute,
    RiskThreshold,
    ScriptedFraud,
    StaticPricing,
    TargetBalanceTreasury,
)
from payroute.errors import PayrouteError

ROUTE_BASELINES = {
    "cheapest": CheapestRoute,
    "fastest": FastestRoute,
    "priority": PriorityRoute,
    **ROUTING_LEARNERS,
    **RETRY_ROUTERS,
}
RISK_BASELINES = {"allow_all": AllowAll, "threshold": RiskThreshold, "card_blocker": CardBlocker}
PRICE_BASELINES = {"static_pricing": StaticPricing, "cost_plus": CostPlusPricing}
TREASURY_BASELINES = {"target_balance": TargetBalanceTreasury, "hold": HoldTreasury}
FRAUD_BASELINES = {"scripted_fraud": ScriptedFraud}
BASELINES_BY_KIND = {
    "route": ROUTE_BASELINES,
    "risk": RISK_BASELINES,
    "price": PRICE_BASELINES,
    "treasury": TREASURY_BASELINES,
    "fraud": FRAUD_BASELINES,
    "rtgs": RTGS_BASELINES,
}
DEFAULT_BASELINES = {
    "route": "cheapest",
    "risk": "threshold",
    "price": "static_pricing",
    "treasury": "target_balance",
    "fraud": "scripted_fraud",
}


def policy_names(kind: str) -> list[str]:
    return list(BASELINES_BY_KIND[kind])


def make_policy(kind: str, name: str, **kwargs: Any) -> Any:
    """A fresh baseline of ``kind`` by name; a clear error lists the known names otherwise."""
    if kind not in BASELINES_BY_KIND:
        raise PayrouteError(f"unknown decision kind {kind!r}; known: {list(BASELINES_BY_KIND)}")
    table = BASELINES_BY_KIND[kind]
    if name not in table:
        raise PayrouteError(f"unknown {kind} policy {name!r}; available: {', '.join(table)}")
    return table[name](**kwargs)


def bound_policies(**names: str | None) -> dict[str, Any]:
    """Every decision kind bound to a baseline: the defaults, with any kind given by name replaced.

    Pass ``route=None`` (say) to leave that kind to an outside agent.
    """
    out: dict[str, Any] = {}
    for kind, default in DEFAULT_BASELINES.items():
        name = names.pop(kind, default)
        out[kind] = None if name is None else make_policy(kind, name)
    if names:
        raise PayrouteError(f"unknown decision kinds {sorted(names)}; known: {list(DEFAULT_BASELINES)}")
    return out


__all__ = [
    "BASELINES_BY_KIND",
    "DEFAULT_BASELINES",
    "FRAUD_BASELINES",
    "ORACLES",
    "PRICE_BASELINES",
    "RISK_BASELINES",
    "ROUTE_BASELINES",
    "ROUTING_LEARNERS",
    "RETRY_ROUTERS",
    "RTGS_BASELINES",
    "TREASURY_BASELINES",
    "AllowAll",
    "CardBlocker",
    "CheapestRoute",
    "ClairvoyantRisk",
    "CostPlusPricing",
    "FastestRoute",
    "HoldTreasury",
    "PriorityRoute",
    "RiskThreshold",
    "ScriptedFraud",
    "StaticPricing",
    "TargetBalanceTreasury",
    "bound_policies",
    "make_policy",
    "policy_names",
]
