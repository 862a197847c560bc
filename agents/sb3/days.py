"""Decision credit for Stable-Baselines3: each iteration's rollout is complete days, paid as RLlib's are.

The trainers' decision credit (``env.credit``: ``decision``, ``expected``, ``expected_outcome``, with the route
baseline; :mod:`payroute.agents.training_env`) is known only once a day has drained: :class:`TrainingEnv` puts it
in the last step's info (``decision_rewards``, one number per step). RLlib's path samples complete episodes and
replaces each episode's rewards by them before the learner sees the batch
(:class:`payroute.agents.rllib.trainer.KPICallbacks`). SB3's on-policy algorithms collect a fixed number of steps
per environment and update on them at once, in the middle of a day whose credit nobody knows yet; so with decision
credit an iteration is collected here instead, the way RLlib's complete-episode sampling does it:

* every environment starts a new day; the current policy acts on all of them with one forward pass per vector
  step (with the action masks for MaskablePPO), sampling as SB3's own rollout does;
* a finished day's steps are paid its ``decision_rewards`` and kept whole; an environment starts another day while
  the days kept and the steps of the days under way come to fewer than ``min_steps``, and every day begun is
  finished;
* the days go into the algorithm's own rollout buffer one after the other (an episode start at each day's first
  step, every day ending in a terminal step), and the algorithm's own ``train()`` updates on them: GAE, the
  minibatches, the losses and the logger are SB3's.

The rewards the learner sees are then exactly RLlib's for the same days and actions (tested); the algorithms that
cannot wait for a day (DQN's replay buffer learns step by step) are refused by the experiment schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.utils import obs_as_tensor


@dataclass
class Day:
    """One finished day of one environment: what the policy saw and did at each step, and what each step earned."""

    observations: list[np.ndarray] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    log_probs: list[float] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    rewards: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)  # the last step's (KPIs, decision_rewards)


def sample_days(envs: list[Any], act: Any, min_steps: int, masked: bool) -> list[Day]:
    """Complete days from ``envs`` (Gymnasium environments over a :class:`TrainingEnv` with decision credit) until
    they hold at least ``min_steps`` steps; ``act(observations, masks) -> (actions, values, log_probs)`` acts on
    a batch of them (``masks`` ``None`` unless ``masked``). Days come back in the order they finished (ties: by
    environment), each paid its decision credit."""
    mask_of = [env.get_wrapper_attr("action_masks") for env in envs] if masked else []
    obs = [env.reset()[0] for env in envs]
    days: list[Day] = []
    under_way = [Day() for _ in envs]
    active = list(range(len(envs)))
    kept = 0
    while active:
        batch = np.stack([obs[i] for i in active])
        masks = np.stack([mask_of[i]() for i in active]) if masked else None
        actions, values, log_probs = act(batch, masks)
        still = []
        for k, i in enumerate(active):
            day, a = under_way[i], int(actions[k])
            day.observations.append(obs[i])
            day.actions.append(a)
            day.values.append(float(values[k]))
            day.log_probs.append(float(log_probs[k]))
            if masked:
                day.masks.append(masks[k])
            obs[i], _reward, terminated, truncated, info = envs[i].step(a)
            if not (terminated or truncated):
                still.append(i)
                continue
            credit = info.get("decision_rewards")
            if credit is None or len(credit) != len(day.actions):
                raise RuntimeError(
                    "decision credit needs the environment's decision_rewards for the whole day (a TrainingEnv "
                    "made with the experiment's env.credit)"
                )
            day.rewards = np.asarray(credit, dtype=np.float32)
            day.info = info
            days.append(day)
            kept += len(day.actions)
            under_way[i] = Day()
            # the days under way will be finished too: another day here only if they and the days kept fall short
            coming = sum(len(under_way[j].actions) for j in active if j != i)
            if kept + coming < min_steps:
                obs[i] = envs[i].reset()[0]
                still.append(i)
        active = still
    return days


def policy_actor(model: Any, masked: bool):
    """``act`` for :func:`sample_days` from an SB3 on-policy model: its policy's sampled actions, values and
    log-probabilities, as its own rollout computes them (evaluation mode, no gradients)."""

    def act(observations: np.ndarray, masks: np.ndarray | None):
        with torch.no_grad():
            tensor = obs_as_tensor(observations, model.device)
            if masked:
                actions, values, log_probs = model.policy(tensor, action_masks=masks)
            else:
                actions, values, log_probs = model.policy(tensor)
        return actions.cpu().numpy(), values.cpu().numpy().ravel(), log_probs.cpu().numpy()

    return act


def fill_buffer(model: Any, days: list[Day], masked: bool) -> Any:
    """The model's kind of rollout buffer holding ``days`` one after the other, returns and advantages computed
    (each day ends in a terminal step: nothing is bootstrapped across days)."""
    total = sum(len(d.actions) for d in days)
    old = model.rollout_buffer
    buf = type(old)(
        total, model.observation_space, model.action_space, device=model.device,
        gamma=model.gamma, gae_lambda=model.gae_lambda, n_envs=1,
    )  # fmt: skip
    buf.reset()
    starts = np.zeros(total, dtype=np.float32)
    at = 0
    for d in days:
        n = len(d.actions)
        buf.observations[at : at + n, 0] = np.stack(d.observations)
        buf.actions[at : at + n, 0, 0] = d.actions
        buf.rewards[at : at + n, 0] = d.rewards
        buf.values[at : at + n, 0] = d.values
        buf.log_probs[at : at + n, 0] = d.log_probs
        if masked:
            buf.action_masks[at : at + n, 0] = np.stack(d.masks)
        starts[at] = 1.0
        at += n
    buf.episode_starts[:, 0] = starts
    buf.pos, buf.full = total, True
    buf.compute_returns_and_advantage(last_values=torch.zeros(1), dones=np.ones(1, dtype=np.float32))
    return buf


def train_on_days(model: Any, envs: list[Any], min_steps: int, masked: bool) -> list[Day]:
    """One iteration of an SB3 on-policy model with decision credit: sample complete days, update once on them.
    Returns the days (their last infos carry the KPIs)."""
    model.policy.set_training_mode(False)
    days = sample_days(envs, policy_actor(model, masked), min_steps, masked)
    model.rollout_buffer = fill_buffer(model, days, masked)
    model.num_timesteps += sum(len(d.actions) for d in days)
    model.train()
    model.logger.dump(step=model.num_timesteps)
    return days
