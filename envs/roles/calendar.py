"""The calendar as the period roles see it: time of day, day of week, business day, share of the episode gone.

Two encodings, each kept as its role has always seen it: :data:`CALENDAR_FEATURES` (weekday one-hot; the pricer
and the treasurer) and :data:`FRAUDSTER_CALENDAR` (weekday / 6; the fraudster).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from payroute.envs.features import Feature
from payroute.envs.world.clock import DAY_S

if TYPE_CHECKING:
    from payroute.envs.world.world import PaymentWorld

CALENDAR_FEATURES = (
    "hour_sin",
    "hour_cos",
    *(f"weekday_{d}" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")),
    "business_day",
    "episode_progress",
)
CALENDAR_LOW = (-1.0, -1.0) + (0.0,) * (len(CALENDAR_FEATURES) - 2)
CALENDAR_HIGH = (1.0,) * len(CALENDAR_FEATURES)
CALENDAR_UNITS: dict[str, tuple[str, str]] = {
    "hour_sin": ("", "sin(2 pi hour/24)"),
    "hour_cos": ("", "cos(2 pi hour/24)"),
    **{name: ("one-hot", "day of week") for name in CALENDAR_FEATURES[2:9]},
    "business_day": ("flag", "1 on a US business day"),
    "episode_progress": ("share", "time / days of arrivals, clipped to 1"),
}
"""Calendar feature -> (unit, scaling)."""


def calendar_features(world: PaymentWorld) -> np.ndarray:
    """Hour of day as sin/cos, weekday one-hot, business day flag, share of the episode's days gone."""
    t = world.now
    angle = 2.0 * math.pi * (t % DAY_S) / DAY_S
    out = np.zeros(len(CALENDAR_FEATURES))
    out[0], out[1] = math.sin(angle), math.cos(angle)
    out[2 + world.calendar.weekday(t)] = 1.0
    out[9] = float(world.calendar.is_business_day(int(t // DAY_S)))
    out[10] = min(t / world.horizon_s, 1.0)
    return out


FRAUDSTER_CALENDAR = (
    Feature("hour_sin", "", "sin(2 pi hour/24)", -1.0, 1.0),
    Feature("hour_cos", "", "cos(2 pi hour/24)", -1.0, 1.0),
    Feature("weekday", "Mon=0..Sun=6", "/ 6", 0.0, 1.0),
    Feature("business_day", "flag", "", 0.0, 1.0),
    Feature("episode_progress", "share", "time / days of arrivals, clipped to 1", 0.0, 1.0),
)


def write_fraudster_calendar(world: PaymentWorld, out: np.ndarray, k: int) -> None:
    """Write :data:`FRAUDSTER_CALENDAR` into ``out[k : k + 5]``."""
    now = world.now
    angle = 2.0 * math.pi * (now % DAY_S) / DAY_S
    out[k] = math.sin(angle)
    out[k + 1] = math.cos(angle)
    out[k + 2] = world.calendar.weekday(now) / 6.0
    out[k + 3] = 1.0 if world.calendar.is_business_day(int(now // DAY_S)) else 0.0
    out[k + 4] = min(now / world.horizon_s, 1.0)


def named_features(
    names: tuple[str, ...], low: list[float], high: list[float], units: dict[str, tuple[str, str]]
) -> list[Feature]:
    """Features from names (``block[key]``), bounds and each block's (unit, scaling)."""
    return [
        Feature(name, *units[name.split("[")[0]], float(lo), float(hi))
        for name, lo, hi in zip(names, low, high, strict=True)
    ]
