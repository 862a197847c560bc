"""Independent REINFORCE learners for the RTGS liquidity game, in plain numpy.

Each bank learns its own policy, a softmax over the action grid for each step of the day (the morning
posting and each period's release): ``pi(a | step) = softmax(theta[step])``. That is all the state a bank
needs in a deterministic game, and it keeps the learner small enough to run in a test. Each iteration plays
``episodes`` days with every bank sampling from its policy, then moves each bank's logits along the REINFORCE
gradient of its own expected return::

    theta[k] += lr * mean_over_days( A[k] * (onehot(a_k) - pi(. | k)) )

where ``A[k]`` is the bank's return from step ``k`` to the end of the day (its reward-to-go, in units of its
collateral), minus the mean over the batch at that step (a baseline), divided by the batch's standard
deviation. The banks learn simultaneously and independently, each treating the others as part of the
environment, as in Castro et al. (2021).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from payroute.envs.rtgs import RTGSLiquidityGame


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class StepSoftmaxPolicy:
    """A softmax over ``n_actions`` for each of ``n_steps`` steps of the day."""

    n_steps: int
    n_actions: int
    logits: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.logits = np.zeros((self.n_steps, self.n_actions))

    def probabilities(self) -> np.ndarray:
        """``(n_steps, n_actions)`` action probabilities."""
        return _softmax(self.logits)

    def greedy(self) -> np.ndarray:
        """The most likely action at each step."""
        return self.logits.argmax(axis=1)

    def act(self, step: int, rng: np.random.Generator | None = None) -> int:
        """Sample an action at ``step`` (greedy without a generator)."""
        if rng is None:
            return int(self.logits[step].argmax())
        return int(rng.choice(self.n_actions, p=self.probabilities()[step]))


def step_index(env: RTGSLiquidityGame, observation: np.ndarray) -> int:
    """Which step of the day an observation belongs to: 0 = morning posting, t = period t."""
    if observation[0] > 0.5:
        return 0
    return int(round(float(observation[1]) * env.config.n_periods))


def train_reinforce(
    env: RTGSLiquidityGame,
    iterations: int = 300,
    episodes: int = 32,
    learning_rate: float = 0.5,
    seed: int = 0,
) -> tuple[dict[str, StepSoftmaxPolicy], list[dict[str, float]]]:
    """Train one :class:`StepSoftmaxPolicy` per bank with independent REINFORCE.

    Returns the policies and, per iteration, each bank's mean daily cost in units of its collateral.
    """
    rng = np.random.default_rng(seed)
    cfg = env.config
    n_steps = cfg.n_periods + 1
    unit = cfg.collateral_cents / 100.0  # rewards are dollars; learn in units of collateral
    agents = list(env.possible_agents)
    policies = {a: StepSoftmaxPolicy(n_steps, len(cfg.grid)) for a in agents}
    history: list[dict[str, float]] = []
    for it in range(iterations):
        actions = {a: np.zeros((episodes, n_steps), dtype=np.int64) for a in agents}
        rewards = {a: np.zeros((episodes, n_steps)) for a in agents}
        probs = {a: policies[a].probabilities() for a in agents}
        for e in range(episodes):
            obs, _ = env.reset(seed=int(rng.integers(2**31)) if it == 0 and e == 0 else None)
            while env.agents:
                k = step_index(env, obs[agents[0]])
                act = {a: int(rng.choice(len(cfg.grid), p=probs[a][k])) for a in agents}
                obs, rew, _term, _trunc, _info = env.step(act)
                for a in agents:
                    actions[a][e, k] = act[a]
                    rewards[a][e, k] = rew[a] / unit
        history.append({a: float(-rewards[a].sum(axis=1).mean()) for a in agents})
        for a in agents:
            to_go = np.cumsum(rewards[a][:, ::-1], axis=1)[:, ::-1]
            adv = to_go - to_go.mean(axis=0, keepdims=True)
            adv /= adv.std() + 1e-8
            grad = np.zeros_like(policies[a].logits)
            for k in range(n_steps):
                onehot = np.eye(len(cfg.grid))[actions[a][:, k]]
                grad[k] = (adv[:, k : k + 1] * (onehot - probs[a][k])).mean(axis=0)
            policies[a].logits += learning_rate * grad
    return policies, history
