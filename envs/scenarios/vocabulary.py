"""The scenario schema's vocabulary: the names a scenario uses (instruments, families, urgencies...), times of
day, and the base of every section model (:class:`Model`). :mod:`payroute.envs.scenarios.schema` re-exports them."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field

from payroute.config_model import ConfigModel

Instrument = Literal["card_credit", "card_debit", "bank_account"]
Corridor = Literal["domestic", "cross_border"]
RailKind = Literal["card", "ach", "wire", "instant", "cross_border"]
Family = Literal["card", "bank", "cross_border"]
Urgency = Literal["standard", "same_day", "instant"]
FraudPattern = Literal["card_testing", "account_takeover", "app_scam", "mule_cashout"]
WhenShort = Literal["queue", "credit", "fail"]
DayRule = Literal["all", "weekdays", "business_days"]

INSTRUMENTS: tuple[str, ...] = ("card_credit", "card_debit", "bank_account")
CORRIDORS: tuple[str, ...] = ("domestic", "cross_border")
FAMILIES: tuple[str, ...] = ("card", "bank", "cross_border")
URGENCIES: tuple[str, ...] = ("standard", "same_day", "instant")
FRAUD_PATTERNS: tuple[str, ...] = ("card_testing", "account_takeover", "app_scam", "mule_cashout")

_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


def hhmm_to_s(value: str) -> int:
    """``"16:45"`` -> seconds after midnight."""
    m = _HHMM.match(value)
    if not m:
        raise ValueError(f"time of day must be 'HH:MM' between 00:00 and 24:00, got {value!r}")
    seconds = int(m.group(1)) * 3600 + int(m.group(2)) * 60
    if seconds > 86400:
        raise ValueError(f"time of day must be at most 24:00, got {value!r}")
    return seconds


TimeOfDay = Annotated[str, Field(pattern=r"^([01]\d|2[0-4]):[0-5]\d$", description="'HH:MM'")]


class Model(ConfigModel):
    """A scenario section: unknown fields refused, frozen, every number finite and within its bounds."""
