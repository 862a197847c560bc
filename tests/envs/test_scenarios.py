"""The shipped scenarios: each loads and runs, and each variant changes what it says it changes."""

from __future__ import annotations

import datetime as dt

import pytest
from typer.testing import CliRunner

from payroute.envs.baselines import PriorityRoute, bound_policies
from payroute.envs.scenarios import available_scenarios, load_scenario, scenario_summary
from payroute.envs.world import EventLog, PaymentWorld
from payroute.envs.world.clock import HOUR_S
from payroute.experiments.cli import app
from tests.helpers.worlds import log_rows

VARIANTS = ["cross_border", "fee_hike", "fraud_surge", "holiday_peak", "liquidity_crunch", "processor_outage"]


def test_the_shipped_scenarios_are_default_and_its_six_variants():
    assert available_scenarios() == ["default", *VARIANTS]
    for name in available_scenarios():
        assert scenario_summary(name), f"{name} needs a one-line description"


def test_payroute_scenarios_lists_every_name_with_its_line():
    result = CliRunner().invoke(app, ["scenarios"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in available_scenarios():
        assert name in result.stdout
    assert "Black Friday" in result.stdout


def test_payroute_scenarios_show_prints_the_resolved_yaml():
    import yaml

    result = CliRunner().invoke(app, ["scenarios", "show", "processor_outage"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["name"] == "processor_outage"
    assert shown["incidents"][0]["route"] == "card_alpha"
    assert set(shown["routes"]) == set(load_scenario("default").routes)
    assert load_scenario("processor_outage").model_dump(mode="json") == shown


@pytest.mark.parametrize("name", ["default", *VARIANTS])
def test_every_scenario_simulates_a_short_small_run(name):
    sc = load_scenario(name, {"volume_scale": 0.02})
    assert sc.name == name
    world = PaymentWorld(sc, seed=0, policies=bound_policies(), days=0.25)
    world.run()
    assert world.arrivals > 20
    assert world.in_flight == 0 and sum(world.terminal.values()) == world.arrivals
    assert world.ledger.total() == 0
    assert world.terminal["settled"] > 0


def _expected_arrivals_per_day(sc) -> float:
    world = PaymentWorld(sc, seed=0, policies=bound_policies(), days=1)
    return sum(world.demand.hourly_rate(h) for h in range(24))


@pytest.fixture(scope="module")
def default():
    return load_scenario("default")


def test_processor_outage_takes_card_alpha_down_on_a_friday_afternoon(default):
    sc = load_scenario("processor_outage", {"volume_scale": 0.03})
    assert not default.incidents
    assert sc.start_date.weekday() == 4
    (inc,) = sc.incidents
    assert (inc.route, inc.at, inc.duration_min, inc.state) == ("card_alpha", "14:00", 120, "down")
    policies = bound_policies()
    policies["route"] = PriorityRoute(["card_alpha"])  # a static list that keeps sending to it
    log = EventLog()
    world = PaymentWorld(sc, seed=2, policies=policies, days=1, log=log)
    world.run()
    tx = log_rows(log, "transaction")
    alpha = tx[tx.route == "card_alpha"]
    sent = alpha.t_arrival + 1  # a card authorisation takes about a second
    during = alpha[(sent > 14 * HOUR_S + 30) & (sent < 16 * HOUR_S - 30)]
    outside = alpha[sent < 13 * HOUR_S]
    assert len(during) > 50 and len(outside) > 50
    assert (during.reason == "route_down").all()
    assert (outside.reason != "route_down").mean() > 0.9


def test_fraud_surge_multiplies_attacks(default):
    surge = load_scenario("fraud_surge")
    for name, spec in default.fraud.patterns.items():
        factor = surge.fraud.patterns[name].attacks_per_day / spec.attacks_per_day
        instant_rail_only = spec.instruments == ("bank_account",) and spec.urgency == "instant"
        assert factor == (10 if instant_rail_only else 5)  # APP scams and mule cash-outs: ten times
    runs = {}
    for sc in (default, surge):
        small = load_scenario(sc, {"volume_scale": 0.05})
        world = PaymentWorld(small, seed=1, policies=bound_policies(), days=1)
        world.run()
        runs[sc.name] = world
    assert runs["fraud_surge"].post_settlement.total() > 2 * runs["default"].post_settlement.total()
    assert runs["fraud_surge"].totals["fraud_loss_cents"] > 3 * runs["default"].totals["fraud_loss_cents"]


def test_liquidity_crunch_thins_the_accounts_and_payments_wait(default):
    crunch = load_scenario("liquidity_crunch")
    for name, acct in crunch.accounts.items():
        assert acct.opening_balance_cents == default.accounts[name].opening_balance_cents // 5
    assert crunch.accounts["fed_master"].credit_limit_cents == 200_000_000
    assert crunch.accounts["fed_master"].inflow.per_hour == default.accounts["fed_master"].inflow.per_hour / 2
    starved = {}
    for sc in (default, crunch):
        log = EventLog()
        sc = load_scenario(sc, {"volume_scale": 0.05})
        world = PaymentWorld(sc, seed=3, policies=bound_policies(route="cheapest"), days=1, log=log)
        world.run()
        tx = log_rows(log, "transaction")
        starved[sc.name] = int((tx.reason == "liquidity").sum())
    assert starved["default"] == 0 and starved["liquidity_crunch"] >= 10


def test_fee_hike_raises_card_alpha_and_credit_interchange(default):
    hike = load_scenario("fee_hike")
    assert hike.interchange.credit.bps == default.interchange.credit.bps + 10
    worlds = [PaymentWorld(sc, seed=0, policies=bound_policies(), days=0.01) for sc in (default, hike)]

    from payroute.envs.world.demand import Transaction

    def tx() -> Transaction:
        t = Transaction()
        t.amount_cents, t.instrument, t.network, t.foreign_card, t.month_key = (
            20_000,
            "card_credit",
            "visa",
            False,
            0,
        )
        return t

    base, hiked = (w.routes[w.route_index["card_alpha"]].cost_cents(tx()) for w in worlds)
    # processor markup 5c + 9 bps = 23c -> x1.2 = 28c (rounded); interchange +10 bps on $200 = +20c
    assert hiked - base == 5 + 20
    beta_base, beta_hiked = (w.routes[w.route_index["card_beta"]].cost_cents(tx()) for w in worlds)
    assert beta_hiked - beta_base == 20


def test_holiday_peak_is_black_friday_at_two_and_a_half_times_the_volume(default):
    peak = load_scenario("holiday_peak")
    assert peak.start_date == dt.date(2026, 11, 27)
    world = PaymentWorld(peak, seed=0, policies=bound_policies(), days=0.01)
    assert world.calendar.is_holiday(-1) and world.calendar.is_business_day(0)
    assert peak.volume_scale == 2.5
    ratio = _expected_arrivals_per_day(peak) / _expected_arrivals_per_day(default)
    weekly = default.demand.weekly_profile
    assert ratio == pytest.approx(2.5 * weekly[4] / weekly[0])


def test_cross_border_sends_more_payouts_abroad(default):
    xb = load_scenario("cross_border", {"volume_scale": 0.05})
    shares = {}
    for sc in (load_scenario(default, {"volume_scale": 0.05}), xb):
        log = EventLog()
        world = PaymentWorld(sc, seed=4, policies=bound_policies(), days=1, log=log)
        world.run()
        tx = log_rows(log, "transaction")
        bank = tx[tx.instrument == "bank_account"]
        shares[sc.name] = bank.cross_border.mean()
        assert world.in_flight == 0
    assert shares["default"] < 0.15 < 0.3 < shares["cross_border"]
    assert xb.accounts["nostro"].opening_balance_cents == 5 * default.accounts["nostro"].opening_balance_cents
