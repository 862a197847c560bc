"""Treasury-v0: the environment, and money conserved across treasury transfers and intraday credit."""

from __future__ import annotations

from collections import defaultdict

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import payroute  # noqa: F401 - registers the environments
from payroute.envs.baselines import bound_policies
from payroute.envs.scenarios import load_scenario
from payroute.envs.single_agent.treasury import TreasuryEnv
from payroute.envs.world import EventLog, PaymentWorld, TreasuryAction
from tests.helpers.envs import rollout

SMALL = {"volume_scale": 0.02}
# a day of heavy payouts and thin prefunding: queues, expiries and overdrafts all happen
TIGHT = {
    "volume_scale": 0.3,
    "accounts": {
        "fed_master": {"opening_balance_cents": 50_000_000, "credit_limit_cents": 200_000_000},
        "rtp_prefund": {"opening_balance_cents": 5_000_000},
        "nostro": {"opening_balance_cents": 5_000_000},
    },
}


def small_env(**kwargs) -> TreasuryEnv:
    return TreasuryEnv(
        scenario_overrides=kwargs.pop("overrides", SMALL), days=kwargs.pop("days", 0.25), **kwargs
    )


def test_gymnasium_check_env_passes():
    check_env(small_env(), skip_render_check=True)


def test_sb3_check_env_passes():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(small_env(), warn=False, skip_render_check=True)


def test_registered_and_made_by_id():
    env = gym.make("payroute/Treasury-v0", scenario_overrides=SMALL, days=0.25)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.unwrapped.action_names == (
        "transfer[rtp_prefund]",
        "transfer[nostro]",
        "credit_line[fed_master]",
    )
    env.close()


def test_same_seed_same_actions_same_trajectory():
    rng = np.random.default_rng(3)
    actions = [rng.uniform([-1, -1, 0], [1, 1, 1]).astype(np.float32) for _ in range(6)]
    o1, r1, t1 = rollout(small_env(), 21, actions)
    o2, r2, t2 = rollout(small_env(), 21, actions)
    assert t1 and t2
    assert np.array_equal(o1, o2) and np.array_equal(r1, r2)


def test_one_step_per_treasury_period_and_rewards_are_minus_the_costs():
    env = small_env()
    _, rewards, term = rollout(env, 4, [np.array([0.5, 0.5, 1.0], np.float32)] * 50)
    assert term and len(rewards) == 6  # hourly periods over a quarter day
    totals = env.world.totals
    costs = sum(
        totals[k]
        for k in (
            "liquidity_cost",
            "treasury_cost",
            "liquidity_cost_cents",
            "delay_cost",
            "liquidity_failure_cost_cents",
        )
    )
    assert rewards.sum() == pytest.approx(-costs / 100.0)
    assert totals["treasury_cost"] > 0  # the two transfers each period paid their fees


def test_transfers_arrive_after_their_delay_and_move_what_the_action_says():
    env = small_env()
    env.reset(seed=0)
    world = env.world
    world.ledger.postings = []  # keep the postings from here on
    env.step(np.array([0.25, -0.1, 1.0], np.float32))
    spec = env.scenario.accounts
    moved_in = round(0.25 * spec["rtp_prefund"].target_balance_cents)
    swept = round(0.1 * spec["nostro"].target_balance_cents)
    posts = {
        (p.kind, dict(p.legs).get("transit", 0)): p for p in world.ledger.postings if "transfer" in p.kind
    }
    out_rtp = posts[("transfer_out", moved_in)]
    assert dict(out_rtp.legs)["bank:fed_master"] == -moved_in
    in_rtp = posts[("transfer_in", -moved_in)]
    assert dict(in_rtp.legs)["bank:rtp_prefund"] == moved_in
    assert in_rtp.t - out_rtp.t == spec["rtp_prefund"].transfer_delay_s
    sweep = posts[("transfer_out", swept)]
    assert dict(sweep.legs)["bank:nostro"] == -swept  # the sweep leaves nostro; it lands after 4 h
    assert ("transfer_in", -swept) not in posts
    assert world.accounts["fed_master"].in_transit == swept
    assert (
        world.totals["treasury_cost"]
        == spec["rtp_prefund"].transfer_fee_cents + spec["nostro"].transfer_fee_cents
    )


def test_small_actions_move_no_money():
    env = small_env(min_transfer_fraction=0.05)
    env.reset(seed=0)
    env.step(np.array([0.04, -0.04, 1.0], np.float32))
    assert env.world.totals["treasury_cost"] == 0


def test_a_bad_action_is_refused():
    env = small_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite numbers"):
        env.step(np.array([np.inf, 0.0, 0.0]))
    with pytest.raises(ValueError, match="finite numbers"):
        env.step(np.zeros(5))


