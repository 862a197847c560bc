"""Every payroute environment in Gymnasium's registry meets the API its users rely on.

One test per registered ``payroute/`` id and check: Gymnasium's and Stable-Baselines3's environment checkers,
seeded determinism (the same seed gives the same observations and rewards over a short random rollout that
respects the action mask), and observations inside the observation space. The multi-agent environments (the
ecosystem's PettingZoo wrapper and the RTGS game) go through PettingZoo's own API tests in
tests/envs/multi_agent/test_ecosystem.py and tests/envs/rtgs/test_rtgs.py.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import payroute  # noqa: F401 - registers the environments

ENV_IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("payroute/"))

SMALL = {"volume_scale": 0.02}
# Every argument at its default but the scenario's volume: the default scenario at 2% of its volume runs the same
# code paths, and every check takes seconds (at full volume Pricing-v0 simulates a whole day of about 10^5
# payments per step, and its two checkers take minutes of CPU).


def make(env_id: str) -> gym.Env:
    return gym.make(env_id, scenario_overrides=SMALL).unwrapped


def rollout(env_id: str, seed: int, steps: int = 40) -> tuple[list, list[float]]:
    env = make(env_id)
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    observations, rewards = [obs], []
    for _ in range(steps):
        mask = info.get("action_mask")
        if mask is not None and np.any(mask):
            action = int(rng.choice(np.flatnonzero(mask)))
        else:
            action = env.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    env.close()
    return observations, rewards


def test_every_environment_is_registered():
    assert ENV_IDS == [
        "payroute/Pricing-v0",
        "payroute/Risk-v0",
        "payroute/Routing-v0",
        "payroute/Treasury-v0",
    ]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_env_checker_passes(env_id):
    check_env(make(env_id), skip_render_check=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_env_checker_passes(env_id):
    sb3_check_env(make(env_id), warn=False, skip_render_check=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_the_same_seed_gives_the_same_episode(env_id):
    obs_a, rewards_a = rollout(env_id, seed=5)
    obs_b, rewards_b = rollout(env_id, seed=5)
    assert len(obs_a) == len(obs_b)
    for a, b in zip(obs_a, obs_b, strict=True):
        np.testing.assert_array_equal(a, b)
    assert rewards_a == rewards_b


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_observations_lie_inside_the_observation_space(env_id):
    space = make(env_id).observation_space
    observations, _ = rollout(env_id, seed=7)
    for i, obs in enumerate(observations):
        assert space.contains(obs), f"step {i}: the observation is outside {space}"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_without_a_seed_continues_the_seeded_sequence(env_id):
    def first_observations() -> list[np.ndarray]:
        env = make(env_id)
        out = [env.reset(seed=11)[0]] + [env.reset()[0] for _ in range(2)]
        env.close()
        return out

    a, b = first_observations(), first_observations()
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
