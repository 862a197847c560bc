"""Property tests: random scenario overrides and random bound policies never break the world's invariants.

For every drawn world: no crash, no NaN or infinity in the KPIs, ``arrivals == terminal + in flight`` and a
zero ledger total at every checked instant, every payment ended once the world drains, and no settlement
account below zero without credit (nor past its credit line with it), checked at every posting.
"""

from __future__ import annotations

import datetime as dt
import math
from unittest import mock

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import payroute.envs.world.world as world_module
from payroute.envs.baselines import (
    AllowAll,
    CheapestRoute,
    FastestRoute,
    PriorityRoute,
    RiskThreshold,
    ScriptedFraud,
    StaticPricing,
    TargetBalanceTreasury,
)
from payroute.envs.scenarios import load_scenario
from payroute.envs.world import EventLog, PaymentWorld
from payroute.envs.world.clock import DAY_S, HOUR_S
from payroute.envs.world.ledger import COST_ACCOUNTS, Ledger
from payroute.vocabulary import TERMINAL_STATES
from tests.helpers.worlds import log_rows

BASE = load_scenario("default")
ROUTES = list(BASE.routes)
CARD_ROUTES = [n for n, r in BASE.routes.items() if r.rail == "card"]
ACCOUNTS = list(BASE.accounts)
SEGMENTS = list(BASE.segments)


class RandomEligibleRoute:
    """Picks uniformly among the eligible routes with the world's policy generator (propensity 1/n)."""

    kind = "route"

    def bind(self, world) -> None:
        self.rng = world.policy_rng("route")

    def decide(self, world, payload):
        _tx, eligible = payload
        pick = eligible[int(self.rng.integers(len(eligible)))]
        return pick.index, 1.0 / len(eligible)


class GuardedLedger(Ledger):
    """Fails the moment a settlement account leaves the range its scenario allows."""

    floors: dict[str, int] = {}

    def post(self, t, kind, *legs):
        super().post(t, kind, *legs)
        for account, _ in legs:
            floor = GuardedLedger.floors.get(account)
            if floor is not None:
                assert self.balances[account] >= floor, (account, self.balances[account], floor, kind, t)


ROUTE_POLICIES = {"cheapest": CheapestRoute, "fastest": FastestRoute, "random": RandomEligibleRoute}
probability = st.floats(0.3, 0.999)


@st.composite
def scenario_overrides(draw) -> dict:
    routes: dict[str, dict] = {}
    for name in draw(st.lists(st.sampled_from(ROUTES), max_size=4, unique=True)):
        routes[name] = {
            "fee": {"fixed_cents": draw(st.integers(0, 500)), "bps": draw(st.floats(0, 300))},
            "approval": {"by_segment": {s: draw(probability) for s in SEGMENTS}},
        }
        if draw(st.booleans()):
            routes[name]["limit_cents"] = draw(st.integers(1_000, 10_000_000))
        if draw(st.booleans()):
            routes[name]["capacity"] = draw(st.integers(1, 5))
    for name in draw(st.lists(st.sampled_from(CARD_ROUTES), max_size=2, unique=True)):
        routes.setdefault(name, {})["settlement_delay_s"] = draw(st.sampled_from([0, 600, 86_400]))
    accounts = {}
    for name in ACCOUNTS:
        mode = draw(st.sampled_from(["queue", "credit", "fail"]))
        accounts[name] = {
            "opening_balance_cents": draw(st.integers(0, 50_000_000)),
            "target_balance_cents": draw(st.integers(0, 50_000_000)),
            "when_short": mode,
            "credit_limit_cents": draw(st.integers(0, 20_000_000)),
            "credit_rate_bps_annual": draw(st.floats(0, 500)),
            "inflow": {"per_hour": draw(st.floats(0, 5))},
        }
    incidents = [
        {
            "route": draw(st.sampled_from(ROUTES)),
            "at": f"{draw(st.integers(0, 23)):02d}:{draw(st.sampled_from([0, 15, 30, 45])):02d}",
            "duration_min": draw(st.floats(1, 600)),
            "state": draw(st.sampled_from(["down", "degraded"])),
        }
        for _ in range(draw(st.integers(0, 2)))
    ]
    return {
        "volume_scale": draw(st.floats(0.01, 0.03)),
        "start_date": (dt.date(2026, 1, 1) + dt.timedelta(days=draw(st.integers(0, 364)))).isoformat(),
        "routes": routes,
        "accounts": accounts,
        "incidents": incidents,
        "fee_changes": [{"route": draw(st.sampled_from(ROUTES)), "multiplier": draw(st.floats(0.5, 3.0))}],
        "risk": {
            "separability": draw(st.floats(0.0, 6.0)),
            "challenge_abandon_probability": draw(st.floats(0.0, 1.0)),
        },
        "customers": {
            "base_abandon_probability": draw(st.floats(0.0, 0.5)),
            "abandon_slope_per_bps": draw(st.floats(0.0, 1.0)),
        },
        "demand": {"cross_border_share": draw(st.floats(0.0, 0.6))},
    }


