"""The truth behind a calibrated value (:func:`~payroute.experiments.studies.calibration_roundtrip.truth_value`:
what the scenario that made the log says, at a provenance path), and how many fitted intervals hold it."""

from __future__ import annotations

from payroute.envs.scenarios import Scenario
from payroute.experiments.studies.calibration_roundtrip import truth_value

__all__ = ["coverage", "truth_value"]


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
