"""What the experiment runner needs from a training library, whichever it is.

A trainer (:mod:`payroute.agents.rllib.trainer`, :mod:`payroute.agents.sb3.trainer`) runs one training
iteration at a time and reports an :class:`IterationReport`; it saves and restores its complete state in a
folder; and it hands back each learning agent's policy network as a plain
:class:`~payroute.agents.networks.PolicyNet` (observation -> logits).

TensorBoard tags are stable across libraries:

* ``kpi/<name>``: the world's KPIs (:data:`payroute.vocabulary.KPI_NAMES`) averaged over the
  episodes that ended in the iteration;
* ``kpi_running/<name>``: the same KPIs so far in the episodes under way (long episodes);
* ``agent/<role>/episode_return``: each learning agent's return per episode (dollars, after clipping);
* ``<library>/...``: the library's own losses and statistics, as it names them
  (``rllib/learners/router/policy_loss``, ``sb3/train/value_loss``...).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from payroute.agents.networks import PolicyNet


@dataclass
class IterationReport:
    iteration: int
    env_steps: int
    scalars: dict[str, float] = field(default_factory=dict)  # tag -> value, for TensorBoard and metrics.jsonl
    episodes: int = 0  # episodes that ended during this iteration

    def kpi(self, name: str) -> float | None:
        v = self.scalars.get(f"kpi/{name}")
        return None if v is None or math.isnan(v) else v

    def running_kpi(self, name: str) -> float | None:
        v = self.scalars.get(f"kpi_running/{name}")
        return None if v is None or math.isnan(v) else v


def process_rng_state() -> dict[str, Any]:
    """The global generators the training libraries draw from in this process (payroute's own draws all come
    from seeded Generators): NumPy's legacy one (RLlib and SB3 shuffle minibatches with it) and torch's CPU one
    (actions are sampled from it). A checkpoint keeps their state so that a resumed run's libraries draw what the
    uninterrupted run's would have drawn."""
    numpy_state = np.random.get_state()  # noqa: NPY002
    return {"numpy": numpy_state, "torch": torch.get_rng_state()}


def set_process_rng_state(state: dict[str, Any]) -> None:
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])


class Trainer(Protocol):
    iteration: int
    env_steps: int

    def train_iteration(self) -> IterationReport: ...

    def save(self, folder: Path) -> None:
        """Everything the next iterations depend on, as it is now: call it between iterations, after anything
        that draws from the random generators (building policy networks does)."""
        ...

    def restore(self, folder: Path, env_steps: int = 0) -> None:
        """Into a freshly built trainer of the same config: its next iteration is the saved run's next one."""
        ...

    def policy_nets(self) -> dict[str, PolicyNet]: ...

    def close(self) -> None: ...


def flatten_scalars(prefix: str, tree: Mapping[str, Any], skip: Iterable[str] = ()) -> dict[str, float]:
    """Every finite number in a nested mapping, as ``prefix/a/b`` tags."""
    out: dict[str, float] = {}
    skipped = set(skip)
    for key, value in tree.items():
        if key in skipped:
            continue
        tag = f"{prefix}/{key}"
        if isinstance(value, Mapping):
            out.update(flatten_scalars(tag, value, skip))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float):
            v = float(value)
            if math.isfinite(v):
                out[tag] = v
        elif hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            try:
                v = float(value.item())
            except (TypeError, ValueError):
                continue
            if math.isfinite(v):
                out[tag] = v
    return out
