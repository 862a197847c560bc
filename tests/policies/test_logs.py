"""Logged decisions: reading simulated logs, refusing malformed ones by column, and the schema documentation."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from payroute.envs.baselines import bound_policies
from payroute.envs.world import LOG_COLUMNS, EventLog, PaymentWorld
from payroute.envs.world.eventlog import LOG_SCHEMA
from payroute.errors import PayrouteError
from payroute.policies.logs import REQUIRED_COLUMNS, read_logged_decisions, render_log_schema
from tests.helpers import REPO

DOC = REPO / "docs" / "log_schema.md"
ROUTES = ["r0", "r1", "r2"]


@pytest.fixture(scope="module")
def simulated(small_scenario, tmp_path_factory):
    """A day of the small world on default baselines, logged to Parquet."""
    path = tmp_path_factory.mktemp("log") / "day.parquet"
    log = EventLog(path)
    world = PaymentWorld(small_scenario, seed=2, policies=bound_policies(), days=1, log=log)
    world.run()
    log.close()
    return path, world


def tx_row(tx_id, route_index, propensity=0.5, mask=0b111, revenue=100, cost=30, **extra):
    row = {
        "record": "transaction", "t": 10.0 + tx_id, "tx_id": tx_id, "t_arrival": float(tx_id),
        "amount_cents": 10_000, "currency": "USD", "cross_border": False, "segment": "consumer",
        "instrument": "card_credit", "risk_score": 0.1, "route": ROUTES[route_index] if route_index >= 0 else "",
        "route_index": route_index, "route_propensity": propensity, "eligible_mask": mask,
        "state": "settled", "revenue_cents": revenue, "route_cost_cents": cost, "fraud_loss_cents": 0,
        "sla_penalty_cents": 0, "liquidity_cost_cents": 0, "challenge_cost_cents": 0,
    }  # fmt: skip
    return {**row, **extra}


def make_log(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=LOG_SCHEMA)


def good_rows():
    return [
        tx_row(0, 0, propensity=0.8, mask=0b011),
        tx_row(1, 2, propensity=0.1, mask=0b111, revenue=250, cost=40, sla_penalty_cents=15),
        tx_row(2, 1, propensity=1.0, mask=0b010, challenge_cost_cents=20),
        tx_row(3, -1, mask=0, state="blocked", revenue=0, cost=0),  # never routed: not a routing decision
        {"record": "post_settlement", "t": 99.0, "tx_id": 1, "kind": "chargeback", "fraud_loss_cents": 500},
        {"record": "account", "t": 0.0, "account": "fed_master", "kind": "opening", "amount_cents": 10**9},
    ]


# ---------------------------------------------------------------------- reading
def test_a_simulated_log_reads_into_aligned_decisions(simulated, small_scenario):
    path, world = simulated
    routes = list(small_scenario.routes)
    d = read_logged_decisions(path, route_names=routes)
    table = pq.read_table(path)
    tx = table.filter(pc.equal(table.column("record"), "transaction"))
    routed = tx.filter(pc.greater_equal(tx.column("route_index"), 0))
    assert d.n == routed.num_rows == sum(world.route_counts.values())
    assert d.route_names == routes and d.masks.shape == (d.n, len(routes))
    assert d.masks[np.arange(d.n), d.actions].all()
    assert (d.propensities == 1.0).all()  # the default baselines are deterministic
    assert d.features.shape == (d.n, len(d.feature_names)) and np.isfinite(d.features).all()
    # every routed transaction's margin, with its later chargebacks, is its reward
    post = table.filter(pc.equal(table.column("record"), "post_settlement")).to_pylist()
    later = {}
    for row in post:
        later[row["tx_id"]] = later.get(row["tx_id"], 0) + row["fraud_loss_cents"]
    expected = [
        r["revenue_cents"] - r["route_cost_cents"] - r["sla_penalty_cents"] - r["liquidity_cost_cents"]
        - r["challenge_cost_cents"] - r["fraud_loss_cents"] - later.get(r["tx_id"], 0)
        for r in routed.to_pylist()
    ]  # fmt: skip
    assert d.rewards.tolist() == expected


def test_rewards_subtract_later_losses_and_unrouted_rows_are_not_decisions():
    d = read_logged_decisions(make_log(good_rows()))
    assert d.tx_id.tolist() == [0, 1, 2]
    assert d.actions.tolist() == [0, 2, 1]
    assert d.propensities.tolist() == [0.8, 0.1, 1.0]
    assert d.rewards.tolist() == [70, 250 - 40 - 15 - 500, 100 - 30 - 20]
    assert d.masks.tolist() == [[True, True, False], [True, True, True], [False, True, False]]
    assert d.route_names == ROUTES


def test_fraud_labels_come_from_is_fraud_state_and_the_fraud_losses_of_each_decision():
    rows = good_rows()
    for i, (fraud, state) in enumerate([(False, "settled"), (True, "settled"), (False, "declined")]):
        rows[i] = {**rows[i], "is_fraud": fraud, "state": state}
    d = read_logged_decisions(make_log(rows))
    labels = d.fraud_labels([0, 1, 1])
    assert labels.is_fraud.tolist() == [False, True, False]
    assert labels.sent.tolist() == [True, True, False]
    assert labels.losses.tolist() == [0, 500, 0]  # the later chargeback, on its own decision
    assert labels.amounts.tolist() == [10_000] * 3
    assert labels.action_groups.tolist() == [0, 1, 1]
    # a log that does not say which payments were fraud gets the plain reward model
    rows[0] = {**rows[0], "is_fraud": None}
    assert read_logged_decisions(make_log(rows)).fraud_labels([0, 1, 1]) is None


def test_route_loss_classes_follow_the_rail_and_its_revocability():
    from payroute.envs.scenarios import load_scenario
    from payroute.policies.logs import route_loss_classes

    routes = load_scenario("default").routes
    classes = dict(zip(routes, route_loss_classes(routes.values()), strict=True))
    assert classes["card_alpha"] == 0 and classes["rtp"] == 1 and classes["fedwire"] == 1
    assert classes["ach_standard"] == 2


def test_narrower_integer_and_dictionary_string_columns_are_accepted(tmp_path):
    table = make_log(good_rows())
    i = table.schema.get_field_index("route_index")
    table = table.set_column(i, "route_index", table.column("route_index").cast(pa.int32()))
    i = table.schema.get_field_index("segment")
    table = table.set_column(i, "segment", table.column("segment").dictionary_encode())
    path = tmp_path / "narrow.parquet"
    pq.write_table(table, path)
    assert read_logged_decisions(path).actions.tolist() == [0, 2, 1]


# ---------------------------------------------------------------------- refusing
def _set(rows, i, **values):
    rows[i] = {**rows[i], **values}
    return rows


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda r: _set(r, 1, route_propensity=0.0),
            r"column route_propensity: 1 row\(s\) where the value is outside \[1e-09, 1\] \(first: tx_id 1, value 0.0\)",
        ),
        (lambda r: _set(r, 0, route_propensity=1.5), r"column route_propensity: .*outside \[1e-09, 1\]"),
        (lambda r: _set(r, 1, route_propensity=-0.2), r"column route_propensity: .*outside \[1e-09, 1\]"),
        (lambda r: _set(r, 1, route_propensity=float("nan")), r"column route_propensity: 1 null or NaN"),
        (lambda r: _set(r, 1, route_propensity=None), r"column route_propensity: 1 null or NaN"),
        (
            lambda r: _set(r, 0, eligible_mask=0b110),
            r"column eligible_mask: .*does not contain the bit of route_index \(first: tx_id 0, value 6\)",
        ),
        (lambda r: _set(r, 2, eligible_mask=0), r"column eligible_mask: .*not a positive bitmask"),
        (lambda r: _set(r, 1, revenue_cents=-5), r"column revenue_cents: .*is outside 0\.\."),
        (lambda r: _set(r, 2, tx_id=0), r"column tx_id: transaction 0 has more than one row"),
        (lambda r: _set(r, 0, record="txn"), r"column record has value 'txn'"),
        (
            lambda r: _set(r, 2, route_index=0, route="r1", eligible_mask=0b001),
            r"column route: route_index 0 is named 'r1' but also 'r0'",
        ),
        (lambda r: _set(r, 2, route="r0"), r"column route: route name 'r0' is used for route_index 0 and 1"),
        (lambda r: _set(r, 1, risk_score=None), r"column risk_score: 1 null or NaN"),
        (lambda r: [row for row in r if row.get("route_index", -1) < 0], "no routed transaction rows"),
        (
            lambda r: _set(r, 4, fraud_loss_cents=-1),
            r"column fraud_loss_cents: .*outside 0\.\.\d+ on a post_settlement row",
        ),
    ],
)
def test_malformed_values_are_refused_naming_the_column(mutate, message):
    with pytest.raises(PayrouteError, match=message):
        read_logged_decisions(make_log(mutate(good_rows())))


@pytest.mark.parametrize(
    "column", ["route_propensity", "eligible_mask", "route_index", "revenue_cents", "tx_id"]
)
def test_a_missing_column_is_refused_by_name(tmp_path, column):
    path = tmp_path / "log.parquet"
    pq.write_table(make_log(good_rows()).drop_columns([column]), path)
    with pytest.raises(PayrouteError, match=rf"log.parquet: missing column\(s\) {column}"):
        read_logged_decisions(path)


@pytest.mark.parametrize(
    ("column", "arrow_type", "expected"),
    [
        ("route_propensity", pa.string(), "a floating-point type"),
        ("eligible_mask", pa.float64(), "an integer type"),
        ("cross_border", pa.int64(), "bool"),
        ("segment", pa.int64(), "string"),
        ("price_cents", pa.string(), "an integer type"),  # optional columns are checked too when present
    ],
)
def test_a_column_of_the_wrong_type_is_refused(tmp_path, column, arrow_type, expected):
    table = make_log(good_rows())
    i = table.schema.get_field_index(column)
    filler = {pa.string(): "x", pa.float64(): 1.0, pa.int64(): 1}[arrow_type]
    values = [None if v is None else filler for v in table.column(column).to_pylist()]
    table = table.set_column(i, column, pa.array(values, arrow_type))
    path = tmp_path / "log.parquet"
    pq.write_table(table, path)
    with pytest.raises(PayrouteError, match=rf"column {column} has type {arrow_type}; expected {expected}"):
        read_logged_decisions(path)


def test_route_names_from_the_scenario_are_enforced():
    with pytest.raises(
        PayrouteError, match=r"column route: route_index 0 is named 'r0' but also 'card_alpha'"
    ):
        read_logged_decisions(make_log(good_rows()), route_names=["card_alpha", "r1", "r2"])
    with pytest.raises(
        PayrouteError, match=r"column route_index: the log uses route index 2; the scenario has 2"
    ):
        read_logged_decisions(make_log(good_rows()), route_names=["r0", "r1"])
    assert read_logged_decisions(make_log(good_rows()), route_names=[*ROUTES, "r3"]).n_routes == 4


def test_unreadable_and_absent_files_are_clear_errors(tmp_path):
    with pytest.raises(PayrouteError, match="log file not found"):
        read_logged_decisions(tmp_path / "none.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(PayrouteError, match="bad.parquet is not a readable Parquet file"):
        read_logged_decisions(bad)


# ---------------------------------------------------------------------- documentation
def test_the_committed_schema_doc_is_generated_from_the_log_columns():
    assert DOC.read_text() == render_log_schema(), (
        "docs/log_schema.md is stale: regenerate with `python -m payroute.policies.logs docs/log_schema.md`"
    )
    text = DOC.read_text()
    for name, typ, _unit, _doc in LOG_COLUMNS:
        required = "required" if name in REQUIRED_COLUMNS else ""
        assert f"| `{name}` | {typ} |" in text and text.split(f"| `{name}` |")[1].split("\n")[0].endswith(
            f"| {required} |"
        )


def test_observation_log_writes_each_observation_on_its_terminal_row_across_flushes_and_row_groups(tmp_path):
    from payroute.policies.logs import OBS_PREFIX
    from payroute.policies.logs.recording import ObservationLog

    names = ["a", "b", "c"]
    path = tmp_path / "obs.parquet"
    log = ObservationLog(path, names, flush_rows=4)
    log.group_rows = 8
    rng = np.random.default_rng(7)
    seen = {}
    for i in range(10):
        if i % 3:  # every third payment is never routed, so has no observation
            seen[i] = rng.normal(size=3).astype(np.float32)
            log.record(i, seen[i])
    for i in reversed(range(10)):  # terminal rows in another order than the decisions
        log.append(tx_row(i, 0))
        log.append({"record": "post_settlement", "t": 50.0 + i, "tx_id": i, "kind": "refund"})
    log.close()
    # 20 rows buffered 4 at a time, written 8 to a row group
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [8, 8, 4]
    table = pq.read_table(path)
    got = np.column_stack([table.column(OBS_PREFIX + n).to_numpy(zero_copy_only=False) for n in names])
    records, tx_ids = table["record"].to_pylist(), table["tx_id"].to_pylist()
    for row, (record, tx_id) in enumerate(zip(records, tx_ids, strict=True)):
        if record == "transaction" and tx_id in seen:
            assert np.array_equal(got[row], seen[tx_id])  # float32 bit for bit
        else:
            assert all(table.column(OBS_PREFIX + n)[row].as_py() is None for n in names)
    with pytest.raises(ValueError, match="this log holds 3 features"):
        log.record(99, np.zeros(4, dtype=np.float32))


def test_wide_logs_are_buffered_in_fewer_rows():
    from payroute.policies.logs.recording import ObservationLog

    plain = EventLog()
    wide = ObservationLog(None, [f"f{i}" for i in range(115)])
    assert plain.flush_rows == 16_384
    # the same number of values buffered before each flush, whatever the width
    assert abs(wide.flush_rows * len(wide.column_names) - plain.flush_rows * len(LOG_COLUMNS)) <= len(
        wide.column_names
    )
