"""Adversarial training in RLlib (new API stack): the PSP's agents against a learning fraudster.

Multi-agent PPO on :class:`~payroute.agents.rllib.env.RLlibPaymentEcosystem`: one RLModule per role
(``MultiRLModuleSpec``), agents mapped to modules by role (``policy_mapping_fn``). The router's module masks
ineligible routes (RLlib's ``ActionMaskingTorchRLModule``; the environment puts the mask in the router's
observation); every other role uses PPO's default module.

Opponent freezing (``freeze_fraudster_every=K``): a second fraudster module, ``fraudster_frozen``, is never
trained; it starts as a copy of ``fraudster`` and every ``K`` training iterations it is overwritten with the
current ``fraudster``'s weights. Every other episode the fraudster agent is played by the frozen snapshot,
so the defenders train against an opponent that stands still for ``K`` iterations half of the time, while
the other half keeps training the live fraudster — training does not chase its own tail.

Command (prints each module's mean episode return per iteration)::

    python -m payroute.agents.rllib.adversarial --iterations 10 --freeze-every 2 --volume-scale 0.01

Usage::

    from payroute.agents.rllib.adversarial import ecosystem_ppo_config

    config = ecosystem_ppo_config(learning=("router", "risk", "fraudster"), freeze_fraudster_every=5,
                                  scenario_overrides={"volume_scale": 0.05})
    algo = config.build_algo()
    for _ in range(10):
        result = algo.train()
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.examples.rl_modules.classes.action_masking_rlm import ActionMaskingTorchRLModule

from payroute.agents.rllib.env import RLlibPaymentEcosystem
from payroute.envs.multi_agent.ecosystem import ROLES, PaymentEcosystemEnv

FROZEN_FRAUDSTER = "fraudster_frozen"


def role_to_module(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    """The policy mapping without freezing: each agent to its role's module."""
    return agent_id


class AlternatingOpponent:
    """The policy mapping with freezing: each agent to its role's module, except the fraudster, which the live
    module plays in the 1st, 3rd, 5th ... episode an env runner starts and the frozen snapshot in the others
    (deterministic, unlike a hash of RLlib's random episode ids)."""

    def __init__(self) -> None:
        self._choice: OrderedDict[str, str] = OrderedDict()
        self._started = 0

    def __call__(self, agent_id: str, episode: Any = None, **kwargs: Any) -> str:
        if agent_id != "fraudster" or episode is None:
            return agent_id
        key = str(episode.id_)
        if key not in self._choice:
            self._choice[key] = "fraudster" if self._started % 2 == 0 else FROZEN_FRAUDSTER
            self._started += 1
            while len(self._choice) > 1000:
                self._choice.popitem(last=False)
        return self._choice[key]


class FreezeFraudster(RLlibCallback):
    """Copies the live fraudster's weights into ``fraudster_frozen`` at the start and every ``every``
    training iterations; records the iteration of the last snapshot as ``fraudster_snapshot_iteration``."""

    def __init__(self, every: int) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"freeze_fraudster_every must be >= 1, got {every}")
        self.every = every
        self.last_snapshot = 0

    def _snapshot(self, algorithm) -> None:
        state = algorithm.learner_group.get_weights(["fraudster"])[
            "fraudster"
        ]  # the full module, value head too
        algorithm.set_state({"learner_group": {"learner": {"rl_module": {FROZEN_FRAUDSTER: state}}}})

    def on_algorithm_init(self, *, algorithm, metrics_logger=None, **kwargs) -> None:
        self._snapshot(algorithm)

    def on_train_result(self, *, algorithm, metrics_logger=None, result, **kwargs) -> None:
        if algorithm.iteration % self.every == 0:
            self._snapshot(algorithm)
            self.last_snapshot = algorithm.iteration
        result["fraudster_snapshot_iteration"] = self.last_snapshot


