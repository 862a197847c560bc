"""Read a log a batch at a time into one normal form, refusing a bad log with its column, row and problem.

Two layouts are read: payroute's own event log (Parquet, ``docs/log_schema.md``: its ``transaction`` rows,
joined with the ``post_settlement`` rows that say when a fraud came to light) and a flat one-row-per-attempt
log (CSV or Parquet) described by a :class:`~payroute.envs.calibration.mapping.Mapping`. Either way the reader
yields :class:`pyarrow.RecordBatch` es in the normal form :data:`NORMAL`, so memory holds one batch, not the log.

Times in the normal form are seconds since 1970-01-01 00:00 on the base scenario's clock (its
``base_utc_offset_h``): ``t // 86400`` is the local date, ``t % 86400`` the local time of day.

A value that cannot be read (an unparseable timestamp, a negative amount, a code the mapping does not know)
refuses the whole log with a :class:`~payroute.errors.PayrouteError` naming the column, the row (1-based, data
rows) and the value. An empty cell in a required column does not: the row is counted as unusable, by reason,
and left out (:attr:`LogReader.excluded`).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from payroute.envs.calibration.mapping import INSTRUMENT_VALUES, OUTCOMES, Coded, Flag, Mapping
from payroute.envs.scenarios.schema import Scenario
from payroute.errors import PayrouteError

BATCH_ROWS = 65_536
DAY_S = 86_400

NORMAL = pa.schema(
    [
        ("t", pa.float64()),
        ("amount", pa.int64()),
        ("currency", pa.string()),
        ("instrument", pa.string()),
        ("network", pa.string()),
        ("foreign_card", pa.bool_()),
        ("cross_border", pa.bool_()),
        ("segment", pa.string()),
        ("merchant_category", pa.string()),
        ("urgency", pa.string()),
        ("route", pa.string()),
        ("outcome", pa.string()),
        ("code", pa.string()),
        ("fee", pa.float64()),
        ("latency_s", pa.float64()),
        ("settled_at", pa.float64()),
        ("is_fraud", pa.bool_()),
        ("fraud_pattern", pa.string()),
        ("chargeback_at", pa.float64()),
        ("return_at", pa.float64()),
        ("tx_id", pa.int64()),
    ]
)
"""The normal form every log is read into (a null where the log has no value)."""

OWN_STATES = {"settled": "approved", **{o: o for o in OUTCOMES if o != "approved"}}
OWN_FIELDS = (
    "segment", "merchant_category", "instrument", "network", "foreign_card", "cross_border", "currency",
    "urgency", "route", "outcome", "fee", "latency_s", "settled_at", "is_fraud", "fraud_pattern",
    "chargeback_at", "return_at",
)  # fmt: skip


def _date_epoch_s(day: dt.date) -> float:
    return float((day - dt.date(1970, 1, 1)).days * DAY_S)


class LogReader:
    """Streams a log in the normal form; counts rows read and rows left out by reason.

    ``present`` names the normal-form fields the log holds (a field not there is not fitted).
    """

    def __init__(
        self,
        path: str | Path,
        mapping: Mapping | None,
        base: Scenario,
        light: bool = False,
        start_date: dt.date | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise PayrouteError(f"log file not found: {self.path}")
        self.start_date = start_date or base.start_date  # the own log's day 0 (it does not say)
        self.light = light  # read only the time, amount, instrument, route and outcome (a first pass)
        if light and mapping is not None:
            mapping = mapping.model_copy(update=dict.fromkeys(_LIGHT_DROP))
        self.mapping = mapping
        self.base = base
        self.kind = self._kind()
        self.rows_read = 0
        self.excluded: Counter[str] = Counter()
        self.discoveries: dict[int, tuple[str, float]] = {}  # own log: tx_id -> (kind, local time)
        self.late_rows = 0  # own log: post_settlement rows (read for the fraud discovery delays)
        self.present: set[str] = set()
        self._types: dict[str, pa.DataType] = {}
        self._columns = self._header()
        self._check_columns()

    # ---------------------------------------------------------------- layout
    def _kind(self) -> str:
        suffix = self.path.suffix.lower()
        if suffix not in (".csv", ".parquet", ".pq"):
            raise PayrouteError(
                f"{self.path}: a log must be a .csv or .parquet file, got {suffix or 'no suffix'!r}"
            )
        if suffix == ".csv":
            if self.mapping is None:
                raise PayrouteError(f"{self.path}: a CSV log needs --mapping (payroute's own log is Parquet)")
            return "flat_csv"
        return "flat_parquet" if self.mapping is not None else "own"

    def _header(self) -> list[str]:
        try:
            if self.kind == "flat_csv":
                with open(self.path, newline="", encoding="utf-8-sig") as fh:
                    header = next(csv.reader(fh), None)
                if not header:
                    raise PayrouteError(
                        f"{self.path}: cannot be read as csv: the file is empty (no header row)"
                    )
                return header
            schema = pq.ParquetFile(self.path).schema_arrow
            self._types = {name: schema.field(name).type for name in schema.names}
            return list(schema.names)
        except (pa.ArrowInvalid, OSError, UnicodeDecodeError, csv.Error) as exc:
            raise PayrouteError(f"{self.path}: cannot be read as {self.path.suffix[1:]}: {exc}") from None

    def _check_columns(self) -> None:
        if self.kind == "own":
            need = ["record", "tx_id", "t", "t_arrival", "amount_cents", "instrument", "segment", "state"]
            missing = [c for c in need if c not in self._columns]
            if missing:
                raise PayrouteError(
                    f"{self.path}: column {missing[0]!r} is missing: payroute's own event log needs {need} "
                    "(or pass --mapping for a flat one-row-per-attempt log)"
                )
            for column, want, is_type in _OWN_TYPES:
                got = self._types.get(column)
                if got is not None and not is_type(got):
                    raise PayrouteError(
                        f"{self.path}: column {column!r} has type {got}; allowed: {want} (docs/log_schema.md)"
                    )
            self.present = {"t", "amount", "tx_id"} | {
                f for f in OWN_FIELDS if _own_column(f) in self._columns
            }
            return
        assert self.mapping is not None
        for field, column in self.mapping.columns().items():
            if column not in self._columns:
                raise PayrouteError(
                    f"{self.path}: column {column!r} (mapping field {field}) is not in the log; "
                    f"columns: {', '.join(self._columns[:20])}{' ...' if len(self._columns) > 20 else ''}"
                )
        present = set(self.mapping.columns()) | {"t"}
        present.discard("timestamp")
        if "issuer_country" in present:
            present = (present - {"issuer_country"}) | {"foreign_card"}
        if "outcome" in present:
            present.add("code")
        if "fraud" in present:
            present = (present - {"fraud"}) | {"is_fraud"}
        self.present = present

    # ---------------------------------------------------------------- streaming
    def batches(self) -> Iterator[pa.RecordBatch]:
        """The log in the normal form, a batch at a time (rows left out are counted, not yielded)."""
        offset = 0
        for raw in self._raw_batches():
            n = raw.num_rows
            out = self._own(raw, offset) if self.kind == "own" else self._flat(raw, offset)
            offset += n
            if out is not None and out.num_rows:
                yield out

    def _raw_batches(self) -> Iterator[pa.RecordBatch]:
        try:
            if self.kind == "flat_csv":
                columns = sorted(set(self.mapping.columns().values()))  # type: ignore[union-attr]
                convert = pacsv.ConvertOptions(
                    include_columns=columns,
                    column_types={c: pa.string() for c in columns},
                    strings_can_be_null=False,
                )
                read = pacsv.ReadOptions(block_size=1 << 22)
                with open(self.path, "rb") as fh:
                    yield from pacsv.open_csv(fh, read_options=read, convert_options=convert)
                return
            if self.kind == "own":
                columns = [c for c in self._columns if c in (_OWN_LIGHT if self.light else _OWN_READ)]
            else:
                columns = sorted(set(self.mapping.columns().values()))  # type: ignore[union-attr]
            # without pre-buffering: with it the reader keeps what it read, and memory grows with the log
            parquet = pq.ParquetFile(self.path, pre_buffer=False, buffer_size=1 << 20)
            yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns)
        except (pa.ArrowInvalid, OSError) as exc:
            raise PayrouteError(f"{self.path}: cannot be read: {exc}") from None

    # ---------------------------------------------------------------- payroute's own log
    def _own(self, raw: pa.RecordBatch, offset: int) -> pa.RecordBatch | None:
        self.rows_read += raw.num_rows
        record = raw.column("record")
        post = pc.fill_null(pc.equal(record, "post_settlement"), False)
        late_count = pc.sum(pc.cast(post, pa.int64())).as_py() or 0
        if late_count:
            late = raw.filter(post)
            kinds = (
                late.column("kind").to_pylist()
                if "kind" in late.schema.names
                else ["chargeback"] * late.num_rows
            )
            for tx, t, kind in zip(
                late.column("tx_id").to_pylist(), late.column("t").to_pylist(), kinds, strict=True
            ):
                if tx is not None and t is not None:
                    self.discoveries[int(tx)] = (str(kind), self._sim_epoch + float(t))
        is_tx = pc.fill_null(pc.equal(record, "transaction"), False)
        rows = offset + np.flatnonzero(is_tx.to_numpy(zero_copy_only=False))  # 0-based file rows
        tx_rows = raw.filter(is_tx)
        self.late_rows += late_count
        self.excluded["account or decision row (not a payment)"] += (
            raw.num_rows - tx_rows.num_rows - late_count
        )
        if tx_rows.num_rows == 0:
            return None
        cols: dict[str, pa.Array] = {}
        n = tx_rows.num_rows
        t = tx_rows.column("t_arrival").cast(pa.float64())
        cols["t"] = pc.add(t, self._sim_epoch)
        cols["amount"] = tx_rows.column("amount_cents").cast(pa.int64())
        cols["tx_id"] = tx_rows.column("tx_id").cast(pa.int64())
        for field in OWN_FIELDS:
            name = _own_column(field)
            if name not in tx_rows.schema.names:
                continue
            col = tx_rows.column(name)
            if field == "outcome":
                state = col.cast(pa.string())
                col = pc.if_else(pc.equal(state, "settled"), "approved", state)
                if (
                    "reason" in tx_rows.schema.names
                ):  # a failure's code is why it failed (route_error, liquidity...)
                    state = pc.if_else(
                        pc.equal(state, "failed"), tx_rows.column("reason").cast(pa.string()), state
                    )
                cols["code"] = state
            elif field == "settled_at":
                col = pc.if_else(pc.less(col, 0), pa.scalar(None, pa.float64()), pc.add(col, self._sim_epoch))
            elif field in ("fee",):
                col = col.cast(pa.float64())
            cols[field] = col
        batch = _normal_batch(cols, n)
        try:
            self._check_own(batch)
        except _BadRow as bad:
            raise PayrouteError(bad.message(self.path, int(rows[bad.index]) + 1)) from None
        return self._drop_unusable(batch)

    @property
    def _sim_epoch(self) -> float:
        return _date_epoch_s(self.start_date)

    def _check_own(self, batch: pa.RecordBatch) -> None:
        """Raise :class:`_BadRow` (with the row's index in ``batch``) at the first value that cannot be read."""
        arr = batch.column("amount").to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(~np.isnan(arr.astype(float)) & (arr.astype(float) < 0))
        if len(bad):
            raise _BadRow(
                int(bad[0]), "amount_cents", f"{arr[bad[0]]!r} is negative; allowed: an amount >= 0"
            )
        checks = (
            ("instrument", "instrument", INSTRUMENT_VALUES, "value"),
            ("outcome", "state", OUTCOMES, "terminal state"),
            ("route", "route", (*self.base.routes, ""), "route of the base scenario"),
        )
        for field, column, allowed, what in checks:
            values = batch.column(field)
            unknown = [u for u in pc.unique(values).to_pylist() if u is not None and u not in allowed]
            if unknown:
                index = values.to_pylist().index(unknown[0])
                shown = ", ".join(a for a in allowed if a)
                raise _BadRow(index, column, f"{unknown[0]!r} is not a known {what}; allowed: {shown}")

    # ---------------------------------------------------------------- a flat log
    def _flat(self, raw: pa.RecordBatch, offset: int) -> pa.RecordBatch:
        m = self.mapping
        assert m is not None
        self.rows_read += raw.num_rows
        n = raw.num_rows
        cols: dict[str, pa.Array] = {"t": self._timestamps(raw, m.timestamp, offset)}
        cols["amount"] = self._amount(raw, m.amount, offset)
        if m.currency:
            cols["currency"] = raw.column(m.currency)
        cols["instrument"] = self._coded(raw, "instrument", m.instrument, offset, INSTRUMENT_VALUES)
        for field in ("network", "segment", "merchant_category"):
            coded = getattr(m, field)
            if coded is not None:
                cols[field] = self._coded(raw, field, coded, offset, None)
        if m.urgency is not None:
            cols["urgency"] = self._coded(
                raw, "urgency", m.urgency, offset, ("standard", "same_day", "instant")
            )
        if m.route is not None:
            cols["route"] = self._coded(raw, "route", m.route, offset, None)
            self._refuse_unknown_routes(m.route.column, cols["route"], offset)
        if m.outcome is not None:
            cols["code"] = raw.column(m.outcome.column)
            allowed = None if m.outcome.values is not None else (*OUTCOMES, "settled")
            out = self._coded(raw, "outcome", m.outcome, offset, allowed)
            cols["outcome"] = pc.if_else(pc.equal(out, "settled"), "approved", out)
        if m.foreign_card is not None:
            cols["foreign_card"] = self._flag(raw, m.foreign_card, offset)
        elif m.issuer_country is not None:
            country = pc.utf8_upper(pc.utf8_trim_whitespace(raw.column(m.issuer_country)))
            cols["foreign_card"] = pc.and_(
                pc.not_equal(country, m.home_country.upper()), pc.not_equal(country, "")
            )
        if m.cross_border is not None:
            cols["cross_border"] = self._flag(raw, m.cross_border, offset)
        if m.fraud is not None:
            cols["is_fraud"] = self._flag(raw, m.fraud, offset)
        if m.fraud_pattern is not None:
            cols["fraud_pattern"] = self._coded(
                raw,
                "fraud_pattern",
                m.fraud_pattern,
                offset,
                ("card_testing", "account_takeover", "app_scam", "mule_cashout", ""),
            )
        if m.fee is not None:
            cols["fee"] = self._amount(raw, m.fee, offset).cast(pa.float64())
        if m.latency_s is not None:
            cols["latency_s"] = self._number(raw, m.latency_s, offset)
        for field in ("settled_at", "chargeback_at", "return_at"):
            column = getattr(m, field)
            if column is not None:
                cols[field] = self._timestamps(raw, column, offset, required=False)
        return self._drop_unusable(_normal_batch(cols, n))

    def _drop_unusable(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Leave out (and count, by the first reason that applies) rows without a time, amount or instrument,
        and zero amounts (an account-verification authorisation is not a payment)."""
        if not batch.num_rows:
            return batch
        reasons = (
            ("empty timestamp", pc.is_null(batch.column("t"))),
            ("empty amount", pc.is_null(batch.column("amount"))),
            (
                "zero amount (e.g. an account verification)",
                pc.fill_null(pc.equal(batch.column("amount"), 0), False),
            ),
            ("empty instrument", pc.is_null(batch.column("instrument"))),
        )
        dropped = np.zeros(batch.num_rows, bool)
        for reason, mask in reasons:
            new = mask.to_numpy(zero_copy_only=False) & ~dropped
            if new.any():
                self.excluded[reason] += int(new.sum())
                dropped |= new
        return batch.filter(pa.array(~dropped)) if dropped.any() else batch

    def _timestamps(self, raw: pa.RecordBatch, column: str, offset: int, required: bool = True) -> pa.Array:
        m = self.mapping
        assert m is not None
        shift = self.base.base_utc_offset_h * 3600.0
        values = raw.column(column)
        if pa.types.is_timestamp(values.type):  # a typed Parquet column: no text to parse
            secs = pc.divide(
                values.cast(pa.timestamp("us", tz=values.type.tz)).cast(pa.int64()).cast(pa.float64()), 1e6
            )
            if values.type.tz is None:
                secs = pc.subtract(secs, m.naive_utc_offset_h * 3600.0)
            return pc.add(secs, shift)
        text = pc.utf8_trim_whitespace(values.cast(pa.string()))
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        if m.timestamp_format == "epoch_s":
            try:
                secs = text.cast(pa.float64())
            except pa.ArrowInvalid:
                row, value = _first_bad(text.to_pylist(), float)
                raise PayrouteError(
                    f"{self.path}: column {column!r}, row {offset + row}: {value!r} is not a time in seconds since 1970"
                ) from None
            return pc.add(secs, shift)
        for unit_type, naive in ((pa.timestamp("us", tz="UTC"), False), (pa.timestamp("us"), True)):
            try:
                ts = text.cast(unit_type)
            except pa.ArrowInvalid:
                continue
            secs = pc.divide(ts.cast(pa.int64()).cast(pa.float64()), 1e6)
            if naive:
                secs = pc.subtract(secs, m.naive_utc_offset_h * 3600.0)
            return pc.add(secs, shift)
        values = text.to_pylist()
        out = []
        for i, v in enumerate(values):
            if v is None:
                out.append(None)
                continue
            try:
                stamp = dt.datetime.fromisoformat(v)
            except ValueError:
                raise PayrouteError(
                    f"{self.path}: column {column!r}, row {offset + i + 1}: {v!r} is not an ISO 8601 timestamp "
                    "(e.g. 2026-03-02T14:15:03Z or 2026-03-02 09:15:03-05:00)"
                ) from None
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=dt.timezone(dt.timedelta(hours=m.naive_utc_offset_h)))
            out.append(stamp.timestamp() + shift)
        return pa.array(out, pa.float64())

    def _number(self, raw: pa.RecordBatch, column: str, offset: int) -> pa.Array:
        text = raw.column(column)
        if pa.types.is_string(text.type) or pa.types.is_large_string(text.type):
            text = pc.utf8_trim_whitespace(text)
            text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        try:
            values = text.cast(pa.float64())
        except pa.ArrowInvalid:
            row, value = _first_bad(text.to_pylist(), float)
            raise PayrouteError(
                f"{self.path}: column {column!r}, row {offset + row}: {value!r} is not a number"
            ) from None
        arr = values.to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(~np.isnan(arr) & ((arr < 0) | ~np.isfinite(arr)))
        if len(bad):
            raise PayrouteError(
                f"{self.path}: column {column!r}, row {offset + int(bad[0]) + 1}: {arr[bad[0]]!r} is negative or "
                "not finite; allowed: a finite number >= 0"
            )
        return values

    def _amount(self, raw: pa.RecordBatch, column: str, offset: int) -> pa.Array:
        values = self._number(raw, column, offset)
        if self.mapping is not None and self.mapping.amount_unit == "major":
            values = pc.multiply(values, 100.0)
        arr = values.to_numpy(zero_copy_only=False)
        return pa.array(np.rint(arr), pa.float64(), from_pandas=True).cast(pa.int64())

    def _coded(
        self, raw: pa.RecordBatch, field: str, coded: Coded, offset: int, allowed: tuple[str, ...] | None
    ) -> pa.Array:
        col = pc.utf8_trim_whitespace(raw.column(coded.column).cast(pa.string()))
        if coded.values is not None:
            unique = pc.unique(col).to_pylist()
            unknown = [u for u in unique if u is not None and u not in coded.values and u != ""]
            if unknown:
                row = col.to_pylist().index(unknown[0]) + 1
                raise PayrouteError(
                    f"{self.path}: column {coded.column!r}, row {offset + row}: code {unknown[0]!r} is not in the "
                    f"mapping's {field}.values; known: {sorted(coded.values)[:12]}"
                )
            keys = pa.array(list(coded.values), pa.string())
            mapped = pa.array(list(coded.values.values()), pa.string())
            col = pc.take(mapped, pc.index_in(col, keys))
        elif allowed is not None:
            _refuse_unknown(self.path, coded.column, col, allowed, offset)
        return (
            pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col) if field == "instrument" else col
        )

    def _flag(self, raw: pa.RecordBatch, flag: Flag, offset: int) -> pa.Array:
        col = pc.utf8_lower(pc.utf8_trim_whitespace(raw.column(flag.column).cast(pa.string())))
        true = pa.array([t.lower() for t in flag.yes_codes], pa.string())
        false = pa.array([f.lower() for f in flag.no_codes], pa.string())
        known = pc.or_(pc.is_in(col, true), pc.is_in(col, false))
        bad = np.flatnonzero(~pc.fill_null(known, True).to_numpy(zero_copy_only=False))
        if len(bad):
            raise PayrouteError(
                f"{self.path}: column {flag.column!r}, row {offset + int(bad[0]) + 1}: {col[int(bad[0])].as_py()!r} "
                f"is neither yes ({', '.join(flag.yes_codes)}) nor no ({', '.join(f for f in flag.no_codes if f)})"
            )
        return pc.is_in(col, true)

    def _refuse_unknown_routes(self, column: str, routes: pa.Array, offset: int) -> None:
        allowed = (*self.base.routes, "")
        _refuse_unknown(self.path, column, routes, allowed, offset, what="route of the base scenario")


class _BadRow(Exception):
    """A value that cannot be read, at ``index`` of a batch (turned into a message naming the file's row)."""

    def __init__(self, index: int, column: str, problem: str) -> None:
        super().__init__(problem)
        self.index, self.column, self.problem = index, column, problem

    def message(self, path: Path, row: int) -> str:
        return f"{path}: column {self.column!r}, row {row}: {self.problem}"


_OWN_COLUMNS = {
    "outcome": "state", "fee": "route_cost_cents", "settled_at": "t_settled", "fraud_pattern": "fraud_pattern",
    "merchant_category": "merchant_category",
}  # fmt: skip
_OWN_READ = {"record", "t", "tx_id", "t_arrival", "amount_cents", "kind", "reason"} | {
    _OWN_COLUMNS.get(f, f) for f in OWN_FIELDS
}


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def _is_text(t: pa.DataType) -> bool:
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_dictionary(t)
        or pa.types.is_null(t)
    )


_OWN_TYPES = (
    *((c, "a number", _is_number) for c in ("t", "tx_id", "t_arrival", "amount_cents", "t_settled", "latency_s",
                                            "route_cost_cents")),
    *((c, "text", _is_text) for c in ("record", "instrument", "segment", "state", "route", "network", "reason",
                                      "currency", "urgency", "merchant_category", "fraud_pattern", "kind")),
    *((c, "true/false", lambda t: pa.types.is_boolean(t) or pa.types.is_null(t))
      for c in ("is_fraud", "cross_border", "foreign_card")),
)  # fmt: skip

_OWN_LIGHT = {"record", "t", "tx_id", "t_arrival", "amount_cents", "instrument", "route", "state", "reason"}
_LIGHT_DROP = (
    "currency", "network", "foreign_card", "issuer_country", "cross_border", "segment", "merchant_category",
    "urgency", "fee", "latency_s", "settled_at", "fraud", "fraud_pattern", "chargeback_at", "return_at",
)  # fmt: skip


def troubled_hours(batch: pa.RecordBatch) -> set[tuple[str, int]]:
    """The (route, hour since 1970) in which a route failed an attempt for a technical reason.

    A failure is an attempt whose outcome is ``failed`` on a route, other than for want of liquidity or of an
    eligible route: in payroute's world a degraded or down route (the health process, an incident).
    """
    failed = pc.and_(pc.equal(batch.column("outcome"), "failed"), pc.not_equal(batch.column("route"), ""))
    failed = pc.and_(failed, pc.invert(pc.is_in(pc.fill_null(batch.column("code"), ""), _NOT_TECHNICAL)))
    failed = pc.fill_null(failed, False)
    if not pc.any(failed).as_py():
        return set()
    rows = batch.filter(failed)
    hours = np.floor(rows.column("t").to_numpy(zero_copy_only=False) / 3600.0).astype(np.int64).tolist()
    return set(zip(rows.column("route").to_pylist(), hours, strict=True))


_NOT_TECHNICAL = pa.array(["liquidity", "no_route"], pa.string())


def _own_column(field: str) -> str:
    return _OWN_COLUMNS.get(field, field)


def _normal_batch(cols: dict[str, pa.Array], n: int) -> pa.RecordBatch:
    arrays = []
    for field in NORMAL:
        col = cols.get(field.name)
        if col is None:
            arrays.append(pa.nulls(n, field.type))
        else:
            arrays.append(col.cast(field.type) if col.type != field.type else col)
    return pa.RecordBatch.from_arrays(arrays, schema=NORMAL)


def _first_bad(values: list, parse) -> tuple[int, object]:
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            parse(v)
        except (TypeError, ValueError):
            return i + 1, v
    return 1, values[0] if values else None


def _refuse_unknown(
    path: Path, column: str, values: pa.Array, allowed: tuple[str, ...], offset: int, what: str = "value"
) -> None:
    unique = [u for u in pc.unique(values).to_pylist() if u is not None]
    unknown = [u for u in unique if u not in allowed]
    if unknown:
        row = values.to_pylist().index(unknown[0]) + 1
        shown = ", ".join(a for a in allowed if a)
        raise PayrouteError(
            f"{path}: column {column!r}, row {offset + row}: {unknown[0]!r} is not a known {what}; allowed: {shown}"
        )
