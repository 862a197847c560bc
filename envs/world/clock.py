"""Calendar time for the payment world.

The SimPy clock counts seconds from midnight of the scenario's ``start_date`` on the base time zone
(US Eastern by default; fixed UTC offsets, daylight saving ignored). The calendar turns that number
into what a payments operations team cares about: the weekday, whether banks are open (business day,
Federal Reserve holidays), the local time at a rail in another time zone, and the next time a rail opens
or a batch window closes.
"""

from __future__ import annotations

import datetime as dt
import math
from functools import lru_cache

from payroute.errors import PayrouteError

DAY_S = 86_400
HOUR_S = 3_600
YEAR_S = 365 * DAY_S


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The n-th ``weekday`` (Mon=0) of a month; n = -1 is the last one."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = dt.date(year, month + 1, 1) - dt.timedelta(days=1) if month < 12 else dt.date(year, 12, 31)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


@lru_cache(maxsize=64)
def us_fed_holidays(year: int) -> frozenset[dt.date]:
    """Federal Reserve System holidays of a year.

    A holiday on a Sunday is observed on the Monday after; one on a Saturday is not moved
    (the Reserve Banks stay open on the Friday before), which is the Fed's published rule.
    """
    fixed = [
        dt.date(year, 1, 1),
        dt.date(year, 6, 19),
        dt.date(year, 7, 4),
        dt.date(year, 11, 11),
        dt.date(year, 12, 25),
    ]
    floating = [
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _nth_weekday(year, 5, 0, -1),  # Memorial Day
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 10, 0, 2),  # Columbus Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving Day
    ]
    observed = [d + dt.timedelta(days=1) if d.weekday() == 6 else d for d in fixed if d.weekday() != 5]
    return frozenset(observed + floating)


class Calendar:
    """Maps simulation seconds to dates, weekdays, business days and rail-local times."""

    def __init__(self, start_date: dt.date, base_utc_offset_h: float = -5.0, extra_holidays=()) -> None:
        self.start_date = start_date
        self.base_utc_offset_h = base_utc_offset_h
        self._extra = frozenset(extra_holidays)
        self._business: dict[int, bool] = {}

    # ---------------------------------------------------------------- dates
    def date(self, day_index: int) -> dt.date:
        return self.start_date + dt.timedelta(days=day_index)

    def day_index(self, t: float) -> int:
        return int(t // DAY_S)

    def weekday(self, t: float) -> int:
        """Monday = 0 ... Sunday = 6, on the base time zone."""
        return (self.start_date.weekday() + int(t // DAY_S)) % 7

    def hour(self, t: float) -> float:
        """Hour of day, 0 <= h < 24, on the base time zone."""
        return (t % DAY_S) / HOUR_S

    def is_holiday(self, day_index: int) -> bool:
        d = self.date(day_index)
        return d in us_fed_holidays(d.year) or d in self._extra

    def is_business_day(self, day_index: int) -> bool:
        """A weekday that is not a Federal Reserve holiday (or a scenario's extra holiday)."""
        cached = self._business.get(day_index)
        if cached is None:
            d = self.date(day_index)
            cached = d.weekday() < 5 and not self.is_holiday(day_index)
            self._business[day_index] = cached
        return cached

    def day_matches(self, day_index: int, rule: str) -> bool:
        if rule == "all":
            return True
        if rule == "weekdays":
            return self.date(day_index).weekday() < 5
        return self.is_business_day(day_index)

    def next_business_day(self, day_index: int, after: int = 1) -> int:
        """The ``after``-th business day strictly after ``day_index``."""
        d = day_index
        for _ in range(after):
            d += 1
            while not self.is_business_day(d):
                d += 1
        return d

    # ---------------------------------------------------------------- rail-local time
    def shift_s(self, utc_offset_h: float) -> float:
        """Seconds to add to base time to get a rail's local time."""
        return (utc_offset_h - self.base_utc_offset_h) * HOUR_S

    def next_open(self, t: float, open_s: int, close_s: int, rule: str, shift: float) -> tuple[float, float]:
        """The open interval ``[start, end)`` (base seconds) that contains ``t`` or is the next one after it."""
        local = t + shift
        day = math.floor(local / DAY_S)
        for d in range(day, day + 30):
            if not self.day_matches(d, rule):
                continue
            start = d * DAY_S + open_s - shift
            end = d * DAY_S + close_s - shift
            if t < end:
                return max(start, t) if start <= t else start, end
        raise PayrouteError(
            f"a route open on {rule} days has no opening in the 30 days from {self.date(day)}: the scenario's "
            "extra_holidays (with weekends) close it for a month; allowed: at most 29 closed days in a row"
        )

    def at(self, day_index: int, seconds_of_day: int, shift: float = 0.0) -> float:
        """Base seconds of a rail-local day and time of day."""
        return day_index * DAY_S + seconds_of_day - shift
