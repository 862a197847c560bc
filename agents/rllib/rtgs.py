"""The RTGS liquidity game as an RLlib ``MultiAgentEnv`` (new API stack), and a PPO setup with one policy per bank.

The game itself lives in :mod:`payroute.envs.rtgs` (no Ray there); this adapter only renames the PettingZoo
interface into RLlib's: ``__all__`` keys in the termination and truncation dicts, and ``agents`` /
``possible_agents`` / ``observation_spaces`` / ``action_spaces`` attributes. Register it with
``ray.tune.register_env("rtgs", lambda cfg: RTGSMultiAgentEnv(cfg))`` or pass the class to
``config.environment(RTGSMultiAgentEnv, env_config={...})``; ``env_config`` holds
:class:`~payroute.envs.rtgs.RTGSConfig` fields.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.env.multi_agent_env import MultiAgentEnv

from payroute.envs.rtgs import RTGSLiquidityGame


class RTGSMultiAgentEnv(MultiAgentEnv):
    """RLlib view of :class:`~payroute.envs.rtgs.RTGSLiquidityGame`: every bank acts at every step."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.game = RTGSLiquidityGame(dict(config or {}))
        self.possible_agents = list(self.game.possible_agents)
        self.agents = []
        self.observation_spaces = dict(self.game.observation_spaces)
        self.action_spaces = dict(self.game.action_spaces)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, infos = self.game.reset(seed=seed, options=options)
        self.agents = list(self.game.agents)
        return obs, infos

    def step(self, action_dict: dict[str, int]):
        obs, rewards, terminated, truncated, infos = self.game.step(action_dict)
        self.agents = list(self.game.agents)
        terminated = {**terminated, "__all__": not self.agents}
        truncated = {**truncated, "__all__": False}
        return obs, rewards, terminated, truncated, infos

    def seed_state(self) -> dict[str, Any]:
        """The generator of the next days' demand (exact resume; see ``RTGSLiquidityGame.seed_state``)."""
        return self.game.seed_state()

    def set_seed_state(self, state: dict[str, Any]) -> None:
        self.game.set_seed_state(state)


def ppo_config(env_config: dict[str, Any] | None = None, seed: int = 0, hidden: int = 32):
    """A PPO config with one RLModule per bank (``MultiRLModuleSpec``; bank ``i`` -> policy ``bank_i``)."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    probe = RTGSMultiAgentEnv(env_config)
    banks = probe.possible_agents
    return (
        PPOConfig()
        .environment(RTGSMultiAgentEnv, env_config=dict(env_config or {}))
        .multi_agent(policies=set(banks), policy_mapping_fn=lambda agent_id, episode, **kw: agent_id)
        .rl_module(
            rl_module_spec=MultiRLModuleSpec(
                rl_module_specs={
                    b: RLModuleSpec(model_config={"fcnet_hiddens": [hidden, hidden]}) for b in banks
                }
            )
        )
        .env_runners(num_env_runners=0)
        .debugging(seed=seed)
    )
