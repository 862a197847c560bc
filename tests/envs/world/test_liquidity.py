"""Liquidity: prefunded accounts never overdraw without credit; credit is bounded and priced; queues expire."""

from __future__ import annotations

import simpy

import payroute.envs.world.world as world_module
from payroute.envs.baselines import bound_policies
from payroute.envs.scenarios import load_scenario
from payroute.envs.world import EventLog, PaymentWorld, TreasuryAction
from payroute.envs.world.clock import YEAR_S
from payroute.envs.world.ledger import Ledger, SettlementAccountState
from tests.helpers.worlds import log_rows


class WatchedLedger(Ledger):
    """A ledger that remembers the lowest balance each settlement account ever reached, posting by posting."""

    lowest: dict[str, int] = {}

    def post(self, t, kind, *legs):
        super().post(t, kind, *legs)
        for account, _ in legs:
            if account.startswith("bank:") and account != "bank:operating":
                low = WatchedLedger.lowest
                low[account] = min(low.get(account, 0), self.balances[account])


def _rtp_world(
    monkeypatch, mode: str, *, inflow_per_hour: float = 2.0, credit_cents: int = 5_000_000, seed=1
):
    """The default world at 3% volume, every domestic payout on RTP (fastest route), a thin RTP prefund."""
    WatchedLedger.lowest = {}
    monkeypatch.setattr(world_module, "Ledger", WatchedLedger)
    sc = load_scenario(
        "default",
        {
            "volume_scale": 0.03,
            "accounts": {
                "rtp_prefund": {
                    "opening_balance_cents": 2_000_000,
                    "target_balance_cents": 2_000_000,
                    "when_short": mode,
                    "credit_limit_cents": credit_cents,
                    "inflow": {"per_hour": inflow_per_hour, "median_cents": 200_000},
                }
            },
        },
    )
    policies = bound_policies(route="fastest")
    del policies["treasury"]  # no top-ups: the account lives on its opening balance and inflows
    log = EventLog()
    world = PaymentWorld(sc, seed=seed, policies=policies, days=1, log=log)
    world.run()
    return world, log_rows(log, "transaction"), log_rows(log, "account")


def test_queue_mode_never_overdraws_and_unfunded_payments_expire_at_their_deadline(monkeypatch):
    world, tx, _ = _rtp_world(monkeypatch, "queue")
    assert WatchedLedger.lowest.get("bank:rtp_prefund", 0) >= 0
    assert all(low >= 0 for acct, low in WatchedLedger.lowest.items() if acct != "bank:fed_master")
    rtp = tx[tx.route == "rtp"]
    starved = rtp[rtp.reason == "liquidity"]
    assert len(starved) > 10, "the thin prefund must leave payments unfunded"
    assert (starved.state == "expired").all()
    # they waited exactly until the customer's deadline, and missed it
    assert ((starved.t - starved.deadline_t).abs() < 1e-6).all()
    assert (starved.sla_penalty_cents > 0).all()
    assert (starved.route_cost_cents == 0).all() and (starved.revenue_cents == 0).all()
    # others waited for an inflow and then went out: far slower than RTP's seconds
    settled = rtp[rtp.state == "settled"]
    assert (settled.latency_s > 60).sum() > 0
    assert rtp.liquidity_cost_cents.sum() == 0
    assert all(t.state == "expired" for t, _ in world.accounts["rtp_prefund"].waiters)
    assert world.in_flight == 0


def test_fail_mode_never_overdraws_and_never_sends_what_it_cannot_cover(monkeypatch):
    world, tx, _ = _rtp_world(monkeypatch, "fail")
    assert WatchedLedger.lowest.get("bank:rtp_prefund", 0) >= 0
    rtp = tx[tx.route == "rtp"]
    assert (tx[tx.reason == "liquidity"].state == "failed").all(), "fail mode never queues for funds"
    # when RTP could not cover a payout it was not eligible; the router sent it elsewhere
    rtp_bit = 1 << world.route_index["rtp"]
    instant_payouts = tx[(tx.instrument == "bank_account") & ~tx.cross_border & (tx.route != "")]
    masked_out = instant_payouts[(instant_payouts.eligible_mask & rtp_bit) == 0]
    assert len(masked_out) > 0
    assert (masked_out.route != "rtp").all()
    assert (rtp.latency_s < 60).all(), "fail mode never makes a payment wait for funds"


def test_credit_mode_overdraws_within_its_line_and_pays_for_it(monkeypatch):
    world, tx, acct_rows = _rtp_world(monkeypatch, "credit", credit_cents=5_000_000)
    low = WatchedLedger.lowest.get("bank:rtp_prefund", 0)
    assert low < 0, "the thin prefund must draw on credit"
    assert low >= -5_000_000
    rtp = tx[tx.route == "rtp"]
    assert rtp.liquidity_cost_cents.sum() > 0
    assert world.totals["liquidity_cost_cents"] == int(tx.liquidity_cost_cents.sum())
    assert world.kpis()["liquidity_cost_usd"] > 0
    assert world.ledger.balance("liquidity_cost") >= int(tx.liquidity_cost_cents.sum())
    # beyond the line it queues like queue mode
    assert (rtp[rtp.reason == "liquidity"].state == "expired").all()


