"""What-if on your own traffic: ``whatif.compare`` on a scenario calibrated from a log, given by its YAML path."""

from __future__ import annotations

from payroute.envs.calibration import calibrate
from payroute.envs.calibration.example_log import EXAMPLE_DIR
from payroute.experiments import whatif

CARD_ROUTES_DOWN = {
    "incidents": [
        {"route": r, "day": 0, "at": "00:00", "duration_min": 1440, "state": "down"}
        for r in ("card_alpha", "card_beta", "card_gamma")
    ]
}


def test_whatif_compare_runs_on_a_calibrated_scenario_file(tmp_path):
    fitted = calibrate(EXAMPLE_DIR / "transactions.csv", EXAMPLE_DIR / "mapping.yaml", name="my_world")
    path = tmp_path / "my_scenario.yaml"
    path.write_text(fitted.yaml_text())
    table = whatif.compare(["cheapest", "success_rate"], str(path), changes=CARD_ROUTES_DOWN, seeds=2)
    assert set(table.policy) == {"cheapest", "success_rate"}
    approval = table[table.metric == "approval_rate"]
    assert (approval.diff_high < 0).all()  # every card processor down all day: fewer approvals for everyone
    again = whatif.compare(["cheapest"], path, changes=CARD_ROUTES_DOWN, seeds=2)  # a Path works too
    first = table[table.policy == "cheapest"].reset_index(drop=True)
    assert again.reset_index(drop=True).equals(first)  # same file, same seeds: the same numbers
