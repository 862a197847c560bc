"""The truth behind a calibrated value: what the scenario that made the log says, at a provenance path.

Paths are the calibrated scenario's (``demand.segment_mix.consumer``, ``routes.card_alpha.fee.bps``...). A
mix's truth is its normalised share; a rate the world multiplies by ``volume_scale`` (genuine payments a day,
fraud attacks a day) is the rate the log was made at.
"""

from __future__ import annotations

from typing import Any

from payroute.envs.scenarios import Scenario

MIXES = {
    "instrument_mix", "segment_mix", "merchant_category_mix", "credit_networks", "debit_networks",
    "cross_border_currencies", "urgency_mix",
}  # fmt: skip


def truth_value(truth: Scenario, path: str) -> float:
    data: Any = truth.model_dump(mode="json")
    parts = path.split(".")
    if parts[:2] == ["demand", "transactions_per_day"]:
        return truth.demand.transactions_per_day * truth.volume_scale
    if parts[0] == "demand" and parts[1] in MIXES:
        mix = data["demand"][parts[1]]
        return mix.get(parts[2], 0.0) / sum(mix.values())
    for part in parts:
        data = data[part]
    if parts[-1] == "attacks_per_day":
        return float(data) * truth.volume_scale
    return float(data)


def coverage(values: dict[str, dict], truth: Scenario) -> tuple[int, int, list[str]]:
    """How many fitted values with an interval hold the truth inside it: (inside, total, the paths outside)."""
    inside, total, missed = 0, 0, []
    for path, entry in sorted(values.items()):
        if entry["status"] != "fitted" or "interval" not in entry:
            continue
        lo, hi = entry["interval"]
        true = truth_value(truth, path)
        total += 1
        if lo <= true <= hi:
            inside += 1
        else:
            missed.append(f"{path}: truth {true:.6g} outside [{lo:.6g}, {hi:.6g}]")
    return inside, total, missed
