"""The evaluation plots count what the evaluation table counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from payroute.experiments import plots
from payroute.policies.compare import run_paired_detailed


def _curve(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for policy, points in values.items():
        for seed in (0, 1):
            last = len(points) - 1
            for step, m in enumerate(points):
                rows.append({"policy": policy, "seed": seed, "hours": step + 1 if step < last else np.nan,
                             "drained": step == last, "margin_usd_cum": m + seed})  # fmt: skip
    return pd.DataFrame(rows)


def test_the_margin_curve_ends_with_the_drained_day_so_its_order_is_the_tables(tmp_path):
    # ahead through the day, behind once its chargebacks arrive: the plot's last point must show the latter
    curve = _curve({"fastest": [5.0, 10.0, 4.0], "cheapest": [3.0, 6.0, 6.0]})
    means = plots.margin_curve_means(curve)
    assert means.xs(False, level="drained")["fastest"].tolist() == [5.5, 10.5]
    drained = means.xs(True, level="drained").iloc[0]
    assert drained["cheapest"] > drained["fastest"]
    assert plots.cumulative_margin(curve, "t", tmp_path / "c.png").stat().st_size > 0


@pytest.mark.parametrize("scenario", ["default"])
def test_the_drained_point_is_the_margin_the_table_reports(scenario):
    paired = run_paired_detailed(
        scenario, ("cheapest", "fastest"), seeds=[0, 1], overrides={"volume_scale": 0.01}
    )
    drained = plots.margin_curve_means(paired.margin_curve).xs(True, level="drained").iloc[0]
    per_tx = paired.runs.groupby("policy").apply(
        lambda r: (r.margin_per_tx_usd * r.arrivals).mean(), include_groups=False
    )
    for policy in ("cheapest", "fastest"):
        assert drained[policy] == pytest.approx(per_tx[policy], rel=1e-9, abs=1e-6)
