"""Helpers shared by the environment tests."""

from __future__ import annotations

import numpy as np


def rollout(env, seed, actions):
    """Reset ``env`` with ``seed`` and take ``actions`` until they run out or the episode terminates:
    (observations including the first, rewards, whether it terminated)."""
    obs, _ = env.reset(seed=seed)
    out, rewards = [obs], []
    term = False
    for a in actions:
        obs, r, term, _, _ = env.step(a)
        out.append(obs)
        rewards.append(r)
        if term:
            break
    return np.array(out), np.array(rewards), term
