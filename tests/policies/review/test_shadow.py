"""``payroute review BUNDLE --shadow LOG``: the bundle replayed on every logged routing decision.

On a log the bundle wrote itself without exploration it agrees everywhere and the estimated difference is exactly 0;
on another policy's log its agreement is a direct count of the decisions where its route is the logged one; a log it
cannot be replayed on is exit 2 with one line naming the problem."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from payroute.experiments.cli import app
from payroute.policies import load_bundle
from payroute.policies.logs import read_logged_decisions
from payroute.policies.review import ReviewConfig
from payroute.policies.review.ope import evaluate_policy
from payroute.policies.review.ope_estimators import ESTIMATORS, fit_reward_model
from payroute.policies.review.shadow import (
    ShadowReviewConfig,
    estimate_difference,
    run_shadow,
    shadow_actions,
    shadow_checks,
)
from tests.helpers.route_bundles import default_route_schema, fee_router_bundle
from tests.helpers.worlds import write_exploration_log

pytest.importorskip("torch")  # the test bundles are exported from torch; the review itself never imports it

ZOO_RISK = Path(__file__).resolve().parents[3] / "policies" / "zoo" / "risk"
CONSTRAINTS = {
    "random_contexts": 200,
    "latency_decisions": 200,
    "latency_p99_ms": 60_000.0,  # a wall-clock budget no loaded machine misses: the gate, not the speed
    "simulated": {"volume_multiplier": 0.02},
}


def write_config(path: Path, shadow: dict | None = None) -> Path:
    doc = {"stress": {"enabled": False}, "constraints": CONSTRAINTS, "shadow": shadow or {}}
    path.write_text(yaml.safe_dump(doc))
    return path


def review(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["review", *args])
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    return {
        "cheap": fee_router_bundle(-1.0, root / "cheap"),
        "expensive": fee_router_bundle(+1.0, root / "expensive"),
    }


@pytest.fixture(scope="module")
def self_log(bundles, tmp_path_factory):
    """A day of `default` at 2% volume routed by the cheap bundle itself, greedy, no exploration."""
    from payroute.experiments.simulate import run_simulation

    path = tmp_path_factory.mktemp("logs") / "self.parquet"
    run_simulation(
        "default", route=str(bundles["cheap"]), seed=3, log_path=path, overrides={"volume_scale": 0.02}
    )
    return path


@pytest.fixture(scope="module")
def explore_log(tmp_path_factory):
    return write_exploration_log(tmp_path_factory.mktemp("logs") / "explore.parquet", seed=7)


def routed_rows(log: Path) -> pa.Table:
    table = pq.read_table(log)
    rows = table.filter(pc.equal(table["record"], "transaction"))
    return rows.filter(pc.greater_equal(rows["route_index"], 0))


def fee_choice(rows: pa.Table, sign: float) -> np.ndarray:
    """The route a fee router picks, counted straight from the log: the eligible route with the lowest (sign -1)
    or highest (+1) fee feature, the first in route order on a tie."""
    _specs, routes = default_route_schema()
    fees = np.column_stack([rows[f"obs.{r}.fee_bps"].to_numpy() for r in routes]).astype(np.float64)
    bits = rows["eligible_mask"].to_numpy()
    mask = ((bits[:, None] >> np.arange(len(routes))) & 1).astype(bool)
    return np.argmax(np.where(mask, sign * fees, -np.inf), axis=1)


def test_on_a_log_the_bundle_wrote_itself_it_agrees_everywhere_and_the_difference_is_exactly_zero(
    bundles, self_log, tmp_path
):
    cfg = write_config(tmp_path / "review.yaml", {"max_disagreement": 0.0})
    js, out, page = tmp_path / "review.json", tmp_path / "shadow.json", tmp_path / "report.html"
    code, output = review(
        str(bundles["cheap"]), "--shadow", str(self_log), "--config", str(cfg),
        "--json", str(js), "--shadow-out", str(out), "--report", str(page),
    )  # fmt: skip
    assert code == 0, output
    summary = json.loads(js.read_text())
    shadow = summary["shadow"]
    n = routed_rows(self_log).num_rows
    assert shadow["decisions"] == shadow["agree"] == n > 1000 and shadow["agreement"] == 1.0
    # every estimator's difference and its whole interval are exactly zero, not merely small
    for name in ESTIMATORS:
        est = shadow["difference"]["estimators"][name]
        assert est["value"] == est["ci_low"] == est["ci_high"] == est["std_error"] == 0.0, (name, est)
    assert shadow["difference"]["estimator"] == "dr" and shadow["difference"]["value"] == 0.0
    assert shadow["largest_disagreements"] == []
    assert all(f["logged"] == f["shadow"] for f in shadow["flow"])
    assert all(r["moved_in"] == r["moved_out"] == r["net"] == 0 for r in shadow["routes"])
    for rows in shadow["by"].values():
        assert all(g["agreement"] == 1.0 for g in rows)
    # the gate, set to no disagreement at all, passes
    check = next(c for c in summary["checks"] if c["section"] == "shadow")
    assert check["status"] == "pass" and check["value"] == 0.0
    # the per-decision JSON holds every decision, each agreeing
    decisions = json.loads(out.read_text())
    cols = decisions["columns"]
    assert decisions["decisions"] == len(cols["tx_id"]) == n
    assert all(cols["agree"]) and cols["logged_route"] == cols["shadow_route"]
    assert set(cols["value_diff_cents"]) == {0.0} and set(cols["propensity"]) == {1.0}
    html = page.read_text()
    assert "Shadow replay" in html and "100.0%" in html
    assert "None: the bundle takes the logged route on every decision" in html


def test_on_another_policys_log_the_agreement_is_a_direct_count(bundles, explore_log, tmp_path):
    cfg = write_config(tmp_path / "review.yaml", {"max_disagreement": 0.5, "top_disagreements": 7})
    js, out, page = tmp_path / "review.json", tmp_path / "shadow.json", tmp_path / "report.html"
    code, output = review(
        str(bundles["expensive"]), "--shadow", str(explore_log), "--config", str(cfg),
        "--json", str(js), "--shadow-out", str(out), "--report", str(page),
    )  # fmt: skip
    rows = routed_rows(explore_log)
    expected = fee_choice(rows, +1.0)  # the most expensive eligible route, by the log's own fee columns
    logged = rows["route_index"].to_numpy()
    agree = expected == logged
    summary = json.loads(js.read_text())
    shadow = summary["shadow"]
    assert shadow["decisions"] == rows.num_rows and shadow["agree"] == int(agree.sum())
    assert 0 < shadow["agree"] < rows.num_rows / 2  # the cheapest router's exploration, now and then
    # by segment and by hour, the same count within each group
    frame = rows.select(["segment", "t_arrival"]).to_pandas()
    frame["agree"] = agree
    frame["hour"] = (frame["t_arrival"] % 86_400 // 3_600).astype(int)
    for by in ("segment", "hour"):
        counted = frame.groupby(by)["agree"].agg(["sum", "size"])
        got = {g["value"]: (g["agree"], g["decisions"]) for g in shadow["by"][by]}
        assert got == {k: (int(v["sum"]), int(v["size"])) for k, v in counted.iterrows()}
    # the flow table adds up to the log, and each route's moves balance
    assert sum(f["decisions"] for f in shadow["flow"]) == rows.num_rows
    assert sum(r["net"] for r in shadow["routes"]) == 0
    # it disagrees on more than half the decisions: the optional gate fails the review, and says so
    assert code == 1, output
    check = next(c for c in summary["checks"] if c["section"] == "shadow")
    assert check["status"] == "fail" and "more than the allowed 50.0%" in check["summary"]
    # the largest disagreements are disagreements, largest estimated value difference first
    largest = shadow["largest_disagreements"]
    assert len(largest) == 7 and all(x["logged_route"] != x["shadow_route"] for x in largest)
    sizes = [abs(x["value_diff_cents"]) for x in largest]
    assert sizes == sorted(sizes, reverse=True)
    # the per-decision JSON: the bundle's route on every logged transaction
    cols = json.loads(out.read_text())["columns"]
    _specs, routes = default_route_schema()
    by_tx = dict(zip(cols["tx_id"], cols["shadow_route"], strict=True))
    assert [by_tx[t] for t in rows["tx_id"].to_pylist()] == [routes[i] for i in expected]
    html = page.read_text()
    assert "Shadow replay" in html and "Largest-value disagreements" in html
    assert html.count("data:image/png;base64,") >= 2  # the flow plot among them


def test_the_difference_is_each_estimator_on_the_bundle_minus_the_logged_mean(bundles, explore_log):
    """ips, snips, dr, sndr and switch-DR of (bundle - logged) are the OPE estimates of the greedy bundle minus the
    log's mean reward, with the same reward model; DM compares the model's values of both routes."""
    policy = load_bundle(bundles["cheap"])
    _specs, routes = default_route_schema()
    logged = read_logged_decisions(explore_log, route_names=routes, observation_names=policy.feature_names)
    shadow = shadow_actions(policy, logged)
    assert np.array_equal(shadow, fee_choice(routed_rows(explore_log), -1.0))
    q = fit_reward_model(logged.model_features, logged.actions, logged.rewards, logged.n_routes, seed=0)
    target = np.eye(logged.n_routes)[shadow]
    ope = ReviewConfig().ope
    diff, logged_mean = estimate_difference(logged, shadow, q, ope)
    full = evaluate_policy(
        logged.rewards, logged.actions, logged.propensities, target, reward_estimates=q, n_bootstrap=ope.n_bootstrap,
        seed=ope.seed, switch_tau=ope.switch_tau,
    )  # fmt: skip
    assert logged_mean == pytest.approx(full.logged_mean.value, rel=1e-12)
    for name in ("ips", "snips", "dr", "sndr", "switch_dr"):
        assert diff[name]["value"] == pytest.approx(full[name].value - logged_mean, abs=1e-9), name
    rows = np.arange(logged.n)
    assert diff["dm"]["value"] == pytest.approx(np.mean(q[rows, shadow] - q[rows, logged.actions]), abs=1e-9)
    # the interval is a paired one: of the differences, not of two separate estimates
    assert diff["dr"]["ci_low"] <= diff["dr"]["value"] <= diff["dr"]["ci_high"]


def test_shadow_replay_is_evidence_not_a_gate_by_default(bundles, explore_log):
    policy = load_bundle(bundles["cheap"])
    _specs, routes = default_route_schema()
    logged = read_logged_decisions(explore_log, route_names=routes, observation_names=policy.feature_names)
    cfg = ReviewConfig()
    assert cfg.shadow == ShadowReviewConfig() and cfg.shadow.max_disagreement is None
    result = run_shadow(policy, logged, cfg.shadow, cfg.ope, [0] * len(routes), "explore.parquet")
    (check,) = shadow_checks(result, cfg.shadow)
    assert check.status == "not run" and not check.failed and "evidence, not a gate" in check.summary
    assert 0.8 < result.agreement < 1.0  # the cheapest router explored 10% of the time
    assert len(result.largest) == cfg.shadow.top_disagreements


def test_a_csv_copy_of_the_log_gives_the_same_shadow_replay(bundles, explore_log, tmp_path):
    import pyarrow.csv as pa_csv

    copy = tmp_path / "explore.csv"
    pa_csv.write_csv(pq.read_table(explore_log), copy)
    js_parquet, js_csv = tmp_path / "parquet.json", tmp_path / "csv.json"
    cfg = write_config(tmp_path / "review.yaml")
    for log, js in ((explore_log, js_parquet), (copy, js_csv)):
        code, output = review(
            str(bundles["cheap"]), "--shadow", str(log), "--config", str(cfg), "--json", str(js)
        )
        assert code == 0, output
    parquet, from_csv = (json.loads(p.read_text())["shadow"] for p in (js_parquet, js_csv))
    assert from_csv["log"] == "explore.csv"
    assert {**from_csv, "log": ""} == {**parquet, "log": ""}
    # a value that is not of its column's type is exit 2, naming the file and the column
    lines = copy.read_text().splitlines()
    header = next(csv.reader([lines[0]]))
    row = next(csv.reader([lines[1]]))
    row[header.index("eligible_mask")] = "lots"
    bad = tmp_path / "bad.csv"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, row, *csv.reader(lines[2:])])
    bad.write_text(out.getvalue())
    code, output = review(str(bundles["cheap"]), "--shadow", str(bad), "--config", str(cfg))
    assert code == 2 and "bad.csv" in output and "eligible_mask" in output and "Traceback" not in output


def _drop_observations(table: pa.Table) -> pa.Table:
    return table.drop_columns([c for c in table.column_names if c.startswith("obs.")])


def _other_routes(table: pa.Table) -> pa.Table:
    """The log of a world where digital_remit is another provider, wise_remit."""
    names = [c.replace("digital_remit", "wise_remit") for c in table.column_names]
    table = table.rename_columns(names)
    route = pc.replace_substring(table["route"], "digital_remit", "wise_remit")
    return table.set_column(table.schema.get_field_index("route"), "route", route)


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("no observations", "no observations recorded (no obs.<feature> columns)"),
        ("another scenario", "(another scenario's routes or features): it has no column obs.digital_remit"),
        ("not parquet", "is not a readable Parquet file"),
        ("risk bundle", "bundle risk decides 'risk', and only route bundles are replayed on a log"),
        ("shadow-out alone", "--shadow-out writes the shadow replay's decisions; pass --shadow LOG with it"),
    ],
)
def test_a_log_the_bundle_cannot_be_replayed_on_is_exit_2_in_one_line(
    bundles, explore_log, tmp_path, case, said
):
    bad = tmp_path / "bad.parquet"
    bundle = str(bundles["cheap"])
    args = ["--shadow", str(bad)]
    if case == "no observations":
        pq.write_table(_drop_observations(pq.read_table(explore_log)), bad)
    elif case == "another scenario":
        pq.write_table(_other_routes(pq.read_table(explore_log)), bad)
    elif case == "not parquet":
        bad.write_text("tx_id,route\n1,card_alpha\n")
    elif case == "risk bundle":
        bundle, args = str(ZOO_RISK), ["--shadow", str(explore_log)]
    else:
        args = ["--shadow-out", str(tmp_path / "shadow.json")]
    js = tmp_path / "review.json"
    code, output = review(bundle, *args, "--json", str(js))
    assert code == 2, output
    assert "Traceback" not in output
    (line,) = [ln for ln in output.splitlines() if "could not review:" in ln]
    assert said in line, output
    if case not in ("risk bundle", "shadow-out alone"):
        assert "bad.parquet" in line
    assert json.loads(js.read_text())["verdict"] == "error"
    assert not (tmp_path / "shadow.json").exists()


def test_names_from_the_log_are_shown_as_written_in_the_report(bundles, explore_log):
    from payroute.policies.review.report_shadow import shadow_section

    table = pq.read_table(explore_log)
    segment = pc.replace_substring(table["segment"], "consumer", "<script>alert(1)</script>")
    table = table.set_column(table.schema.get_field_index("segment"), "segment", segment)
    policy = load_bundle(bundles["expensive"])
    _specs, routes = default_route_schema()
    logged = read_logged_decisions(table, route_names=routes, observation_names=policy.feature_names)
    cfg = ReviewConfig()
    result = run_shadow(policy, logged, cfg.shadow, cfg.ope, [0] * len(routes), "<i>log</i>.parquet")
    assert "<script>alert(1)</script>" in {g["value"] for g in result.by["segment"]}
    page = "\n".join(shadow_section(result))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<i>log</i>" not in page and "&lt;i&gt;log&lt;/i&gt;.parquet" in page
