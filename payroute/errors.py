"""Errors a user can fix. The CLI prints them in a line or two and exits with code 2, no traceback."""

from __future__ import annotations

from pydantic import ValidationError


class PayrouteError(Exception):
    """Bad input a user can fix: a config field, a scenario or policy name, a file."""


class ConfigError(PayrouteError):
    """A config file failed validation; the message names each field path, bad value and what is allowed."""


def _fmt_value(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_validation_error(source: str, err: ValidationError) -> str:
    """One line per problem: ``source: field.path = value: what is allowed``."""
    lines = [f"{source}: {err.error_count()} problem(s)"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        elif e["type"] == "missing":
            lines.append(f"  {path}: missing (required)")
            continue
        if e["type"] == "literal_error" and "expected" in e.get("ctx", {}):
            msg = f"allowed: {e['ctx']['expected']}"
        lines.append(f"  {path} = {_fmt_value(e.get('input'))}: {msg}")
    return "\n".join(lines)
