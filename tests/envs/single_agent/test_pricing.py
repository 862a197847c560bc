"""Pricing-v0, the price caps and the customer response model."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import payroute  # noqa: F401 - registers the environments
from payroute.envs.baselines import CostPlusPricing, StaticPricing, bound_policies
from payroute.envs.scenarios import load_scenario
from payroute.envs.scenarios.schema import FAMILIES, CustomerResponse
from payroute.envs.single_agent.pricing import PricingEnv
from payroute.envs.world import EventLog, PaymentWorld
from payroute.envs.world.clock import Calendar
from payroute.envs.world.customers import CustomerModel, Quote, expected_purchases
from payroute.envs.world.demand import TransactionFactory
from payroute.envs.world.prices import PriceBook, cap_ceiling_cents
from payroute.errors import ConfigError
from tests.helpers.envs import rollout

SMALL = {"volume_scale": 0.02, "prices": {"period_s": 3600}}


def small_env(**kwargs) -> PricingEnv:
    return PricingEnv(
        scenario_overrides=kwargs.pop("overrides", SMALL), days=kwargs.pop("days", 0.25), **kwargs
    )


# ---------------------------------------------------------------------- the environment
def test_gymnasium_check_env_passes():
    check_env(small_env(), skip_render_check=True)


def test_sb3_check_env_passes():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(small_env(), warn=False, skip_render_check=True)


def test_registered_and_made_by_id():
    env = gym.make("payroute/Pricing-v0", scenario_overrides=SMALL, days=0.25)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (3, len(FAMILIES))
    env.close()


def test_same_seed_same_actions_same_trajectory_and_a_different_seed_differs():
    rng = np.random.default_rng(7)
    env = small_env()
    actions = [rng.uniform(0.5, 2.0, size=(3, 3)).astype(np.float32) for _ in range(6)]
    o1, r1, _ = rollout(env, 11, actions)
    o2, r2, _ = rollout(small_env(), 11, actions)
    o3, r3, _ = rollout(env, 12, actions)
    assert np.array_equal(o1, o2) and np.array_equal(r1, r2)
    assert not np.array_equal(r1, r3)


def test_episode_has_one_step_per_pricing_period_and_terminates():
    env = small_env()
    _, rewards, terminated = rollout(env, 3, [np.ones((3, 3), np.float32)] * 100)
    assert terminated
    assert len(rewards) == 6  # a quarter day of hourly periods
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.ones((3, 3), np.float32))


def test_rewards_add_up_to_the_worlds_margin():
    env = small_env()
    _, rewards, _ = rollout(env, 5, [np.full((3, 3), 1.3, np.float32)] * 10)
    assert rewards.sum() == pytest.approx(env.world.kpis()["margin_usd"], abs=1e-6)
    assert env.world.ledger.total() == 0


def test_a_non_finite_action_is_refused():
    env = small_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite multipliers"):
        env.step(np.full((3, 3), np.nan))


def test_bad_constructor_arguments_are_refused():
    with pytest.raises(ValueError, match="render_mode"):
        PricingEnv(scenario_overrides=SMALL, render_mode="human")
    with pytest.raises(ValueError, match="own decision"):
        PricingEnv(scenario_overrides=SMALL, baselines={"price": "static_pricing"})
    with pytest.raises(payroute.errors.PayrouteError, match="unknown route policy"):
        PricingEnv(scenario_overrides=SMALL, baselines={"route": "teleport"})


# ---------------------------------------------------------------------- customers respond
def _world_at(level: float, seed: int = 4, days: float = 3, overrides=None, log=None) -> PaymentWorld:
    sc = load_scenario("default", {"volume_scale": 0.02, **(overrides or {})})
    policies = bound_policies()
    policies["price"] = StaticPricing(level)
    world = PaymentWorld(sc, seed, policies, days=days, log=log)
    world.run()
    return world


def _genuine_arrivals(log: EventLog) -> set[tuple[float, int, str]]:
    rows = log.table().to_pandas()
    tx = rows[rows.record == "transaction"]
    tx = tx[~tx.is_fraud.astype(bool)]
    return set(zip(tx.t_arrival, tx.amount_cents, tx.segment, strict=True))


def test_churned_customers_are_the_only_difference_in_who_arrives():
    """Common random numbers under churn: the dearer world's customers are a subset of the cheaper world's,
    each with the same arrival time, amount and segment."""
    cheap_log, dear_log = EventLog(keep_in_memory=True), EventLog(keep_in_memory=True)
    cheap, dear = _world_at(1.0, days=2, log=cheap_log), _world_at(1.8, days=2, log=dear_log)
    a, b = _genuine_arrivals(cheap_log), _genuine_arrivals(dear_log)
    assert b < a
    assert len(a) - len(b) == dear.quote_stats.snapshot()["churned"].sum() > 0
    assert cheap.quote_stats.snapshot()["churned"].sum() == 0


def test_high_prices_lose_customers_now_and_over_days_on_the_same_demand():
    cheap, dear = _world_at(1.0), _world_at(2.0)
    a, b = cheap.quote_stats.snapshot(), dear.quote_stats.snapshot()
    assert np.array_equal(
        a["potential"], b["potential"]
    )  # common random numbers: the same would-be customers
    assert a["churned"].sum() == 0 and b["churned"].sum() > 0
    assert b["abandoned"].sum() / b["quoted"].sum() > a["abandoned"].sum() / a["quoted"].sum()
    # surcharged credit cards push payers to debit
    assert b["switched"][:, 0].sum() > 5 * max(a["switched"][:, 0].sum(), 1)
    assert np.all(dear.demand.segment_multiplier < 1.0)


def test_with_the_competitor_enabled_its_prices_move_and_are_deterministic():
    comp = {"prices": {"competitor": {"enabled": True, "volatility_per_sqrt_day": 0.3}}}
    env = small_env(overrides={**SMALL, **comp, "prices": {**SMALL["prices"], **comp["prices"]}})
    obs, _, _ = rollout(env, 2, [np.ones((3, 3), np.float32)] * 6)
    names = env.observation_names
    cols = [names.index(f"competitor_multiplier[{f}]") for f in FAMILIES]
    seen = obs[:, cols]
    assert len(np.unique(seen.round(6), axis=0)) > 2
    obs2, _, _ = rollout(env, 2, [np.ones((3, 3), np.float32)] * 6)
    assert np.array_equal(obs, obs2)


# ---------------------------------------------------------------------- regulatory caps
_book = PriceBook(load_scenario("default").prices)
_instrument_network = st.sampled_from(
    [
        ("card", "card_credit", "visa"),
        ("card", "card_credit", "amex"),
        ("card", "card_debit", "mastercard"),
        ("bank", "bank_account", ""),
        ("cross_border", "bank_account", ""),
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    _instrument_network,
    st.sampled_from(["", "standard", "same_day", "instant"]),
    st.integers(1, 50_000_000),
    st.floats(0.0, 1e6, allow_nan=False),
)
def test_no_price_exceeds_a_matching_cap_whatever_the_multiplier(fin, urgency, amount, multiplier):
    family, instrument, network = fin
    price = _book.price(family, instrument, network, urgency, amount, multiplier)
    listed = _book.list_price(family, urgency, amount)
    assert price >= 0
    for cap in _book.caps_for(family, instrument, network, urgency):
        assert price <= cap_ceiling_cents(cap, amount, listed)
    if instrument == "card_credit":  # Visa US: surcharge at most 3%
        assert price - listed <= amount * 0.03
    if instrument == "card_debit":  # no surcharge on debit
        assert price <= listed


def test_caps_hold_for_every_payment_in_the_world_whatever_the_action():
    sc = load_scenario(
        "default", {"volume_scale": 0.02, "prices": {"max_multiplier": 50.0, "period_s": 3600}}
    )
    log = EventLog(keep_in_memory=True)
    world = PaymentWorld(sc, 9, bound_policies(price=None), days=0.5, log=log)
    rng = np.random.default_rng(0)
    while (point := world.run_until_decision()) is not None:
        point.resolve(rng.uniform(0.0, 1e4, size=(3, 3)))
    rows = log.table().to_pandas()
    tx = rows[rows.record == "transaction"]
    tx = tx[~tx.is_fraud.astype(bool)]
    assert len(tx) > 300
    book = world.price_book
    for r in tx.itertuples():
        family = "cross_border" if r.cross_border else ("card" if r.instrument.startswith("card") else "bank")
        listed = book.list_price(family, r.urgency, r.amount_cents)
        if r.instrument == "card_credit":
            assert r.price_cents - listed <= r.amount_cents * 0.03
        elif r.instrument == "card_debit":
            assert r.price_cents <= listed
    assert (tx.price_cents > 0).all()


def test_a_zero_fee_rail_charges_nothing_whatever_the_multiplier():
    caps = [{"family": "bank", "basis": "total", "max_fixed_cents": 0, "max_bps": 0.0, "source": "UPI-style"}]
    world = _world_at(2.0, days=1, overrides={"prices": {"caps": caps}})
    assert world.quote_stats.snapshot()["price_cents"][:, FAMILIES.index("bank")].sum() == 0
    assert world.quote_stats.snapshot()["price_cents"][:, FAMILIES.index("card")].sum() > 0


def test_a_cap_on_an_unknown_network_is_a_config_error():
    with pytest.raises(ConfigError, match="prices.caps.0.network"):
        load_scenario("default", {"prices": {"caps": [{"network": "discover", "max_bps": 1.0}]}})


# ---------------------------------------------------------------------- the demand model
@pytest.fixture(scope="module")
def quotes():
    sc = load_scenario("default")
    factory = TransactionFactory(sc, Calendar(sc.start_date))
    cols = factory.block(np.random.default_rng(1), np.zeros(400))
    out = []
    for i in range(400):
        tx = factory.make(cols, i, False, "")
        out.append(Quote(tx.segment, tx.family, tx.instrument, tx.network, tx.urgency, tx.amount_cents))
    return sc, factory, out


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    cell=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    raise_by=st.floats(0.01, 3.0),
    days=st.integers(1, 8),
    beta=st.floats(0.0, 0.05),
    p0=st.floats(0.0001, 0.5),
    lam=st.floats(0.05, 1.0),
    churn=st.one_of(st.just(0.0), st.floats(0.0, 0.01)),
    winback=st.floats(0.0, 0.5),
)
def test_raising_a_fee_never_raises_that_segments_expected_volume(
    quotes, seed, cell, raise_by, days, beta, p0, lam, churn, winback
):
    sc, factory, day = quotes
    spec = CustomerResponse(
        abandon_slope_per_bps=beta,
        switch_probability_at_list=p0,
        switch_nest_lambda=lam,
        churn_per_day_per_bps=churn,
        winback_per_day=winback,
    )
    model = CustomerModel(spec, PriceBook(sc.prices), factory.debit_nets, 3)
    rng = np.random.default_rng(seed)
    mult = rng.uniform(0.2, 3.0, size=(3, 3))
    comp = rng.uniform(0.5, 2.0, size=3)
    before = expected_purchases(model, day, mult, comp, days)
    higher = mult.copy()
    higher[cell] += raise_by
    after = expected_purchases(model, day, higher, comp, days)
    s = cell[0]
    assert after[s] <= before[s] + 1e-9
    others = [i for i in range(3) if i != s]
    assert np.allclose(after[others], before[others])


@settings(max_examples=200, deadline=None)
@given(
    i=st.integers(0, 399),
    m=st.floats(0.0, 5.0),
    raise_by=st.floats(1e-3, 5.0),
    competitor=st.floats(0.3, 3.0),
    beta=st.floats(0.0, 0.05),
    p0=st.floats(0.0001, 0.9),
    lam=st.floats(0.05, 1.0),
    holds=st.floats(0.0, 1.0),
)
def test_a_higher_fee_never_lowers_a_payers_chance_of_walking_away(
    quotes, i, m, raise_by, competitor, beta, p0, lam, holds
):
    sc, factory, day = quotes
    spec = CustomerResponse(
        abandon_slope_per_bps=beta,
        switch_probability_at_list=p0,
        switch_nest_lambda=lam,
        credit_holds_debit_probability=holds,
    )
    model = CustomerModel(spec, PriceBook(sc.prices), factory.debit_nets, 3)
    q = day[i]
    args = (q.family, q.instrument, q.network, q.urgency, q.amount_cents)
    low, high = model.offer(*args, m, competitor), model.offer(*args, m + raise_by, competitor)
    assert high.price_cents >= low.price_cents
    assert high.p_abandon >= low.p_abandon - 1e-12
    assert 0.0 <= high.p_switch <= 1.0 - high.p_abandon + 1e-12


def test_at_list_prices_abandonment_is_the_base_rate_and_almost_nobody_switches(quotes):
    sc, factory, day = quotes
    model = CustomerModel(sc.customers, PriceBook(sc.prices), factory.debit_nets, 3)
    base = sc.customers.base_abandon_probability
    for q in day:
        o = model.offer(q.family, q.instrument, q.network, q.urgency, q.amount_cents, 1.0)
        assert o.premium_bps == 0.0
        assert math.isclose(o.p_abandon, base, rel_tol=1e-3)
        assert o.p_switch <= sc.customers.switch_probability_at_list


# ---------------------------------------------------------------------- cost-plus baseline
def test_cost_plus_prices_above_cost_within_bounds_and_rise_with_the_markup():
    sc = load_scenario("default", {"volume_scale": 0.02})
    low, high = CostPlusPricing(markup=0.1), CostPlusPricing(markup=0.6)
    for policy in (low, high):
        PaymentWorld(sc, 0, {**bound_policies(), "price": policy}, days=0.1)
    lo, hi = sc.prices.min_multiplier, sc.prices.max_multiplier
    for m in (low.multipliers, high.multipliers):
        assert np.all((m >= lo) & (m <= hi))
    assert np.all(high.multipliers >= low.multipliers)
    card = FAMILIES.index("card")
    # list card pricing (2.9% + 30c) is well above interchange-plus cost: cost-plus 10% undercuts it
    assert np.all(low.multipliers[:, card] < 1.0) and np.all(low.multipliers[:, card] > lo)


def test_reward_scale_scales_the_dollar_reward():
    actions = [np.full((3, 3), 1.2, np.float32)] * 6
    _, dollars, _ = rollout(small_env(), 6, actions)
    _, scaled, _ = rollout(small_env(reward_scale=0.001), 6, actions)
    assert np.allclose(scaled, dollars * 0.001)


def test_price_levels_make_one_discrete_price_for_every_segment_and_family():
    env = small_env(price_levels=[0.8, 1.0, 1.25])
    check_env(env, skip_render_check=True)
    assert env.action_space.n == 3 and env.action_names == ("x0.8", "x1", "x1.25")
    assert env.action_values == [0.8, 1.0, 1.25]
    env.reset(seed=4)
    obs, *_ = env.step(2)
    names = list(env.observation_names)
    own = [obs[i] for i, n in enumerate(names) if n.startswith("price_multiplier[")]
    assert np.allclose(own, 1.25)
    # the same run as the Box action that sets every cell to the level
    box = small_env()
    assert np.array_equal(
        rollout(env, 9, [0, 2, 1])[0], rollout(box, 9, [np.full((3, 3), v) for v in (0.8, 1.25, 1.0)])[0]
    )
    with pytest.raises(ValueError, match=r"price level index in 0..2"):
        env.step(3)


@pytest.mark.parametrize(
    "levels, problem",
    [
        ([1.0], "at least two increasing"),
        ([1.2, 1.0], "at least two increasing"),
        ([0.1, 1.0], "within the scenario"),
    ],
)
def test_bad_price_levels_are_refused(levels, problem):
    with pytest.raises(ValueError, match=problem):
        small_env(price_levels=levels)
