"""Fewer sweeps of the cyclic garbage collector while a world runs: the one hold, counted across the process.

Every payment allocates a few dozen short-lived containers (events, tuples, generator frames) that reference
counting frees at once; with Python's default young-generation threshold of 700 allocations the collector would
still sweep them thousands of times a simulated day, several percent of the run time. While a world runs (a
:meth:`PaymentWorld.run`, or an environment's episode) the threshold is 50,000. The setting is process-wide, so
holds are counted: the first raises it, and when the last is released the previous thresholds come back.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNG_THRESHOLD = 50_000
_state: dict = {"holds": 0, "saved": None}  # holds in this process; the thresholds before the first


class CollectorHold:
    """One claim on the raised young-generation threshold; :meth:`acquire` and :meth:`release` are idempotent."""

    def __init__(self) -> None:
        self.held = False

    def acquire(self) -> None:
        if self.held:
            return
        self.held = True
        if _state["holds"] == 0:
            before = gc.get_threshold()
            _state["saved"] = before
            gc.set_threshold(max(before[0], YOUNG_THRESHOLD), *before[1:])
        _state["holds"] += 1

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        _state["holds"] = max(_state["holds"] - 1, 0)
        if _state["holds"] == 0 and _state["saved"] is not None:
            gc.set_threshold(*_state["saved"])
            _state["saved"] = None


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """A :class:`CollectorHold` for the duration of a ``with`` block."""
    hold = CollectorHold()
    hold.acquire()
    try:
        yield
    finally:
        hold.release()
