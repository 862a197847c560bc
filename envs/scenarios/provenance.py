"""Where a calibrated scenario's values came from: the optional ``provenance:`` section of a scenario.

``payroute calibrate`` writes it: the log it read (name and sha256), the base scenario, the dates and rows, the
rows it left out by reason, and for each value it fitted or kept from the base (by dotted field path) its
status, the rows it used, its 95% interval and a note. The world never reads it: a scenario with and without
it simulates the same numbers, and it is left out of the scenario's dump (and so of every hash of one).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from payroute.config_model import ConfigModel, FiniteAny

Count = Annotated[int, Field(ge=0)]


class FittedValue(ConfigModel):
    """One value of a calibrated scenario: fitted from the log, scaled from the base, or kept from the base."""

    status: Literal["fitted", "scaled", "base"]
    rows: Count = 0
    value: FiniteAny = None
    interval: tuple[float, float] | None = None
    note: str = ""


class Provenance(ConfigModel):
    """What a calibrated scenario was fitted from (ignored by the simulation)."""

    log: str
    log_sha256: str = ""
    mapping: str | None = None
    base: str
    date_from: dt.date
    date_to: dt.date
    rows_read: Count
    rows_used: Count
    rows_left_out: dict[str, Count] = {}
    prior_strength: Annotated[float, Field(ge=0.0)] = 0.0
    failure_hours: dict[str, Count] = Field(
        {}, description="per route, the hours with technical failures: left out of its approval and latency"
    )
    failure_hour_attempts: Count = 0
    values: dict[str, FittedValue] = {}
    not_identified: dict[str, str] = {}
    response_codes: dict[str, dict[str, float]] = {}
