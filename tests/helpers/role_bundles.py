"""Price, treasury and fraud-side bundles for tests: torch networks with hand-set weights, exported with
export_torch_policy, so the review sees exactly what it would from a trained run.

- :func:`price_level_bundle`: always picks one price level (level 1.0 is the ``static_pricing`` baseline);
- :func:`treasury_bundle`: a constant action per entry (transfers as fractions of target, credit lines as
  fractions of the limit): ``sweep`` empties the prefunded accounts every period and allows no credit;
- :func:`fraud_bundle`: a constant intensity and amount multiplier for every pattern (intensity 1 and
  amounts x1 is the ``scripted_fraud`` baseline).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from payroute.envs.roles import FraudsterRole, PricerRole, TreasurerRole
from payroute.envs.scenarios import load_scenario
from payroute.experiments.onnx_export import export_torch_policy

PRICE_LEVELS = [0.8, 0.9, 1.0, 1.1, 1.2, 1.3]


def _specs(role: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": f.name,
            "unit": f.unit,
            "scaling": f.scaling,
            "low": float(f.low) if np.isfinite(f.low) else None,
            "high": float(f.high) if np.isfinite(f.high) else None,
        }
        for f in role.features
    ]


def _constant(obs_dim: int, outputs: list[float]) -> Any:
    import torch

    linear = torch.nn.Linear(obs_dim, len(outputs))
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor(outputs, dtype=torch.float32))
    return linear


def _card(kind: str, role: Any, actions: list[str], method: str, **more: Any) -> dict[str, Any]:
    return {
        "decision_kind": kind,
        "observation": _specs(role),
        "actions": actions,
        "reward": {"definition": f"hand-set {kind} policy", "unit": "USD"},
        "scenario": {"name": "default", "config": {"volume_scale": 1.0}},
        "training": {"method": method},
        **more,
    }


def price_level_bundle(level: float, out: Path) -> Path:
    """A price bundle whose logits pick ``level`` (one of PRICE_LEVELS) whatever it sees."""
    role = PricerRole(load_scenario("default"), price_levels=PRICE_LEVELS)
    logits = [10.0 if v == level else 0.0 for v in PRICE_LEVELS]
    card = _card(
        "price", role, list(role.action_names), f"hand-set: always x{level:g}", action_values=PRICE_LEVELS
    )
    return export_torch_policy(
        _constant(len(role.features), logits), len(role.features), len(logits), card, out
    )


def treasury_bundle(transfer: float, credit: float, out: Path, scenario: str = "default") -> Path:
    """A treasury bundle that moves ``transfer`` x target into every fundable account each period and allows
    ``credit`` x the limit of intraday credit (``transfer=-1, credit=0``: sweep everything out, no credit)."""
    role = TreasurerRole(load_scenario(scenario))
    outputs = [transfer] * len(role.fundable) + [credit] * len(role.credit_accounts)
    card = _card(
        "treasury", role, list(role.action_names), f"hand-set: transfer {transfer:+g}, credit {credit:g}",
        action_low=[float(x) for x in role.action_space.low], action_high=[float(x) for x in role.action_space.high],
    )  # fmt: skip
    return export_torch_policy(
        _constant(len(role.features), outputs), len(role.features), len(outputs), card, out
    )


def fraud_bundle(intensity: float, out: Path, amount: float = 1.0) -> Path:
    """A fraud-side bundle attacking every pattern at ``intensity`` x the scenario's rate, amounts x ``amount``."""
    role = FraudsterRole(load_scenario("default"))
    p = len(role.pattern_names)
    outputs = [intensity] * p + [amount] * p
    card = _card(
        "fraud", role, list(role.action_names), f"hand-set: intensity {intensity:g}, amounts x{amount:g}",
        action_low=[float(x) for x in role.action_space.low], action_high=[float(x) for x in role.action_space.high],
    )  # fmt: skip
    return export_torch_policy(
        _constant(len(role.features), outputs), len(role.features), len(outputs), card, out
    )
