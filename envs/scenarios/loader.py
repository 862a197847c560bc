"""Load scenarios by name or path; variants are YAML overrides of a base scenario.

A variant file has ``name``, ``base`` (a shipped scenario name or a path), ``description`` and
``overrides``: a nested mapping merged into the base (mappings merge key by key, anything else replaces).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from payroute.config_io import read_yaml_mapping
from payroute.envs.scenarios.schema import Scenario
from payroute.errors import ConfigError, PayrouteError, format_validation_error

SCENARIO_DIR = Path(__file__).parent


def available_scenarios() -> list[str]:
    """Names of the shipped scenarios, ``default`` first."""
    names = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
    return sorted(names, key=lambda n: (n != "default", n))


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``overrides`` merged in: mappings merge recursively, other values replace."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise PayrouteError(f"scenario file not found: {path}")
        return path
    candidate = SCENARIO_DIR / f"{name_or_path}.yaml"
    if not candidate.exists():
        raise PayrouteError(
            f"unknown scenario {str(name_or_path)!r}; available: {', '.join(available_scenarios())} "
            "(or pass a path to a .yaml file)"
        )
    return candidate


def resolve_scenario_dict(name_or_path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The scenario as a plain mapping, with any ``base`` chain merged in."""
    path = _resolve_path(name_or_path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: scenario 'base' chain loops back on itself")
    data = read_yaml_mapping(path)
    if "base" not in data:
        return data
    unknown = sorted(set(data) - {"name", "base", "description", "overrides"})
    if unknown:
        raise ConfigError(
            f"{path}: a variant takes only name, base, description, overrides; unknown: {unknown}"
        )
    base_ref, overrides = data["base"], data.get("overrides") or {}
    if not isinstance(base_ref, str) or not base_ref:
        raise ConfigError(
            f"{path}: base = {base_ref!r}: allowed: a shipped scenario name "
            f"({', '.join(available_scenarios())}) or a path to a .yaml file"
        )
    if not isinstance(overrides, dict):
        raise ConfigError(f"{path}: overrides = {overrides!r}: allowed: a mapping of the fields to change")
    if Path(base_ref).suffix in (".yaml", ".yml") and not Path(base_ref).is_absolute():
        beside = path.parent / base_ref  # a base named by a relative path is found next to the variant
        if beside.exists():
            base_ref = str(beside)
    base = resolve_scenario_dict(base_ref, (*_seen, path))
    merged = deep_merge(base, overrides)
    merged["name"] = data.get("name", path.stem)
    if "description" in data:
        merged["description"] = data["description"]
    return merged


def load_scenario(
    name_or_path: str | Path | Scenario = "default", overrides: dict[str, Any] | None = None
) -> Scenario:
    """Load a shipped scenario by name (``"processor_outage"``) or a YAML path, with optional overrides.

    Raises :class:`ConfigError` naming each bad field path, its value and what is allowed.
    """
    if isinstance(name_or_path, Scenario):
        if not overrides:
            return name_or_path
        data = name_or_path.model_dump(mode="json")
        source = name_or_path.name
    else:
        data = resolve_scenario_dict(name_or_path)
        source = f"scenario {str(name_or_path)!r}"
    if overrides:
        data = deep_merge(data, overrides)
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(source, err, Scenario)) from None


def scenario_summary(name: str) -> str:
    """One line about a shipped scenario."""
    return str(resolve_scenario_dict(name).get("description", ""))