# ---------------------------------------------------------------------- money is conserved
def _reconcile_with_log(world: PaymentWorld, log: EventLog) -> dict[str, int]:
    """Every settlement account's balance rebuilt from the event log alone."""
    rows = log.table().to_pandas()
    sc = world.scenario
    route_account = {n: r.prefunded_account for n, r in sc.routes.items()}
    balance: dict[str, int] = defaultdict(int)
    sign = {
        "opening": 1,
        "inflow": 1,
        "transfer_in": 1,
        "transfer_out": -1,
        "transfer_fee": -1,
    }  # intraday credit is paid for from the operating account, not from the account that borrowed
    for r in rows[rows.record == "account"].itertuples():
        if r.kind in sign:
            balance[r.account] += sign[r.kind] * int(r.amount_cents)
    for r in rows[rows.record == "transaction"].itertuples():
        acct = route_account.get(r.route)
        if acct is None:
            continue
        if r.state == "settled":
            balance[acct] -= int(r.amount_cents)  # the payout left the account
    for r in rows[(rows.record == "post_settlement") & (rows.kind == "return")].itertuples():
        acct = route_account.get(r.route)
        if acct is not None:
            balance[acct] += int(r.amount_cents)
    return dict(balance)


def test_money_is_conserved_across_transfers_and_credit_draws():
    sc = load_scenario("default", TIGHT)
    log = EventLog(keep_in_memory=True)
    world = PaymentWorld(sc, 5, bound_policies(route="fastest", treasury=None), days=0.5, log=log)
    rng = np.random.default_rng(1)
    lowest_fed = 0
    while (point := world.run_until_decision()) is not None:
        lowest_fed = min(lowest_fed, world.accounts["fed_master"].balance)
        # ledger balances and the accounts' own state agree at every decision
        assert world.ledger.total() == 0
        assert world.ledger.balance("transit") == sum(a.in_transit for a in world.accounts.values())
        for a in world.accounts.values():
            assert a.balance >= -a.credit_limit
            live = sum(tx.amount_cents for tx, _ in a.waiters if not tx.state)
            assert a.queued_cents == live
        action = TreasuryAction(
            transfers={
                # early on fund RTP far beyond fed_master's balance (an overdraft), later drain it (queues)
                "rtp_prefund": 60_000_000 if point.t < 7200 else int(rng.integers(-5_000_000, 5_000_000)),
                "nostro": int(rng.integers(-5_000_000, 5_000_000)),
            },
            credit_lines={"fed_master": int(rng.integers(0, 200_000_000))},
        )
        point.resolve(action)
    assert world.ledger.total() == 0
    assert world.ledger.balance("transit") == 0  # every transfer arrived
    rebuilt = _reconcile_with_log(world, log)
    for name, acct in world.accounts.items():
        assert rebuilt[name] == acct.balance, name
    totals = world.totals
    # the stress really happened: credit was drawn and paid for, payouts waited and some expired
    assert totals["liquidity_failures"] > 0 and totals["delay_cost"] > 0
    assert world.ledger.balance("liquidity_cost") == totals["liquidity_cost"] + totals["liquidity_cost_cents"]
    # fed_master ran on intraday credit, and paid for it
    rows = log.table().to_pandas()
    credit_paid = rows[(rows.record == "account") & (rows.kind == "credit_cost")].amount_cents.sum()
    assert lowest_fed < 0 and credit_paid > 0
    assert world.ledger.balance("delay_cost") == totals["delay_cost"]


def test_env_keeps_the_books_balanced_under_random_actions():
    env = TreasuryEnv(scenario_overrides=TIGHT, days=0.25, seed=8)
    env.action_space.seed(8)
    env.reset()
    done = False
    while not done:
        _, reward, done, _, info = env.step(env.action_space.sample())
        world = env.world
        assert world.ledger.total() == 0
        assert world.ledger.balance("transit") == sum(a.in_transit for a in world.accounts.values())
        assert reward <= 0.0
    assert env.world.ledger.balance("transit") == 0


def test_delay_costs_are_part_of_the_margin_the_agents_share():
    sc = load_scenario("liquidity_crunch", {"volume_scale": 0.3})
    policies = bound_policies(route="fastest")
    del policies["treasury"]  # nobody refunds the accounts: payouts queue
    world = PaymentWorld(sc, 0, policies, days=0.5, reward_split="shared")
    world.run()
    assert world.totals["delay_cost"] > 0
    assert sum(world.agent_margin.values()) / 100.0 == pytest.approx(world.kpis()["margin_usd"], abs=1e-9)
    assert world.kpis()["delay_cost_usd"] == world.totals["delay_cost"] / 100.0
