"""The routers that decide again after a soft decline: each one's retry rule, on small seeded worlds, and
decision-engine's window, reset, hedging and elimination on scripted outcomes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from payroute.envs.baselines import bound_policies
from payroute.envs.baselines.cascades import DecisionEngineRouter
from payroute.envs.baselines.routers import RouteChoice
from payroute.envs.scenarios import load_scenario
from payroute.envs.world import EventLog, PaymentWorld
from payroute.envs.world.codes import HARD_CODES, SOFT_CODES
from payroute.envs.world.eventlog import CODE_FIELDS
from tests.helpers.worlds import log_rows

SMALL = {"volume_scale": 0.03}
ON = {**SMALL, "retries": {"enabled": True}}
RETRY_ROUTERS = ("static_cascade", "sr_cascade", "decision_engine", "oracle")


def _run(overrides: dict, route: str, seed: int = 3, log: EventLog | None = None) -> PaymentWorld:
    world = PaymentWorld(
        load_scenario("default", overrides),
        seed=seed,
        policies=bound_policies(route=route),
        days=0.5,
        log=log,
    )
    world.run()
    return world


@pytest.fixture(scope="module")
def attempts() -> dict[str, object]:
    out = {}
    for name in RETRY_ROUTERS:
        log = EventLog()
        world = _run(ON, name, log=log)
        out[name] = (world, log_rows(log, "attempt"), log_rows(log, "transaction"))
    return out


@pytest.mark.parametrize("name", RETRY_ROUTERS)
def test_a_retry_router_never_retries_a_hard_decline_or_a_do_not_retry_advice(attempts, name):
    _world, att, _tx = attempts[name]
    att = att.sort_values(["tx_id", "attempt"])
    last = att.groupby("tx_id").attempt.transform("max")
    stopped = att.response_code.isin(HARD_CODES) | att.merchant_advice.isin(["03", "21"])
    # a hard decline or a do-not-retry advice is always the payment's last attempt
    assert stopped.any() and (att.attempt[stopped] == last[stopped]).all()


@pytest.mark.parametrize("name", RETRY_ROUTERS)
def test_a_retry_router_recovers_soft_declines(attempts, name):
    world, att, _tx = attempts[name]
    retried = att[att.attempt > 1]
    assert world.totals["retry_attempts"] == len(retried) > 0
    recovered = retried[retried.state == "approved"]
    assert len(recovered) > 0
    # every retry followed a soft decline of the same payment
    prev = att.set_index(["tx_id", "attempt"]).response_code
    before = [prev[(t, a - 1)] for t, a in zip(retried.tx_id, retried.attempt, strict=True)]
    assert set(before) <= SOFT_CODES


def test_cascades_approve_more_than_their_single_attempt_siblings_on_the_same_seed():
    pairs = {"static_cascade": "priority", "sr_cascade": "no_retry", "oracle": "oracle"}
    for retrying, single in pairs.items():
        on = _run(ON, retrying).kpis()
        off = _run(SMALL, single).kpis()
        assert on["approval_rate"] > off["approval_rate"] + 0.01, (retrying, on, off)


def test_no_retry_is_success_rate_with_retries_on_or_off():
    sr = _run(SMALL, "success_rate")
    for overrides in (SMALL, ON):
        world = _run(overrides, "no_retry")
        assert world.kpis() == sr.kpis() and dict(world.terminal) == dict(sr.terminal)
        assert world.totals["retry_attempts"] == 0


def test_the_static_cascade_goes_down_the_priority_list(attempts):
    world, att, _tx = attempts["static_cascade"]
    names = [r.name for r in world.routes]
    for _, rows in att.sort_values(["tx_id", "attempt"]).groupby("tx_id"):
        routes = [names.index(n) for n in rows.route]
        assert routes == sorted(routes) and len(set(routes)) == len(routes)


def test_the_success_rate_cascade_steps_up_authentication_and_cascades_the_rest():
    log = EventLog(extra_fields=CODE_FIELDS)
    _run({**ON, "volume_scale": 0.06}, "sr_cascade", log=log)
    att = log_rows(log, "attempt").sort_values(["tx_id", "attempt"])
    retried = att[att.attempt > 1]
    prev = att.set_index(["tx_id", "attempt"]).response_code
    before = np.array([prev[(t, a - 1)] for t, a in zip(retried.tx_id, retried.attempt, strict=True)])
    modes = retried.retry_action.to_numpy()
    assert set(modes[before == "authentication_required"]) == {"step_up"}
    assert set(modes[before != "authentication_required"]) == {"cascade"}


# ------------------------------------------------------------------ decision-engine, scripted
M = ("card_credit", "visa")
KEY = (0, *M)


def _choice(routes=(0, 1, 2)) -> RouteChoice:
    return RouteChoice(tuple(routes), (10,) * 3, 100, 1000, 0, KEY)


def test_decision_engine_keeps_a_window_of_125_that_starts_optimistic():
    de = DecisionEngineRouter()
    de.reset_state(3)
    assert de.score(M, 0) == 1.0
    de.update(KEY, 0, False, "declined", 0.0)
    assert de.score(M, 0) == pytest.approx(124 / 125)  # one failure among 124 imaginary successes
    for _ in range(200):
        de.update(KEY, 0, True, "", 0.0)
    assert len(de.buckets[(M, 0)]) == 125 and de.score(M, 0) == 1.0
    # another payment method of the same route has a window of its own
    assert de.score(("card_debit", "visa"), 0) == 1.0


def test_decision_engine_resets_a_route_3_sigma_below_the_leader_to_just_below_it():
    de = DecisionEngineRouter(hedging_percent=0.0)
    de.reset_state(3)
    for _ in range(125):
        de.update(KEY, 1, False, "declined", 0.0)  # route 1: 0%, far below the leaders' 100%
    for _ in range(6):
        de.update(KEY, 2, False, "declined", 0.0)  # route 2: 119/125 = 95.2%, inside the band
    assert de.choose(_choice(), 0.0) == (0, 1.0)
    sigma = math.sqrt(0.09 / 125)
    zeros = math.floor(3 * sigma * 125)  # 10
    assert de.score(M, 1) == pytest.approx((125 - zeros) / 125) and 1 - 3 * sigma - 1 / 125 < de.score(M, 1)
    assert de.score(M, 2) == pytest.approx(119 / 125)  # not reset
    # the fresh window holds its zeros spread out, so the score moves with new outcomes as a window does
    bucket = list(de.buckets[(M, 1)])
    assert bucket.count(0) == zeros and max(np.diff(np.flatnonzero(np.array(bucket) == 0))) <= 14


def test_decision_engine_hedges_5_percent_to_the_non_leaders_with_their_propensity():
    de = DecisionEngineRouter()
    de.reset_state(3)
    de.rng = np.random.default_rng(1)
    for _ in range(3):
        de.update(KEY, 0, False, "declined", 0.0)  # route 1 leads (first of equals with route 2)
    picks = [de.choose(_choice(), 0.0) for _ in range(20_000)]
    routes = np.array([p for p, _ in picks])
    assert np.mean(routes == 1) == pytest.approx(0.95, abs=0.006)
    assert np.mean(routes == 0) == pytest.approx(0.025, abs=0.004)
    assert np.mean(routes == 2) == pytest.approx(0.025, abs=0.004)
    props = dict(picks)
    assert props[1] == pytest.approx(0.95) and props[0] == props[2] == pytest.approx(0.025)


def test_decision_engine_eliminates_a_route_whose_decaying_score_falls_below_5_percent():
    de = DecisionEngineRouter(hedging_percent=0.0)
    de.reset_state(3)
    other = (
        0,
        "card_debit",
        "mastercard",
    )  # failures of another payment method: route 0's window on M stays full
    for _ in range(58):
        de.update(other, 0, False, "declined", 0.0)
    assert de.elimination[0] == pytest.approx(0.95**58) and de.choose(_choice(), 0.0)[0] == 0  # 0.051: live
    de.update(other, 0, False, "declined", 0.0)
    assert de.elimination[0] < 0.05 and de.choose(_choice(), 0.0)[0] == 1  # eliminated: the next route leads
    assert de.choose(_choice((0,)), 0.0)[0] == 0  # the only candidate is taken even so
    de.update(other, 0, True, "", 0.0)  # a success multiplies it by 1.0526: back above the threshold
    assert de.elimination[0] >= 0.05 and de.choose(_choice(), 0.0)[0] == 0


def test_the_oracle_retries_only_when_the_true_approval_of_the_retry_pays():
    from payroute.envs.world.codes import SOFT_CODES as SOFT

    def table(p: float) -> dict:
        return {c: {"cascade": p, "later": p, "step_up": p} for c in SOFT}

    hopeless = {**ON, "response_codes": {"recovery": table(0.0)}}
    never = _run(hopeless, "oracle")
    assert never.totals["retry_attempts"] == 0  # no retry can be approved: it pays nothing but fees
    assert _run(hopeless, "static_cascade").totals["retry_attempts"] > 0  # a rule retries anyway
    sure = _run({**ON, "response_codes": {"recovery": table(0.99)}}, "oracle")
    assert sure.totals["retry_attempts"] > 0 and sure.kpis()["approval_rate"] > never.kpis()["approval_rate"]


def test_the_volume_aware_router_sizes_window_and_hedging_from_traffic_as_decision_engines_autopilot():
    from payroute.envs.baselines.cascades import VolumeAwareRouter

    vr = VolumeAwareRouter()
    # B = round25(5 sqrt(V / (n - 1))) in [100, 2000]; hedging B / V per non-leader in [1%, 30% / (n - 1)]
    assert vr.calibrated(10_000, 3) == (350, 0.07)
    assert vr.calibrated(100, 3) == (100, 0.30)  # thin traffic: the smallest window, the most exploration
    assert vr.calibrated(10_000_000, 2) == (2000, 0.01)
    vr.reset_state(3)
    vr.rng = np.random.default_rng(0)
    vr.update(KEY, 1, True, "", 0.0)
    assert len(vr.buckets[(M, 1)]) == 125
    for i in range(1_000):  # 1,000 payments over 900 s on three routes, then the first calibration
        vr.choose(_choice(), i * 0.9)
    assert vr.bucket_sizes == {} and vr.hedge_shares == {}  # not calibrated yet: decision-engine's defaults
    vr.choose(_choice(), 900.0)
    assert vr.bucket_sizes[M] == 100 and vr.hedge_shares[M] == pytest.approx(0.2)  # V=1,000: B=round25(111.8)
    vr.update(KEY, 1, False, "declined", 0.0)
    assert len(vr.buckets[(M, 1)]) == 100 and vr.score(M, 1) == pytest.approx(0.99)  # resized in place


def test_the_volume_aware_router_retries_in_the_world():
    world = _run(ON, "volume_sr")
    assert world.totals["retry_attempts"] > 0 and world.ledger.total() == 0