@st.composite
def bound_policy_sets(draw) -> dict:
    route = draw(st.sampled_from(["cheapest", "fastest", "priority", "random"]))
    if route == "priority":
        route_policy = PriorityRoute(draw(st.permutations(ROUTES)))
    else:
        route_policy = ROUTE_POLICIES[route]()
    if draw(st.booleans()):
        risk_policy = AllowAll()
    else:
        challenge_at = draw(st.floats(0.0, 1.0))
        risk_policy = RiskThreshold(challenge_at, draw(st.floats(challenge_at, 1.0)))
    policies = {
        "route": route_policy,
        "risk": risk_policy,
        "price": StaticPricing(draw(st.floats(0.3, 3.0))),
        "fraud": ScriptedFraud(draw(st.floats(0.0, 4.0))),
    }
    if draw(st.booleans()):
        low = draw(st.floats(0.0, 1.0))
        policies["treasury"] = TargetBalanceTreasury(low, draw(st.floats(max(low, 1.0), 3.0)))
    return policies


def _check_counts(world: PaymentWorld) -> None:
    assert world.arrivals == sum(world.terminal.values()) + world.in_flight
    assert set(world.terminal) == set(TERMINAL_STATES)
    assert world.ledger.total() == 0


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    overrides=scenario_overrides(),
    policies=bound_policy_sets(),
    seed=st.integers(0, 2**32 - 1),
    days=st.sampled_from([0.25, 0.5, 1.0]),
)
def test_random_worlds_keep_every_invariant(overrides, policies, seed, days):
    sc = load_scenario(BASE, overrides)
    GuardedLedger.floors = {
        f"bank:{name}": -(acct.credit_limit_cents if acct.when_short == "credit" else 0)
        for name, acct in sc.accounts.items()
    }
    log = EventLog()
    with mock.patch.object(world_module, "Ledger", GuardedLedger):
        world = PaymentWorld(sc, seed=seed, policies=policies, days=days, log=log)
        for t in np.linspace(HOUR_S, days * DAY_S, 5):
            world.run(until=float(t))
            _check_counts(world)
        world.run()
    _check_counts(world)
    assert world.in_flight == 0
    kpis = world.kpis()
    assert all(isinstance(v, float) and math.isfinite(v) for v in kpis.values()), kpis
    assert 0.0 <= kpis["approval_rate"] <= 1.0
    assert kpis["fraud_loss_bps"] >= 0 and kpis["route_cost_bps"] >= 0 and kpis["liquidity_cost_usd"] >= 0
    for account in ("payouts_in_flight", "transit"):
        assert world.ledger.balance(account) == 0
    for name in COST_ACCOUNTS:
        assert world.ledger.balance(name) >= 0
    # the log has every payment once, and its money adds up to the books
    tx, post = log_rows(log, "transaction"), log_rows(log, "post_settlement")
    assert len(tx) == world.arrivals and tx.tx_id.is_unique
    assert world.ledger.balance("fee_revenue") == -int(tx.revenue_cents.sum())
    assert world.ledger.balance("route_cost") == int(tx.route_cost_cents.sum())
    assert world.ledger.balance("sla_penalty") == int(tx.sla_penalty_cents.sum())
    assert world.ledger.balance("challenge_cost") == int(tx.challenge_cost_cents.sum())
    assert world.ledger.balance("fraud_loss") == int(post.fraud_loss_cents.sum())
    assert ((tx.route_propensity > 0) & (tx.route_propensity <= 1)).all()
    routed = tx[tx.route_index >= 0]
    bits = np.right_shift(routed.eligible_mask.to_numpy(), routed.route_index.to_numpy()) & 1
    assert bits.all(), "a payment went to a masked route"
