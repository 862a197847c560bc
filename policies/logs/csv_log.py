"""An event log kept as CSV: read into the Arrow table the Parquet log would give, column types from the schema.

A CSV file has no types, so every column of the event log schema (:data:`~payroute.envs.world.eventlog.LOG_COLUMNS`,
and the response-code and retry columns of :data:`~payroute.envs.world.eventlog.CODE_FIELDS`) is read as its schema type, every observation column (``obs.<feature>``) as float32, and any other column as
pyarrow infers it. An empty field is null in a number or boolean column and the empty string in a text column
(as the Parquet log holds them). The checks of :func:`~payroute.policies.logs.read_logged_decisions` then run on
the table as on a Parquet file.
"""

from __future__ import annotations

import csv
import gzip
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

from payroute.envs.world.eventlog import CODE_FIELDS, LOG_COLUMNS
from payroute.errors import PayrouteError

CSV_SUFFIXES = (".csv", ".csv.gz")


def is_csv_log(source: object) -> bool:
    """Whether ``source`` is a path that names a CSV log (``.csv``, or ``.csv.gz``, compressed)."""
    return isinstance(source, str | Path) and str(source).lower().endswith(CSV_SUFFIXES)


def csv_columns(path: str | Path) -> list[str] | None:
    """The column names in the header of the CSV log at ``path``; ``None`` when it cannot be read."""
    try:
        return next(csv.reader([_first_line(Path(path))]), None)
    except (OSError, UnicodeDecodeError, csv.Error, EOFError):
        return None


def read_csv_log(path: str | Path, float_prefix: str) -> pa.Table:
    """The CSV log at ``path`` as an Arrow table; columns named ``float_prefix...`` are read as float32. A file
    that cannot be read or a value that is not of its column's type raises :class:`PayrouteError` naming the
    file."""
    path = Path(path)
    if not path.is_file():
        raise PayrouteError(f"log file not found: {path}")
    try:
        header = next(csv.reader([_first_line(path)]), None)
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as err:
        raise PayrouteError(f"{path.name} is not a readable CSV file ({err})") from None
    if not header:
        raise PayrouteError(f"{path.name}: an empty CSV file (a log needs a header row)")
    types = {name: typ for name, typ, _unit, _doc in LOG_COLUMNS} | {f.name: f.type for f in CODE_FIELDS}
    column_types = {c: types[c] for c in header if c in types}
    column_types |= {c: pa.float32() for c in header if c.startswith(float_prefix)}
    options = pa_csv.ConvertOptions(column_types=column_types, strings_can_be_null=False)
    try:
        return pa_csv.read_csv(path, convert_options=options)
    except (pa.ArrowInvalid, OSError) as err:
        said = " ".join(str(err).split())[:300]
        found = re.search(r"CSV column #(\d+)", said)
        if found is not None and int(found.group(1)) < len(header):  # name the column, not its number
            said = said.replace(found.group(0), f"column {header[int(found.group(1))]}")
        raise PayrouteError(f"{path.name}: could not read as a CSV log ({said})") from None


def _first_line(path: Path) -> str:
    if path.name.lower().endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            return f.readline()
    with path.open(encoding="utf-8", newline="") as f:
        return f.readline()


__all__ = ["CSV_SUFFIXES", "csv_columns", "is_csv_log", "read_csv_log"]
