"""The mapping file: which column of a flat "one row per attempt" log holds which field, and how to read it.

A flat log (CSV or Parquet) has one row per payment attempt. The mapping names the column of each field and,
for the coded ones (instrument, segment, route, outcome...), how the log's own codes translate into payroute's
vocabulary. Only ``timestamp``, ``amount`` and ``instrument`` are required; a field that is not mapped is not
fitted (its value comes from the base scenario, and the calibrated scenario says so).

See ``docs/calibration_inputs.md`` for every field and its ISO 8583 / ISO 20022 counterpart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

from payroute.config_io import read_yaml_mapping
from payroute.config_model import ConfigModel
from payroute.errors import ConfigError, format_validation_error

OUTCOMES: tuple[str, ...] = ("approved", "declined", "failed", "blocked", "abandoned", "expired")
"""What became of an attempt, in payroute's words (``approved`` is the log's ``settled``)."""

INSTRUMENT_VALUES: tuple[str, ...] = ("card_credit", "card_debit", "bank_account")
URGENCY_VALUES: tuple[str, ...] = ("standard", "same_day", "instant", "")
FRAUD_PATTERN_VALUES: tuple[str, ...] = ("card_testing", "account_takeover", "app_scam", "mule_cashout", "")


class Coded(ConfigModel):
    """A column of codes, and (optionally) what each code means in payroute's vocabulary.

    With ``values`` every code in the column must be a key of it (a code that is not is refused, naming the
    row); without it the column's values are used as they are.
    """

    column: str = Field(min_length=1)
    values: dict[str, str] | None = None


class Flag(ConfigModel):
    """A yes/no column: ``yes_codes`` mean yes, ``no_codes`` no (compared without case); any other code is
    refused, naming its row."""

    column: str = Field(min_length=1)
    yes_codes: tuple[str, ...] = ("true", "1", "yes", "y", "t")
    no_codes: tuple[str, ...] = ("false", "0", "no", "n", "f", "")


def _coded(value: object) -> object:
    return {"column": value} if isinstance(value, str) else value


class Mapping(ConfigModel):
    """Where each field of a flat log is, and how to read it (see docs/calibration_inputs.md)."""

    format: Literal["flat"] = "flat"
    timestamp: str = Field(min_length=1, description="when the attempt arrived (ISO 8583 DE 7 / DE 12)")
    timestamp_format: Literal["iso8601", "epoch_s"] = "iso8601"
    naive_utc_offset_h: Annotated[float, Field(ge=-12.0, le=14.0)] = Field(
        0.0, description="offset from UTC of timestamps that carry none"
    )
    amount: str = Field(min_length=1, description="the amount (ISO 8583 DE 4; pacs.008 IntrBkSttlmAmt)")
    amount_unit: Literal["minor", "major"] = "minor"
    currency: str | None = None
    instrument: Coded
    network: Coded | None = None
    foreign_card: Flag | None = None
    issuer_country: str | None = Field(None, description="derive foreign_card: a country other than home")
    home_country: str = "US"
    cross_border: Flag | None = None
    segment: Coded | None = None
    merchant_category: Coded | None = None
    urgency: Coded | None = None
    route: Coded | None = None
    outcome: Coded | None = None
    fee: str | None = Field(None, description="what the route charged, in amount_unit")
    fee_includes_interchange: bool = Field(
        True,
        description="card fees include interchange and scheme fees (taken off with the base's before fitting)",
    )
    latency_s: str | None = None
    settled_at: str | None = None
    fraud: Flag | None = None
    fraud_pattern: Coded | None = None
    chargeback_at: str | None = None
    return_at: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, data: object) -> object:
        """``segment: payer_type`` is short for ``segment: {column: payer_type}``."""
        if isinstance(data, dict):
            data = dict(data)
            for key in ("instrument", "network", "segment", "merchant_category", "urgency", "route"):
                if key in data:
                    data[key] = _coded(data[key])
            for key in ("outcome", "fraud_pattern", "foreign_card", "cross_border", "fraud"):
                if key in data:
                    data[key] = _coded(data[key])
        return data

    @model_validator(mode="after")
    def _check(self) -> Mapping:
        _check_values("instrument", self.instrument, INSTRUMENT_VALUES)
        _check_values("urgency", self.urgency, URGENCY_VALUES)
        _check_values("outcome", self.outcome, OUTCOMES)
        _check_values("fraud_pattern", self.fraud_pattern, FRAUD_PATTERN_VALUES)
        if self.foreign_card is not None and self.issuer_country is not None:
            raise ValueError("give foreign_card or issuer_country, not both")
        return self

    def columns(self) -> dict[str, str]:
        """Every mapped field and the log column it reads."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, Coded | Flag):
                out[name] = value.column
            elif isinstance(value, str) and name in _COLUMN_FIELDS:
                out[name] = value
        return out


_COLUMN_FIELDS = {
    "timestamp", "amount", "currency", "issuer_country", "fee", "latency_s", "settled_at", "chargeback_at",
    "return_at",
}  # fmt: skip


def _check_values(name: str, coded: Coded | None, allowed: tuple[str, ...]) -> None:
    if coded is None or coded.values is None:
        return
    bad = sorted({v for v in coded.values.values() if v not in allowed})
    if bad:
        raise ValueError(f"{name}.values maps codes to {bad}; allowed: {[a for a in allowed if a]}")


def load_mapping(path: str | Path) -> Mapping:
    """The mapping file at ``path``; a bad field is refused naming it, its value and what is allowed."""
    data = read_yaml_mapping(path)
    try:
        return Mapping.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(f"mapping {str(path)!r}", err, Mapping)) from None
