"""``payroute review``: a bad router fails and the report says why, a tampered bundle or a malformed log cannot be
reviewed (exit 2, naming the file or column), a good router passes, all on the core install without ray or torch."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from payroute.experiments.cli import app
from payroute.policies.review import ReviewConfig, default_config_path, load_review_config
from payroute.policies.review.stress import STRESS_SCENARIOS
from tests.helpers.route_bundles import fee_router_bundle
from tests.helpers.worlds import write_exploration_log

pytest.importorskip("torch")  # the test bundles are exported from torch; the review itself never imports it

SMALL_RUNS = {
    "baselines": ["cheapest", "cost_aware"],
    "include_oracle": False,
    "seeds": 3,
    "volume_multiplier": 0.02,
}
SMALL_CONSTRAINTS = {
    "random_contexts": 300,
    "latency_decisions": 300,
    "latency_p99_ms": 60_000.0,  # a wall-clock budget no loaded machine misses: the gate, not the speed
    "simulated": {"volume_multiplier": 0.02},
}


def write_config(path: Path, stress: dict, ope: dict | None = None) -> Path:
    path.write_text(yaml.safe_dump({"stress": stress, "ope": ope or {}, "constraints": SMALL_CONSTRAINTS}))
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    return {
        "cheap": fee_router_bundle(-1.0, root / "cheap"),
        "expensive": fee_router_bundle(+1.0, root / "expensive"),
    }


@pytest.fixture(scope="module")
def explore_log(tmp_path_factory):
    return write_exploration_log(tmp_path_factory.mktemp("logs") / "explore.parquet", seed=7)


def review(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["review", *args])
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def expensive_review(bundles, tmp_path_factory):
    out = tmp_path_factory.mktemp("expensive")
    cfg = write_config(out / "review.yaml", {**SMALL_RUNS, "scenarios": list(STRESS_SCENARIOS)})
    html, js = out / "report.html", out / "summary.json"
    code, output = review(
        str(bundles["expensive"]), "--config", str(cfg), "--report", str(html), "--json", str(js)
    )
    return code, output, html.read_text(), json.loads(js.read_text())


def test_most_expensive_route_bundle_fails_review_and_the_report_says_why(expensive_review):
    code, output, html, summary = expensive_review
    assert code == 1, output
    assert summary["verdict"] == "fail" and summary["exit_code"] == 1
    failed = {c["name"]: c for c in summary["checks"] if c["status"] == "fail"}
    # it loses money against the best baseline on the stress days, and the reason is the route cost
    margin_fails = [name for name in failed if name.startswith("margin vs best")]
    worse = [n for n in margin_fails if "worse than the allowed -0.0500" in failed[n]["summary"]]
    assert len(worse) >= 4, summary["failed"]  # on fraud_surge, fraud losses swamp routing costs
    for name in worse:
        assert "route cost" in failed[name]["summary"], failed[name]["summary"]
        assert failed[name]["details"]["mean"] < -0.05
    # every scenario was run against both references on the same three seeds
    comps = summary["stress"]["comparisons"]
    assert {c["scenario"] for c in comps} == set(STRESS_SCENARIOS)
    assert {c["reference"] for c in comps} == {"cheapest", "cost_aware"} and {c["seeds"] for c in comps} == {
        3
    }
    # each seed ran its own drawn timing, the same for every policy on it, and the JSON says which
    timings = summary["stress"]["timings"]
    assert [(t["scenario"], t["seed"]) for t in timings] == [
        (s, i) for s in STRESS_SCENARIOS for i in range(3)
    ]
    outage = [t for t in timings if t["scenario"] == "processor_outage"]
    assert len({(t["start_date"], t["first_incident"]["at"]) for t in outage}) == 3 and all(
        t["drawn"] for t in outage
    )
    assert "Timing drawn per seed: 3 seeds" in html and "card_alpha down from" in html
    # nothing else is wrong with the bundle: intact, masks respected, sane on malformed input
    statuses = {c["name"]: c["status"] for c in summary["checks"]}
    assert statuses["bundle"] == statuses["masked_actions"] == statuses["malformed_inputs"] == "pass"
    # the HTML report gives the verdict and the reasons in words, with its plots embedded
    assert "FAIL:" in html and "Why it failed" in html
    assert "route cost" in html and "margin vs best: processor_outage" in html
    assert html.count("data:image/png;base64,") >= 2
    assert not re.search(r"(src|href)=['\"]https?://", html)  # self-contained


def test_a_tampered_bundle_cannot_be_reviewed_and_the_file_is_named(bundles, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(bundles["cheap"], copy)
    onnx_bytes = bytearray((copy / "policy.onnx").read_bytes())
    onnx_bytes[-20] ^= 0xFF
    (copy / "policy.onnx").write_bytes(bytes(onnx_bytes))
    js = tmp_path / "summary.json"
    code, output = review(str(copy), "--json", str(js))
    assert code == 2
    assert "policy.onnx does not match its checksum" in output
    summary = json.loads(js.read_text())
    assert summary["verdict"] == "error" and "policy.onnx" in summary["error"]


@pytest.mark.parametrize(
    ("damage", "column"),
    [
        (lambda t: t.drop_columns(["route_propensity"]), "route_propensity"),
        (
            lambda t: t.set_column(
                t.schema.get_field_index("route_propensity"),
                "route_propensity",
                pc.multiply(t.column("route_propensity"), 0.0),
            ),
            "route_propensity",
        ),  # fmt: skip
        (lambda t: t.drop_columns(["obs.card_alpha.fee_bps"]), "obs.card_alpha.fee_bps"),
    ],
    ids=["missing propensity", "zero propensity", "missing observation"],
)
def test_a_malformed_log_cannot_be_reviewed_and_the_column_is_named(
    bundles, explore_log, tmp_path, damage, column
):
    bad = tmp_path / "bad.parquet"
    pq.write_table(damage(pq.read_table(explore_log)), bad)
    code, output = review(str(bundles["cheap"]), "--logs", str(bad))
    assert code == 2
    assert "bad.parquet" in output and column in output


def test_a_bad_review_config_is_refused_naming_the_field(bundles, tmp_path):
    cfg = tmp_path / "review.yaml"
    cfg.write_text("stress:\n  seeds: 1\n  volume_multipler: 0.1\n")
    code, output = review(str(bundles["cheap"]), "--config", str(cfg))
    assert code == 2
    assert "stress.seeds" in output and "stress.volume_multipler" in output and "unknown field" in output
    cfg.write_text("stress:\n  scenarios: [fee_hike]\n  seeds_by_scenario: {fraud_surge: 20}\n")
    code, output = review(str(bundles["cheap"]), "--config", str(cfg))
    assert code == 2
    assert (
        "seeds_by_scenario" in output and "'fraud_surge'" in output and "not among stress.scenarios" in output
    )


def test_the_shipped_review_config_is_the_documented_defaults():
    shipped = yaml.safe_load(default_config_path().read_text())
    assert load_review_config() == ReviewConfig()
    assert ReviewConfig.model_validate(shipped).model_dump() == ReviewConfig().model_dump()
    # every default is written out in the shipped file, so reviewers see what they change
    assert set(shipped) == set(ReviewConfig.model_fields)
    for section in ("stress", "ope", "constraints", "shift"):
        assert set(shipped[section]) == set(type(getattr(ReviewConfig(), section)).model_fields)


BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = ("ray", "torch", "stable_baselines3", "sb3_contrib")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is not installed on the reviewer's machine")
            return None

    sys.meta_path.insert(0, Block())
    from payroute.experiments.cli import app
    try:
        app(sys.argv[1:], standalone_mode=False)
        code = 0
    except SystemExit as exc:
        code = exc.code
    except Exception as exc:
        code = getattr(exc, "exit_code", 3)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print("LEAKED", leaked)
    sys.exit(code)
    """
)


