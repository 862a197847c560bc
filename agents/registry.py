"""Baselines by name: what ``--policy NAME`` and experiment configs refer to."""

from __future__ import annotations

from typing import Any

from payroute.agents.baselines import BASELINES_BY_KIND, DEFAULT_BASELINES
from payroute.errors import PayrouteError


def policy_names(kind: str) -> list[str]:
    return list(BASELINES_BY_KIND[kind])


def make_policy(kind: str, name: str, **kwargs: Any) -> Any:
    """A fresh baseline of ``kind`` by name; a clear error lists the known names otherwise."""
    if kind not in BASELINES_BY_KIND:
        raise PayrouteError(f"unknown decision kind {kind!r}; known: {list(BASELINES_BY_KIND)}")
    table = BASELINES_BY_KIND[kind]
    if name not in table:
        raise PayrouteError(f"unknown {kind} policy {name!r}; available: {', '.join(table)}")
    return table[name](**kwargs)


def bound_policies(**names: str | None) -> dict[str, Any]:
    """Every decision kind bound to a baseline: the defaults, with any kind given by name replaced.

    Pass ``route=None`` (say) to leave that kind to an outside agent.
    """
    out: dict[str, Any] = {}
    for kind, default in DEFAULT_BASELINES.items():
        name = names.pop(kind, default)
        out[kind] = None if name is None else make_policy(kind, name)
    if names:
        raise PayrouteError(f"unknown decision kinds {sorted(names)}; known: {list(DEFAULT_BASELINES)}")
    return out
