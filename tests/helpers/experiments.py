"""Tiny experiments for the tests: a 2% volume day (about 2,000 payments) and a few hundred steps per update."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from payroute.experiments.schema import Experiment, experiment_from_dict

TINY_VOLUME = {"volume_scale": 0.02}


def tiny_experiment(name: str = "tiny", **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "scenario": "default",
        "scenario_overrides": dict(TINY_VOLUME),
        "env": {"id": "payroute/Routing-v0", "kpi_every_steps": 200},
        "agents": {"learn": ["router"], "baselines": {"risk": "threshold"}},
        "trainer": {
            "library": "rllib",
            "algorithm": "PPO",
            "hyperparameters": {"batch_size": 1200, "minibatch_size": 400, "epochs": 1},
            "network": {"hidden": [16], "activation": "tanh"},
        },
        "seed": 0,
        "stopping": {"iterations": 2},
        "checkpoint": {"every_iterations": 1, "keep_last": 2},
        "evaluation": {
            "scenarios": ["default"],
            "scenario_overrides": dict(TINY_VOLUME),
            "seeds": {"count": 2},
            "baselines": ["cheapest", "fastest"],
            "oracle": True,
            "workers": 1,
        },
        "resources": {"num_env_runners": 0, "num_envs_per_env_runner": 1, "num_cpus": 2},
    }
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return data


def write_experiment(folder: Path, data: dict[str, Any]) -> Path:
    path = Path(folder) / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tiny(name: str = "tiny", **changes: Any) -> Experiment:
    return experiment_from_dict(tiny_experiment(name, **changes))
