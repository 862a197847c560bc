"""``payroute calibrate --check``: a scenario's card fraud, approval, processor gap, costs and per-item fees set
against the published ranges of docs/calibration.md, on fresh seeds."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from payroute.envs.calibration.check import CHECK_SEED_START, PUBLISHED, check_scenario, kpis_of
from payroute.envs.scenarios import load_scenario
from payroute.experiments.cli import app

SMALL = 0.02  # a fiftieth of a day's volume: about 2,000 payments a day


def _rows(result):
    return {r["key"]: r for r in result["rows"]}


def test_kpis_are_ratios_of_the_pooled_sums():
    sums = {"value": 1_000_000.0, "fraud_value": 500.0, "fraud_loss": 2_000.0, "submitted": 100.0,
            "approved": 81.0, "revenue": 30_000.0, "route_cost": 20_000.0, "genuine": 10.0,
            "gap:a": 9.0, "gap:b": 8.2, "gap:c": 8.5, "count:rtp": 4.0, "cost:rtp": 18.0}  # fmt: skip
    k = kpis_of(sums)
    assert k["card_fraud_bps"] == pytest.approx(5.0)
    assert k["card_fraud_loss_bps"] == pytest.approx(20.0)
    assert k["card_approval"] == pytest.approx(0.81)
    assert k["merchant_cost_bps"] == pytest.approx(300.0)
    assert k["card_route_cost_bps"] == pytest.approx(200.0)
    assert k["processor_gap_pts"] == pytest.approx(8.0)
    assert k["fee_rtp_cents"] == pytest.approx(4.5)
    assert k["fee_fednow_cents"] is None  # no FedNow payout that day: no figure, not a zero


def test_the_processor_gap_is_measured_on_the_same_traffic():
    """Processors that differ by exactly ten points on every payment are ten points apart, whatever each
    processor was sent; identical processors are zero apart."""
    same = {"consumer": 0.85, "small_business": 0.85, "enterprise": 0.85}
    apart = {"consumer": 0.80, "small_business": 0.80, "enterprise": 0.80}
    routes = {
        name: {"approval": {"by_segment": seg, "foreign_card_logit_offset": 0.0}}
        for name, seg in (
            ("card_alpha", {k: 0.90 for k in same}),
            ("card_beta", apart),
            ("card_gamma", apart),
        )
    }
    sc = load_scenario("default", {"volume_scale": SMALL, "routes": routes})
    assert _rows(check_scenario(sc, days=1))["processor_gap_pts"]["value"] == pytest.approx(10.0)
    routes = {name: {"approval": {"by_segment": same}} for name in routes}
    flat = load_scenario("default", {"volume_scale": SMALL, "routes": routes})
    flat = load_scenario(
        flat, {"routes": {n: {"approval": {"foreign_card_logit_offset": 0.0}} for n in routes}}
    )
    assert _rows(check_scenario(flat, days=1))["processor_gap_pts"]["value"] == pytest.approx(0.0, abs=1e-9)


def test_a_world_without_fraud_measures_no_card_fraud_and_the_verdicts_follow_the_ranges():
    quiet = {p: {"attacks_per_day": 0.0} for p in load_scenario("default").fraud.patterns}
    sc = load_scenario("default", {"volume_scale": SMALL, "fraud": {"patterns": quiet}})
    result = check_scenario(sc, days=2)
    rows = _rows(result)
    assert result["seeds"] == [CHECK_SEED_START, CHECK_SEED_START + 1]
    assert rows["card_fraud_bps"]["value"] == 0.0 and rows["card_fraud_loss_bps"]["value"] == 0.0
    assert rows["card_fraud_bps"]["inside"] is False  # zero fraud is not a realistic card business either
    for p in PUBLISHED:
        r = rows[p.key]
        if r["value"] is not None:
            assert r["inside"] == (p.low <= r["value"] <= p.high)
            assert r["day_min"] <= r["value"] <= r["day_max"] + 1e-9
    assert result["outside"] == [p.key for p in PUBLISHED if rows[p.key]["inside"] is False]
    assert 0.5 < rows["card_approval"]["value"] < 1.0


def test_cli_check_prints_the_table_and_exits_0_unless_strict(tmp_path):
    runner = CliRunner()
    args = ["calibrate", "--check", "default", "--days", "1", "--volume-scale", str(SMALL)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "card approval" in res.output and "published" in res.output
    # a small day carries a whole day's fraud attacks on a fiftieth of the genuine volume: fraud is far out
    assert "outside: card_fraud_bps" in res.output
    res = runner.invoke(app, [*args, "--strict"])
    assert res.exit_code == 1
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert {r["key"] for r in data["rows"]} == {p.key for p in PUBLISHED}


def test_cli_check_refuses_a_log_or_an_out_file_beside_it(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["calibrate", "x.csv", "--check", "default"])
    assert res.exit_code == 2 and "--check measures a scenario" in res.output
    res = runner.invoke(app, ["calibrate", "--check", "default", "--out", str(tmp_path / "s.yaml")])
    assert res.exit_code == 2
    assert not (tmp_path / "s.yaml").exists()
    res = runner.invoke(app, ["calibrate"])
    assert res.exit_code == 2 and "needs a LOG and --out" in res.output


def test_the_default_is_inside_its_published_ranges_where_a_small_day_can_tell():
    """Approval, the processor gap, card costs and per-item fees do not depend on the day's volume; card fraud
    does (attacks do not scale with volume_scale) and is measured at full volume by `payroute calibrate --check
    default` (docs/calibration.md)."""
    rows = _rows(check_scenario(load_scenario("default", {"volume_scale": 0.05}), days=1))
    volume_free = ("card_approval", "processor_gap_pts", "merchant_cost_bps", "card_route_cost_bps",
                   "fee_fedwire_cents", "fee_ach_same_day_cents", "fee_rtp_cents", "fee_fednow_cents")  # fmt: skip
    assert {k: rows[k]["inside"] for k in volume_free} == dict.fromkeys(volume_free, True)
