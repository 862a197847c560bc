"""One review check: what was measured, against which threshold, whether it passed, and why, in words."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

PASS, FAIL, NOT_RUN, WARN = "pass", "fail", "not run", "warn"


@dataclass(frozen=True)
class Check:
    """A gate of the review. ``status`` is ``pass``, ``fail``, ``not run`` (not applicable, or no data: never
    a failure) or ``warn`` (found and reported, not a failure under the review config). ``summary`` says in a sentence what was found and, when it failed, why."""

    section: str
    name: str
    status: str
    summary: str
    value: float | None = None
    threshold: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "name": self.name,
            "status": self.status,
            "summary": self.summary,
            "value": _finite(self.value),
            "threshold": _finite(self.threshold),
            "details": self.details,
        }


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def status(ok: bool) -> str:
    return PASS if ok else FAIL
