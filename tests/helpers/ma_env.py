"""A two-router multi-agent environment for testing the multi-agent training path (not shipped).

Two independent routing desks, each on its own small world, act simultaneously: enough to exercise RLlib's
MultiRLModuleSpec, the policy mapping by agent id and per-agent policy extraction without the ecosystem env.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.env.multi_agent_env import MultiAgentEnv

from payroute.envs.single_agent.routing import RoutingEnv


class TwoRouters(MultiAgentEnv):
    takes_scenario = True  # an experiment's scenario, its overrides and days reach the constructor

    def __init__(self, scenario: str = "default", scenario_overrides: dict | None = None, days: float = 1.0):
        super().__init__()
        self.desks = {
            name: RoutingEnv(
                scenario, scenario_overrides=scenario_overrides, days=days, dict_observation=True
            )
            for name in ("router_a", "router_b")
        }
        self.possible_agents = list(self.desks)
        self.agents = list(self.desks)
        self.observation_spaces = {k: e.observation_space for k, e in self.desks.items()}
        self.action_spaces = {k: e.action_space for k, e in self.desks.items()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, infos = {}, {}
        for i, (name, env) in enumerate(self.desks.items()):
            obs[name], infos[name] = env.reset(seed=None if seed is None else seed + i)
        self.agents = list(self.desks)
        return obs, infos

    def step(self, action_dict: dict[str, Any]):
        obs, rewards, terms, truncs, infos = {}, {}, {}, {}, {}
        for name, action in action_dict.items():
            o, r, t, tr, info = self.desks[name].step(action)
            obs[name], rewards[name], terms[name], truncs[name], infos[name] = o, r, t, tr, info
            if t or tr:
                self.agents.remove(name)
        terms["__all__"] = not self.agents
        truncs["__all__"] = False
        return obs, rewards, terms, truncs, infos
