"""Nothing is lost: every transaction ends exactly once, every posting balances, the books match the log."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import payroute.envs.world.world as world_module
from payroute.envs.baselines import bound_policies
from payroute.envs.scenarios import load_scenario
from payroute.envs.world import EventLog, PaymentWorld
from payroute.envs.world.clock import HOUR_S
from payroute.envs.world.ledger import COST_ACCOUNTS, Ledger, LedgerError
from payroute.vocabulary import TERMINAL_STATES
from tests.helpers.worlds import log_rows


def _counts_add_up(world: PaymentWorld) -> None:
    assert set(world.terminal) == set(TERMINAL_STATES)
    assert world.arrivals == sum(world.terminal.values()) + world.in_flight
    assert world.in_flight == len(world.live)
    assert all(not tx.state for tx in world.live.values())


@pytest.mark.parametrize("name", ["default", "liquidity_crunch"])
def test_arrivals_equal_terminal_plus_in_flight_at_every_checked_instant(name):
    sc = load_scenario(name, {"volume_scale": 0.03})
    world = PaymentWorld(sc, seed=11, policies=bound_policies(), days=1)
    instants = np.concatenate([np.arange(1.0, 24 * HOUR_S, 997.0), [24 * HOUR_S, 30 * HOUR_S, 60 * HOUR_S]])
    seen_in_flight = 0
    for t in instants:
        world.run(until=float(t))
        assert world.now <= t
        _counts_add_up(world)
        assert world.ledger.total() == 0
        seen_in_flight = max(seen_in_flight, world.in_flight)
    assert seen_in_flight > 0, "the check must catch payments mid-flight"
    world.run()
    _counts_add_up(world)
    assert world.in_flight == 0
    assert world.arrivals > 500


def test_every_posting_balances_and_replays_to_the_balances(monkeypatch, small_scenario):
    monkeypatch.setattr(world_module, "Ledger", functools.partial(Ledger, keep_postings=True))
    world = PaymentWorld(small_scenario, seed=5, policies=bound_policies(), days=1)
    world.run()
    postings = world.ledger.postings
    assert postings is not None and len(postings) == world.ledger.n_postings > world.arrivals // 2
    replay: dict[str, int] = {}
    for p in postings:
        assert sum(amount for _, amount in p.legs) == 0, p
        assert all(type(amount) is int for _, amount in p.legs), p
        for account, amount in p.legs:
            replay[account] = replay.get(account, 0) + amount
    assert {k: v for k, v in replay.items() if v} == {k: v for k, v in world.ledger.balances.items() if v}
    assert world.ledger.total() == 0
    times = [p.t for p in postings]
    assert times == sorted(times)


def test_the_ledger_refuses_unbalanced_or_non_integer_postings():
    ledger = Ledger()
    with pytest.raises(LedgerError, match="does not balance"):
        ledger.post(0.0, "oops", ("a", 100), ("b", -99))
    with pytest.raises(LedgerError, match="int cents"):
        ledger.post(0.0, "oops", ("a", 1.0), ("b", -1.0))
    with pytest.raises(LedgerError, match="int cents"):
        ledger.post(0.0, "oops", ("a", np.int64(1)), ("b", np.int64(-1)))
    assert ledger.balances == {} and ledger.total() == 0


def _logged_run(
    name: str, seed: int, overrides: dict | None = None, **policies
) -> tuple[PaymentWorld, pa.Table]:
    sc = load_scenario(name, {"volume_scale": 0.05, **(overrides or {})})
    log = EventLog()
    world = PaymentWorld(sc, seed=seed, policies=bound_policies(**policies), days=1, log=log)
    world.run()
    return world, log.table()


def _sum(frame: pd.DataFrame, column: str) -> int:
    return int(frame[column].sum())


@pytest.mark.parametrize(
    ("name", "seed", "policies"),
    [
        ("default", 2, {}),
        ("liquidity_crunch", 4, {"route": "fastest"}),
        ("fraud_surge", 6, {"risk": "allow_all", "route": "priority"}),
    ],
)
def test_account_balances_reconcile_with_the_event_log(name, seed, policies):
    world, log = _logged_run(name, seed, **policies)
    assert world.in_flight == 0
    bal = world.ledger.balance
    tx = log_rows(log, "transaction")
    post = log_rows(log, "post_settlement")
    acct = log_rows(log, "account")
    assert len(tx) == world.arrivals
    assert sorted(tx.tx_id) == list(range(world.arrivals))
    assert tx.groupby("state").size().to_dict() == {s: n for s, n in world.terminal.items() if n}

    def moved(kind: str, account: str | None = None) -> int:
        rows = acct[acct.kind == kind]
        if account is not None:
            rows = rows[rows.account == account]
        return _sum(rows, "amount_cents")

    # income and cost accounts
    assert bal("fee_revenue") == -_sum(tx, "revenue_cents")
    assert bal("route_cost") == _sum(tx, "route_cost_cents")
    assert bal("fraud_loss") == _sum(post, "fraud_loss_cents")
    assert bal("sla_penalty") == _sum(tx, "sla_penalty_cents")
    assert bal("challenge_cost") == _sum(tx, "challenge_cost_cents")
    assert bal("liquidity_cost") == _sum(tx, "liquidity_cost_cents") + moved("opportunity_cost") + moved(
        "credit_cost"
    )
    assert bal("treasury_cost") == moved("transfer_fee")
    assert bal("memo:opportunity") == -moved("opportunity_cost")
    assert bal("equity") == -moved("opening")
    # only settled payments earn revenue; every cost account is a debit balance
    assert (tx[tx.state != "settled"].revenue_cents == 0).all()
    assert all(bal(a) >= 0 for a in COST_ACCOUNTS)

    # nothing is left half-way once the world has drained
    for account in ("payouts_in_flight", "transit", *(f"receivable:{r.name}" for r in world.routes)):
        assert bal(account) == 0, account

    # settlement accounts: opening + inflows + transfers + recovered returns - settled payouts drawn on them
    route_account = {r.name: r.prefunded_account for r in world.routes}
    for name_, state in world.accounts.items():
        on_it = tx[tx.route.map(route_account.get) == name_]
        returns = post[(post.kind == "return") & (post.route.map(route_account.get) == name_)]
        expected = (
            moved("opening", name_)
            + moved("inflow", name_)
            + moved("transfer_in", name_)
            - moved("transfer_out", name_)
            - moved("transfer_fee", name_)
            - _sum(on_it[on_it.state == "settled"], "amount_cents")
            + _sum(returns, "amount_cents")
        )
        assert state.balance == expected, name_

    # the operating account: card batches in, chargebacks, bank-route fees, challenge and credit costs out
    cards = tx[(tx.state == "settled") & tx.instrument.str.startswith("card")]
    bank_settled = tx[(tx.state == "settled") & ~tx.instrument.str.startswith("card")]
    expected_operating = (
        _sum(cards, "amount_cents")
        - _sum(cards, "route_cost_cents")
        - _sum(post[post.kind == "chargeback"], "fraud_loss_cents")
        - _sum(bank_settled, "route_cost_cents")
        - _sum(tx, "challenge_cost_cents")
        - _sum(tx, "liquidity_cost_cents")
        - moved("credit_cost")
    )
    assert bal("bank:operating") == expected_operating

    # what we owe merchants and customers
    card_penalties = _sum(tx[tx.instrument.str.startswith("card")], "sla_penalty_cents")
    owed_merchants = _sum(cards, "amount_cents") - _sum(cards, "price_cents") + card_penalties
    assert bal("merchant_payable") == -owed_merchants
    bank_tx = tx[~tx.instrument.str.startswith("card")]
    assert bal("customer_funds") == (
        _sum(bank_settled, "amount_cents")
        + _sum(bank_settled, "price_cents")
        - moved("inflow")
        - _sum(post[post.kind == "return"], "amount_cents")
        - _sum(post[post.kind == "reimbursement"], "fraud_loss_cents")
        - _sum(bank_tx, "sla_penalty_cents")
    )
    assert world.ledger.total() == 0


def test_post_settlement_rows_follow_settled_fraud_only():
    world, log = _logged_run("fraud_surge", 8, {"volume_scale": 0.1}, risk="allow_all")
    tx = log_rows(log, "transaction").set_index("tx_id")
    post = log_rows(log, "post_settlement")
    assert len(post) > 0
    assert post.tx_id.is_unique
    joined = tx.loc[post.tx_id]
    assert (joined.state == "settled").all()
    assert joined.is_fraud.all()
    assert (post.t.to_numpy() >= joined.t_settled.to_numpy()).all()
    assert post.kind.value_counts().to_dict() == {k: v for k, v in world.post_settlement.items() if v}
    assert world.totals["fraud_loss_cents"] == _sum(post, "fraud_loss_cents")


@pytest.mark.parametrize("days", [0.5, 1.0])
def test_card_payments_in_process_at_the_horizon_still_settle(days):
    """With same-moment card settlement the processor's batch queue can be empty at the horizon while a
    payment is still being authorised; it must still reach a terminal state."""
    cards = {name: {"settlement_delay_s": 0} for name in ("card_alpha", "card_beta", "card_gamma")}
    sc = load_scenario("default", {"volume_scale": 0.05, "routes": cards})
    for seed in (3, 4, 5):
        world = PaymentWorld(sc, seed=seed, policies=bound_policies(), days=days)
        world.run()
        assert world.in_flight == 0, [tx for tx in world.live.values()]
        _counts_add_up(world)
        assert world.ledger.total() == 0
        assert all(world.ledger.balance(f"receivable:{r.name}") == 0 for r in world.routes)


def test_conservation_holds_when_outside_agents_answer_route_risk_and_treasury(small_scenario):
    """The decision-point path (what Gymnasium environments drive) keeps every invariant too."""
    from payroute.envs.world import TreasuryAction

    policies = bound_policies(route=None, risk=None, treasury=None)
    world = PaymentWorld(small_scenario, seed=9, policies=policies, days=0.5)
    rng = np.random.default_rng(0)
    answered = {"route": 0, "risk": 0, "treasury": 0}
    while (point := world.run_until_decision()) is not None:
        answered[point.kind] += 1
        if point.kind == "route":
            eligible = point.info["eligible"]
            pick = eligible[int(rng.integers(len(eligible)))]
            point.resolve(pick.index, 1.0 / len(eligible))
        elif point.kind == "risk":
            point.resolve(int(rng.choice([0, 0, 0, 1, 2])), 0.2)
        else:
            point.resolve(TreasuryAction(transfers={"rtp_prefund": int(rng.integers(-(10**6), 10**6))}), 1.0)
        if answered["route"] % 250 == 0:
            _counts_add_up(world)
            assert world.ledger.total() == 0
    assert answered["route"] > 500 and answered["risk"] > answered["route"] and answered["treasury"] >= 12
    assert world.done and world.in_flight == 0
    _counts_add_up(world)
    assert world.ledger.total() == 0
    assert world.agent_margin["router"] != 0 and world.agent_margin["risk"] != 0


def test_running_the_world_leaves_the_garbage_collector_as_it_was(small_scenario):
    import gc

    before = gc.get_threshold()
    world = PaymentWorld(small_scenario, seed=1, policies=bound_policies(), days=0.1)
    world.run()
    assert gc.get_threshold() == before
    waiting = PaymentWorld(small_scenario, seed=1, policies=bound_policies(route=None), days=0.1)
    with pytest.raises(RuntimeError, match="outside agent"):
        waiting.run()
    assert gc.get_threshold() == before
