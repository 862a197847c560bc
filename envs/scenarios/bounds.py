"""The physical bounds of a scenario's numbers, as annotated types the schema's fields use.

Every float is finite (:class:`~payroute.config_model.ConfigModel`); on top of that each kind of quantity has
the range in which it means something, so that a value that is a valid float but nonsense (a latency of 10^20
seconds, a UTC offset of 40 hours, a logit offset of 1000, 10^15 transactions a day) is refused at load with
its field path instead of giving silently wrong numbers or exhausting memory. The caps are far above any real
payment business and above every shipped scenario.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field

DAY_S = 86_400
MAX_CENTS = 10**15
"""Balances, limits and fees: $10 trillion."""
MAX_AMOUNT_CENTS = 10**12
"""One payment: $10 billion (Fedwire's largest single transfer is just under $10 billion)."""
MAX_TRANSACTIONS_PER_DAY = 10_000_000
"""Genuine payments a day, ``demand.transactions_per_day * volume_scale``."""
MAX_DAYS = 366
"""The longest run, and the latest incident day, a scenario plans for."""

NonNegInt = Annotated[int, Field(ge=0)]
PosInt = Annotated[int, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]

Cents = Annotated[int, Field(ge=0, le=MAX_CENTS)]
PosCents = Annotated[int, Field(gt=0, le=MAX_CENTS)]
AmountCents = Annotated[int, Field(gt=0, le=MAX_AMOUNT_CENTS)]
Count = Annotated[int, Field(ge=0, le=10**12)]
Bps = Annotated[float, Field(ge=0.0, le=10_000.0)]
RateBps = Annotated[float, Field(ge=0.0, le=10_000.0)]
Weight = Annotated[float, Field(ge=0.0, le=1e6)]
LogitOffset = Annotated[float, Field(ge=-10.0, le=10.0)]
UtcOffsetH = Annotated[float, Field(ge=-12.0, le=14.0)]
LogSigma = Annotated[float, Field(ge=0.0, le=3.0)]
Multiplier = Annotated[float, Field(gt=0.0, le=100.0)]
Seconds = Annotated[int, Field(ge=0, le=30 * DAY_S)]
PosSeconds = Annotated[int, Field(gt=0, le=30 * DAY_S)]
PeriodS = Annotated[int, Field(gt=0, le=30 * DAY_S)]
DeadlineS = Annotated[int, Field(gt=0, le=90 * DAY_S)]
Days = Annotated[int, Field(ge=0, le=2 * MAX_DAYS)]
PosHours = Annotated[float, Field(gt=0.0, le=100_000.0)]
PosMinutes = Annotated[float, Field(gt=0.0, le=MAX_DAYS * 24 * 60)]
PerDay = Annotated[float, Field(ge=0.0, le=1_000_000.0)]
PerHour = Annotated[float, Field(ge=0.0, le=100_000.0)]
Separability = Annotated[float, Field(ge=0.0, le=6.0)]
LatencyS = Annotated[float, Field(gt=0.0, le=float(DAY_S))]
LatencySigma = Annotated[float, Field(ge=0.0, le=2.0)]
StartDate = Annotated[dt.date, Field(ge=dt.date(1970, 1, 1), le=dt.date(2199, 12, 31))]

__all__ = [
    "MAX_AMOUNT_CENTS", "MAX_CENTS", "MAX_DAYS", "MAX_TRANSACTIONS_PER_DAY", "AmountCents", "Bps", "Cents",
    "Count", "Days", "LatencyS", "LatencySigma", "StartDate", "DeadlineS", "LogSigma", "LogitOffset", "Multiplier", "NonNegFloat",
    "NonNegInt", "PerDay", "PerHour", "PeriodS", "PosHours", "PosMinutes", "PosCents", "PosInt", "PosSeconds", "Probability", "RateBps",
    "Seconds", "Separability", "UtcOffsetH", "Weight",
]  # fmt: skip
