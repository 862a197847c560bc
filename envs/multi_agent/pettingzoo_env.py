"""The payment ecosystem for PettingZoo users: ``payroute_ecosystem_v0``, an AEC environment.

Why AEC (agent-environment cycle) and not Parallel: in the payment world decisions happen one at a time on
one simulated clock, each agent at its own times — the risk desk answers for a payment before the router
routes it, the fraudster decides once an hour while thousands of payments pass between. An AEC environment
is exactly that: ``agent_selection`` is the agent whose decision is pending, it observes, acts, and the world
runs to the next decision. A Parallel environment would have to invent a common step at which every agent
acts together, batching decisions the world takes in sequence (and whose order matters: a routing decision
sees the outcome of the ones before it).

Usage::

    from payroute.envs.multi_agent.pettingzoo_env import env as ecosystem_env

    env = ecosystem_env(learning=["router", "risk", "fraudster"], scenario_overrides={"volume_scale": 0.05})
    env.reset(seed=0)
    for agent in env.agent_iter():
        observation, reward, termination, truncation, info = env.last()
        if termination or truncation:
            action = None
        elif "action_mask" in info:
            action = env.action_space(agent).sample(info["action_mask"])
        else:
            action = env.action_space(agent).sample()
        env.step(action)

Agents, spaces, rewards and episode end are those of :class:`~payroute.envs.multi_agent.ecosystem.PaymentEcosystemEnv`
(same arguments): ``agents`` are the learning agents, all alive until the world has drained;
``observe(agent)`` is the agent's latest observation (a blank one inside its space before its first decision);
``rewards`` are each agent's money since the previous step, so ``last()`` gives the selected agent everything
since it last acted. The router's action mask is in ``info["action_mask"]``. At the end every agent is
terminated (no truncation) and, as PettingZoo requires, steps once with ``None`` to leave.
"""

from __future__ import annotations

from typing import Any

from pettingzoo import AECEnv

from payroute.envs.multi_agent.ecosystem import PaymentEcosystemEnv


class PaymentEcosystemAEC(AECEnv):
    """PettingZoo AEC form of :class:`~payroute.envs.multi_agent.ecosystem.PaymentEcosystemEnv` (same arguments)."""

    metadata = {"name": "payroute_ecosystem_v0", "render_modes": [], "is_parallelizable": False}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.core = PaymentEcosystemEnv(**kwargs)
        self.possible_agents = list(self.core.possible_agents)
        self.observation_spaces = dict(self.core.observation_spaces)
        self.action_spaces = dict(self.core.action_spaces)
        self.agents: list[str] = []
        self.render_mode = None

    def observation_space(self, agent: str):
        return self.observation_spaces[agent]

    def action_space(self, agent: str):
        return self.action_spaces[agent]

    def observe(self, agent: str) -> Any:
        return self.core.last_observation(agent)

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        obs, infos = self.core.reset(seed=seed, options=options)
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {a: {} for a in self.agents}
        (agent,) = obs
        self.infos[agent] = infos[agent]
        self.agent_selection = agent

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        obs, rewards, terminateds, _truncateds, infos = self.core.step({agent: action})
        self.rewards = {a: rewards[a] if a in rewards else self.core.take_reward(a) for a in self.agents}
        if terminateds["__all__"]:
            final = self.core.final_info()
            self.terminations = dict.fromkeys(self.agents, True)
            self.infos = {a: infos.get(a, final) for a in self.agents}
            self.agent_selection = self.agents[0]
        else:
            (nxt,) = obs
            self.infos = {a: {} for a in self.agents}
            self.infos[nxt] = infos[nxt]
            self.agent_selection = nxt
        self._accumulate_rewards()

    def close(self) -> None:
        self.core.close()


def env(**kwargs: Any) -> PaymentEcosystemAEC:
    """``payroute_ecosystem_v0``: the AEC environment (keyword arguments as ``PaymentEcosystemEnv``)."""
    return PaymentEcosystemAEC(**kwargs)


raw_env = env
