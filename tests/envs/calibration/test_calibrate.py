"""``payroute calibrate``: a scenario fitted to a log recovers the world that made the log.

Round trips: ``default`` and a modified truth are simulated with an exploring router and logged, calibrated from
the log alone, and every fitted value with an interval is checked against the truth that made the log.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from payroute.envs.calibration import calibrate
from payroute.envs.scenarios import load_scenario
from payroute.experiments.cli import app
from payroute.experiments.simulate import run_simulation
from tests.helpers.calibration import coverage, truth_value

VOLUME = 0.1  # 10,000 genuine payments a day: a fit of seconds

MODIFIED = {
    "name": "modified_truth",
    "volume_scale": VOLUME,
    "demand": {
        "transactions_per_day": 150_000,  # x 0.1 = 15,000 a day
        "segment_mix": {"consumer": 0.5, "small_business": 0.35, "enterprise": 0.15},
        "card_amount": {"median_cents": 8000, "sigma": 0.8},
        "instrument_mix": {"card_credit": 0.4, "card_debit": 0.4, "bank_account": 0.2},
    },
    "routes": {
        "card_alpha": {
            "approval": {"by_segment": {"consumer": 0.78, "small_business": 0.9, "enterprise": 0.7}}
        },
        "card_beta": {"fee": {"fixed_cents": 12, "bps": 15.0, "tiers": []}, "latency": {"median_s": 2.5}},
        "card_gamma": {"fee": {"fixed_cents": 2, "bps": 20.0}},
    },
    "fraud": {"patterns": {"card_testing": {"attacks_per_day": 600}}},
}


def _log(tmp_path_factory, name: str, overrides: dict, seed: int) -> tuple:
    path = tmp_path_factory.mktemp(name) / "log.parquet"
    run_simulation(
        "default", route="cheapest", days=1.0, seed=seed, log_path=path, overrides=overrides, explore=0.3,
        log_observations=False,
    )  # fmt: skip
    return path, load_scenario("default", overrides)


@pytest.fixture(scope="module")
def default_log(tmp_path_factory):
    return _log(tmp_path_factory, "default", {"volume_scale": VOLUME}, seed=11)


@pytest.fixture(scope="module")
def modified_log(tmp_path_factory):
    return _log(tmp_path_factory, "modified", MODIFIED, seed=12)


def test_calibrating_a_log_of_default_recovers_default_within_the_reported_intervals(default_log):
    path, truth = default_log
    result = calibrate(path, base="default", name="fitted")
    inside, total, missed = coverage(result.provenance["values"], truth)
    assert total >= 80, f"only {total} values carry an interval"
    assert inside / total >= 0.9, f"{inside}/{total} inside their intervals; outside: {missed}"
    fitted = result.scenario
    assert fitted.demand.transactions_per_day == pytest.approx(100_000 * VOLUME, rel=0.05)
    assert fitted.routes["card_gamma"].fee.bps == pytest.approx(5.0, abs=0.05)


def test_calibrating_a_modified_world_finds_what_was_changed(modified_log):
    path, truth = modified_log
    result = calibrate(path, base="default", name="fitted")
    inside, total, missed = coverage(result.provenance["values"], truth)
    assert inside / total >= 0.9, f"{inside}/{total} inside their intervals; outside: {missed}"
    fitted, values = result.scenario, result.provenance["values"]
    assert fitted.demand.transactions_per_day == pytest.approx(15_000, rel=0.05)
    assert fitted.demand.card_amount.median_cents == pytest.approx(8000, rel=0.05)
    assert fitted.demand.segment_mix["small_business"] == pytest.approx(0.35, abs=0.02)
    assert fitted.routes["card_beta"].fee.fixed_cents == 12
    assert fitted.routes["card_beta"].fee.bps == pytest.approx(15.0, abs=0.1)
    assert fitted.routes["card_beta"].latency.median_s == pytest.approx(2.5, rel=0.1)
    assert fitted.fraud.patterns["card_testing"].attacks_per_day == pytest.approx(60, rel=0.3)
    # the biggest approval change is found, and the interval says how sure the fit is
    lo, hi = values["routes.card_alpha.approval.by_segment.small_business"]["interval"]
    assert lo <= 0.9 <= hi and lo > 0.80  # the base's 0.80 is ruled out
    assert truth_value(truth, "routes.card_alpha.approval.by_segment.small_business") == 0.9


def test_what_the_log_cannot_identify_comes_from_the_base_and_is_flagged(default_log):
    path, _ = default_log
    result = calibrate(path, base="default", name="fitted")
    values = result.provenance["values"]
    # one day: the weekly profile and the holiday factor are not identified
    assert values["demand.weekly_profile"]["status"] == "base"
    assert values["demand.holiday_factor"]["status"] == "base"
    assert "demand.weekly_profile" in result.flagged
    assert result.scenario.routes["card_alpha"].health == load_scenario("default").routes["card_alpha"].health
    assert "routes.*.health" in result.provenance["not_identified"]
    for entry in values.values():
        assert entry["status"] in ("fitted", "scaled", "base")
        assert entry["status"] != "fitted" or "interval" in entry or entry["value"] is not None


def test_the_same_log_gives_the_same_yaml_byte_for_byte_and_it_simulates(default_log, tmp_path):
    path, _ = default_log
    runner = CliRunner()
    outs = [tmp_path / "a" / "fitted.yaml", tmp_path / "b" / "fitted.yaml"]
    for out in outs:
        res = runner.invoke(app, ["calibrate", str(path), "--base", "default", "--out", str(out)])
        assert res.exit_code == 0, res.output
    assert outs[0].read_bytes() == outs[1].read_bytes()
    scenario = load_scenario(outs[0])
    assert scenario.name == "fitted" and scenario.provenance is not None
    assert scenario.provenance.rows_read == scenario.provenance.rows_used + sum(
        scenario.provenance.rows_left_out.values()
    )
    res = runner.invoke(app, ["simulate", str(outs[0]), "--days", "0.05", "--json"])
    assert res.exit_code == 0, res.output


def test_the_provenance_section_changes_nothing_the_world_computes(default_log, tmp_path):
    path, _ = default_log
    result = calibrate(path, base="default", name="fitted")
    out = tmp_path / "fitted.yaml"
    out.write_text(result.yaml_text())
    bare = load_scenario(out).model_dump(mode="json")  # the dump leaves the provenance out
    assert "provenance" not in bare
    with_it = run_simulation(out, days=0.05, seed=3)["kpis"]
    without = run_simulation(load_scenario(out).model_copy(update={"provenance": None}), days=0.05, seed=3)[
        "kpis"
    ]
    assert with_it == without


def test_a_holiday_in_the_log_fits_the_holiday_factor(tmp_path):
    # Sunday 24 May 2026, then Memorial Day (a Federal Reserve holiday)
    overrides = {"volume_scale": 0.05, "start_date": "2026-05-24"}
    path = tmp_path / "log.parquet"
    run_simulation("default", days=2.0, seed=4, log_path=path, overrides=overrides, log_observations=False)
    values = calibrate(path, base="default", start_date="2026-05-24").provenance["values"]  # the log's day 0
    entry = values["demand.holiday_factor"]
    assert entry["status"] == "fitted"
    lo, hi = entry["interval"]
    assert lo <= 0.6 <= hi and hi - lo < 0.2  # default's factor, found from one holiday against one Sunday
    assert values["demand.transactions_per_day"]["status"] == "fitted"
