"""Routing-v0 and Risk-v0: Gymnasium and SB3 API compliance, masking, determinism, bounds."""

from __future__ import annotations

import math
from statistics import NormalDist

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import payroute  # noqa: F401  (registers the environments)
from payroute.envs.baselines import make_policy
from payroute.envs.scenarios import available_scenarios

SMALL = {"volume_scale": 0.02}


@pytest.mark.parametrize("scenario", available_scenarios())
@pytest.mark.parametrize("env_id", ["payroute/Routing-v0", "payroute/Risk-v0"])
def test_env_passes_gymnasium_and_sb3_checkers(env_id, scenario):
    kwargs = {"scenario": scenario, "scenario_overrides": SMALL, "seed": 1}
    if env_id == "payroute/Routing-v0":
        kwargs["invalid_action"] = "penalize"  # the checkers sample actions without a mask
    env = gym.make(env_id, **kwargs)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(env_id, **kwargs).unwrapped, warn=False)


def _rollout(env, seed, n_steps, pick):
    obs, info = env.reset(seed=seed)
    trajectory = [obs.copy()]
    rewards = []
    for _ in range(n_steps):
        obs, reward, terminated, truncated, info = env.step(pick(info))
        trajectory.append(obs.copy())
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.array(trajectory), np.array(rewards)


def _first_eligible(info):
    return int(np.flatnonzero(info["action_mask"])[0])


def test_same_seed_same_trajectory_for_the_same_actions():
    env = gym.make("payroute/Routing-v0", scenario_overrides=SMALL)
    a_obs, a_rew = _rollout(env, 7, 400, _first_eligible)
    b_obs, b_rew = _rollout(env, 7, 400, _first_eligible)
    np.testing.assert_array_equal(a_obs, b_obs)
    np.testing.assert_array_equal(a_rew, b_rew)
    c_obs, _ = _rollout(env, 8, 400, _first_eligible)
    assert not np.array_equal(a_obs[:50], c_obs[:50])


def test_constructor_seed_is_used_by_the_first_reset():
    a = gym.make("payroute/Routing-v0", scenario_overrides=SMALL, seed=5)
    b = gym.make("payroute/Routing-v0", scenario_overrides=SMALL)
    np.testing.assert_array_equal(a.reset()[0], b.reset(seed=5)[0])


def test_a_masked_route_raises_a_clear_error_when_asked_to():
    env = gym.make("payroute/Routing-v0", scenario_overrides=SMALL, seed=0, invalid_action="raise")
    _obs, info = env.reset()
    masked = int(np.flatnonzero(info["action_mask"] == 0)[0])
    with pytest.raises(ValueError, match="masked for this payment; eligible routes"):
        env.step(masked)


def test_penalize_mode_declines_the_payment_and_charges_the_penalty():
    env = gym.make(
        "payroute/Routing-v0",
        scenario_overrides=SMALL,
        seed=0,
        invalid_action="penalize",
        invalid_penalty_usd=5.0,
    )
    _obs, info = env.reset()
    masked = int(np.flatnonzero(info["action_mask"] == 0)[0])
    _obs, reward, *_ = env.step(masked)
    assert reward <= -5.0
    world = env.unwrapped.world
    assert world.terminal["declined"] >= 1


def test_action_masks_matches_info_and_rllib_dict_form():
    env = gym.make("payroute/Routing-v0", scenario_overrides=SMALL, seed=0, dict_observation=True)
    obs, info = env.reset()
    assert set(obs) == {"observations", "action_mask"}
    np.testing.assert_array_equal(obs["action_mask"], info["action_mask"].astype(np.float32))
    np.testing.assert_array_equal(env.unwrapped.action_masks(), info["action_mask"].astype(bool))
    assert env.observation_space.contains(obs)


def test_async_vector_env_runs():
    envs = gym.make_vec(
        "payroute/Routing-v0",
        num_envs=2,
        vectorization_mode="async",
        scenario_overrides=SMALL,
        invalid_action="penalize",
    )
    try:
        obs, infos = envs.reset(seed=3)
        assert obs.shape[0] == 2
        for _ in range(50):
            actions = np.array([int(np.flatnonzero(m)[0]) for m in infos["action_mask"]])
            obs, rewards, term, trunc, infos = envs.step(actions)
            assert np.all(np.isfinite(rewards))
    finally:
        envs.close()


@pytest.mark.parametrize(
    "name", ["cheapest", "fastest", "priority", "success_rate", "cost_aware", "thompson", "ucb"]
)
def test_plain_policy_baselines_never_pick_a_masked_route(name):
    env = gym.make("payroute/Routing-v0", scenario="processor_outage", scenario_overrides=SMALL, seed=2)
    policy = make_policy("route", name)
    obs, info = env.reset()
    done = False
    steps = 0
    while not done:
        action = policy.act(obs, info)
        assert info["action_mask"][action] == 1
        obs, _r, done, _t, info = env.step(action)
        steps += 1
    assert steps > 500


