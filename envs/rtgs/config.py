"""The RTGS liquidity game's configuration: banks, periods, collateral, the action grid, the three cost rates
and where each day's payment demands come from (random, fixed, or a CSV file of period demands).

The game itself is :mod:`payroute.envs.rtgs.game`.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from payroute.envs.scenarios.bounds import Cents, LogSigma, PosCents, Probability
from payroute.envs.scenarios.schema import Model
from payroute.errors import ConfigError, format_validation_error

DEFAULT_GRID: tuple[float, ...] = tuple(i / 10 for i in range(11))
CostRate = Annotated[float, Field(ge=0.0, le=10.0)]
"""A cost per unit of money (per period for delay): at most 10 (1000%)."""
OBSERVATION_NAMES = (
    "posting_stage",
    "period_share",
    "posted",
    "balance",
    "owed",
    "new_requests",
    "received_last_period",
)
OBSERVATION_UNITS: tuple[tuple[str, str], ...] = (
    ("flag", "1 at the morning step (posting), 0 afterwards"),
    ("share", "t / T at the step of period t (0 in the morning)"),
    ("x collateral", "liquidity posted this morning"),
    ("x collateral", "balance available to pay now"),
    ("x collateral", "everything the bank must still pay, this period's requests too"),
    ("x collateral", "requests that arrived this period"),
    ("x collateral", "payments received in the previous period"),
)
"""(unit, meaning) of each entry of :data:`OBSERVATION_NAMES`."""


class RandomDemand(Model):
    """Each period each bank must pay, with probability ``1 - idle_probability``, a lognormal amount with mean
    ``mean_share_of_collateral`` of its collateral to one other bank chosen uniformly."""

    kind: Literal["random"] = "random"
    mean_share_of_collateral: Annotated[float, Field(gt=0.0, le=1.0)] = 0.05
    sigma: LogSigma = 0.5
    idle_probability: Probability = 0.2
    source: str = "assumed"


class FixedDemand(Model):
    """The same demands every day: ``cents[bank][period]``, paid to the other bank (split evenly among the
    other banks when there are more than two)."""

    kind: Literal["fixed"] = "fixed"
    cents: tuple[tuple[Cents, ...], ...]


class CsvDemand(Model):
    """Period demands per bank from a CSV file with columns ``period`` (0-based), ``bank`` (0-based),
    ``amount_cents`` and optionally ``day`` (default 0) and ``to_bank`` (default: split evenly among the
    other banks). Each episode plays one day, chosen by the environment's generator or by
    ``reset(options={"day": d})``."""

    kind: Literal["csv"] = "csv"
    path: Path


class RTGSConfig(Model):
    """The RTGS liquidity game (money in cents; cost rates are per unit of money)."""

    n_banks: Annotated[int, Field(ge=2, le=64)] = 2
    n_periods: Annotated[int, Field(ge=1, le=1000)] = 12
    collateral_cents: PosCents = 100_000_000
    grid: tuple[float, ...] = DEFAULT_GRID
    liquidity_cost_rate: CostRate = 0.1
    delay_cost_rate_per_period: CostRate = 0.02
    borrow_cost_rate: CostRate = 0.5
    demand: RandomDemand | FixedDemand | CsvDemand = Field(default_factory=RandomDemand, discriminator="kind")
    source: str = (
        "assumed: stylised costs with r_c < r_b (docs/calibration.md, Liquidity: Castro et al. 2021)"
    )

    @model_validator(mode="after")
    def _check(self) -> RTGSConfig:
        g = self.grid
        if len(g) < 2 or not all(0.0 <= x <= 1.0 for x in g) or not np.all(np.diff(g) > 0):
            raise ValueError(f"grid must be at least two increasing fractions in [0, 1], got {list(g)}")
        if isinstance(self.demand, FixedDemand):
            shape = (len(self.demand.cents), {len(row) for row in self.demand.cents})
            if shape != (self.n_banks, {self.n_periods}):
                raise ValueError(
                    f"demand.cents must have n_banks={self.n_banks} rows of n_periods={self.n_periods} "
                    f"amounts, got {shape[0]} rows of lengths {sorted(shape[1])}"
                )
        return self


def load_rtgs_config(config: RTGSConfig | Mapping[str, Any] | None = None, **overrides: Any) -> RTGSConfig:
    """An :class:`RTGSConfig` from a model, a mapping and/or keyword overrides; a bad value raises
    :class:`ConfigError` naming the field path, the value and what is allowed."""
    data: dict[str, Any] = config.model_dump() if isinstance(config, RTGSConfig) else dict(config or {})
    data.update(overrides)
    try:
        return RTGSConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error("rtgs config", err)) from None


def read_demand_csv(path: Path, n_banks: int, n_periods: int) -> list[np.ndarray]:
    """Days of demands from a CSV: a list of ``(n_periods, n_banks, n_banks)`` arrays of cents (payer, payee)."""
    if not Path(path).exists():
        raise ConfigError(f"rtgs demand csv not found: {path}")
    days: dict[int, np.ndarray] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"period", "bank", "amount_cents"} - set(reader.fieldnames or ())
        if missing:
            raise ConfigError(f"{path}: missing columns {sorted(missing)}; have {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            try:
                day = int(row.get("day") or 0)
                period, bank, amount = int(row["period"]), int(row["bank"]), int(row["amount_cents"])
                to_bank = int(row["to_bank"]) if row.get("to_bank") not in (None, "") else None
            except ValueError as exc:
                raise ConfigError(f"{path}:{line}: not an integer ({exc})") from None
            if not 0 <= period < n_periods:
                raise ConfigError(f"{path}:{line}: period = {period}: allowed 0..{n_periods - 1}")
            if not 0 <= bank < n_banks:
                raise ConfigError(f"{path}:{line}: bank = {bank}: allowed 0..{n_banks - 1}")
            if to_bank is not None and (not 0 <= to_bank < n_banks or to_bank == bank):
                raise ConfigError(f"{path}:{line}: to_bank = {to_bank}: another bank in 0..{n_banks - 1}")
            if amount < 0:
                raise ConfigError(f"{path}:{line}: amount_cents = {amount}: must be >= 0")
            d = days.setdefault(day, np.zeros((n_periods, n_banks, n_banks), dtype=np.int64))
            if to_bank is None:
                split_evenly(d[period, bank], bank, amount)
            else:
                d[period, bank, to_bank] += amount
    if not days:
        raise ConfigError(f"{path}: no demand rows")
    return [days[k] for k in sorted(days)]


def split_evenly(row: np.ndarray, payer: int, amount: int) -> None:
    """Split ``amount`` cents over every bank but ``payer`` (the first ones get the odd cents)."""
    others = [j for j in range(len(row)) if j != payer]
    share, rest = divmod(amount, len(others))
    for k, j in enumerate(others):
        row[j] += share + (1 if k < rest else 0)


def deterministic_two_period_config(collateral_cents: int = 100_000_000) -> RTGSConfig:
    """The small deterministic case of the module docstring (unique equilibrium: A posts 0.2, B posts 0.7)."""
    c = collateral_cents
    return RTGSConfig(
        n_banks=2,
        n_periods=2,
        collateral_cents=c,
        liquidity_cost_rate=0.1,
        delay_cost_rate_per_period=0.2,
        borrow_cost_rate=0.4,
        demand=FixedDemand(cents=((c * 2 // 10, c * 3 // 10), (c * 5 // 10, c * 4 // 10))),
        source="the deterministic case derived in payroute.envs.rtgs",
    )
