"""The analyst's what-if API: a changed scenario against the original on common random numbers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from payroute.errors import PayrouteError  # noqa: E402
from payroute.experiments import whatif  # noqa: E402

OUTAGE = {
    "volume_scale": 0.1,
    "incidents": [{"route": "card_alpha", "at": "12:00", "duration_min": 240, "state": "down"}],
}


def test_an_outage_hurts_static_priority_more_than_success_rate_routing():
    table = whatif.compare(
        ["priority", "success_rate"], changes=OUTAGE, base_changes={"volume_scale": 0.1}, seeds=[0, 1, 2]
    )
    approval = table[table.metric == "approval_rate"].set_index("policy")
    assert approval.loc["priority", "diff_high"] < 0  # the interval excludes zero
    assert approval.loc["priority", "diff"] < approval.loc["success_rate", "diff"]
    ax = whatif.plot_differences(table, "approval_rate")
    assert len(ax.patches) == 2


def test_a_change_that_changes_nothing_gives_exactly_zero_difference():
    table = whatif.compare(
        ["cheapest"], changes={"volume_scale": 0.05}, base_changes={"volume_scale": 0.05}, seeds=2
    )
    assert (table["diff"] == 0).all()
    assert (table["diff_low"] == 0).all() and (table["diff_high"] == 0).all()


def test_compare_without_a_change_is_a_clear_error():
    with pytest.raises(PayrouteError, match="needs the change"):
        whatif.compare(["cheapest"], changes={})


def test_a_bundle_compared_in_worker_processes_gives_the_numbers_of_one_process():
    from pathlib import Path

    router = str(Path(__file__).resolve().parents[2] / "policies" / "zoo" / "router")
    kwargs = dict(
        scenario="default",
        changes={"incidents": [{"route": "card_alpha", "at": "10:00", "duration_min": 120, "state": "down"}]},
        base_changes={"volume_scale": 0.02},
        seeds=2,
    )
    one = whatif.compare([router], **kwargs)
    two = whatif.compare([router], workers=2, **kwargs)  # spawned: the verified bundle's session stays here
    assert one.equals(two) and len(one) > 0
