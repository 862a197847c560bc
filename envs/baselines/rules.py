"""Baselines that follow a fixed rule: routing by cost, speed or a preference list; risk thresholds; list and
cost-plus pricing; target-balance treasury; the scenario's scripted fraud.

Each implements ``decide(world, payload) -> (action, propensity)`` for one decision kind; the per-transaction ones
also ``act(observation, info) -> action`` for use with the Gymnasium environments. The catalogue of every baseline
by name is :mod:`payroute.envs.baselines`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from payroute.envs.world.decisions import ALLOW, BLOCK, CHALLENGE, TreasuryAction
from payroute.envs.world.world import FAMILY_INDEX


def retry_step(info: dict) -> bool:
    """Whether a Routing-v0 step is a retry decision (retries on: the mask allows giving up, action
    ``n_routes``); a plain-policy router that does not take retries then gives up."""
    mask = info["action_mask"]
    n = len(info["route_names"])
    return len(mask) > n and bool(mask[n])


class CheapestRoute:
    """Routes each payment to the eligible route with the lowest cost for it (ties: scenario order)."""

    kind = "route"

    def decide(self, world: Any, payload: Any) -> tuple[int, float]:
        tx, eligible = payload
        best = min(eligible, key=lambda r: (r.cost_cents(tx), r.index))
        return best.index, 1.0

    def act(self, observation: Any, info: dict) -> int:
        costs = info["route_costs_cents"]
        if retry_step(info):
            return len(costs)  # give up, as the world does for a router that does not take retries
        return min(np.flatnonzero(info["action_mask"]), key=lambda i: (costs[i], i))


class FastestRoute:
    """Routes to the eligible route with the lowest median latency (bank payouts: instant first)."""

    kind = "route"

    def decide(self, world: Any, payload: Any) -> tuple[int, float]:
        _tx, eligible = payload
        best = min(
            eligible, key=lambda r: (r.latency_median_s + (0 if r.is_open(world.now) else 1e9), r.index)
        )
        return best.index, 1.0

    def act(self, observation: Any, info: dict) -> int:
        latency, is_open = info["route_latency_s"], info["route_open"]
        if retry_step(info):
            return len(latency)  # give up
        return min(
            np.flatnonzero(info["action_mask"]), key=lambda i: (latency[i] + (0 if is_open[i] else 1e9), i)
        )


class PriorityRoute:
    """A static priority list: the first eligible route in ``order`` (route names); scenario order by default."""

    kind = "route"

    def __init__(self, order: list[str] | None = None) -> None:
        self.order = order
        self._rank: dict[int, int] = {}

    def bind(self, world: Any) -> None:
        names = self.order or [r.name for r in world.routes]
        unknown = sorted(set(names) - set(world.route_index))
        if unknown:
            raise ValueError(
                f"priority order names unknown routes {unknown}; routes: {list(world.route_index)}"
            )
        self._rank = {world.route_index[n]: i for i, n in enumerate(names)}

    def decide(self, world: Any, payload: Any) -> tuple[int, float]:
        _tx, eligible = payload
        rank = self._rank
        best = min(eligible, key=lambda r: rank.get(r.index, 10_000 + r.index))
        return best.index, 1.0

    def act(self, observation: Any, info: dict) -> int:
        names = info["route_names"]
        if retry_step(info):
            return len(names)  # give up
        rank = {names.index(n): i for i, n in enumerate(self.order or names)}
        return min(np.flatnonzero(info["action_mask"]), key=lambda i: rank.get(i, 10_000 + i))


class AllowAll:
    """Allows every payment."""

    kind = "risk"

    def decide(self, world: Any, payload: Any) -> tuple[int, float]:
        return ALLOW, 1.0

    def act(self, observation: Any, info: dict) -> int:
        return ALLOW


class RiskThreshold:
    """Challenges payments whose risk score is at least ``challenge_at`` and blocks from ``block_at``."""

    kind = "risk"

    def __init__(self, challenge_at: float = 0.97, block_at: float = 0.995) -> None:
        if not 0.0 <= challenge_at <= block_at <= 1.0:
            raise ValueError(f"need 0 <= challenge_at <= block_at <= 1, got {challenge_at}, {block_at}")
        self.challenge_at = challenge_at
        self.block_at = block_at

    def decide(self, world: Any, payload: Any) -> tuple[int, float]:
        return self._by_score(payload.risk_score), 1.0

    def act(self, observation: Any, info: dict) -> int:
        return self._by_score(info["risk_score"])

    def _by_score(self, score: float) -> int:
        if score >= self.block_at:
            return BLOCK
        if score >= self.challenge_at:
            return CHALLENGE
        return ALLOW


class ClairvoyantRisk:
    """Knows the hidden truth: blocks every fraudulent payment and allows every genuine one.

    No defender can see the truth, so this is a bound, shown for scale (the benchmark's 100 on its risk tasks),
    never a reference a policy must beat. Only usable bound into the world (the truth is not in an
    environment's ``info``).
    """

    kind = "risk"

    def decide(self, world: Any, payload: Any) -> tuple[int, float]:
        return (BLOCK if payload.is_fraud else ALLOW), 1.0


class CardBlocker(RiskThreshold):
    """A defender that closes the card door: blocks card payments whose risk score is at least ``card_block_at``
    (lower than the general threshold, so most card fraud and some good card customers are stopped), and
    treats every other payment like :class:`RiskThreshold`. Bank payouts (instant rails included) stay as open
    as before, which is where a fraudster that learns goes next (docs/displacement.md)."""

    kind = "risk"

    def __init__(
        self, card_block_at: float = 0.8, challenge_at: float = 0.97, block_at: float = 0.995
    ) -> None:
        super().__init__(challenge_at, block_at)
        if not 0.0 <= card_block_at <= 1.0:
            raise ValueError(f"card_block_at must be in [0, 1], got {card_block_at}")
        self.card_block_at = card_block_at

    def decide(self, world: Any, payload: Any) -> tuple[int, float]:
        if payload.family == "card" and payload.risk_score >= self.card_block_at:
            return BLOCK, 1.0
        return self._by_score(payload.risk_score), 1.0

    def act(self, observation: Any, info: dict) -> int:
        card = info["transaction"]["instrument"].startswith("card")
        if card and info["risk_score"] >= self.card_block_at:
            return BLOCK
        return self._by_score(info["risk_score"])


class StaticPricing:
    """Charges the scenario's list price (multiplier ``level`` on every segment and family)."""

    kind = "price"

    def __init__(self, level: float = 1.0) -> None:
        self.level = level

    def decide(self, world: Any, payload: Any) -> tuple[np.ndarray, float]:
        return np.full(world.price_multipliers.shape, self.level), 1.0


class CostPlusPricing:
    """Cost-plus pricing: each segment x family pays ``1 + markup`` times what carrying its payments costs.

    The cost of a payment is what its cheapest eligible route charges for it (processor or rail fee, plus
    interchange and network assessment on cards). At bind time the policy draws ``sample_size`` payments from
    the scenario's demand (with the world's pricing-policy generator, so the demand stream is untouched) and sets
    each cell's multiplier to ``(1 + markup) * total cost / total list price``, within the scenario's bounds.
    """

    kind = "price"

    def __init__(self, markup: float = 0.3, sample_size: int = 4000) -> None:
        if markup < 0:
            raise ValueError(f"markup must be >= 0, got {markup}")
        if sample_size < 1:
            raise ValueError(f"sample_size must be >= 1, got {sample_size}")
        self.markup = markup
        self.sample_size = sample_size
        self.multipliers: np.ndarray | None = None

    def bind(self, world: Any) -> None:
        rng = world.policy_rng("price")
        cols = world.factory.block(rng, np.zeros(self.sample_size))
        cost = np.zeros(world.price_multipliers.shape)
        listed = np.zeros_like(cost)
        for i in range(self.sample_size):
            tx = world.factory.make(cols, i, False, "")
            corridor = "cross_border" if tx.cross_border else "domestic"
            routes = [
                r for r in world.routes
                if tx.instrument in r.instruments and corridor in r.corridors and tx.currency in r.currencies
            ]  # fmt: skip
            if not routes:
                continue
            cell = (tx.segment, FAMILY_INDEX[tx.family])
            cost[cell] += min(r.cost_cents(tx) for r in routes)
            listed[cell] += world.price_book.list_price(tx.family, tx.urgency, tx.amount_cents)
        prices = world.scenario.prices
        ratio = np.divide(cost, listed, out=np.ones_like(cost), where=listed > 0)
        self.multipliers = np.clip((1.0 + self.markup) * ratio, prices.min_multiplier, prices.max_multiplier)

    def decide(self, world: Any, payload: Any) -> tuple[np.ndarray, float]:
        if self.multipliers is None:
            self.bind(world)
        return self.multipliers.copy(), 1.0


class TargetBalanceTreasury:
    """Keeps each fundable account near its target: tops up below ``low`` x target, sweeps above ``high`` x target."""

    kind = "treasury"

    def __init__(self, low: float = 0.8, high: float = 1.5) -> None:
        self.low, self.high = low, high

    def decide(self, world: Any, payload: Any) -> tuple[TreasuryAction, float]:
        transfers: dict[str, int] = {}
        for name, acct in world.accounts.items():
            if acct.spec.funded_from is None:
                continue
            position = acct.balance + acct.in_transit
            if position < self.low * acct.target:
                transfers[name] = int(acct.target - position)
            elif position > self.high * acct.target:
                transfers[name] = -int(position - acct.target)
        return TreasuryAction(transfers=transfers), 1.0


class ScriptedFraud:
    """The scenario's fraud mix at a fixed intensity (1.0 = as the scenario says)."""

    kind = "fraud"

    def __init__(self, intensity: float = 1.0) -> None:
        self.intensity = intensity

    def decide(self, world: Any, payload: Any) -> tuple[np.ndarray, float]:
        return np.full(len(world.fraud.pattern_names), self.intensity), 1.0


class HoldTreasury:
    """Does nothing: no transfers, the scenario's credit lines. What treasury is worth is measured against it."""

    kind = "treasury"

    def decide(self, world: Any, payload: Any) -> tuple[TreasuryAction, float]:
        return TreasuryAction(), 1.0
