"""The event log: every decision and outcome, streamed to Parquet with a stable schema.

One table, one row per record; the ``record`` column says which kind of row it is and which columns it fills:

* ``transaction`` — one row per transaction when it reaches its terminal state: its attributes, the hidden
  truth, the risk and route decisions with the behaviour policy's propensity and the eligible-route mask,
  the terminal state and the money it made or cost (reward components).
* ``post_settlement`` — a chargeback or return that arrived after a transaction settled (``tx_id`` joins it
  to its transaction row), with the loss it caused.
* ``account`` — money that moved on a settlement account without a transaction: opening balances, inflows,
  treasury transfers, liquidity costs.
* ``decision`` — a period decision (``price``, ``treasury``, ``fraud``): the action as JSON and its propensity.

The column list, types and meanings are :data:`LOG_COLUMNS`; :data:`LOG_SCHEMA_VERSION` changes whenever
they do. Off-policy evaluation reads ``transaction`` rows.

Response codes and retries add :data:`CODE_FIELDS` (a world with retries enabled adds them to its log before
the first row; any log can be made with them as ``extra_fields``): on ``transaction`` rows the number of
attempts, the last answer's reason and merchant advice, the product of the routing decisions' propensities and
the retry fees and fines; and a fifth kind of row, ``attempt`` (retries enabled): one per route answer, with its
route, the propensity of the decision that sent it, its attempt number, code, advice and how it was sent; and a
sixth, ``retry`` (retries enabled): one per retry decision, after attempt ``attempt`` was softly declined, with
the router's answer (``retry_action``: cascade, later, step_up or give_up; ``route_index`` the route it sends the
payment to, -1 for give_up; ``retry_delay_s``), its propensity (``route_propensity``), the eligible routes it
chose from (``eligible_mask``) and the decline it answered (``response_code``, ``merchant_advice``). A payment's
decisions are its ``attempt`` row number 1 and its ``retry`` rows, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from payroute.files import AtomicFile

LOG_SCHEMA_VERSION = "1"

# (name, arrow type, unit or values, meaning)
LOG_COLUMNS: list[tuple[str, pa.DataType, str, str]] = [
    ("record", pa.string(), "transaction|post_settlement|account|decision", "which kind of row this is"),
    ("t", pa.float64(), "s", "simulation time of the record (terminal time for transactions)"),
    ("tx_id", pa.int64(), "", "transaction id, in arrival order"),
    ("t_arrival", pa.float64(), "s", "when the transaction arrived"),
    ("amount_cents", pa.int64(), "cents", "payment amount (or account movement)"),
    ("currency", pa.string(), "ISO 4217", "currency"),
    ("cross_border", pa.bool_(), "", "payment leaves the US"),
    ("segment", pa.string(), "", "payer segment"),
    ("merchant_category", pa.string(), "", "merchant category"),
    ("instrument", pa.string(), "card_credit|card_debit|bank_account", "payment instrument"),
    ("network", pa.string(), "", "card network (empty for bank payments)"),
    ("foreign_card", pa.bool_(), "", "card issued outside the US"),
    ("urgency", pa.string(), "standard|same_day|instant", "payout speed asked for (empty for cards)"),
    ("deadline_t", pa.float64(), "s", "time by which the customer expects the payment done"),
    (
        "is_fraud",
        pa.bool_(),
        "",
        "hidden truth: fraudulent (in a real log: reported fraud, known once the losses are; the fraud-aware OPE reward model reads it)",
    ),
    ("fraud_pattern", pa.string(), "", "hidden truth: the fraud pattern (empty if genuine)"),
    ("risk_score", pa.float64(), "0..1", "the defender's noisy risk score"),
    ("price_cents", pa.int64(), "cents", "what the PSP quoted the customer"),
    ("risk_action", pa.string(), "allow|challenge|block", "the risk decision"),
    ("risk_propensity", pa.float64(), "0..1", "behaviour policy's probability of the risk action"),
    ("route", pa.string(), "", "the chosen route (empty if none was chosen)"),
    ("route_index", pa.int64(), "", "index of the chosen route in the scenario's route order (-1 if none)"),
    ("route_propensity", pa.float64(), "0..1", "behaviour policy's probability of the chosen route"),
    ("eligible_mask", pa.int64(), "bitmask", "bit i set when route i was eligible at decision time"),
    ("agents", pa.string(), "", "comma-separated ids of the agents whose decisions this transaction carries"),
    ("state", pa.string(), "settled|declined|failed|expired|blocked|abandoned", "terminal state"),
    ("reason", pa.string(), "", "why it ended so (e.g. route_down, no_route, liquidity)"),
    ("t_settled", pa.float64(), "s", "when funds were final (-1 if never)"),
    ("latency_s", pa.float64(), "s", "processing time on the route"),
    ("revenue_cents", pa.int64(), "cents", "fee revenue"),
    ("route_cost_cents", pa.int64(), "cents", "what the route charged"),
    ("fraud_loss_cents", pa.int64(), "cents", "loss booked on this row (post_settlement rows)"),
    ("sla_penalty_cents", pa.int64(), "cents", "penalty for missing the deadline"),
    ("liquidity_cost_cents", pa.int64(), "cents", "intraday credit paid for this payment"),
    ("challenge_cost_cents", pa.int64(), "cents", "step-up authentication cost"),
    ("account", pa.string(), "", "settlement account (account rows)"),
    (
        "kind",
        pa.string(),
        "",
        "sub-kind: chargeback/return/recovered, opening/inflow/transfer_out/..., or decision kind",
    ),
    ("agent", pa.string(), "", "agent id of a decision row"),
    ("action_json", pa.string(), "JSON", "a period decision's action"),
    ("propensity", pa.float64(), "0..1", "a period decision's propensity"),
]
LOG_COLUMN_NAMES = [c[0] for c in LOG_COLUMNS]
LOG_SCHEMA = pa.schema(
    [
        pa.field(name, typ, nullable=True, metadata={"unit": unit, "doc": doc})
        for name, typ, unit, doc in LOG_COLUMNS
    ],
    metadata={"payroute.log_schema_version": LOG_SCHEMA_VERSION},
)


CODE_FIELDS: tuple[pa.Field, ...] = tuple(
    pa.field(name, typ, nullable=True, metadata={"unit": unit, "doc": doc})
    for name, typ, unit, doc in (
        ("attempt", pa.int64(), "", "attempt rows: the attempt's number (1 = the first routing decision)"),
        ("attempts", pa.int64(), "", "transaction rows: attempts made (0 if never routed)"),
        (
            "response_code",
            pa.string(),
            "",
            "the route's reason code (approved, insufficient_funds, R01, ...)",
        ),
        ("merchant_advice", pa.string(), "01|02|03", "Mastercard merchant advice code (empty if none)"),
        (
            "retry_action",
            pa.string(),
            "first|cascade|later|step_up|give_up",
            "attempt rows: how the attempt was sent; retry rows: the router's decision",
        ),
        ("retry_delay_s", pa.float64(), "s", "retry rows: the delay a 'later' retry waits (0 otherwise)"),
        ("sequence_propensity", pa.float64(), "0..1", "product of the propensities of the routing decisions"),
        ("retry_fee_cents", pa.int64(), "cents", "fees of the attempts after the first"),
        ("network_fine_cents", pa.int64(), "cents", "card network fines for excessive or forbidden retries"),
    )
)
"""Columns of the response codes and attempts (see the module docstring)."""

GROUP_ROWS = 65_536  # rows per Parquet row group (the last one of a file fewer)
# values (rows x columns) buffered before they become an Arrow table: 16,384 rows of the plain schema
FLUSH_CELLS = 16_384 * len(LOG_COLUMNS)


class EventLog:
    """Buffers rows column-wise and streams them to a Parquet file in row groups (memory stays flat).

    ``extra_fields`` appends columns after :data:`LOG_COLUMNS`, filled from the row dicts like them; rows that
    do not fill them hold nulls. ``block_fields`` appends columns that a subclass builds for all the buffered
    rows at once in :meth:`_flush_columns` (``payroute simulate`` adds the routing observation this way: one float32 vector
    per row, not a Python object per value).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        flush_rows: int | None = None,
        keep_in_memory: bool = False,
        extra_fields: Sequence[pa.Field] = (),
        block_fields: Sequence[pa.Field] = (),
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.keep_in_memory = keep_in_memory or self.path is None
        added = [*extra_fields, *block_fields]
        clash = sorted({f.name for f in added} & set(LOG_COLUMN_NAMES))
        if clash:
            raise ValueError(f"extra log columns {clash} clash with the event log schema")
        self._extra_fields = list(extra_fields)
        self._block_fields = list(block_fields)
        self._set_schema()
        # a buffer holds about FLUSH_CELLS values however wide the rows are: the row-dict ones are Python objects
        # (about 32 bytes each), and the buffer sets the peak memory (3 days logged with the routing observation: 948 MB at 65,536 rows a
        # buffer, 461 MB at 4,228)
        self.flush_rows = (
            flush_rows if flush_rows is not None else max(1024, FLUSH_CELLS // len(self.column_names))
        )
        self._n = 0
        # Parquet row groups are bigger than a buffer's worth: the writer keeps every column chunk's metadata
        # (about 0.9 KB each) until it closes, so 4,000-row groups of 155 columns grew by 275 MB a month of days
        self.group_rows = max(self.flush_rows, GROUP_ROWS)
        self._unwritten: list[pa.Table] = []  # tables not yet written, less than group_rows rows together
        self._unwritten_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._file: AtomicFile | None = None
        self._tables: list[pa.Table] = []
        self.rows_written = 0

    def _set_schema(self) -> None:
        added = [*self._extra_fields, *self._block_fields]
        self.schema = pa.schema([*LOG_SCHEMA, *added], metadata=LOG_SCHEMA.metadata) if added else LOG_SCHEMA
        self.column_names = list(self.schema.names)
        # the columns filled from the row dicts passed to append()
        self._row_names = [*LOG_COLUMN_NAMES, *(f.name for f in self._extra_fields)]
        self._cols: dict[str, list] = {name: [] for name in self._row_names}

    def add_fields(self, fields: Sequence[pa.Field]) -> None:
        """Add row-dict columns (those not there yet) before the first row is appended."""
        new = [f for f in fields if f.name not in self.column_names]
        if not new:
            return
        if self._n or self.rows_written:
            raise ValueError("columns can be added to an event log only before its first row")
        self._extra_fields += new
        self._set_schema()

    def append(self, row: dict) -> None:
        cols = self._cols
        for name in self._row_names:
            cols[name].append(row.get(name))
        self._n += 1
        if self._n >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        """Buffered rows -> an Arrow table; written out once a row group's worth has gathered."""
        if self._n:
            data: dict[str, Any] = {**self._cols, **self._flush_columns()}
            table = pa.Table.from_pydict({name: data[name] for name in self.column_names}, schema=self.schema)
            self._cols = {name: [] for name in self._row_names}
            self.rows_written += self._n
            self._n = 0
            if self.path is not None:
                self._unwritten.append(table)
                self._unwritten_rows += table.num_rows
            if self.keep_in_memory:
                self._tables.append(table)
        if self._unwritten_rows >= self.group_rows:
            self._write()

    def _write(self) -> None:
        if not self._unwritten:
            return
        if self._writer is None:
            self._file = AtomicFile(self.path)
            self._writer = pq.ParquetWriter(self._file.partial, self.schema, compression="zstd")
        self._writer.write_table(pa.concat_tables(self._unwritten), row_group_size=self._unwritten_rows)
        self._unwritten, self._unwritten_rows = [], 0

    def _flush_columns(self) -> dict[str, Any]:
        """Columns of the buffered rows not filled from row dicts (none here); called once per flush."""
        return {}

    def close(self) -> None:
        """Write what is buffered and put the complete file in place: until then, the file at ``path`` is the
        one that was there before (:mod:`payroute.files`), so a run killed while logging tears nothing."""
        self.flush()
        self._write()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._file.commit()

    def discard(self) -> None:
        """Drop what was written (a run that failed): the file at ``path`` stays as it was."""
        if self._writer is not None:
            try:
                self._writer.close()
            finally:
                self._writer = None
                self._file.discard()
        self._unwritten, self._unwritten_rows = [], 0

    def table(self) -> pa.Table:
        """Everything logged so far (only when kept in memory)."""
        self.flush()
        if not self.keep_in_memory:
            raise RuntimeError("this log streams to disk only; read it with read_log(path)")
        if not self._tables:
            return self.schema.empty_table()
        return pa.concat_tables(self._tables)


def read_log(path: str | Path) -> pa.Table:
    return pq.read_table(path)
