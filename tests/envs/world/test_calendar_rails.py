"""Calendar and rails: Fed holidays, ACH windows, Fedwire hours, instant rails around the clock, limits, fees."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import simpy

from payroute.envs.baselines import PriorityRoute, bound_policies
from payroute.envs.scenarios import load_scenario
from payroute.envs.scenarios.schema import FeeSchedule, VolumeTier
from payroute.envs.world import EventLog, PaymentWorld
from payroute.envs.world.clock import DAY_S, HOUR_S, Calendar, us_fed_holidays
from payroute.envs.world.rails import RouteState, Slots, fee_cents
from tests.helpers.worlds import log_rows

H = HOUR_S
THANKSGIVING_WEEK = dt.date(2026, 11, 23)  # Monday; Thursday the 26th is Thanksgiving


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("default")


def _route(scenario, name: str, start: dt.date, **route_overrides) -> RouteState:
    if route_overrides:
        scenario = load_scenario(scenario, {"routes": {name: route_overrides}})
    calendar = Calendar(start, scenario.base_utc_offset_h, scenario.extra_holidays)
    return RouteState(
        0, name, scenario.routes[name], simpy.Environment(), calendar, scenario.segments,
        scenario.interchange, 1.0, np.random.default_rng(0),
    )  # fmt: skip


# ------------------------------------------------------------------ the calendar


def test_fed_holidays_follow_the_reserve_banks_rules():
    h2026 = us_fed_holidays(2026)
    assert dt.date(2026, 11, 26) in h2026  # Thanksgiving, fourth Thursday
    assert dt.date(2026, 1, 19) in h2026  # Martin Luther King Jr. Day, third Monday
    assert dt.date(2026, 12, 25) in h2026
    # July 4th 2026 is a Saturday: not observed, and the Friday before stays open (the Fed's rule)
    assert dt.date(2026, 7, 4) not in h2026 and dt.date(2026, 7, 3) not in h2026
    # Juneteenth 2022 fell on a Sunday: observed on Monday the 20th
    assert dt.date(2022, 6, 20) in us_fed_holidays(2022)
    assert dt.date(2022, 6, 19) not in us_fed_holidays(2022)
    assert len(h2026) == 10


def test_business_days_skip_weekends_holidays_and_extra_holidays():
    cal = Calendar(THANKSGIVING_WEEK)
    assert [cal.is_business_day(d) for d in range(8)] == [True, True, True, False, True, False, False, True]
    assert cal.next_business_day(2) == 4  # Wednesday -> Friday, over Thanksgiving
    assert cal.next_business_day(4) == 7  # Friday -> Monday
    assert cal.next_business_day(2, after=2) == 7
    assert cal.weekday(3 * DAY_S + 12 * H) == 3 and cal.hour(3 * DAY_S + 12.5 * H) == 12.5
    closed_monday = Calendar(THANKSGIVING_WEEK, extra_holidays=(dt.date(2026, 11, 23),))
    assert not closed_monday.is_business_day(0)
    assert closed_monday.is_business_day(1)


# ------------------------------------------------------------------ ACH windows


@pytest.mark.parametrize(
    ("submit", "settles"),
    [
        (2 * DAY_S + 10 * H, 2 * DAY_S + 13 * H),  # Wednesday morning: first window, 13:00
        (2 * DAY_S + 14.75 * H, 2 * DAY_S + 17 * H),  # 14:45 sharp still makes the second window
        (2 * DAY_S + 16.75 * H, 2 * DAY_S + 18 * H),  # 16:45 sharp makes the last window
        (2 * DAY_S + 16.75 * H + 60, 4 * DAY_S + 13 * H),  # after 16:45 on Wednesday: Friday (Thanksgiving)
        (0 * DAY_S + 17 * H, 1 * DAY_S + 13 * H),  # Monday evening: Tuesday's first window
        (3 * DAY_S + 9 * H, 4 * DAY_S + 13 * H),  # on Thanksgiving itself: Friday
        (4 * DAY_S + 20 * H, 7 * DAY_S + 13 * H),  # Friday evening: Monday, over the weekend
        (5 * DAY_S + 9 * H, 7 * DAY_S + 13 * H),  # Saturday morning: Monday
    ],
)
def test_same_day_ach_settles_at_its_window_or_the_next_business_day(scenario, submit, settles):
    ach = _route(scenario, "ach_same_day", THANKSGIVING_WEEK)
    assert ach.settlement_time(submit) == settles


@pytest.mark.parametrize(
    ("submit", "settles"),
    [
        (0 * DAY_S + 20 * H, 1 * DAY_S + 8.5 * H),  # Monday before 21:00: Tuesday 08:30
        (0 * DAY_S + 22 * H, 2 * DAY_S + 8.5 * H),  # missed Monday's file: goes Tuesday, settles Wednesday
        (2 * DAY_S + 12 * H, 4 * DAY_S + 8.5 * H),  # Wednesday: Friday, Thanksgiving is no business day
        (4 * DAY_S + 12 * H, 7 * DAY_S + 8.5 * H),  # Friday: Monday
    ],
)
def test_next_day_ach_settles_one_business_day_after_its_file(scenario, submit, settles):
    ach = _route(scenario, "ach_standard", THANKSGIVING_WEEK)
    assert ach.settlement_time(submit) == settles


def _world_with(scenario_name: str, overrides: dict, route_order: list[str], seed: int = 0):
    sc = load_scenario(scenario_name, overrides)
    policies = bound_policies(risk="allow_all")
    policies["route"] = PriorityRoute(route_order)
    log = EventLog()
    world = PaymentWorld(sc, seed=seed, policies=policies, days=1, log=log)
    world.run()
    return world, log_rows(log, "transaction")


def test_in_the_world_ach_submitted_after_the_last_window_settles_the_next_business_day():
    """The Wednesday before Thanksgiving, every payout on Same Day ACH where it can go."""
    world, tx = _world_with(
        "default", {"volume_scale": 0.08, "start_date": "2026-11-25"}, ["ach_same_day"], seed=3
    )
    ach = tx[(tx.route == "ach_same_day") & (tx.state == "settled")]
    submitted = ach.t_arrival + ach.latency_s
    late = ach[submitted > 16.75 * H]
    morning = ach[submitted <= 10.5 * H]
    assert len(late) > 20 and len(morning) > 20
    friday_first_window = 2 * DAY_S + 13 * H  # Thursday is Thanksgiving
    assert (late.t_settled == friday_first_window).all()
    assert (morning.t_settled == 13 * H).all()
    assert world.in_flight == 0


def test_same_day_ach_after_the_friday_cutoff_settles_on_monday():
    world, tx = _world_with("default", {"volume_scale": 0.05, "start_date": "2026-03-06"}, ["ach_same_day"])
    ach = tx[(tx.route == "ach_same_day") & (tx.state == "settled")]
    late = ach[ach.t_arrival + ach.latency_s > 16.75 * H]
    assert len(late) > 10
    assert (late.t_settled == 3 * DAY_S + 13 * H).all()


# ------------------------------------------------------------------ Fedwire hours


def test_fedwire_is_open_business_days_until_18_and_holds_outside(scenario):
    wire = _route(scenario, "fedwire", THANKSGIVING_WEEK)
    assert wire.is_open(10 * H) and wire.is_open(17.99 * H)
    assert not wire.is_open(18 * H) and not wire.is_open(20 * H)
    assert wire.next_open_time(20 * H) == DAY_S  # Tuesday's session
    assert not wire.is_open(3 * DAY_S + 10 * H)  # Thanksgiving
    assert wire.next_open_time(3 * DAY_S + 10 * H) == 4 * DAY_S
    assert wire.next_open_time(5 * DAY_S + 10 * H) == 7 * DAY_S  # Saturday -> Monday
    assert wire.accepts_now(5 * DAY_S + 10 * H), "hold mode takes the payment and sends it when open"
    # asking about an earlier moment after a later one must not reuse the later answer
    assert wire.is_open(4 * DAY_S + 10 * H)
    rejecting = _route(scenario, "fedwire", THANKSGIVING_WEEK, hours={"outside_hours": "reject"})
    assert not rejecting.accepts_now(5 * DAY_S + 10 * H) and rejecting.accepts_now(4 * DAY_S + 10 * H)


def test_in_the_world_fedwire_holds_evening_payouts_until_monday_or_lets_them_expire():
    """A Friday, every payout on Fedwire: after 18:00 standard payouts wait for Monday, instant ones expire."""
    world, tx = _world_with(
        "default", {"volume_scale": 0.05, "start_date": "2026-03-06"}, ["fedwire"], seed=1
    )
    wire = tx[tx.route == "fedwire"]
    evening = wire[wire.t_arrival >= 18 * H]
    standard = evening[evening.urgency == "standard"]
    instant = evening[evening.urgency == "instant"]
    assert len(standard) > 5 and len(instant) > 5
    monday = 3 * DAY_S
    done = standard[standard.state.isin(["settled", "declined"])]
    assert len(done) == len(standard)
    assert (standard.t_arrival + standard.latency_s >= monday).all()
    assert (standard[standard.state == "settled"].t_settled >= monday).all()
    assert (instant.state == "expired").all() and (instant.reason == "closed").all()
    assert ((instant.t - instant.deadline_t).abs() < 1e-6).all()
    daytime = wire[(wire.t_arrival < 17 * H) & (wire.state == "settled")]
    assert len(daytime) > 10 and (daytime.t_settled < 18 * H).all()


def test_in_the_world_a_rejecting_fedwire_is_not_eligible_outside_its_hours():
    overrides = {
        "volume_scale": 0.05,
        "start_date": "2026-03-06",
        "routes": {"fedwire": {"hours": {"outside_hours": "reject"}}},
    }
    world, tx = _world_with("default", overrides, ["fedwire"], seed=1)
    bit = 1 << world.route_index["fedwire"]
    domestic = tx[(tx.instrument == "bank_account") & ~tx.cross_border & (tx.eligible_mask > 0)]
    evening = domestic[domestic.t_arrival >= 18 * H]
    daytime = domestic[domestic.t_arrival < 17.9 * H]
    assert len(evening) > 5 and len(daytime) > 5
    assert ((evening.eligible_mask & bit) == 0).all() and (evening.route != "fedwire").all()
    assert ((daytime.eligible_mask & bit) != 0).all() and (daytime.route == "fedwire").all()


# ------------------------------------------------------------------ instant rails


@pytest.mark.parametrize("name", ["rtp", "fednow"])
def test_instant_rails_are_open_around_the_clock(scenario, name):
    rail = _route(scenario, name, THANKSGIVING_WEEK)
    for t in (3 * DAY_S + 3 * H, 6 * DAY_S + 23.5 * H, 5 * DAY_S, 0.0, 7 * DAY_S - 1):
        assert rail.is_open(t) and rail.accepts_now(t) and rail.next_open_time(t) == t


def test_in_the_world_instant_payouts_settle_in_seconds_on_sunday_night():
    world, tx = _world_with("default", {"volume_scale": 0.1, "start_date": "2026-03-01"}, ["rtp", "fednow"])
    assert world.calendar.weekday(0) == 6
    night = tx[(tx.route.isin(["rtp", "fednow"])) & (tx.t_arrival >= 22 * H)]
    assert len(night) > 20
    settled = night[night.state == "settled"]
    assert len(settled) >= 0.9 * len(night)
    assert (settled.t_settled - settled.t_arrival < 120).all()
    assert (settled.t_settled < DAY_S + 120).all()


# ------------------------------------------------------------------ limits


def test_a_payment_above_a_routes_limit_is_never_eligible_or_sent_there():
    limits = {"rtp": 20_000, "fednow": 50_000, "ach_same_day": 80_000, "digital_remit": 30_000}
    overrides = {"volume_scale": 0.08, "routes": {name: {"limit_cents": c} for name, c in limits.items()}}
    world, tx = _world_with("default", overrides, ["rtp", "fednow", "ach_same_day", "digital_remit"])
    routed = tx[tx.route != ""]
    for name, limit in limits.items():
        bit = 1 << world.route_index[name]
        assert (routed[routed.route == name].amount_cents <= limit).all(), name
        above = tx[tx.amount_cents > limit]
        assert ((above.eligible_mask & bit) == 0).all(), name
        assert len(routed[(routed.route == name)]) > 0, name
    # with these preferences a payout over RTP's limit lands on the next route that can take it
    over_rtp = routed[
        (routed.instrument == "bank_account") & ~routed.cross_border & (routed.amount_cents > 80_000)
    ]
    assert len(over_rtp) > 10
    assert not over_rtp.route.isin(["rtp", "fednow", "ach_same_day"]).any()


def test_a_payout_no_route_may_carry_fails_with_no_route():
    cap = 100_000  # $1,000 on every domestic bank route
    domestic = ["ach_standard", "ach_same_day", "fedwire", "rtp", "fednow"]
    sc_over = {"volume_scale": 0.05, "routes": {name: {"limit_cents": cap} for name in domestic}}
    world, tx = _world_with("default", sc_over, ["rtp"])
    big = tx[(tx.instrument == "bank_account") & ~tx.cross_border & (tx.amount_cents > cap)]
    reached_routing = big[~big.state.isin(["abandoned", "blocked"])]
    assert len(reached_routing) > 10
    assert (reached_routing.state == "failed").all() and (reached_routing.reason == "no_route").all()
    assert (reached_routing.eligible_mask == 0).all() and (reached_routing.route == "").all()


# ------------------------------------------------------------------ capacity


def test_slots_serve_waiting_payments_first_come_first_served():
    env = simpy.Environment()
    slots = Slots(env, capacity=2)
    started: list[tuple[str, float]] = []

    def payment(name: str, arrive: float, work: float):
        yield env.timeout(arrive)
        turn = slots.take()
        if turn is not None:
            yield turn
        started.append((name, env.now))
        yield env.timeout(work)
        slots.give_back()

    for name, arrive, work in [("a", 0, 10), ("b", 1, 4), ("c", 2, 1), ("d", 3, 1), ("e", 20, 1)]:
        env.process(payment(name, arrive, work))
    env.run()
    # a and b take both slots; c waits for b's (t=5), d for c's (t=6); e finds one free
    assert started == [("a", 0), ("b", 1), ("c", 5), ("d", 6), ("e", 20)]
    assert slots.busy == 0 and not slots.waiting


def test_in_the_world_a_route_at_capacity_queues_payments_first_come_first_served():
    """RTP with one slot and a 20-second median: domestic payouts queue, answered in arrival order."""
    overrides = {
        "volume_scale": 0.05,
        "routes": {"rtp": {"capacity": 1, "latency": {"median_s": 20.0, "sigma": 0.5}}},
    }
    world, tx = _world_with("default", overrides, ["rtp"])
    rtp = tx[(tx.route == "rtp") & tx.state.isin(["settled", "declined", "failed"])].sort_values("t_arrival")
    assert len(rtp) > 100
    answered = (rtp.t_arrival + rtp.latency_s).to_numpy()
    assert (np.diff(answered) > 0).all()  # one at a time, first come first served
    waited = np.maximum(answered[:-1] - rtp.t_arrival.to_numpy()[1:], 0.0)
    assert (waited > 0).mean() > 0.2  # many found the slot busy
    assert world.routes[world.route_index["rtp"]].slots.busy == 0  # every slot came back


# ------------------------------------------------------------------ fees


def test_fee_schedules_clip_to_min_and_max_and_apply_volume_tiers():
    sched = FeeSchedule(fixed_cents=30, bps=290.0, min_cents=50, max_cents=500)
    assert fee_cents(sched, 100) == 50  # 30 + 2.9 rounds to 33, below the minimum
    assert fee_cents(sched, 10_000) == 320
    assert fee_cents(sched, 1_000_000) == 500
    assert fee_cents(sched, 10_000, multiplier=1.5) == 480
    tiered = FeeSchedule(
        fixed_cents=92,
        tiers=(VolumeTier(from_count=14_000, fixed_cents=29), VolumeTier(from_count=90_000, fixed_cents=18)),
    )
    assert [fee_cents(tiered, 10**6, n) for n in (0, 13_999, 14_000, 89_999, 90_000)] == [92, 92, 29, 29, 18]
    discounted = FeeSchedule(fixed_cents=10, bps=15.0, tiers=(VolumeTier(from_count=100, bps_discount=3.0),))
    assert fee_cents(discounted, 100_000, 99) == 160 and fee_cents(discounted, 100_000, 100) == 130


def test_a_card_routes_cost_adds_interchange_and_network_assessment(scenario):
    gamma = _route(scenario, "card_gamma", THANKSGIVING_WEEK)

    from payroute.envs.world.demand import Transaction

    def tx(instrument: str, foreign: bool) -> Transaction:
        t = Transaction()
        t.amount_cents, t.instrument, t.network, t.foreign_card, t.month_key = (
            10_000,
            instrument,
            "visa",
            foreign,
            0,
        )
        return t

    # processor 4c + 5 bps = 9; credit interchange 10c + 189 bps = 199; Visa 14 bps = 14
    assert gamma.cost_cents(tx("card_credit", False)) == 9 + 199 + 14
    # regulated debit: 22c + 5 bps = 27
    assert gamma.cost_cents(tx("card_debit", False)) == 9 + 27 + 14
    # plus 100 bps cross-border assessment
    assert gamma.cost_cents(tx("card_debit", True)) == 9 + 27 + 14 + 100


def test_a_correspondent_abroad_keeps_its_own_hours_and_weekdays(scenario):
    """SWIFT correspondent: 08:00-17:00 CET (UTC+1) on weekdays, i.e. 02:00-11:00 ET, US holidays included."""
    swift = _route(scenario, "swift_correspondent", THANKSGIVING_WEEK)
    assert not swift.is_open(1.5 * H) and swift.is_open(2 * H) and swift.is_open(10.9 * H)
    assert not swift.is_open(11 * H)
    assert swift.next_open_time(12 * H) == DAY_S + 2 * H
    assert swift.is_open(3 * DAY_S + 4 * H), "Thanksgiving is a US holiday, not a holiday in Frankfurt"
    assert swift.next_open_time(4 * DAY_S + 12 * H) == 7 * DAY_S + 2 * H  # Friday afternoon -> Monday
    # Sunday 20:00 ET is Monday 02:00 CET: still closed until 08:00 CET
    assert swift.next_open_time(6 * DAY_S + 20 * H) == 7 * DAY_S + 2 * H


@pytest.mark.parametrize("name", ["fedwire", "swift_correspondent", "rtp"])
def test_open_state_says_how_long_a_routes_hours_answer_holds(scenario, name):
    rail = _route(scenario, name, THANKSGIVING_WEEK)
    fresh = _route(scenario, name, THANKSGIVING_WEEK)
    for t in np.arange(0.0, 9 * DAY_S, 0.25 * H):
        is_open, until = rail.open_state(t)
        assert until > t and is_open == fresh.is_open(t)
        if until < 10 * DAY_S:  # the answer holds to just before ``until`` and flips there
            assert fresh.is_open(until - 1.0) == is_open and fresh.is_open(until) != is_open
    if name == "fedwire":  # closed all Thanksgiving, until Friday's session
        assert fresh.open_state(3 * DAY_S + 10 * H) == (False, 4 * DAY_S)
    if name == "rtp":  # round the clock
        assert fresh.open_state(5 * DAY_S) == (True, float("inf"))
