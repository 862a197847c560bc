"""What routes bill: published per-item fees to the sub-cent, monthly volume tiers from the month-to-date count,
and American Express priced as the closed network it is."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import simpy

from payroute.envs.calibration.check import measure_day
from payroute.envs.scenarios import load_scenario
from payroute.envs.world.clock import Calendar
from payroute.envs.world.demand import Transaction
from payroute.envs.world.rails import RouteState

START = dt.date(2026, 3, 2)
MARCH, APRIL = 2026 * 12 + 3, 2026 * 12 + 4


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("default")


def _route(scenario, name: str, fee_multiplier: float = 1.0) -> RouteState:
    calendar = Calendar(START, scenario.base_utc_offset_h, scenario.extra_holidays)
    return RouteState(
        0, name, scenario.routes[name], simpy.Environment(), calendar, scenario.segments,
        scenario.interchange, fee_multiplier, np.random.default_rng(0),
    )  # fmt: skip


def _tx(amount=60_000, instrument="bank_account", network="", foreign=False, month=MARCH) -> Transaction:
    t = Transaction()
    t.amount_cents, t.instrument, t.network, t.foreign_card, t.month_key = (
        amount,
        instrument,
        network,
        foreign,
        month,
    )
    return t


@pytest.mark.parametrize(("name", "per_item"), [("ach_same_day", 5.2), ("rtp", 4.5), ("fednow", 4.5)])
def test_a_sub_cent_per_item_fee_is_billed_exactly_over_many_items(scenario, name, per_item):
    route = _route(scenario, name)
    bills = [route.billed_cents(_tx()) for _ in range(1000)]
    assert sum(bills) == round(per_item * 1000)  # 5,200 or 4,500 cents, not 6,000 or 5,000
    assert set(bills) == {int(per_item), int(per_item) + 1}  # whole cents every time
    assert route.cost_cents(_tx()) == int(per_item)  # what a router is quoted: the whole cents


def test_a_fee_hike_multiplies_the_sub_cent_part_too(scenario):
    route = _route(scenario, "rtp", fee_multiplier=2.0)
    assert sum(route.billed_cents(_tx()) for _ in range(100)) == 900


def test_fedwire_tiers_count_from_the_month_to_date_and_a_new_month_from_zero(scenario):
    assert scenario.routes["fedwire"].fee.month_to_date_count == 65_000
    route = _route(scenario, "fedwire")
    assert route.cost_cents(_tx()) == 29  # the mid tier from the first payment of the run
    for _ in range(90_000 - 65_000):
        route.count_submission(MARCH)
    assert route.cost_cents(_tx()) == 18  # past 90,000 in the month: the high-volume tier
    route.count_submission(APRIL)
    assert route.cost_cents(_tx(month=APRIL)) == 92  # April starts from zero
    fresh = load_scenario(scenario, {"routes": {"fedwire": {"fee": {"month_to_date_count": 0}}}})
    assert _route(fresh, "fedwire").cost_cents(_tx()) == 92


def test_amex_is_charged_its_merchant_discount_not_credit_interchange_and_assessment(scenario):
    gamma = _route(scenario, "card_gamma")
    processor = 4 + 5  # 4c + 5 bps of $100
    assert gamma.cost_cents(_tx(10_000, "card_credit", "amex")) == processor + 10 + 250
    assert gamma.cost_cents(_tx(10_000, "card_credit", "amex", foreign=True)) == processor + 10 + 250 + 100
    # Visa credit: interchange 10c + 189 bps, Visa assessment 14 bps
    assert gamma.cost_cents(_tx(10_000, "card_credit", "visa")) == processor + 199 + 14
    open_loop = load_scenario(
        scenario, {"interchange": {"amex": None, "network_assessment_bps": {"amex": 15.0}}}
    )
    assert (
        _route(open_loop, "card_gamma").cost_cents(_tx(10_000, "card_credit", "amex")) == processor + 199 + 15
    )


def test_in_the_world_instant_payouts_are_billed_the_published_fee_to_within_a_cent(scenario):
    sums = measure_day(load_scenario(scenario, {"volume_scale": 0.05}), seed=3)
    for name, per_item in (("rtp", 4.5), ("fednow", 4.5), ("ach_same_day", 5.2)):
        n = sums.get(f"count:{name}", 0)
        if n:
            assert abs(sums[f"cost:{name}"] - per_item * n) < 1.0, name
    assert sums.get("count:ach_same_day", 0) > 0
