"""Stable-Baselines3 as a client of Routing-v0: MaskablePPO learns on it without any adapter."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.evaluation import evaluate_policy

import payroute  # noqa: F401


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
