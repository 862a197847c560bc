"""The checks every log reader runs on its rows: no missing values where the schema needs them, and a bad value
refused with its column, how many rows have it, and the first one (its ``tx_id`` and value)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from payroute.errors import PayrouteError


def no_nulls(rows: pa.Table, columns: list[str] | tuple[str, ...], label: str, where: str) -> None:
    """Refuse a missing column, or a null or NaN in one, among ``rows`` (the ``where`` of the message)."""
    for col in columns:
        if col not in rows.column_names:
            raise PayrouteError(f"{label}: missing column {col}, which {where} fill; see docs/log_schema.md")
        arr = rows.column(col)
        nulls = arr.null_count
        if nulls == 0 and pa.types.is_floating(arr.type):
            nulls = pc.sum(pc.is_nan(arr)).as_py() or 0
        if nulls:
            raise PayrouteError(f"{label}: column {col}: {nulls} null or NaN value(s) on {where}")


def bad_rows(
    label: str,
    column: str,
    bad: np.ndarray,
    tx_id: np.ndarray,
    values: np.ndarray,
    problem: str,
    kind: str = "row(s)",
) -> None:
    """Refuse the rows flagged in ``bad``: how many, and the first one's ``tx_id`` and value."""
    if bad.any():
        i = int(np.argmax(bad))
        value = values[i].item() if hasattr(values[i], "item") else values[i]
        raise PayrouteError(
            f"{label}: column {column}: {int(bad.sum())} {kind} where the value {problem} "
            f"(first: tx_id {int(tx_id[i])}, value {value!r})"
        )