def ecosystem_ppo_config(
    learning: Sequence[str] = ("router", "risk", "fraudster"),
    *,
    scenario: str = "default",
    scenario_overrides: dict[str, Any] | None = None,
    days: float = 1.0,
    baselines: dict[str, str] | None = None,
    reward_scale: float = 1.0,
    seed: int = 0,
    train_batch_size: int = 4000,
    minibatch_size: int = 500,
    num_epochs: int = 5,
    lr: float = 3e-4,
    hidden: Sequence[int] = (64, 64),
    freeze_fraudster_every: int | None = None,
    num_env_runners: int = 0,
) -> PPOConfig:
    """A PPO config with one module per learning role on the payment ecosystem.

    ``train_batch_size`` counts agent steps of all agents together; ``freeze_fraudster_every`` (needs the
    fraudster among ``learning``) adds the frozen opponent described in the module docstring.
    """
    learning = tuple(learning)
    unknown = sorted(set(learning) - set(ROLES))
    if unknown or not learning:
        raise ValueError(f"learning must name agents of {list(ROLES)}, got {list(learning)}")
    freeze = freeze_fraudster_every is not None
    if freeze and "fraudster" not in learning:
        raise ValueError("freeze_fraudster_every needs the fraudster among the learning agents")
    env_config = {
        "scenario": scenario,
        "scenario_overrides": scenario_overrides,
        "days": days,
        "learning": list(learning),
        "baselines": dict(baselines or {}),
        "reward_scale": reward_scale,
        "router_mask_in_observation": True,
        # the masking module never samples a masked route; RLlib's env pre-check samples unmasked actions
        "router_invalid_action": "decline",
    }
    model_config = DefaultModelConfig(fcnet_hiddens=list(hidden), fcnet_activation="tanh")
    probe = PaymentEcosystemEnv(env_config)  # the spaces of every role, so each module's spec is explicit
    specs = {
        role: RLModuleSpec(
            module_class=ActionMaskingTorchRLModule if role == "router" else None,
            observation_space=probe.observation_spaces[role],
            action_space=probe.action_spaces[role],
        )
        for role in learning
    }
    if freeze:
        specs[FROZEN_FRAUDSTER] = RLModuleSpec(
            observation_space=probe.observation_spaces["fraudster"],
            action_space=probe.action_spaces["fraudster"],
        )
    config = (
        PPOConfig()
        .environment(RLlibPaymentEcosystem, env_config=env_config)
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=1)
        .training(
            train_batch_size_per_learner=train_batch_size,
            minibatch_size=minibatch_size,
            num_epochs=num_epochs,
            lr=lr,
        )
        .multi_agent(
            policies=set(specs),
            policy_mapping_fn=AlternatingOpponent() if freeze else role_to_module,
            policies_to_train=list(learning),
            count_steps_by="agent_steps",
        )
        .rl_module(model_config=model_config, rl_module_spec=MultiRLModuleSpec(rl_module_specs=specs))
        .debugging(seed=seed)
    )
    if freeze:
        config.callbacks(functools.partial(FreezeFraudster, every=freeze_fraudster_every))
    return config


def main(argv: list[str] | None = None) -> int:
    import argparse

    import ray

    parser = argparse.ArgumentParser(
        prog="python -m payroute.agents.rllib.adversarial",
        description="Multi-agent PPO: the PSP's router and risk desk against a learning fraudster.",
    )
    parser.add_argument("--learning", nargs="+", default=["router", "risk", "fraudster"], choices=list(ROLES))
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument(
        "--freeze-every", type=int, default=None, help="snapshot the fraudster every K iterations"
    )
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--volume-scale", type=float, default=0.01)
    parser.add_argument("--batch", type=int, default=4000, help="agent steps per training batch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    config = ecosystem_ppo_config(
        args.learning,
        scenario=args.scenario,
        scenario_overrides={"volume_scale": args.volume_scale},
        train_batch_size=args.batch,
        minibatch_size=max(args.batch // 8, 32),
        freeze_fraudster_every=args.freeze_every,
        seed=args.seed,
    )
    algo = config.build_algo()
    try:
        for _ in range(args.iterations):
            result = algo.train()
            returns = result["env_runners"].get("module_episode_returns_mean", {})
            shown = ", ".join(f"{m} {v:,.2f}" for m, v in sorted(returns.items())) or "(no episode ended yet)"
            print(f"iteration {result['training_iteration']}: mean episode return ($) {shown}")
    finally:
        algo.stop()
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
