"""A trained policy network, bound into the payment world like any baseline.

:class:`LearnedRoutePolicy` answers ``route`` decisions in-process: for each payment it builds the very
observation ``payroute/Routing-v0`` would have shown the policy (:class:`~payroute.envs.features.RoutingFeatures`),
runs the :class:`~payroute.agents.networks.PolicyNet`, and picks the highest logit among the eligible routes
(greedy: evaluation is deterministic). :class:`LearnedRiskPolicy` does the same for ``risk`` decisions with the
``payroute/Risk-v0`` observation. Both pickle (the network travels with them), so comparisons can run seeds in
worker processes.

:func:`rollout_kpis` evaluates a network the other way, by stepping its own environment: it works for every
single-agent environment (including the per-period ones) and, for routing, must agree with the bound policy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from payroute.agents.networks import PolicyNet
from payroute.envs.features import RoutingFeatures, TransactionFeatures

_NUMPY_ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "elu": lambda x: np.where(x > 0.0, x, np.expm1(np.minimum(x, 0.0))),
}


class NumpyForward:
    """A :class:`PolicyNet` evaluated with numpy, one observation (or a batch) at a time: the same float32
    layers; a torch call per payment costs milliseconds of dispatch for a network that needs microseconds."""

    def __init__(self, net: PolicyNet) -> None:
        linears = [m for m in net.net if isinstance(m, torch.nn.Linear)]
        self.layers = [
            (m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy()) for m in linears
        ]
        self.activation = _NUMPY_ACTIVATIONS[net.spec.activation]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        last = len(self.layers) - 1
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < last:
                x = self.activation(x)
        return x


class _LearnedPolicy:
    kind = ""

    def __init__(self, net: PolicyNet, name: str = "trained") -> None:
        self.net = net.eval()
        self.name = name
        self._obs: np.ndarray | None = None
        self._logits = NumpyForward(self.net)

    def __getstate__(self) -> dict[str, Any]:
        return {"net": self.net, "name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        torch.set_num_threads(1)
        self.__init__(state["net"], state["name"])


class LearnedRoutePolicy(_LearnedPolicy):
    """Routes each payment to the eligible route with the highest logit of a trained routing network."""

    kind = "route"

    def bind(self, world: Any) -> None:
        self.features = RoutingFeatures(world)
        if self.features.size != self.net.spec.obs_dim:
            raise ValueError(
                f"the policy expects {self.net.spec.obs_dim} features, the world's routing observation has "
                f"{self.features.size}: it was trained on a scenario with other routes or accounts"
            )
        names = self.net.spec.feature_names
        if names and tuple(names) != tuple(self.features.names):
            raise ValueError("the policy's feature names differ from this scenario's routing features")

    def decide(self, world: Any, payload: Any) -> tuple[int, float]:
        tx, eligible = payload
        logits = self._logits(self.features.build(tx, world.now))
        best = max(eligible, key=lambda r: (logits[r.index], -r.index))
        return best.index, 1.0


class LearnedRiskPolicy(_LearnedPolicy):
    """Allow / challenge / block by the highest logit of a trained risk network."""

    kind = "risk"

    def bind(self, world: Any) -> None:
        self.features = TransactionFeatures(world)
        if self.features.size != self.net.spec.obs_dim:
            raise ValueError(
                f"the policy expects {self.net.spec.obs_dim} features, the risk observation has {self.features.size}"
            )

    def decide(self, world: Any, payload: Any) -> tuple[int, float]:
        obs = np.zeros(self.features.size, dtype=np.float32)
        self.features.fill(obs, payload, world.now)
        return int(np.argmax(self._logits(obs))), 1.0


LEARNED_POLICIES = {"route": LearnedRoutePolicy, "risk": LearnedRiskPolicy}


def greedy_action(net: PolicyNet, obs: Any, mask: np.ndarray | None, action_space: Any) -> Any:
    """The deterministic action of ``net``: masked argmax (discrete) or the clipped mean (box)."""
    x = obs["observations"] if isinstance(obs, dict) else obs
    with torch.inference_mode():
        out = net(torch.as_tensor(np.asarray(x, dtype=np.float32)).unsqueeze(0))[0].numpy()
    if hasattr(action_space, "n"):
        if mask is not None:
            out = np.where(np.asarray(mask) > 0, out, -np.inf)
        return int(np.argmax(out))
    size = int(np.prod(action_space.shape))
    mean = out[:size].reshape(action_space.shape)  # a Gaussian head outputs [mean, log_std]
    return np.clip(mean, action_space.low, action_space.high).astype(action_space.dtype)


def rollout_kpis(env: Any, net: PolicyNet, seed: int) -> dict[str, float]:
    """One episode of ``env`` (world seed ``seed``) with ``net`` acting greedily; the world's final KPIs."""
    obs, info = env.reset(seed=seed)
    while True:
        mask = info.get("action_mask") if isinstance(info, dict) else None
        action = greedy_action(net, obs, mask, env.action_space)
        obs, _r, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return dict(info.get("kpis", {}))
