"""The ``sweep`` section of an experiment: a Ray Tune search space (docs/experiments.md).

Kept apart from :mod:`payroute.experiments.schema` (which holds every other section and re-exports these) so
that module stays short.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from payroute.config_model import ConfigModel, FiniteAny
from payroute.vocabulary import KPI_NAMES

PosFloat = Annotated[float, Field(gt=0.0)]


class Distribution(ConfigModel):
    """One dimension of a sweep: exactly one of the keys."""

    choice: list[FiniteAny] | None = Field(None, min_length=1)
    uniform: tuple[float, float] | None = Field(None, description="[low, high], low < high")
    loguniform: tuple[PosFloat, PosFloat] | None = Field(None, description="[low, high], 0 < low < high")
    randint: tuple[int, int] | None = Field(None, description="[low, high] inclusive, low <= high")

    @model_validator(mode="after")
    def _one(self) -> Distribution:
        given = [k for k in ("choice", "uniform", "loguniform", "randint") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of choice, uniform, loguniform, randint (got {given or 'none'})"
            )
        for key in ("uniform", "loguniform", "randint"):
            bounds = getattr(self, key)
            if bounds is not None and (
                bounds[0] > bounds[1] or (key != "randint" and bounds[0] == bounds[1])
            ):
                need = "must not exceed" if key == "randint" else "must be below"
                raise ValueError(f"{key} = {list(bounds)}: the low bound {need} the high one")
        return self

    def candidates(self) -> list[Any]:
        """The values a trial can take that bound the rest: every choice, or both ends of a range."""
        if self.choice is not None:
            return list(self.choice)
        return list(self.uniform or self.loguniform or self.randint)  # type: ignore[arg-type]


class SweepSection(ConfigModel):
    """A Ray Tune search: ``space`` maps dotted config paths to distributions."""

    space: dict[str, Distribution] = Field(min_length=1)
    num_samples: Annotated[int, Field(gt=0, le=100_000)] = 4
    max_concurrent: Annotated[int, Field(gt=0, le=4096)] = 1
    metric: Literal[KPI_NAMES + ("episode_return_mean",)] = "margin_per_tx_usd"  # type: ignore[valid-type]
    mode: Literal["max", "min"] = "max"


__all__ = ["Distribution", "SweepSection"]