def test_the_episode_is_one_day_and_pays_out_what_is_still_open_at_the_end():
    env = gym.make("payroute/Routing-v0", scenario_overrides=SMALL, seed=4)
    _obs, info = env.reset()
    total = 0.0
    done = False
    while not done:
        _obs, r, done, _t, info = env.step(_first_eligible(info))
        total += r
    world = env.unwrapped.world
    assert world.in_flight == 0
    assert world.now >= 86_400
    assert "kpis" in info
    assert total != 0.0


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), scenario=st.sampled_from(available_scenarios()))
def test_observations_stay_finite_and_inside_the_space_over_random_runs(seed, scenario):
    env = gym.make("payroute/Routing-v0", scenario=scenario, scenario_overrides=SMALL, seed=seed)
    rng = np.random.default_rng(seed)
    obs, info = env.reset()
    for _ in range(1500):
        assert np.all(np.isfinite(obs))
        assert env.observation_space.contains(obs), dict(zip(env.unwrapped.feature_names, obs, strict=True))
        eligible = np.flatnonzero(info["action_mask"])
        obs, r, done, _t, info = env.step(int(rng.choice(eligible)))
        assert np.isfinite(r)
        if done:
            break


def test_risk_env_blocking_everything_loses_the_margin_of_good_customers():
    env = gym.make("payroute/Risk-v0", scenario_overrides=SMALL, seed=0)
    env.reset()
    rewards = [env.step(2)[1] for _ in range(300)]
    assert sum(rewards) < 0  # false declines cost the margin lost
    env.reset(seed=0)
    allow = [env.step(0)[1] for _ in range(300)]
    assert sum(allow) > sum(rewards)


def test_episodes_collect_garbage_less_often_and_give_the_thresholds_back():
    import gc

    gc.collect()  # envs other tests left mid-episode give their claims back
    before = gc.get_threshold()
    routing = gym.make("payroute/Routing-v0", scenario_overrides=SMALL, seed=0, days=0.1)
    risk = gym.make("payroute/Risk-v0", scenario_overrides=SMALL, seed=1)
    _obs, info = routing.reset()
    risk.reset()
    assert gc.get_threshold()[0] >= 50_000 and gc.get_threshold()[1:] == before[1:]
    risk.close()  # closed mid-episode: the routing episode still runs, so the threshold stays raised
    assert gc.get_threshold()[0] >= 50_000
    done = False
    while not done:
        _obs, _r, done, _t, info = routing.step(_first_eligible(info))
    assert gc.get_threshold() == before
    dropped = gym.make("payroute/Routing-v0", scenario_overrides=SMALL, seed=2)
    dropped.reset()
    assert gc.get_threshold()[0] >= 50_000
    del dropped
    gc.collect()  # an env dropped mid-episode gives its claim back when it is collected
    assert gc.get_threshold() == before


def test_the_risk_score_is_also_seen_as_its_normal_quantile_where_the_evidence_is_linear():
    from payroute.envs.features import risk_z

    env = gym.make("payroute/Routing-v0", scenario_overrides=SMALL, seed=3)
    obs, info = env.reset()
    names = list(env.unwrapped.feature_names)
    score, z = names.index("risk_score"), names.index("risk_z")
    seen = []
    for _ in range(300):
        seen.append((obs[score], obs[z]))
        obs, _r, done, _t, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
    s, q = np.array(seen, dtype=np.float64).T
    # the same payments' scores, as quantiles: the same order, z = Phi^-1(score) / 8
    assert np.all(np.diff(q[np.argsort(s, kind="stable")]) >= -1e-6)
    mid = (s > 1e-3) & (s < 0.999)  # where the float32 score itself still has the digits
    assert mid.sum() > 250
    assert np.allclose(q[mid] * 8.0, [NormalDist().inv_cdf(x) for x in s[mid]], atol=1e-3)
    # the top of the score, where a posterior goes from 1% to 50%, is spread out rather than squeezed
    assert risk_z(0.99999) - risk_z(0.99) > 0.15 > 0.01 > 0.99999 - 0.99
    assert risk_z(0.0) == -1.0 and risk_z(1.0) == 1.0


