"""Hostile files: deep nesting, alias bombs, other encodings, oversized and broken files, and logs with values
that are numbers but nonsense.

Every case ends in exit 2 (or a :class:`~payroute.errors.PayrouteError` where no command reads the file) with one
message that names the file and what is wrong - a column and the first row for logs - never a traceback. The
limits are checked before any Python object is built from the file, so none of these cases allocates or recurses
in proportion to what the file claims.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from payroute.config_io import MAX_DEPTH, YAML_MAX_BYTES, load_yaml, parse_json, read_json, read_yaml_mapping
from payroute.errors import ConfigError, PayrouteError
from payroute.experiments.cli import app
from payroute.experiments.rundir import latest_checkpoint
from payroute.policies.review.ope import evaluate_policy
from tests.helpers.worlds import write_exploration_log

ZOO_ROUTER = Path(__file__).resolve().parents[2] / "policies" / "zoo" / "router"
BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{x}: &{x} [" + ",".join([f"*{prev}"] * 9) + "]"
            for prev, x in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "",
    ]
)


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def refused(result, *words: str, prefix: str = "error:") -> str:
    """The one error line of an exit-2 result, checked to contain every word."""
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    (line,) = [ln for ln in result.output.splitlines() if ln.startswith(prefix)]
    for w in words:
        assert w in line, (w, line)
    return line


# ---------------------------------------------------------------------- YAML: every config goes through one reader
CASES = {
    "billion laughs": (BILLION_LAUGHS, "aliases expand to more than"),
    "deep nesting": ("a: " + "[" * 5000 + "]" * 5000 + "\n", f"nested deeper than {MAX_DEPTH} levels"),
    "deep mappings": (
        "".join(" " * i + f"k{i}:\n" for i in range(200)) + " " * 200 + "v: 1\n",
        "nested deeper",
    ),
    "recursive alias": ("a: &a [1, *a]\n", "an alias refers to a node that contains it"),
    "aliases that nest too deep": (
        "a: &a " + "[" * 40 + "1" + "]" * 40 + "\nb: &b " + "[" * 40 + "*a" + "]" * 40 + "\n",
        "once its aliases are expanded",
    ),
    "an impossible date": ("name: x\nstart_date: 2024-13-45\n", "not valid YAML"),
    "a 5000-digit integer": ("volume_scale: " + "9" * 5000 + "\n", "not valid YAML"),
    "a python tag": ("a: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
}


@pytest.mark.parametrize(("text", "words"), list(CASES.values()), ids=list(CASES))
@pytest.mark.parametrize("command", ["scenario", "experiment", "review config"])
def test_a_hostile_yaml_file_is_refused_in_one_line_naming_it(tmp_path, text, words, command):
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    if command == "scenario":
        result, prefix = cli("simulate", str(path), "--days", "0.01"), "error:"
    elif command == "experiment":
        result, prefix = cli("train", str(path), "--runs", str(tmp_path / "runs")), "error:"
    else:
        result, prefix = cli("review", str(ZOO_ROUTER), "--config", str(path)), "could not review:"
    refused(result, str(path), words, prefix=prefix)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_file_in_another_encoding_is_refused_naming_the_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: café\nbase: default\n".encode("latin-1"))
    refused(cli("simulate", str(path)), str(path), "not UTF-8", "0xe9")
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes("name: x\nbase: default\n".encode("utf-16"))
    refused(cli("simulate", str(utf16)), str(utf16), "not UTF-8")


def test_a_utf8_file_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(
        b"\xef\xbb\xbf" + "name: café\nbase: default\noverrides: {volume_scale: 0.02}\n".encode()
    )
    assert read_yaml_mapping(path)["name"] == "café"


def test_an_oversized_config_is_refused_without_reading_it_whole(tmp_path):
    path = tmp_path / "big.yaml"
    with path.open("wb") as fh:
        fh.write(b"name: x\n# " + b"x" * (YAML_MAX_BYTES + 10) + b"\n")
    refused(cli("simulate", str(path)), str(path), "larger than 2 MiB")


def test_a_folder_or_a_missing_file_is_refused_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        read_yaml_mapping(tmp_path)
    refused(
        cli("review", str(ZOO_ROUTER), "--config", str(tmp_path / "nope.yaml")), "nope.yaml", prefix="could"
    )


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)


@settings(max_examples=60, deadline=None)
@given(
    st.recursive(
        _scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4)
    )
)
def test_any_json_value_within_the_limits_round_trips(value):
    assert parse_json(json.dumps(value), "x.json") == value


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(alphabet='[]{}"\\:,0123456789e-.aeflnrstu \n', max_size=200))
def test_any_bytes_read_as_json_give_data_or_one_named_error(raw):
    try:
        parse_json(raw, "blob.json")
    except ConfigError as err:
        assert str(err).startswith("blob.json: ") and "\n" not in str(err)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="&*[]{}:-,!|>'\"#?% \nab01.\t", max_size=120))
def test_any_text_read_as_yaml_gives_data_or_one_named_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("y") / "fuzz.yaml"
    path.write_text(text)
    try:
        load_yaml(path)
    except ConfigError as err:
        assert str(err).startswith(f"{path}: ") and "\n" not in str(err)


# ---------------------------------------------------------------------- JSON: bundles and run folders
def test_a_deeply_nested_card_is_refused_naming_the_bundle_file(tmp_path):
    bundle = tmp_path / "router"
    shutil.copytree(ZOO_ROUTER, bundle)
    card = json.loads((bundle / "card.json").read_text())
    card["training"] = "DEEP"
    (bundle / "card.json").write_text(json.dumps(card).replace('"DEEP"', "[" * 100_000 + "]" * 100_000))
    from tests.hostile.test_text import checksum

    checksum(bundle)
    refused(cli("review", str(bundle)), "card.json", "nested 100001 levels deep", prefix="could not review:")


def test_a_golden_file_in_another_encoding_is_refused_naming_it(tmp_path):
    bundle = tmp_path / "router"
    shutil.copytree(ZOO_ROUTER, bundle)
    (bundle / "golden.json").write_bytes((bundle / "golden.json").read_text().encode("utf-16"))
    from tests.hostile.test_text import checksum

    checksum(bundle)
    refused(cli("review", str(bundle)), "golden.json", "not UTF-8", prefix="could not review:")


@pytest.mark.parametrize("content", [b'{"path": "checkpoint_00', b"\xff\xfe{}", b"[" * 10_000])
def test_a_torn_latest_json_is_refused_naming_it(tmp_path, content):
    latest = tmp_path / "checkpoints" / "latest.json"
    latest.parent.mkdir()
    latest.write_bytes(content)
    with pytest.raises(ConfigError, match=r"latest\.json: (not valid JSON|not UTF-8|nested)"):
        latest_checkpoint(tmp_path)


def test_a_huge_json_number_is_refused_not_raised(tmp_path):
    path = tmp_path / "n.json"
    path.write_text("9" * 5000)
    with pytest.raises(ConfigError, match="n.json: not valid JSON"):
        read_json(path)


# ---------------------------------------------------------------------- logs: numbers that are nonsense
@pytest.fixture(scope="module")
def explore_log(tmp_path_factory):
    return write_exploration_log(tmp_path_factory.mktemp("logs") / "explore.parquet", seed=3)


def _routed_row(table: pa.Table) -> int:
    routed = pc.and_(
        pc.equal(table.column("record"), "transaction"), pc.greater_equal(table.column("route_index"), 0)
    )
    return int(np.flatnonzero(routed.to_numpy(zero_copy_only=False))[3])


def _set(table: pa.Table, column: str, value) -> pa.Table:
    i = table.schema.get_field_index(column)
    values = table.column(column).to_pylist()
    values[_routed_row(table)] = value
    return table.set_column(i, column, pa.array(values, type=table.schema.field(column).type))


DAMAGE = {
    "propensity 1e-300": (
        lambda t: _set(t, "route_propensity", 1e-300),
        "route_propensity",
        "outside [1e-09, 1]",
    ),
    "propensity 0": (lambda t: _set(t, "route_propensity", 0.0), "route_propensity", "outside"),
    "propensity negative": (lambda t: _set(t, "route_propensity", -0.5), "route_propensity", "outside"),
    "propensity above 1": (lambda t: _set(t, "route_propensity", 1.5), "route_propensity", "outside"),
    "propensity NaN": (lambda t: _set(t, "route_propensity", math.nan), "route_propensity", "NaN"),
    "propensity inf": (lambda t: _set(t, "route_propensity", math.inf), "route_propensity", "outside"),
    "negative amount, no fraud column": (
        lambda t: _set(t.drop_columns(["is_fraud"]), "amount_cents", -500),
        "amount_cents",
        "outside 0..",
    ),
    "absurd amount": (lambda t: _set(t, "amount_cents", 2**62), "amount_cents", "outside 0.."),
    "absurd revenue": (lambda t: _set(t, "revenue_cents", 2**62), "revenue_cents", "outside 0.."),
    "infinite arrival": (lambda t: _set(t, "t_arrival", math.inf), "t_arrival", "not a finite time"),
    "risk score 7": (lambda t: _set(t, "risk_score", 7.0), "risk_score", "outside [0, 1]"),
    "infinite observation": (
        lambda t: _set(t, "obs.card_alpha.fee_bps", math.inf),
        "obs.card_alpha.fee_bps",
        "finite",
    ),
    "unknown action": (
        lambda t: _set(_set(t, "route_index", 40), "eligible_mask", 1 << 40),
        "route_index",
        "route index 40; the scenario has 10 routes",
    ),
    "missing column": (lambda t: t.drop_columns(["fraud_loss_cents"]), "fraud_loss_cents", "missing column"),
}


@pytest.mark.parametrize(("damage", "column", "words"), list(DAMAGE.values()), ids=list(DAMAGE))
def test_a_log_with_a_nonsense_value_is_refused_naming_the_column_and_row(
    explore_log, tmp_path, damage, column, words
):
    bad = tmp_path / "bad.parquet"
    pq.write_table(damage(pq.read_table(explore_log)), bad)
    line = refused(
        cli("review", str(ZOO_ROUTER), "--logs", str(bad)), "bad.parquet", column, words, prefix="could"
    )
    if column != "route_index" and "missing" not in words:  # the first offending row is named
        assert "tx_id" in line or "transaction" in line or "NaN" in line


@settings(max_examples=80, deadline=None)
@given(p=st.floats(allow_nan=True, allow_infinity=True), r=st.floats(allow_nan=True, allow_infinity=True))
def test_ope_on_any_propensity_and_reward_gives_finite_numbers_or_a_named_refusal(p, r):
    rewards = np.array([100.0, r, -3.0, 7.0])
    props = np.array([0.5, p, 0.25, 1.0])
    target = np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    actions = np.array([0, 0, 1, 0])
    try:
        res = evaluate_policy(rewards, actions, props, target, n_bootstrap=20)
    except PayrouteError as err:
        assert "(first: row 1," in str(err) and str(err).split(":")[0] in ("propensities", "rewards")
        return
    assert all(math.isfinite(e.value) for e in res.estimates.values())
    d = res.diagnostics
    assert math.isfinite(d.effective_sample_size) and math.isfinite(d.max_weight)
