"""Errors a user can fix. The CLI prints them in a line or two and exits with code 2, no traceback."""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError


class PayrouteError(Exception):
    """Bad input a user can fix: a config field, a scenario or policy name, a file."""


class ConfigError(PayrouteError):
    """A config file failed validation; the message names each field path, bad value and what is allowed."""


def _fmt_value(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unwrap(tp: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` -> ``X``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            rest = [a for a in get_args(tp) if a is not type(None)]
            if len(rest) != 1:
                return tp
            tp = rest[0]
        else:
            return tp


def fields_at(model: type[BaseModel] | None, loc: tuple) -> list[str] | None:
    """The field names the model nested at ``loc`` (field names, mapping keys, list indices) accepts."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) in (tuple, list):
            tp = get_args(tp)[0]
        else:
            return None
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return None


def format_validation_error(source: str, err: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line per problem: ``source: field.path = value: what is allowed``.

    Pass the validated ``model`` so that an unknown field's line lists the fields allowed in its place.
    """
    lines = [f"{source}: {err.error_count()} problem(s)"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            allowed = fields_at(model, tuple(e["loc"][:-1]))
            msg = f"unknown field; allowed: {', '.join(allowed)}" if allowed else "unknown field"
        elif e["type"] == "missing":
            lines.append(f"  {path}: missing (required)")
            continue
        if e["type"] == "literal_error" and "expected" in e.get("ctx", {}):
            msg = f"allowed: {e['ctx']['expected']}"
        lines.append(f"  {path} = {_fmt_value(e.get('input'))}: {msg}")
    return "\n".join(lines)
