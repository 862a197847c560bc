"""Retries: the world's invariants hold over random scenarios and retry policies, and retries follow the rules.

Property tests (hypothesis) draw the retry section, the reason shares and the recovery table, and route with a
cascading or a random retry policy; every drawn world must end each payment once, keep every payment within
its attempt budget, balance its ledger, book each extra attempt's fee once, and never approve a payment after
a hard decline or a do-not-retry advice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payroute.envs.baselines import AllowAll, CheapestRoute, bound_policies
from payroute.envs.scenarios import load_scenario
from payroute.envs.world import EventLog, PaymentWorld
from payroute.envs.world.codes import CARD_CODES, HARD_CODES, SOFT_CODES, ResponseDesk
from payroute.envs.world.decisions import InvalidActionError, RetryAction, RetryRequest
from payroute.envs.world.demand import Transaction
from payroute.envs.world.eventlog import CODE_FIELDS
from payroute.vocabulary import TERMINAL_STATES
from tests.helpers.retries import CascadeRouter, GiveUpRouter, RandomRetryRouter
from tests.helpers.worlds import log_rows

BASE = load_scenario("default")
SMALL = {"volume_scale": 0.03}


def _world(overrides: dict, route, seed: int = 0, days: float = 0.5, log: EventLog | None = None):
    policies = {**bound_policies(), "route": route}
    world = PaymentWorld(load_scenario(BASE, overrides), seed=seed, policies=policies, days=days, log=log)
    world.run()
    return world


@st.composite
def retry_overrides(draw) -> dict:
    share = st.floats(0.0, 1.0)
    shares = {c: draw(share) for c in CARD_CODES}
    shares[draw(st.sampled_from(CARD_CODES))] += 0.1  # at least one reason weighs something
    probability = st.floats(0.0, 1.0)
    return {
        "volume_scale": draw(st.floats(0.01, 0.02)),
        "response_codes": {
            "credit_decline_shares": shares,
            "fraud_hard_multiplier": draw(st.floats(1.0, 50.0)),
            "mastercard_do_not_retry_share": draw(probability),
            "recovery": {
                c: {m: draw(probability) for m in ("cascade", "later", "step_up")} for c in SOFT_CODES
            },
        },
        "retries": {
            "enabled": True,
            "max_attempts": draw(st.integers(1, 5)),
            "latency_budget_s": draw(st.floats(0.5, 600.0)),
            "delays_s": draw(st.lists(st.floats(0.1, 120.0), min_size=1, max_size=3)),
            "attempt_fee_cents": draw(st.integers(0, 50)),
            "networks": {
                "visa": {
                    "max_retries": draw(st.integers(0, 3)),
                    "excess_fine_cents": draw(st.integers(0, 100)),
                },
                "mastercard": {
                    "max_retries": draw(st.integers(0, 3)),
                    "excess_fine_cents": draw(st.integers(0, 100)),
                    "do_not_retry_fine_cents": draw(st.integers(0, 100)),
                },
            },
            "patience_median_s": draw(st.floats(0.5, 120.0)),
            "patience_sigma": draw(st.floats(0.0, 1.5)),
        },
        "risk": {"challenge_abandon_probability": draw(probability)},
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    overrides=retry_overrides(),
    router=st.sampled_from(["cascade", "random"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_retry_worlds_end_every_payment_once_within_budget_with_balanced_books(
    overrides, router, seed
):
    log = EventLog()
    route = CascadeRouter() if router == "cascade" else RandomRetryRouter()
    world = _world(overrides, route, seed=seed, days=0.25, log=log)
    r = world.scenario.retries
    assert world.in_flight == 0 and world.arrivals == sum(world.terminal.values())
    assert set(world.terminal) == set(TERMINAL_STATES)
    assert world.ledger.total() == 0
    tx, att = log_rows(log, "transaction"), log_rows(log, "attempt")
    assert len(tx) == world.arrivals and tx.tx_id.is_unique
    # attempts within the budget, numbered 1, 2, ... per payment
    assert (tx.attempts <= r.max_attempts).all() and (att.attempt <= r.max_attempts).all()
    for _, rows in att.groupby("tx_id"):
        assert list(rows.attempt) == list(range(1, len(rows) + 1))
    # each extra attempt's fee booked once, on its payment and in the ledger
    started = tx.attempts.clip(lower=1) - 1
    assert (tx.retry_fee_cents == started * r.attempt_fee_cents).all()
    assert world.ledger.balance("retry_fee") == int(tx.retry_fee_cents.sum())
    assert world.ledger.balance("network_fine") == int(tx.network_fine_cents.sum())
    assert world.ledger.balance("challenge_cost") == int(tx.challenge_cost_cents.sum())
    assert world.totals["retry_attempts"] == int(started.sum())
    # a late card payment pays its service-level penalty once, however many attempts it took
    cards = tx[tx.instrument.str.startswith("card")]
    assert (cards.sla_penalty_cents <= world.scenario.service_level.penalty_cents.get("card", 0)).all()
    # the payment's money adds up to the books' margin
    margin = world.kpis()["margin_usd"] * 100
    assert np.isfinite(margin)
    # nothing is approved after a hard decline or a do-not-retry advice, and nothing is retried after a hard one
    _assert_no_approval_after_hard(att)
    # the sequence propensity is the product of the attempts' propensities
    prod = att.groupby("tx_id").route_propensity.prod()
    routed = tx.set_index("tx_id").loc[prod.index]
    assert np.allclose(routed.sequence_propensity, prod)


def _assert_no_approval_after_hard(att: pd.DataFrame) -> None:
    for _, rows in att.sort_values(["tx_id", "attempt"]).groupby("tx_id"):
        stop = False
        for code, advice, state in zip(rows.response_code, rows.merchant_advice, rows.state, strict=True):
            assert not (stop and state == "approved"), rows
            if code in HARD_CODES:
                assert rows.attempt.max() == rows.attempt[rows.response_code == code].max(), (
                    "retried a hard decline"
                )
            if code in HARD_CODES or advice in ("03", "21"):
                stop = True


def test_a_router_that_does_not_know_retries_gets_the_single_attempt_world():
    off = _world(SMALL, CheapestRoute())
    on = _world({**SMALL, "retries": {"enabled": True}}, CheapestRoute())
    giving_up = _world({**SMALL, "retries": {"enabled": True}}, GiveUpRouter())
    for world in (on, giving_up):
        assert world.kpis() == off.kpis()
        assert dict(world.terminal) == dict(off.terminal)
        assert world.ledger.balances == off.ledger.balances
        assert world.totals["retry_attempts"] == 0


def test_cascading_recovers_soft_declines_and_costs_a_fee_per_extra_attempt():
    off = _world(SMALL, CheapestRoute(), seed=3)
    router = CascadeRouter()
    on = _world({**SMALL, "retries": {"enabled": True}}, router, seed=3)
    assert router.asked > 0
    assert on.terminal["settled"] > off.terminal["settled"]
    assert on.kpis()["approval_rate"] > off.kpis()["approval_rate"]
    assert on.ledger.balance("retry_fee") == 2 * on.totals["retry_attempts"] > 0


def test_two_policies_on_one_seed_see_the_same_customers_and_first_attempt_outcomes():
    logs = {name: EventLog(extra_fields=CODE_FIELDS) for name in ("off", "cascade", "random")}
    _world(SMALL, CheapestRoute(), seed=7, log=logs["off"])
    _world({**SMALL, "retries": {"enabled": True}}, CascadeRouter(), seed=7, log=logs["cascade"])
    _world({**SMALL, "retries": {"enabled": True}}, RandomRetryRouter(), seed=7, log=logs["random"])
    customers = ["tx_id", "t_arrival", "amount_cents", "instrument", "segment", "is_fraud"]
    tx = {k: log_rows(v, "transaction").sort_values("tx_id") for k, v in logs.items()}
    for name in ("cascade", "random"):
        assert tx[name][customers].reset_index(drop=True).equals(tx["off"][customers].reset_index(drop=True))
    # first attempts answered by the same route at the same instant have the same outcome and reason
    off = tx["off"][tx["off"].route.str.startswith("card")].copy()
    off["t_answer"] = off.t_arrival + off.latency_s
    for name in ("cascade", "random"):
        att = log_rows(logs[name], "attempt")
        first = att[att.attempt == 1].copy()
        first["t_answer"] = first.t_arrival + first.latency_s
        both = off.merge(first, on=["tx_id", "route_index", "t_answer"], suffixes=("_off", ""))
        assert len(both) > 0.3 * len(off)
        assert (both.response_code_off == both.response_code).all()
        assert (both.state_off.replace({"settled": "approved"}) == both.state).all()


def test_code_shares_follow_the_scenario_and_fraud_draws_more_hard_codes():
    only = {c: 0.0 for c in CARD_CODES}
    funds = _world(
        {**SMALL, "response_codes": {"credit_decline_shares": {**only, "insufficient_funds": 1.0},
                                     "debit_decline_shares": {**only, "insufficient_funds": 1.0}}},
        CheapestRoute(),
    )  # fmt: skip
    issuer = {c: n for c, n in funds.books.code_counts.items() if c in CARD_CODES}
    assert set(issuer) <= {"insufficient_funds", "issuer_unavailable"} and issuer["insufficient_funds"] > 50
    # doubling a reason's weight draws it more often (same seed, same declines)
    base = _world(SMALL, CheapestRoute(), seed=2)
    more = _world({**SMALL, "response_codes": {"credit_decline_shares": {"closed_account": 0.2}}},
                  CheapestRoute(), seed=2)  # fmt: skip
    assert more.books.code_counts["closed_account"] > 2 * base.books.code_counts["closed_account"]
    # fraud: lost/stolen and suspected fraud far more often than for genuine payers (the desk's draw itself)
    desk = ResponseDesk(BASE, seed=0)
    share = {}
    for fraud in (False, True):
        tx = Transaction()
        tx.instrument, tx.is_fraud, tx.network = "card_credit", fraud, "visa"
        codes = [desk.card_code(tx, "declined", u, 0.5)[0] for u in np.linspace(0, 1, 2001, endpoint=False)]
        share[fraud] = np.isin(codes, ["lost_stolen", "suspected_fraud"]).mean()
    assert share[False] == pytest.approx(0.05, abs=0.002) and share[True] > 5 * share[False]
    log = EventLog(extra_fields=CODE_FIELDS)
    _world(SMALL, CheapestRoute(), log=log)
    tx = log_rows(log, "transaction")
    # an unhealthy route answers issuer_unavailable; a healthy route's issuer never does unless drawn
    assert set(tx[tx.reason.isin(["route_down", "route_error"])].response_code) <= {
        "issuer_unavailable",
        "rail_unavailable",
    }
    assert (tx[tx.state == "settled"].response_code == "approved").all()


def test_bank_payouts_answer_return_and_reject_reasons_and_ach_returns_can_arrive_days_later():
    harsh = {"routes": {n: {"approval": {"by_segment": {s: 0.5 for s in BASE.segments}}}
                        for n, r in BASE.routes.items() if r.rail != "card"}}  # fmt: skip
    log = EventLog(extra_fields=CODE_FIELDS)
    _world({**SMALL, **harsh}, CheapestRoute(), log=log)
    tx = log_rows(log, "transaction")
    bank = tx[(tx.instrument == "bank_account") & (tx.reason == "declined")]
    assert len(bank) > 20
    ach = bank.route.str.startswith("ach")
    assert set(bank[ach].response_code) <= {"R01", "R02", "R03", "R10", "R29"}
    assert set(bank[~ach].response_code) <= {"AM04", "AC04", "AC03", "FR01"}
    later = EventLog(extra_fields=CODE_FIELDS)
    _world({**SMALL, **harsh, "response_codes": {"ach_return_business_days": 2}}, CheapestRoute(),
           log=later, days=0.5)  # fmt: skip
    tx2 = log_rows(later, "transaction")
    returned = tx2[tx2.route.str.startswith("ach") & (tx2.reason == "declined")]
    assert len(returned) > 0 and ((returned.t - returned.t_arrival) > 2 * 86_400).all()


def test_a_retry_later_waits_its_delay_and_an_impatient_payer_abandons():
    class Later(CascadeRouter):
        def decide(self, world, payload):
            if isinstance(payload, RetryRequest):
                return RetryAction("later", -1, 0), 1.0
            return super().decide(world, payload)

    log = EventLog()
    retries = {"enabled": True, "delays_s": [5.0], "patience_median_s": 86_400.0, "patience_sigma": 0.0}
    _world({**SMALL, "retries": retries}, Later(), log=log)
    att = log_rows(log, "attempt").sort_values(["tx_id", "attempt"])
    gaps = att.groupby("tx_id").t.diff().dropna()
    assert len(gaps) > 0 and (gaps >= 5.0).all()
    assert (att.groupby("tx_id").route_index.nunique() == 1).all()
    impatient = _world({**SMALL, "retries": {**retries, "patience_median_s": 1.0}}, Later())
    assert impatient.totals["retry_attempts"] == 0 and impatient.terminal["abandoned"] > 0


def test_retrying_after_do_not_retry_advice_is_fined_and_never_approved():
    always = {c: {"cascade": 1.0, "later": 1.0, "step_up": 1.0} for c in SOFT_CODES}
    log = EventLog()
    world = _world(
        {**SMALL, "response_codes": {"mastercard_do_not_retry_share": 1.0, "recovery": always},
         "retries": {"enabled": True, "latency_budget_s": 600.0, "patience_median_s": 86_400.0}},
        CascadeRouter(), log=log,
    )  # fmt: skip
    att = log_rows(log, "attempt").sort_values(["tx_id", "attempt"])
    _assert_no_approval_after_hard(att)
    att["advised"] = att.groupby("tx_id").merchant_advice.shift(1)
    after_03 = att[att.advised == "03"]
    assert len(after_03) > 10 and (after_03.network == "mastercard").all()
    assert (after_03.state != "approved").all()
    visa_retried = att[(att.network == "visa") & (att.attempt > 1)]
    assert (visa_retried.state == "approved").mean() > 0.5  # recovery 1.0 on an as-good route
    assert world.ledger.balance("network_fine") >= 50 * len(after_03)


def test_an_invalid_retry_answer_is_refused_with_what_was_wrong():
    class Bad(CascadeRouter):
        def decide(self, world, payload):
            if isinstance(payload, RetryRequest):
                return RetryAction("cascade", payload.routes[-1]), 1.0
            return super().decide(world, payload)

    with pytest.raises(InvalidActionError, match="another route"):
        _world({**SMALL, "retries": {"enabled": True}}, Bad())


def test_an_outside_router_is_asked_retries_only_when_the_environment_says_it_answers_them():
    sc = load_scenario(BASE, {**SMALL, "retries": {"enabled": True}})
    policies = {**bound_policies(), "route": None, "risk": AllowAll()}
    world = PaymentWorld(sc, seed=0, policies=policies, days=0.05)
    world.hub.external_retries = True
    asked = 0
    while (point := world.run_until_decision()) is not None:
        if isinstance(point.payload, RetryRequest):
            asked += 1
            point.resolve(RetryAction("give_up"))
        else:
            tx = point.payload
            point.resolve(next(r.index for r in point.info["eligible"]))
            assert tx.attempt == 0
    assert asked > 0 and world.in_flight == 0


def test_bad_retry_settings_are_refused_naming_the_field():
    from payroute.errors import ConfigError

    with pytest.raises(ConfigError, match=r"retries\.max_attempts"):
        load_scenario(BASE, {"retries": {"max_attempts": 0}})
    with pytest.raises(ConfigError, match=r"response_codes\.recovery\.do_not_honor\.cascade"):
        load_scenario(BASE, {"response_codes": {"recovery": {"do_not_honor": {"cascade": 1.5}}}})
    zero = {c: 0.0 for c in ("R01", "R02", "R03", "R10", "R29")}
    with pytest.raises(ConfigError, match=r"response_codes\.ach_return_shares.*at least one reason"):
        load_scenario(BASE, {"response_codes": {"ach_return_shares": zero}})
    with pytest.raises(ConfigError, match=r"retries\.colour"):
        load_scenario(BASE, {"retries": {"colour": 1}})


def test_a_world_with_retries_is_the_same_world_on_the_same_seed():
    runs = [_world({**SMALL, "retries": {"enabled": True}}, RandomRetryRouter(), seed=11) for _ in range(2)]
    assert runs[0].totals["retry_attempts"] > 0
    assert runs[0].kpis() == runs[1].kpis() and runs[0].ledger.balances == runs[1].ledger.balances
    assert runs[0].books.code_counts == runs[1].books.code_counts
