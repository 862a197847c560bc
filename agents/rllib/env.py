"""RLlib's view of the payment ecosystem: a ``MultiAgentEnv`` subclass around ``PaymentEcosystemEnv``.

:class:`~payroute.envs.multi_agent.ecosystem.PaymentEcosystemEnv` already speaks RLlib's multi-agent API (it stays free
of Ray so reviewers can install payroute without it); this class adds the ``MultiAgentEnv`` base RLlib's
env runners check for, keeps ``agents`` in step with the episode, and takes RLlib's ``env_config``.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.env.multi_agent_env import MultiAgentEnv

from payroute.envs.multi_agent.ecosystem import PaymentEcosystemEnv


class RLlibPaymentEcosystem(MultiAgentEnv):
    """``PaymentEcosystemEnv`` for RLlib (new API stack): ``config`` is its options (RLlib's ``env_config``).

    Everything — agents, spaces, rewards, the end of an episode — is as documented on
    :class:`~payroute.envs.multi_agent.ecosystem.PaymentEcosystemEnv`; the world under it is ``self.core.world``.
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.core = PaymentEcosystemEnv(dict(config or {}))
        self.possible_agents = list(self.core.possible_agents)
        self.agents = []
        self.observation_spaces = dict(self.core.observation_spaces)
        self.action_spaces = dict(self.core.action_spaces)
        super().__init__()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        out = self.core.reset(seed=seed, options=options)
        self.agents = list(self.core.agents)
        return out

    def step(self, action_dict: dict[str, Any]):
        out = self.core.step(action_dict)
        self.agents = list(self.core.agents)
        return out

    def seed_state(self) -> dict[str, Any]:
        """The seed cursor (exact resume; see ``PaymentEcosystemEnv.seed_state``)."""
        return self.core.seed_state()

    def set_seed_state(self, state: dict[str, Any]) -> None:
        self.core.set_seed_state(state)

    def close(self) -> None:
        self.core.close()
