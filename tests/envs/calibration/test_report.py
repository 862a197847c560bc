"""The fit report: the log against a simulation of its fitted scenario, routed as the log routed."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from payroute.envs.calibration import calibrate
from payroute.envs.calibration.example_log import EXAMPLE_DIR
from payroute.envs.calibration.report import ReplayRoute, fit_report
from payroute.envs.scenarios import load_scenario
from payroute.experiments.cli import app
from payroute.experiments.simulate import run_simulation

BLOCKS = {"arrivals", "mixes", "amounts", "approval", "latency", "fees", "fraud", "discovery"}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "log.parquet"
    run_simulation("default", route="cheapest", days=1.0, seed=31, log_path=path,
                   overrides={"volume_scale": 0.1}, explore=0.3, log_observations=False)  # fmt: skip
    return calibrate(path, base="default", name="fitted")


def test_the_fitted_world_passes_every_block_against_its_own_log(fitted):
    report = fitted.report(days=1, seed=5)
    assert set(report["blocks"]) == BLOCKS
    assert report["verdict"] == "pass", {k: b for k, b in report["blocks"].items() if b["verdict"] != "pass"}
    assert report["blocks"]["approval"]["cells"]  # route x segment cells were compared
    assert report["blocks"]["amounts"]["families"]["card_amount"]["ks"] < 0.05


def test_a_world_that_does_not_fit_warns_where_it_is_wrong(fitted):
    data = fitted.scenario.model_dump(mode="json")
    data["demand"]["card_amount"]["median_cents"] *= 2
    data["routes"]["card_gamma"]["approval"]["by_segment"]["consumer"] = 0.6
    wrong = load_scenario(fitted.scenario, data)
    report = fit_report(wrong, fitted.stats, days=1, seed=5)
    blocks = report["blocks"]
    assert report["verdict"] == "warn"
    assert blocks["amounts"]["verdict"] == "warn" and blocks["approval"]["verdict"] == "warn"
    assert abs(blocks["approval"]["cells"]["card_gamma.consumer"]["z"]) > 3.3
    assert blocks["mixes"]["verdict"] == "pass"  # what was not changed still fits


def test_the_replay_router_routes_in_the_log_s_shares():
    class Route:
        def __init__(self, name, index):
            self.name, self.index = name, index

    class Tx:
        instrument, cross_border = "card_credit", False

    router = ReplayRoute({("card_credit", "false", "a"): 300, ("card_credit", "false", "b"): 100})
    eligible = [Route("a", 0), Route("b", 1), Route("c", 2)]
    picks = [router.decide(None, (Tx(), eligible)) for _ in range(4000)]
    share_a = sum(1 for i, _ in picks if i == 0) / len(picks)
    assert share_a == pytest.approx(0.75, abs=0.03)
    assert all(i != 2 for i, _ in picks)  # never logged: never chosen while the log chose others
    assert {p for i, p in picks if i == 1} == {0.25}  # the propensity is the share


def test_calibrate_writes_the_report_with_the_scenario(tmp_path):
    out, report = tmp_path / "fitted.yaml", tmp_path / "fit.json"
    res = CliRunner().invoke(app, [
        "calibrate", str(EXAMPLE_DIR / "transactions.csv"), "--mapping", str(EXAMPLE_DIR / "mapping.yaml"),
        "--out", str(out), "--report", str(report), "--report-days", "2", "--json",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    summary, written = json.loads(res.output), json.loads(report.read_text())
    assert written["simulated_days"] == 2 and set(written["blocks"]) == BLOCKS
    assert summary["report"]["verdict"] == written["verdict"]
    assert out.exists()
