"""The policy network every trainer hands back: observation in, action logits out.

Whatever library trained it (RLlib PPO/APPO/DQN, Stable-Baselines3 PPO/MaskablePPO/A2C/DQN), a learned
per-transaction policy is reduced to one plain multilayer perceptron, :class:`PolicyNet`: a stack of
``Linear`` layers with one activation between them, mapping the environment's observation vector (the
features of :mod:`payroute.envs.features`, unmasked) to one logit per action (a Q-value for DQN). The mask
is applied outside the network, by whoever knows which actions are allowed. That single form is what
``payroute evaluate`` binds into the world, and what the bundle exporter turns into ONNX.

It is saved as ``policy.pt`` (a ``state_dict``, loaded with ``weights_only=True``: no pickle of code) beside
``policy.json`` (layer sizes, activation, feature and action names), so it can be rebuilt anywhere with torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from payroute.config_io import read_json
from payroute.files import atomic_path, atomic_write_text

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU, "elu": nn.ELU}
SPEC_FILE = "policy.json"
WEIGHTS_FILE = "policy.pt"


def mlp(in_dim: int, hidden: list[int] | tuple[int, ...], out_dim: int, activation: str) -> nn.Sequential:
    """``Linear`` layers with ``activation`` between them; the last layer is linear."""
    act = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden:
        layers += [nn.Linear(last, h), act()]
        last = h
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class PolicySpec:
    """What is needed to rebuild a :class:`PolicyNet` and to know what its inputs and outputs mean."""

    obs_dim: int
    n_actions: int
    hidden: tuple[int, ...]
    activation: str
    decision_kind: str = "route"
    output: str = "logits"  # or "q_values" (DQN): either way the greedy action is the argmax
    feature_names: tuple[str, ...] = ()
    action_names: tuple[str, ...] = ()
    trainer: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # numpy integers from gym spaces would not survive JSON
        for name in ("obs_dim", "n_actions"):
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "feature_names", tuple(str(n) for n in self.feature_names))
        object.__setattr__(self, "action_names", tuple(str(n) for n in self.action_names))


class PolicyNet(nn.Module):
    """Observation (batch x obs_dim, float32) -> logits (batch x n_actions)."""

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__()
        self.spec = spec
        self.net = mlp(spec.obs_dim, spec.hidden, spec.n_actions, spec.activation)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


def linear_stack(module: nn.Module) -> tuple[list[nn.Linear], str]:
    """The ``Linear`` layers of an MLP in forward order, and its (single) hidden activation's name.

    Works on the MLPs RLlib's catalogs and Stable-Baselines3 build (``Sequential`` containers in
    registration order). Raises ``ValueError`` for anything else, so a wrong extraction cannot pass silently.
    """
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    acts = {name for m in module.modules() for name, cls in ACTIVATIONS.items() if type(m) is cls}
    if not linears:
        raise ValueError("no Linear layers found: not an MLP policy")
    if len(acts) > 1:
        raise ValueError(f"mixed activations {sorted(acts)}: not a plain MLP")
    return linears, (acts.pop() if acts else "tanh")


def policy_from_linears(linears: list[nn.Linear], activation: str, **spec_fields) -> PolicyNet:
    """A :class:`PolicyNet` holding copies of ``linears`` (which must chain: out of one = in of the next)."""
    for a, b in zip(linears, linears[1:], strict=False):
        if a.out_features != b.in_features:
            raise ValueError(f"layers do not chain: {a.out_features} -> {b.in_features}")
    spec = PolicySpec(
        obs_dim=linears[0].in_features,
        n_actions=linears[-1].out_features,
        hidden=tuple(lin.out_features for lin in linears[:-1]),
        activation=activation,
        **spec_fields,
    )
    net = PolicyNet(spec)
    targets = [m for m in net.net if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for dst, src in zip(targets, linears, strict=True):
            dst.weight.copy_(src.weight.detach().cpu())
            dst.bias.copy_(src.bias.detach().cpu())
    return net.eval()


def save_policy(net: PolicyNet, folder: Path) -> Path:
    """Write ``policy.pt`` and ``policy.json`` into ``folder`` (created), atomically each."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = asdict(net.spec)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        torch.save(net.net.state_dict(), tmp)
    atomic_write_text(folder / SPEC_FILE, json.dumps(spec, indent=2))
    return folder


def load_policy(folder: Path) -> PolicyNet:
    """Rebuild the network saved by :func:`save_policy` (weights only, never unpickles code)."""
    raw = read_json(Path(folder) / SPEC_FILE)
    net = PolicyNet(PolicySpec(**raw))
    state = torch.load(Path(folder) / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    net.net.load_state_dict(state)
    return net.eval()