def test_the_fed_master_account_stays_within_its_daylight_overdraft_cap_in_a_crunch(monkeypatch):
    """liquidity_crunch: the treasury drains the Fed account into credit at the open; never past the cap."""
    WatchedLedger.lowest = {}
    monkeypatch.setattr(world_module, "Ledger", WatchedLedger)
    sc = load_scenario("liquidity_crunch", {"volume_scale": 0.05})
    world = PaymentWorld(sc, seed=3, policies=bound_policies(), days=1)
    world.run()
    cap = sc.accounts["fed_master"].credit_limit_cents
    assert -cap <= WatchedLedger.lowest["bank:fed_master"] < 0
    assert WatchedLedger.lowest.get("bank:rtp_prefund", 0) >= 0
    assert WatchedLedger.lowest.get("bank:nostro", 0) >= 0
    assert world.totals["liquidity_cost"] > 0  # the credit the transfers drew was charged
    assert world.in_flight == 0 and world.ledger.total() == 0


def _account(mode: str, opening: int, credit: int = 0, rate_bps: float = 50.0):
    sc = load_scenario(
        "default",
        {
            "accounts": {
                "rtp_prefund": {
                    "opening_balance_cents": opening,
                    "when_short": mode,
                    "credit_limit_cents": credit,
                    "credit_rate_bps_annual": rate_bps,
                }
            }
        },
    )
    ledger = Ledger()
    state = SettlementAccountState("rtp_prefund", sc.accounts["rtp_prefund"], ledger, simpy.Environment())
    ledger.transfer(0.0, "opening", state.key, "equity", opening)
    return state


def test_credit_is_available_only_in_credit_mode_and_priced_on_the_part_below_zero():
    queued = _account("queue", 1_000, credit=50_000)
    assert queued.available() == 1_000 and not queued.can_cover(1_001)
    assert queued.credit_line == 0
    credit = _account("credit", 1_000, credit=50_000, rate_bps=100.0)
    assert credit.available() == 51_000 and credit.can_cover(51_000) and not credit.can_cover(51_001)
    # 1,000 covered by the balance; 49,000,000 below zero for a whole year at 1% costs 490,000 cents
    big = _account("credit", 1_000, credit=100_000_000, rate_bps=100.0)
    assert big.overdraft_cost_cents(49_001_000, YEAR_S) == 490_000
    assert big.overdraft_cost_cents(1_000, YEAR_S) == 0
    credit.credit_limit_override = 10_000
    assert credit.available() == 11_000
    credit.credit_limit_override = 10**12  # a treasury action can lower the line, never raise it
    assert credit.available() == 51_000


def test_waiters_are_funded_first_come_first_served_and_ended_ones_are_dropped():
    state = _account("queue", 0)
    env = state.env

    class Tx:
        def __init__(self, amount):
            self.amount_cents, self.state = amount, ""

    first, gone, second = Tx(300), Tx(100), Tx(500)
    gone.state = "expired"
    events = [env.event() for _ in range(3)]
    for tx, ev in zip((first, gone, second), events, strict=True):
        state.waiters.append((tx, ev))
    drawn = []

    def draw(tx, acct):
        drawn.append(tx.amount_cents)
        acct.ledger.transfer(0.0, "payout_submit", "payouts_in_flight", acct.key, tx.amount_cents)

    state.ledger.transfer(0.0, "inflow", state.key, "customer_funds", 400)
    state.wake_waiters(draw)
    assert drawn == [300] and events[0].triggered and not events[2].triggered
    assert [tx for tx, _ in state.waiters] == [second]  # the ended one was dropped on the way
    state.ledger.transfer(0.0, "inflow", state.key, "customer_funds", 400)
    state.wake_waiters(draw)
    assert drawn == [300, 500] and events[2].triggered and not events[1].triggered
    assert not state.waiters and state.balance == 0


class CreditLineTreasury:
    """Closes the RTP prefund's credit line for the first hours of the day, then opens it in full."""

    kind = "treasury"

    def __init__(self, open_at_s: float) -> None:
        self.open_at_s = open_at_s

    def decide(self, world, payload):
        line = 0 if world.now < self.open_at_s else 10**12
        return TreasuryAction(credit_lines={"rtp_prefund": line}), 1.0


def test_raising_a_credit_line_releases_the_payments_queued_for_funds(monkeypatch):
    """Payouts queued while the line was shut go out the moment the treasury opens it, not at the next inflow."""
    WatchedLedger.lowest = {}
    monkeypatch.setattr(world_module, "Ledger", WatchedLedger)
    sc = load_scenario(
        "default",
        {
            "volume_scale": 0.05,
            "accounts": {
                "rtp_prefund": {
                    "opening_balance_cents": 0,
                    "when_short": "credit",
                    "credit_limit_cents": 10**10,
                    "inflow": {"per_hour": 0.0},
                }
            },
            "demand": {"deadline_s": {"standard": 259200, "same_day": 86400, "instant": 86400}},
        },
    )
    policies = bound_policies(route="fastest")
    opens = 10 * 3600.0
    policies["treasury"] = CreditLineTreasury(opens)
    log = EventLog()
    world = PaymentWorld(sc, seed=2, policies=policies, days=1, log=log)
    world.run()
    assert 0 > WatchedLedger.lowest["bank:rtp_prefund"]
    tx = log_rows(log, "transaction")
    early = tx[(tx.route == "rtp") & (tx.t_arrival < opens - 600) & (tx.state == "settled")]
    assert len(early) > 20, "payouts queued before the line opened must still go out"
    # they went out when the line opened (the hour's treasury decision), within RTP's seconds
    sent = early.t_arrival + early.latency_s
    assert (sent >= opens).all()
    assert (sent < opens + 120).all()
