"""Route bundles for tests: linear torch routers with hand-set weights, exported with export_torch_policy.

A router whose logit for each route is -1000 x this payment's fee on it (the ``<route>.fee_bps`` feature) takes
the cheapest eligible route, as the ``cheapest`` baseline does; +1000 takes the most expensive one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from payroute.envs.scenarios import load_scenario
from payroute.experiments.onnx_export import export_torch_policy
from payroute.policies.bundle.binding import feature_specs


def default_route_schema() -> tuple[list, list[str]]:
    scenario = load_scenario("default")
    return feature_specs("route", scenario), list(scenario.routes)


def fee_router_bundle(sign: float, out: Path) -> Path:
    """A route bundle with logits = sign x 1000 x each route's fee share of the amount."""
    import torch

    specs, routes = default_route_schema()
    names = [f.name for f in specs]
    linear = torch.nn.Linear(len(names), len(routes))
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.zero_()
        for i, route in enumerate(routes):
            linear.weight[i, names.index(f"{route}.fee_bps")] = sign * 1000.0
    card = {
        "decision_kind": "route",
        "observation": [f.model_dump() for f in specs],
        "actions": routes,
        "reward": {"definition": "margin per routed payment", "unit": "cents"},
        "scenario": {"name": "default", "config": {"volume_scale": 1.0}},
        "training": {
            "method": "hand-set weights: " + ("most expensive" if sign > 0 else "cheapest") + " route"
        },
    }
    return export_torch_policy(linear, len(names), len(routes), card, out)


def resign(folder: Path) -> None:
    """Rewrite checksums.sha256 after editing a bundle, as a careless re-packer would."""
    lines = [
        f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n"
        for n in sorted(p.name for p in folder.iterdir())
        if n != "checksums.sha256"
    ]
    (folder / "checksums.sha256").write_text("".join(lines))


def fee_columns(observations: np.ndarray, feature_names: list[str], routes: list[str]) -> np.ndarray:
    return np.column_stack([observations[:, feature_names.index(f"{r}.fee_bps")] for r in routes])
