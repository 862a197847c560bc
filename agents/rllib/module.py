"""RLlib (new API stack) modules for payroute: an actor-critic that applies the environment's action mask.

The routing environment, made with ``dict_observation=True``, hands RLlib ``{"observations": x,
"action_mask": m}``. :class:`MaskedActorCritic` runs a policy MLP and a value MLP on ``x`` and adds
``log(m)`` (clamped to a large negative number) to the logits, so a masked route gets probability zero in
sampling, in the training loss and at inference — the approach of RLlib's ``ActionMaskingTorchRLModule``
example, written for a plain MLP so the policy network can be lifted out as is (:meth:`policy_net`).
With a plain Box observation (environments that need no mask), the mask step is skipped. For a Box action
space (prices, treasury transfers) the policy MLP outputs a diagonal Gaussian's means and log standard
deviations, RLlib's ``TorchDiagGaussian`` inputs.

:class:`MaskedActorCriticWithTarget` adds the target policy network APPO's learner needs
(``TargetNetworkAPI``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import TARGET_NETWORK_ACTION_DIST_INPUTS, TargetNetworkAPI
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.torch_utils import FLOAT_MIN

from payroute.agents.networks import mlp


class MaskedActorCritic(TorchRLModule, ValueFunctionAPI):
    """Separate policy and value MLPs on the observation; the action mask applied to the logits.

    ``model_config``: ``hidden`` (list of layer widths), ``activation`` (``tanh``, ``relu``, ``silu``, ``elu``).
    """

    def setup(self) -> None:
        space = self.observation_space
        self.uses_mask = isinstance(space, gym.spaces.Dict)
        obs_space = space["observations"] if self.uses_mask else space
        obs_dim = int(obs_space.shape[0])
        hidden = list(self.model_config.get("hidden", [64, 64]))
        activation = self.model_config.get("activation", "tanh")
        if isinstance(self.action_space, gym.spaces.Discrete):
            outputs = int(self.action_space.n)
        elif isinstance(self.action_space, gym.spaces.Box):
            outputs = 2 * int(np.prod(self.action_space.shape))  # means, then log standard deviations
        else:
            raise ValueError(f"MaskedActorCritic supports Discrete and Box actions, not {self.action_space}")
        self.pi = mlp(obs_dim, hidden, outputs, activation)
        self.vf = mlp(obs_dim, hidden, 1, activation)

    def _split(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        obs = batch[Columns.OBS]
        if self.uses_mask:
            return obs["observations"], obs["action_mask"]
        return obs, None

    @staticmethod
    def _masked(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            return logits
        return logits + torch.clamp(torch.log(mask), min=FLOAT_MIN)

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        obs, mask = self._split(batch)
        return {Columns.ACTION_DIST_INPUTS: self._masked(self.pi(obs), mask)}

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return self._forward(batch)

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        obs, _ = self._split(batch)
        return self.vf(obs).squeeze(-1)

    def policy_net(self) -> torch.nn.Sequential:
        """The policy MLP: unmasked observation -> logits (what gets evaluated and exported)."""
        return self.pi


class MaskedActorCriticWithTarget(MaskedActorCritic, TargetNetworkAPI):
    """:class:`MaskedActorCritic` with the old-policy target network APPO's loss uses."""

    def make_target_networks(self) -> None:
        self._old_pi = make_target_network(self.pi)

    def get_target_network_pairs(self):
        return [(self.pi, self._old_pi)]

    def forward_target(self, batch: dict[str, Any]) -> dict[str, Any]:
        obs, mask = self._split(batch)
        return {TARGET_NETWORK_ACTION_DIST_INPUTS: self._masked(self._old_pi(obs), mask)}
