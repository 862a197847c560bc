"""The one YAML reader: a config file as a mapping, or a :class:`~payroute.errors.ConfigError` naming the file.

Scenarios, experiments and review configs are all YAML mappings; each loader validates the mapping against its
own pydantic model. What they share is here: reading the file, and a one-line error naming the file when it is
not valid YAML or its top level is not a mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from payroute.errors import ConfigError


def read_yaml_mapping(path: str | Path, *, empty: dict[str, Any] | None = None) -> dict[str, Any]:
    """The mapping at the top of the YAML file ``path``.

    An empty file gives ``empty`` when one is given (a config whose every field has a default), else it is an
    error like any other non-mapping top level.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if data is None and empty is not None:
        return dict(empty)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


__all__ = ["read_yaml_mapping"]
