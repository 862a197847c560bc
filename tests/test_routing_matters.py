"""The default world makes routing matter the way it does in practice (issue: Routing-v0, item 5)."""

from __future__ import annotations

from payroute.agents.compare import run_paired, summarise

SMALL = {"volume_scale": 0.15}


def test_the_oracle_bounds_every_baseline_and_beats_cheapest_by_a_modest_approval_uplift():
    runs = run_paired(
        "default", ("cheapest", "cost_aware", "success_rate", "oracle"), seeds=[0, 1], overrides=SMALL
    )
    table = summarise(runs).set_index("policy")
    margin = table["margin_per_tx_usd"]
    assert margin["oracle"] > margin.drop("oracle").max()
    uplift = table.loc["oracle", "approval_rate"] - table.loc["cheapest", "approval_rate"]
    assert 0.005 < uplift < 0.08  # points, not tens of points (CALIBRATION.md)


def test_success_rate_routing_recovers_from_an_outage_that_static_priority_does_not():
    runs = run_paired(
        "processor_outage", ("cheapest", "priority", "success_rate"), seeds=[0, 1], overrides=SMALL
    )
    table = summarise(runs).set_index("policy")
    assert table.loc["success_rate", "approval_rate"] > table.loc["priority", "approval_rate"] + 0.03
    # on an ordinary day static priority (the best processor first) is a decent policy: the ranking changes
    calm = summarise(
        run_paired("default", ("cheapest", "priority", "success_rate"), seeds=[0, 1], overrides=SMALL)
    )
    calm = calm.set_index("policy")
    gap_calm = calm.loc["success_rate", "approval_rate"] - calm.loc["priority", "approval_rate"]
    gap_outage = table.loc["success_rate", "approval_rate"] - table.loc["priority", "approval_rate"]
    assert gap_outage > gap_calm + 0.03
