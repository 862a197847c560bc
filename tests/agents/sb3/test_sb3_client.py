"""Stable-Baselines3 as a client of Routing-v0: MaskablePPO learns on it without any adapter."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.evaluation import evaluate_policy

import payroute  # noqa: F401


@pytest.fixture(autouse=True)
def one_thread():
    """Small networks train fastest on one thread (as payroute's SB3 trainer does); many threads on a loaded
    machine thrash."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_maskable_ppo_trains_a_few_thousand_steps_and_never_picks_a_masked_route():
    env = gym.make("payroute/Routing-v0", scenario_overrides={"volume_scale": 0.02}, seed=0)
    model = MaskablePPO(
        "MlpPolicy", env, n_steps=512, batch_size=128, n_epochs=2, seed=0, verbose=0, device="cpu"
    )
    model.learn(total_timesteps=2048)
    obs, info = env.reset(seed=11)
    for _ in range(300):
        mask = env.unwrapped.action_masks()
        action, _ = model.predict(obs, action_masks=mask, deterministic=True)
        assert mask[int(action)]
        obs, _r, done, _t, info = env.step(int(action))
        if done:
            break
    mean_reward, _ = evaluate_policy(model, env, n_eval_episodes=1, warn=False)
    assert np.isfinite(mean_reward)


def _ppo_client(**env_kwargs):
    """SB3 PPO on Routing-v0 given only gym.make arguments (a bandit's hyperparameters: gamma 0)."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    def make():
        return gym.make("payroute/Routing-v0", scenario_overrides={"volume_scale": 0.05}, **env_kwargs)

    venv = DummyVecEnv([make for _ in range(4)])
    venv.seed(0)
    return PPO(
        "MlpPolicy", venv, n_steps=1024, batch_size=1024, n_epochs=4, learning_rate=1e-3, gamma=0.0,
        gae_lambda=0.0, ent_coef=0.0, seed=0, device="cpu", verbose=0,
        policy_kwargs={"net_arch": [64, 64], "activation_fn": torch.nn.Tanh},
    )  # fmt: skip


def _held_out_day(model, seed: int = 1_000_000_200) -> tuple[float, float]:
    """(mean step reward at the default credit, the day's realised margin in dollars) of ``model`` routing
    greedily within the mask on a held-out day."""
    import torch

    env = gym.make("payroute/Routing-v0", scenario_overrides={"volume_scale": 0.05}).unwrapped
    obs, info = env.reset(seed=seed)
    rewards, done = [], False
    while not done:
        with torch.no_grad():
            dist = model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0])
            logits = dist.distribution.logits[0].numpy()
        action = int(np.argmax(np.where(info["action_mask"] > 0, logits, -np.inf)))
        obs, reward, done, _t, info = env.step(action)
        rewards.append(reward)
    return float(np.mean(rewards)), float(info["kpis"]["margin_usd"])


@pytest.mark.slow(minutes=1)
def test_a_ppo_client_learns_from_the_default_reward_where_the_realised_one_teaches_it_nothing_on_the_same_budget():
    """The same client, the same budget (16,384 decisions; on the recalibrated default 8,192 leave it where it
    started), the same held-out day: trained on Routing-v0's default reward (each decision's expected margin at
    once) it routes better than before training and than when trained on the realised reward (credit="resolved":
    other payments' outcomes, fraud days later). The study at the quickstart's budget is
    benchmarks/client_learning.py."""
    default = _ppo_client()
    before = _held_out_day(default)
    default.learn(16384)
    resolved = _ppo_client(credit="resolved", baseline="none")
    resolved.learn(16384)
    (credit_default, margin_default), (credit_resolved, margin_resolved) = (
        _held_out_day(default),
        _held_out_day(resolved),
    )
    # measured by what the oracle values (the default reward) and by the money the day really made
    assert credit_default > before[0] + 0.1 and margin_default > before[1]
    assert credit_default > credit_resolved + 0.1 and margin_default > margin_resolved
