"""The RTGS liquidity game: PettingZoo API, seeding, demands, the derived equilibrium and learning it."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from payroute.agents.policy_gradient import step_index, train_reinforce
from payroute.envs.baselines import make_policy
from payroute.envs.baselines.rtgs import play_day
from payroute.envs.rtgs import RTGSLiquidityGame, deterministic_two_period_config, parallel_env
from payroute.errors import ConfigError

CONFIGS = {
    "random_2_banks": {},
    "random_3_banks": {"n_banks": 3, "n_periods": 5},
    "fixed_2_periods": deterministic_two_period_config().model_dump(),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_pettingzoo_parallel_api_test_passes(name):
    parallel_api_test(parallel_env(CONFIGS[name]), num_cycles=100)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_pettingzoo_parallel_seed_test_passes(name):
    parallel_seed_test(lambda: parallel_env(CONFIGS[name]), num_cycles=50)


def test_a_restored_seed_cursor_draws_the_days_the_saved_game_would_draw():
    """Exact resume: a fresh game given the saved demand generator (a pickled copy) draws the same next days."""
    game = RTGSLiquidityGame(CONFIGS["random_3_banks"])
    game.reset(seed=3)
    saved = pickle.loads(pickle.dumps(game.seed_state()))
    ahead = []
    for _ in range(3):
        game.reset()
        ahead.append(game.demand.copy())
    fresh = RTGSLiquidityGame(CONFIGS["random_3_banks"])
    fresh.set_seed_state(saved)
    for expected in ahead:
        fresh.reset()
        np.testing.assert_array_equal(fresh.demand, expected)
    assert not np.array_equal(ahead[0], ahead[1])


def _trajectory(env, seed, rng_seed):
    rng = np.random.default_rng(rng_seed)
    obs, _ = env.reset(seed=seed)
    out = [np.concatenate([obs[a] for a in env.possible_agents])]
    rewards = []
    while env.agents:
        obs, rew, *_ = env.step({a: int(rng.integers(len(env.config.grid))) for a in env.agents})
        out.append(np.concatenate([obs[a] for a in env.possible_agents]))
        rewards.append([rew[a] for a in env.possible_agents])
    return np.array(out), np.array(rewards)


def test_same_seed_same_day_and_a_different_seed_a_different_day():
    env = parallel_env(n_banks=3)
    o1, r1 = _trajectory(env, 5, 0)
    o2, r2 = _trajectory(parallel_env(n_banks=3), 5, 0)
    o3, _ = _trajectory(env, 6, 0)
    assert np.array_equal(o1, o2) and np.array_equal(r1, r2)
    assert not np.array_equal(o1, o3)


def test_payments_move_liquidity_between_banks_and_never_create_it():
    env = parallel_env(n_banks=4, n_periods=6)
    rng = np.random.default_rng(1)
    env.reset(seed=3)
    while env.agents:
        owed_before = env.owed.sum()
        env.step({a: int(rng.integers(len(env.config.grid))) for a in env.agents})
        assert env.balance.sum() == env.posted.sum()  # payments only move money between banks
        assert np.all(env.balance >= 0) and np.all(env.owed >= 0)
        assert env.owed.sum() <= owed_before + env.demand.sum()


def test_costs_follow_the_timing_table():
    cfg = deterministic_two_period_config()
    env = parallel_env(cfg)
    c = cfg.collateral_cents / 100.0  # dollars
    # release_all (posts half): A pays everything; B pays 0.5 then 0.2 of 0.4 and borrows 0.2 overnight
    banks = {a: make_policy("rtgs", "release_all") for a in env.possible_agents}
    assert play_day(env, banks) == pytest.approx({"bank_0": 0.05 * c, "bank_1": (0.05 + 0.4 * 0.2) * c})
    # post_all: only liquidity cost
    banks = {a: make_policy("rtgs", "post_all") for a in env.possible_agents}
    assert play_day(env, banks) == pytest.approx({"bank_0": 0.1 * c, "bank_1": 0.1 * c})
    # free_rider: nothing posted, nothing paid: period-1 delay, then everything borrowed
    banks = {a: make_policy("rtgs", "free_rider") for a in env.possible_agents}
    assert play_day(env, banks) == pytest.approx(
        {"bank_0": (0.2 * 0.2 + 0.4 * 0.5) * c, "bank_1": (0.2 * 0.5 + 0.4 * 0.9) * c}
    )


def test_demands_from_a_csv_file(tmp_path):
    path = tmp_path / "demands.csv"
    path.write_text(
        "day,period,bank,to_bank,amount_cents\n0,0,0,1,100\n0,1,1,0,250\n1,0,0,1,999\n1,0,1,0,5\n1,1,0,,7\n"
    )
    env = parallel_env(n_periods=2, demand={"kind": "csv", "path": str(path)})
    env.reset(seed=0, options={"day": 1})
    assert env.demand[0].tolist() == [[0, 999], [5, 0]]
    assert env.demand[1].tolist() == [[0, 7], [0, 0]]
    env.reset(options={"day": 0})
    assert env.demand.sum() == 350
    seen = set()
    for s in range(20):
        env.reset(seed=s)  # without options each episode draws one of the file's days
        seen.add(int(env.demand.sum()))
    assert seen == {350, 1011}


@pytest.mark.parametrize(
    "text, message",
    [
        ("period,bank,amount_cents\n5,0,10\n", "period = 5"),
        ("period,bank,amount_cents\n0,2,10\n", "bank = 2"),
        ("period,bank,amount_cents\n0,0,-1\n", "amount_cents = -1"),
        ("period,bank\n0,0\n", "missing columns"),
        ("period,bank,amount_cents\n0,zero,10\n", "not an integer"),
    ],
)
def test_a_bad_csv_is_refused_with_the_line_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        parallel_env(n_periods=2, demand={"kind": "csv", "path": str(path)})


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"grid": [0.5, 0.2, 1.0]}, "grid"),
        ({"n_banks": 1}, "n_banks"),
        ({"bogus": 1}, "bogus"),
        ({"demand": {"kind": "fixed", "cents": [[1, 2]]}}, "demand"),
        ({"demand": {"kind": "magic"}}, "demand"),
    ],
)
def test_a_bad_config_is_refused_naming_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field):
        parallel_env(**overrides)


# ---------------------------------------------------------------------- the equilibrium of the small case
EQUILIBRIUM = {"bank_0": (2, 10, 10), "bank_1": (7, 10, 10)}  # A posts 0.2 C, B posts 0.7 C, both release all


def _day_cost(env, strategies):
    env.reset(seed=0)
    cost = dict.fromkeys(env.possible_agents, 0.0)
    for k in range(env.config.n_periods + 1):
        _, rew, *_ = env.step({a: strategies[a][k] for a in env.possible_agents})
        for a in cost:
            cost[a] -= rew[a]
    return cost


def test_the_derived_profile_is_each_banks_unique_best_response():
    env = RTGSLiquidityGame(deterministic_two_period_config())
    c = env.config.collateral_cents / 100.0
    assert _day_cost(env, EQUILIBRIUM) == pytest.approx({"bank_0": 0.02 * c, "bank_1": 0.07 * c})
    grid = range(len(env.config.grid))
    for bank, other in (("bank_0", "bank_1"), ("bank_1", "bank_0")):
        costs = {
            s: _day_cost(env, {bank: s, other: EQUILIBRIUM[other]})[bank]
            for s in itertools.product(grid, grid, grid)
        }
        best = min(costs.values())
        assert [s for s, v in costs.items() if v == best] == [EQUILIBRIUM[bank]]


def test_independent_reinforce_learns_the_equilibrium():
    """Tolerance: each bank's most likely action is the equilibrium one at every step, with probability at
    least 0.95; its expected posting is within 0.02 of collateral (a fifth of a grid step) of the equilibrium
    posting; and its mean cost in the last iteration is within 0.005 of collateral of its equilibrium cost."""
    env = RTGSLiquidityGame(deterministic_two_period_config())
    policies, history = train_reinforce(env, iterations=300, episodes=32, learning_rate=0.5, seed=0)
    grid = np.asarray(env.config.grid)
    target_post = {"bank_0": 0.2, "bank_1": 0.7}
    target_cost = {"bank_0": 0.02, "bank_1": 0.07}
    for bank, policy in policies.items():
        probs = policy.probabilities()
        assert tuple(policy.greedy()) == EQUILIBRIUM[bank]
        for k, a in enumerate(EQUILIBRIUM[bank]):
            assert probs[k, a] >= 0.95
        assert abs(probs[0] @ grid - target_post[bank]) <= 0.02
        assert abs(history[-1][bank] - target_cost[bank]) <= 0.005
        assert history[0][bank] > target_cost[bank] + 0.02  # it did not start there


def test_step_index_reads_the_stage_from_the_observation():
    env = parallel_env(n_periods=4)
    obs, _ = env.reset(seed=0)
    seen = [step_index(env, obs["bank_0"])]
    while env.agents:
        obs, *_ = env.step(dict.fromkeys(env.agents, 10))
        if env.agents:
            seen.append(step_index(env, obs["bank_0"]))
    assert seen == [0, 1, 2, 3, 4]
