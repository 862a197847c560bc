"""The command line: `payroute simulate` output, and bad input answered in a line with exit code 2."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from payroute.experiments.cli import app
from payroute.vocabulary import TERMINAL_STATES

runner = CliRunner()


def _variant(tmp_path: Path, name: str, overrides: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nbase: default\noverrides:\n{overrides}")
    return path


@pytest.fixture
def small_yaml(tmp_path: Path) -> Path:
    return _variant(tmp_path, "small", "  volume_scale: 0.03\n")


def test_simulate_json_prints_one_object_with_the_counts_and_kpis(small_yaml):
    result = runner.invoke(app, ["simulate", str(small_yaml), "--json", "--seed", "4"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {"arrivals", "in_flight", "terminal", "kpis", "wall_s"} <= set(out)
    assert out["arrivals"] > 1000 and out["in_flight"] == 0
    assert set(out["terminal"]) == set(TERMINAL_STATES)
    assert sum(out["terminal"].values()) + out["in_flight"] == out["arrivals"]
    for name in ("approval_rate", "margin_per_tx_usd", "route_cost_bps", "fraud_loss_bps", "sla_misses",
                 "liquidity_cost_usd"):  # fmt: skip
        assert name in out["kpis"] and math.isfinite(out["kpis"][name])
    assert 0.5 < out["kpis"]["approval_rate"] < 1.0
    assert out["wall_s"] > 0
    assert out["scenario"] == "small" and out["policy"] == "cheapest"


def test_simulate_default_without_json_prints_the_kpi_table():
    result = runner.invoke(
        app, ["simulate", "default", "--days", "0.05", "--seed", "1", "--policy", "fastest"]
    )
    assert result.exit_code == 0, result.output
    for text in ("arrivals", "settled", "approval rate", "margin per transaction", "route cost", "fraud loss",
                 "SLA misses", "liquidity cost"):  # fmt: skip
        assert text in result.stdout


def test_simulate_writes_the_event_log(tmp_path, small_yaml):
    path = tmp_path / "out" / "day.parquet"
    result = runner.invoke(app, ["simulate", str(small_yaml), "--days", "0.5", "--log", str(path), "--json"])
    assert result.exit_code == 0, result.output
    from payroute.envs.world import LOG_SCHEMA_VERSION, read_log

    table = read_log(path)
    assert table.schema.metadata[b"payroute.log_schema_version"] == LOG_SCHEMA_VERSION.encode()
    records = table.column("record").to_pylist()
    assert records.count("transaction") == json.loads(result.stdout)["arrivals"]


BAD_SCENARIOS = [
    # (name, overrides, field path, bad value, what is allowed)
    ("unknown_field", "  routes:\n    card_alpha:\n      fee_percent: 3\n", "routes.card_alpha.fee_percent", "3",
     "allowed: rail, instruments"),
    ("negative_fee", "  routes:\n    card_beta:\n      fee: {fixed_cents: -10}\n", "routes.card_beta.fee.fixed_cents",
     "-10", "greater than or equal to 0"),
    ("typed_limit", '  routes:\n    rtp:\n      limit_cents: "lots"\n', "routes.rtp.limit_cents", "'lots'",
     "valid integer"),
    ("bad_mode", "  accounts:\n    nostro: {when_short: borrow}\n", "accounts.nostro.when_short", "'borrow'",
     "'queue', 'credit' or 'fail'"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "overrides", "path", "value", "allowed"), BAD_SCENARIOS)
def test_a_bad_scenario_file_is_a_short_error_with_exit_code_2(
    tmp_path, name, overrides, path, value, allowed
):
    bad = _variant(tmp_path, name, overrides)
    result = runner.invoke(app, ["simulate", str(bad), "--days", "0.1"])
    assert result.exit_code == 2
    err = result.stderr
    assert f"{path} = {value}" in err
    assert allowed in err
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an error escaping the command
    assert len(err.splitlines()) <= 4
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["simulate", "no_such_scenario"],
            ["unknown scenario 'no_such_scenario'", "default", "processor_outage"],
        ),
        (
            ["simulate", "default", "--policy", "smartest"],
            ["unknown route policy 'smartest'", "cheapest", "priority"],
        ),
        (
            ["simulate", "default", "--risk", "paranoid"],
            ["unknown risk policy 'paranoid'", "allow_all", "threshold"],
        ),
        (["simulate", "missing.yaml"], ["scenario file not found", "missing.yaml"]),
        (["scenarios", "show", "nope"], ["unknown scenario 'nope'", "liquidity_crunch"]),
    ],
)
def test_unknown_names_are_a_short_error_listing_what_exists(args, says):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    for text in says:
        assert text in result.stderr
    assert len(result.stderr.splitlines()) <= 3
    assert result.stdout == ""


@pytest.mark.parametrize(("option", "value"), [("--days", "0"), ("--days", "soon"), ("--seed", "-1")])
def test_a_bad_option_value_exits_2(option, value):
    result = runner.invoke(app, ["simulate", "default", option, value])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert option in result.output


def test_a_log_path_that_is_a_folder_is_a_short_error(tmp_path):
    result = runner.invoke(app, ["simulate", "default", "--days", "0.01", "--log", str(tmp_path)])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert "--log" in result.stderr and "is a folder" in result.stderr


def test_a_real_process_prints_no_traceback(tmp_path):
    """The installed entry point, not the test runner: exit code 2, one short message on stderr."""
    bad = _variant(tmp_path, "typed_limit", '  routes:\n    rtp:\n      limit_cents: "lots"\n')
    for args in (["simulate", str(bad)], ["simulate", "default", "--policy", "smartest"]):
        proc = subprocess.run(
            [sys.executable, "-m", "payroute.experiments.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
        assert proc.stderr.startswith("error:")
        assert proc.stdout == ""


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("name: x\nbase: 3\noverrides: {}\n", ["base = 3", "allowed: a shipped scenario name", "default"]),
        ("name: x\nbase: default\noverrides: [1, 2]\n", ["overrides = [1, 2]", "allowed: a mapping"]),
        ("name: x\nbase: default\nextends: fee_hike\n", ["a variant takes only", "extends"]),
        ("- just\n- a list\n", ["expected a mapping at the top level"]),
        ("name: x\nbase: default\noverrides: {volume_scale: 0}\n", ["volume_scale = 0", "greater than 0"]),
    ],
)
def test_a_malformed_variant_file_is_a_short_error(tmp_path, text, says):
    path = tmp_path / "variant.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["simulate", str(path), "--days", "0.1"])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    for part in says:
        assert part in result.stderr


def test_a_variant_finds_its_base_file_next_to_it(tmp_path, monkeypatch):
    folder = tmp_path / "my_scenarios"
    folder.mkdir()
    (folder / "base.yaml").write_text("name: base\nbase: default\noverrides: {volume_scale: 0.02}\n")
    (folder / "variant.yaml").write_text(
        "name: variant\nbase: base.yaml\noverrides: {start_date: 2026-03-06}\n"
    )
    monkeypatch.chdir(tmp_path)  # not the folder the files are in
    result = runner.invoke(app, ["scenarios", "show", str(folder / "variant.yaml")])
    assert result.exit_code == 0, result.output
    assert "volume_scale: 0.02" in result.stdout and "start_date: '2026-03-06'" in result.stdout


def test_baselines_take_a_route_bundle_beside_the_baselines_with_the_numbers_of_the_engine():
    from payroute.policies.compare import bundle_policy, run_paired, summarise
    from tests.helpers import REPO

    router = REPO / "policies" / "zoo" / "router"
    args = ["baselines", "default", "--seeds", "2", "--volume-scale", "0.01", "--json"]
    res = runner.invoke(app, [*args, "--policies", f"cheapest,{router}", "--workers", "2"])
    assert res.exit_code == 0, res.output
    rows = {r["policy"]: r for r in json.loads(res.stdout)}
    expected = summarise(
        run_paired(
            "default", ("cheapest", bundle_policy(router, "router")), 2, overrides={"volume_scale": 0.01}
        )
    ).set_index("policy")
    assert set(rows) == {"cheapest", "router"}
    assert rows["router"]["margin_diff"] == pytest.approx(expected.loc["router", "margin_diff"])
    missing = runner.invoke(app, [*args, "--policies", f"cheapest,{router}_gone"])
    assert missing.exit_code == 2 and "bundle not found" in missing.output


def test_baselines_compare_on_the_seeds_asked_for_held_out_ones_included():
    from payroute.policies.compare import run_paired, summarise

    args = [
        "baselines",
        "default",
        "--seeds",
        "2",
        "--volume-scale",
        "0.01",
        "--policies",
        "cheapest,fastest",
    ]
    held_out = runner.invoke(app, [*args, "--first-seed", "1000000000", "--json"])
    first = runner.invoke(app, [*args, "--json"])
    assert held_out.exit_code == 0 and first.exit_code == 0, held_out.output + first.output
    rows = {r["policy"]: r for r in json.loads(held_out.stdout)}
    expected = summarise(
        run_paired(
            "default", ("cheapest", "fastest"), [1000000000, 1000000001], overrides={"volume_scale": 0.01}
        )
    ).set_index("policy")
    assert rows["fastest"]["margin_diff"] == pytest.approx(expected.loc["fastest", "margin_diff"])
    assert {r["policy"]: r for r in json.loads(first.stdout)}["fastest"]["margin_diff"] != pytest.approx(
        rows["fastest"]["margin_diff"]
    )
