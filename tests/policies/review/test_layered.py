"""Reviewing on your own world: the stress variants layered on a given (e.g. calibrated) scenario."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml
from typer.testing import CliRunner

from payroute.envs.calibration import calibrate
from payroute.envs.calibration.example_log import EXAMPLE_DIR
from payroute.envs.features import routing_features
from payroute.envs.scenarios import load_scenario
from payroute.errors import ConfigError
from payroute.experiments.cli import app
from payroute.policies.review import load_review_config
from payroute.policies.review.config import with_scenario
from payroute.policies.review.stress import STRESS_SCENARIOS, StressConfig, layered_scenario, run_stress_suite


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    result = calibrate(EXAMPLE_DIR / "transactions.csv", EXAMPLE_DIR / "mapping.yaml", name="my_world")
    path = tmp_path_factory.mktemp("fitted") / "my_world.yaml"
    path.write_text(result.yaml_text())
    return path


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _without_description(name_or_scenario) -> dict:
    data = load_scenario(name_or_scenario).model_dump(mode="json")
    data.pop("description")
    return data


def test_a_calibrated_world_has_the_features_of_its_base_so_its_bundles_fit(fitted):
    names = [f.name for f in routing_features(load_scenario(fitted))]
    assert names == [f.name for f in routing_features(load_scenario("default"))]


@pytest.mark.parametrize("variant", STRESS_SCENARIOS)
def test_a_variant_layered_on_its_own_base_is_the_variant(variant):
    assert _without_description(layered_scenario(variant, "default")) == _without_description(variant)


def test_a_variant_s_changes_are_made_relative_to_the_given_world(fitted):
    mine, default = load_scenario(fitted), load_scenario("default")
    surge, shipped = layered_scenario("fraud_surge", fitted), load_scenario("fraud_surge")
    assert surge.name == "fraud_surge" and "layered on my_world" in surge.description
    for name, pattern in surge.fraud.patterns.items():  # "five times the fraud" is five times this world's
        factor = shipped.fraud.patterns[name].attacks_per_day / default.fraud.patterns[name].attacks_per_day
        assert pattern.attacks_per_day == pytest.approx(mine.fraud.patterns[name].attacks_per_day * factor)
    assert surge.demand == mine.demand and surge.routes == mine.routes  # the rest is the given world's
    peak = layered_scenario("holiday_peak", fitted)
    assert peak.volume_scale == pytest.approx(mine.volume_scale * 2.5)
    assert str(peak.start_date) == "2026-11-27"  # a date is set, not scaled
    outage = layered_scenario("processor_outage", fitted)
    assert outage.incidents == load_scenario("processor_outage").incidents
    assert (
        outage.demand.transactions_per_day
        == mine.demand.transactions_per_day
        != default.demand.transactions_per_day
    )


def test_a_bad_review_scenario_is_refused_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        with_scenario(load_review_config(), tmp_path / "nowhere.yaml")


def test_review_runs_on_a_calibrated_scenario(fitted, tmp_path):
    pytest.importorskip("torch")  # the test bundle is exported from torch; the review never imports it
    from tests.helpers.route_bundles import fee_router_bundle

    bundle = fee_router_bundle(-1.0, tmp_path / "cheap")
    cfg = tmp_path / "review.yaml"
    cfg.write_text(yaml.safe_dump({
        "stress": {"baselines": ["cheapest", "cost_aware"], "include_oracle": False, "seeds": 2,
                   "scenarios": ["processor_outage", "fraud_surge"], "volume_multiplier": 0.2},
        "constraints": {"random_contexts": 200, "latency_decisions": 200, "latency_p99_ms": 60_000.0,
                        "simulated": {"volume_multiplier": 0.2}},
    }))  # fmt: skip
    js, html = tmp_path / "summary.json", tmp_path / "report.html"
    args = ["review", str(bundle), "--scenario", str(fitted), "--config", str(cfg), "--json", str(js)]
    res = CliRunner().invoke(app, [*args, "--report", str(html)])
    assert res.exit_code in (0, 1), res.output
    summary = json.loads(js.read_text())
    assert summary["scenario"] == str(fitted)
    assert summary["config"]["stress"]["base"] == str(fitted)
    assert "each layered on my_world.yaml" in html.read_text()
    assert summary["governance"]["scenario"] == {"name": "my_world.yaml", "sha256": _sha256(fitted)}
    # the same stress suite on the shipped variants sees other payments: the world under it is the given one
    stress = StressConfig(baselines=["cheapest"], include_oracle=False, seeds=2, scenarios=["fraud_surge"],
                          volume_multiplier=0.2, workers=1)  # fmt: skip
    on_default = run_stress_suite(bundle, stress).runs
    on_mine = run_stress_suite(bundle, stress.model_copy(update={"base": str(fitted)})).runs
    assert on_mine.arrivals.sum() < on_default.arrivals.sum() / 5  # 504 payments a day against 10,000