def test_a_good_bundle_passes_a_lenient_review_on_the_core_install_without_ray_or_torch(
    bundles, explore_log, tmp_path
):
    lenient = {
        **SMALL_RUNS,
        "scenarios": ["processor_outage", "fee_hike"],
        "seeds_by_scenario": {"fee_hike": 4},
        "min_margin_diff_vs_best_usd": -0.5,
        "min_approval_diff_vs_best": -0.2,
    }
    cfg = write_config(tmp_path / "lenient.yaml", lenient, {"min_lower_bound_vs_logged_cents": -50.0})
    html, js = tmp_path / "report.html", tmp_path / "summary.json"
    args = [str(bundles["cheap"]), "--logs", str(explore_log), "--champion", str(bundles["expensive"])]
    args += ["--config", str(cfg), "--report", str(html), "--json", str(js)]
    env = {**os.environ, "COLUMNS": "200"}
    res = subprocess.run(
        [sys.executable, "-c", BLOCKER, "review", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "LEAKED []" in res.stdout
    summary = json.loads(js.read_text())
    assert summary["verdict"] == "pass" and not summary["failed"]
    statuses = {c["name"]: c["status"] for c in summary["checks"]}
    assert statuses["dr vs logged"] == statuses["masked_actions"] == statuses["champion"] == "pass"
    # the cheapest-route bundle is the cheapest baseline, decision for decision: a paired difference of exactly 0
    comps = {(c["scenario"], c["reference"]): c for c in summary["stress"]["comparisons"]}
    assert comps[("fee_hike", "cheapest")]["margin_diff"] == 0.0
    # fee_hike ran on its own number of seeds, the others on stress.seeds
    assert comps[("fee_hike", "cheapest")]["seeds"] == 4
    assert comps[("processor_outage", "cheapest")]["seeds"] == SMALL_RUNS["seeds"]
    # and it beats the most expensive route, the champion here
    assert comps[("fee_hike", "champion")]["margin_diff_low"] > 0
    # off-policy: the greedy cheapest policy avoids the exploration's detours, so it is valued above the log
    ope = summary["ope"]
    assert ope["estimates"]["dr"]["value"] > ope["logged_mean"]["value"]
    assert summary["constraints"]["contexts"]["logged"] == ope["diagnostics"]["n"]
    assert "PASS: all" in html.read_text()
