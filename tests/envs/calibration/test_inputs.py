"""What ``payroute calibrate`` reads: the shipped example, flat logs with a mapping, and bad logs refused.

A log that cannot be read exits 2 with one line naming the file, the column, the row and the problem, and writes
nothing; a row that can be read but not used is counted by reason, never dropped silently.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from payroute.envs.calibration import calibrate
from payroute.envs.calibration.example_log import EXAMPLE_DIR, make_example
from payroute.envs.scenarios import load_scenario
from payroute.experiments.cli import app

EXAMPLE = EXAMPLE_DIR / "transactions.csv"
MAPPING = EXAMPLE_DIR / "mapping.yaml"
HEADER = EXAMPLE.read_text().splitlines()[0].split(",")


def _small_log(tmp_path: Path, edit=None, rows: int = 400) -> Path:
    """The first ``rows`` rows of the shipped example, with ``edit(cells_by_row)`` applied."""
    lines = EXAMPLE.read_text().splitlines()[: rows + 1]
    header = lines[0].split(",")
    table = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    if edit is not None:
        edit(table)
    path = tmp_path / "log.csv"
    path.write_text("\n".join([",".join(header)] + [",".join(r[h] for h in header) for r in table]) + "\n")
    return path


def _refused(args: list[str], out: Path, *needles: str) -> None:
    res = CliRunner().invoke(app, ["calibrate", *args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not out.exists() and not list(out.parent.glob(f"{out.name}*"))  # nothing half-written


def _set(row: int, column: str, value: str):
    def edit(table):
        table[row - 1][column] = value

    return edit


def test_the_shipped_example_is_made_by_its_script_and_calibrates_with_every_row_used():
    assert EXAMPLE.stat().st_size < 1_000_000
    assert make_example() == EXAMPLE.read_text()  # the script makes it, byte for byte
    result = calibrate(EXAMPLE, mapping=MAPPING, base="default", name="example")
    p = result.provenance
    assert p["rows_used"] == p["rows_read"] == len(EXAMPLE.read_text().splitlines()) - 1
    assert p["rows_left_out"] == {}
    values = p["values"]
    assert values["demand.weekly_profile"]["status"] == "fitted"  # a week: every weekday seen
    assert values["routes.card_alpha.fee.bps"]["status"] == "fitted"
    lo, hi = values["routes.card_alpha.fee.bps"]["interval"]
    assert lo <= 9.0 <= hi  # the default's markup, found under interchange, from dollars and cents
    assert p["response_codes"]["card_alpha"]["00"] > 0.7


def test_a_mapping_naming_a_column_the_log_lacks_is_refused(tmp_path):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING.read_text().replace("latency_s: latency_s", "latency_s: latency_ms"))
    _refused([str(_small_log(tmp_path)), "--mapping", str(mapping)], tmp_path / "out.yaml",
             "column 'latency_ms'", "mapping field latency_s")  # fmt: skip


def test_a_missing_column_of_the_own_log_is_refused(tmp_path):
    log = tmp_path / "own.parquet"
    pq.write_table(
        pa.table({"record": ["transaction"], "tx_id": [0], "t": [1.0], "t_arrival": [0.5], "amount_cents": [100],
                  "instrument": ["card_credit"], "segment": ["consumer"]}),
        log,
    )  # fmt: skip
    _refused([str(log)], tmp_path / "out.yaml", "column 'state' is missing")


def test_an_unparseable_timestamp_is_refused_with_its_row(tmp_path):
    log = _small_log(tmp_path, _set(5, "txn_time", "yesterday"))
    _refused([str(log), "--mapping", str(MAPPING)], tmp_path / "out.yaml", "column 'txn_time'", "row 5",
             "'yesterday'")  # fmt: skip


def test_a_negative_amount_is_refused_with_its_row(tmp_path):
    log = _small_log(tmp_path, _set(7, "amount", "-12.00"))
    _refused(
        [str(log), "--mapping", str(MAPPING)], tmp_path / "out.yaml", "column 'amount'", "row 7", "negative"
    )


def test_an_unknown_code_is_refused_with_its_row(tmp_path):
    log = _small_log(tmp_path, _set(9, "resp_code", "ZZ"))
    _refused(
        [str(log), "--mapping", str(MAPPING)], tmp_path / "out.yaml", "column 'resp_code'", "row 9", "'ZZ'"
    )
    log = _small_log(tmp_path, _set(3, "acquirer", "ACQ-OMEGA"))
    _refused([str(log), "--mapping", str(MAPPING)], tmp_path / "out.yaml", "column 'acquirer'", "row 3",
             "'ACQ-OMEGA'")  # fmt: skip


def test_a_route_the_base_does_not_have_is_refused(tmp_path):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING.read_text().replace("ACQ-ALPHA: card_alpha", "ACQ-ALPHA: card_omega"))
    _refused([str(_small_log(tmp_path)), "--mapping", str(mapping)], tmp_path / "out.yaml",
             "'card_omega' is not a known route of the base scenario")  # fmt: skip


def test_a_bad_mapping_field_is_refused_naming_it(tmp_path):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING.read_text() + "amount_units: cents\n")
    out = tmp_path / "out.yaml"
    res = CliRunner().invoke(
        app, ["calibrate", str(_small_log(tmp_path)), "--mapping", str(mapping), "--out", str(out)]
    )
    assert res.exit_code == 2 and "amount_units" in res.output and not out.exists()


def test_rows_that_cannot_be_used_are_counted_by_reason(tmp_path):
    def edit(table):
        table[1]["txn_time"] = ""
        table[2]["txn_time"] = ""
        table[2]["amount"] = ""  # counted once, by its first reason
        table[3]["amount"] = ""
        table[4]["amount"] = "0.00"

    log = _small_log(tmp_path, edit)
    p = calibrate(log, mapping=MAPPING, base="default").provenance
    assert p["rows_left_out"] == {
        "empty timestamp": 2, "empty amount": 1, "zero amount (e.g. an account verification)": 1,
    }  # fmt: skip
    assert p["rows_used"] == p["rows_read"] - 4 == 400 - 4


def test_the_fitted_scenario_keeps_the_base_where_the_log_says_nothing(tmp_path):
    mapping = tmp_path / "mapping.yaml"  # no fee, latency or fraud columns mapped
    text = "\n".join(
        line for line in MAPPING.read_text().splitlines()
        if not line.startswith(("fee:", "latency_s:", "fraud:", "fraud_pattern:", "chargeback_at:", "return_at:"))
    )  # fmt: skip
    mapping.write_text(text + "\n")
    result = calibrate(_small_log(tmp_path), mapping=mapping, base="default")
    base = load_scenario("default")
    assert result.scenario.routes["card_beta"].fee == base.routes["card_beta"].fee
    assert result.scenario.routes["rtp"].latency == base.routes["rtp"].latency
    assert result.provenance["values"]["routes.card_beta.fee"]["note"] == "the log has no fee column"
    assert result.provenance["values"]["fraud.patterns"]["status"] == "base"


@pytest.mark.parametrize("suffix", [".json", ""])
def test_a_log_that_is_not_csv_or_parquet_is_refused(tmp_path, suffix):
    log = tmp_path / f"log{suffix}"
    log.write_text("{}")
    _refused([str(log)], tmp_path / "out.yaml", "a log must be a .csv or .parquet file")


def test_a_flat_parquet_log_fits_the_same_as_its_csv(tmp_path):
    csv = _small_log(tmp_path, rows=1500)
    table = pacsv.read_csv(csv, convert_options=pacsv.ConvertOptions(strings_can_be_null=False,
                                                                     column_types=dict.fromkeys(HEADER, pa.string())))  # fmt: skip
    as_text = tmp_path / "text.parquet"
    pq.write_table(table, as_text)
    typed = tmp_path / "typed.parquet"  # a timestamp column and numbers, as a warehouse would write them
    stamp = pc.cast(table["txn_time"], pa.timestamp("us", tz="UTC"))
    table = table.set_column(0, "txn_time", stamp).set_column(
        1, "amount", pc.cast(table["amount"], pa.float64())
    )
    pq.write_table(table, typed)
    fits = [calibrate(p, mapping=MAPPING, base="default", name="same").data for p in (csv, as_text, typed)]
    for fit in fits:
        fit.pop("description")  # names the log file
    assert fits[0] == fits[1] == fits[2]


def test_a_column_of_the_own_log_with_the_wrong_type_is_refused(tmp_path):
    log = tmp_path / "own.parquet"
    pq.write_table(
        pa.table({"record": ["transaction"], "tx_id": [0], "t": [1.0], "t_arrival": ["noon"], "amount_cents": [100],
                  "instrument": ["card_credit"], "segment": ["consumer"], "state": ["settled"]}),
        log,
    )  # fmt: skip
    _refused([str(log)], tmp_path / "out.yaml", "column 't_arrival' has type string; allowed: a number")


def test_a_csv_with_a_byte_order_mark_reads_as_without(tmp_path):
    plain = _small_log(tmp_path)
    marked = tmp_path / "marked.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    fits = [calibrate(p, mapping=MAPPING, base="default", name="same").data for p in (plain, marked)]
    for fit in fits:
        fit.pop("description")
    assert fits[0] == fits[1]


def test_a_log_without_segments_fits_each_route_s_pooled_approval(tmp_path):
    mapping = tmp_path / "mapping.yaml"
    text = MAPPING.read_text()
    start, end = text.index("segment:"), text.index("merchant_category:")
    mapping.write_text(text[:start] + text[end:])
    result = calibrate(_small_log(tmp_path, rows=2000), mapping=mapping, base="default")
    values = result.provenance["values"]
    assert values["demand.segment_mix"]["status"] == "base"
    cells = [values[f"routes.card_gamma.approval.by_segment.{s}"] for s in ("consumer", "small_business")]
    assert all(c["status"] == "fitted" and "no segment" in c["note"] for c in cells)
    assert cells[0]["rows"] == cells[1]["rows"] > 0  # the same pooled attempts behind every segment