def test_each_route_shows_whether_it_gets_the_payment_done_by_its_deadline():
    """deadline_slack > 0 on ACH: the payout settles in time (at the median latency); < 0: it settles late."""
    env = gym.make("payroute/Routing-v0", scenario_overrides={"volume_scale": 0.05}, seed=4)
    obs, info = env.reset()
    names = list(env.unwrapped.feature_names)
    ach, ach_ok = names.index("ach_standard.deadline_slack"), names.index("ach_standard.eligible")
    ach_index = list(info["route_names"]).index("ach_standard")
    sent, done = [], False
    while not done:
        action = int(np.flatnonzero(info["action_mask"])[0])
        if obs[ach_ok] == 1.0:
            action = ach_index
            sent.append((float(obs[ach]), env.unwrapped.features.last_tx))
        else:
            # a route that cannot take the payment shows no slack
            assert obs[ach] == 0.0
        obs, _r, done, _t, info = env.step(action)
    settled = [(s, tx.t_settled > tx.deadline_t) for s, tx in sent if tx.state == "settled"]
    assert len(settled) > 300
    early = [late for s, late in settled if s > 0.0]
    behind = [late for s, late in settled if s < 0.0]
    # both kinds occur on an ordinary day: a quarter of ACH payouts cannot settle by their deadline
    assert len(early) > 100 and len(behind) > 50
    assert np.mean(early) < 0.02 and np.mean(behind) > 0.98
    assert np.all(np.abs([s for s, _ in sent]) <= 1.0)


def test_each_route_shows_what_fraud_is_expected_to_cost_there():
    """expected_fraud_loss: the risk desk's posterior times the route's loss; highest where money cannot come back."""
    from payroute.envs.world.fraud import FraudPosterior, expected_fraud_loss_cents

    env = gym.make("payroute/Routing-v0", scenario_overrides={"volume_scale": 0.05}, seed=6)
    obs, info = env.reset()
    base = env.unwrapped
    names = list(base.feature_names)
    routes = list(info["route_names"])
    column = [names.index(f"{r}.expected_fraud_loss") for r in routes]
    posterior, payouts, done = FraudPosterior(), [], False
    while not done:
        world, tx = base.world, base.features.last_tx
        p, recovery = posterior(world, tx)  # the same payments, in the same order
        mask = info["action_mask"]
        for i, route in enumerate(world.routes):
            want = math.log1p(expected_fraud_loss_cents(world, tx, route, p, recovery) / 100) / math.log1p(
                1e5
            )
            assert (
                obs[column[i]] == pytest.approx(min(want, 1.0), abs=1e-6)
                if mask[i]
                else obs[column[i]] == 0.0
            )
        if tx.family != "card" and mask[routes.index("rtp")] and mask[routes.index("ach_standard")]:
            payouts.append((obs[column[routes.index("rtp")]], obs[column[routes.index("ach_standard")]], p))
        obs, _r, done, _t, info = env.step(int(np.flatnonzero(mask)[0]))
    rtp, ach, p = np.array(payouts).T
    assert len(p) > 100
    # the same payout costs more in fraud on an irrevocable rail than on one whose returns recover some of it
    assert np.all(rtp >= ach) and np.mean(rtp > ach) > 0.9
    # and the riskier the payment, the more it is expected to cost
    assert np.corrcoef(np.log(p), rtp)[0, 1] > 0.3


@pytest.mark.parametrize("env_id", ["payroute/Routing-v0", "payroute/Risk-v0"])
def test_a_masked_sampler_crosses_episode_boundaries_in_a_vector_env(env_id):
    # Gymnasium's default autoreset asks for one more action after a terminal step (and ignores it): the terminal
    # step's mask must allow some action, or a masked sampler has nothing to draw from at the first boundary
    envs = gym.make_vec(
        env_id, num_envs=2, vectorization_mode="sync", scenario_overrides={"volume_scale": 0.02}, days=0.05
    )
    rng = np.random.default_rng(0)
    try:
        _obs, infos = envs.reset(seed=4)
        boundaries = 0
        for _ in range(400):
            masks = infos["action_mask"]
            assert all(m.any() for m in masks), "a step whose mask allows no action"
            actions = np.array([int(rng.choice(np.flatnonzero(m))) for m in masks])
            _obs, _rewards, terminated, truncated, infos = envs.step(actions)
            boundaries += int(np.sum(terminated | truncated))
        assert boundaries >= 4
    finally:
        envs.close()


def test_the_terminal_step_mask_agrees_with_action_masks():
    env = gym.make("payroute/Routing-v0", scenario_overrides={"volume_scale": 0.01}, days=0.02)
    _obs, info = env.reset(seed=2)
    terminated = False
    while not terminated:
        np.testing.assert_array_equal(env.unwrapped.action_masks(), info["action_mask"].astype(bool))
        _obs, _r, terminated, _t, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
    np.testing.assert_array_equal(env.unwrapped.action_masks(), info["action_mask"].astype(bool))
    assert info["action_mask"].all()
