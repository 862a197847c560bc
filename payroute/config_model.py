"""The base of every config model: unknown fields refused, frozen, and every number finite.

Scenarios, experiments (sweeps included), review configs and the RTGS game's config all derive from
:class:`ConfigModel`, so ``inf``, ``-inf`` and ``nan`` are refused in every float field, however deeply it is
nested (in a mapping, a list, a tuple), with the field's path. Fields that hold free-form values passed on
elsewhere (``env.kwargs``, ``library_options``, scenario overrides, a sweep's choices) are :data:`FiniteAny`:
the same rule, checked through nested mappings and lists.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict


class ConfigModel(BaseModel):
    """A config section: ``extra="forbid"``, frozen, and no ``inf``/``nan`` in any number."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def non_finite_path(value: Any, path: str = "") -> str | None:
    """The path (``""`` for ``value`` itself, else ``.key`` / ``.0`` ...) of the first non-finite float in
    ``value`` and the mappings and lists nested in it; ``None`` when every number is finite."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = non_finite_path(item, f"{path}.{key}")
        if found is not None:
            return found
    return None


def _finite(value: Any) -> Any:
    found = non_finite_path(value)
    if found is not None:
        where = f" at {found.lstrip('.')}" if found else ""
        raise ValueError(f"numbers must be finite (no inf or nan){where}")
    return value


FiniteAny = Annotated[Any, AfterValidator(_finite)]
"""Any value, with every float in it (nested mappings and lists too) finite."""

__all__ = ["ConfigModel", "FiniteAny", "non_finite_path"]
