"""When a day falls and when its incidents start: drawn per seed, so a timing cannot be memorised.

A shipped stress scenario fixes its calendar: ``processor_outage`` takes card_alpha down 14:00-16:00 on Friday
2026-03-06, every time. A policy that learned "no card_alpha on Friday afternoons" would pass that day and fail
the first outage on a Tuesday morning. Two places therefore draw the calendar instead of keeping it:

- the review's stress suite (``stress.timings``, :mod:`payroute.policies.review.stress`) draws per scenario and
  seed, from a generator of that seed alone (:func:`timing_rng`), so every policy on one seed runs the same drawn
  world (common random numbers hold) and different seeds put the incident on different days and hours;
- a training mix (an experiment's ``train_timings``, :class:`payroute.agents.training_env.TrainingEnv`) draws
  each training day's calendar from the environment's own stream of day seeds, so a learner never sees the
  outage on one weekday and hour only.

What is drawn (:func:`draw_timing`):

- the **day**: a start date among the ``weekdays`` of the ``weeks`` weeks that begin on the scenario's own start
  date (Federal Reserve holidays and the scenario's extra holidays skipped unless ``skip_holidays`` is false).
  This is also when a whole-day stress begins (``fraud_surge``'s surge, ``liquidity_crunch``'s empty accounts,
  ``fee_hike``'s new fees). Scenarios listed in ``keep_date`` (``holiday_peak``: Black Friday *is* the stress)
  keep their date;
- for a scenario with ``incidents``: the **day of the run** the first incident starts on (any day of a
  multi-day run) and its **start time** among ``incident_hours``. Every incident moves by the same amount, so
  their durations and their order stay as the scenario wrote them.

``draw: false`` keeps each scenario's own calendar (the numbers of ``payroute simulate``). The scenario files
are not changed: the draw is the caller's.
"""

from __future__ import annotations

import datetime as dt
import math
import zlib
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from payroute.config_model import ConfigModel
from payroute.envs.scenarios import Scenario
from payroute.envs.scenarios.schema import Incident, TimeOfDay, hhmm_to_s
from payroute.envs.world.clock import us_fed_holidays
from payroute.errors import PayrouteError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAY_S = 86_400
_TIMING_KEY = 0x7469_6D65  # "time": the spawn key of the timing draw, apart from the world's own streams


class DayTimings(ConfigModel):
    """How a day's date and incident times are drawn (the stress suite per seed, a training mix per day; see the
    module docstring)."""

    draw: bool = Field(
        default=True, description="false: every seed runs each scenario's own date and incident times"
    )
    weekdays: list[Weekday] = Field(
        default=["mon", "tue", "wed", "thu", "fri"], min_length=1, description="days of the week drawn from"
    )
    weeks: Annotated[int, Field(ge=1, le=52)] = Field(
        default=8, description="the day is drawn from this many weeks, starting on the scenario's own date"
    )
    skip_holidays: bool = Field(
        default=True, description="leave out Federal Reserve holidays and the scenario's extra holidays"
    )
    incident_hours: list[TimeOfDay] = Field(
        default=[f"{h:02d}:00" for h in range(8, 19)],
        min_length=1,
        description="start times drawn for a scenario's first incident (the others keep their offsets)",
    )
    keep_date: list[str] = Field(
        default=["holiday_peak"], description="scenarios whose date is the stress itself: their date is kept"
    )

    @field_validator("weekdays", "incident_hours")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"lists a value twice: {v}")
        return v


def timing_rng(seed: int, scenario: str) -> np.random.Generator:
    """The generator the timing of ``scenario`` on ``seed`` is drawn from: the seed's own, apart from the
    world's streams, and a different one per scenario."""
    key = (_TIMING_KEY, zlib.crc32(scenario.encode("utf-8")))
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _candidate_dates(sc: Scenario, t: DayTimings) -> list[dt.date]:
    wanted = {WEEKDAYS.index(w) for w in t.weekdays}
    out = []
    for k in range(7 * t.weeks):
        d = sc.start_date + dt.timedelta(days=k)
        if d.weekday() not in wanted:
            continue
        if t.skip_holidays and (d in us_fed_holidays(d.year) or d in sc.extra_holidays):
            continue
        out.append(d)
    if not out:
        raise PayrouteError(
            f"stress.timings: no day to draw for {sc.name}: weekdays {t.weekdays} in the {t.weeks} week(s) from "
            f"{sc.start_date} are all holidays; allow more weekdays or weeks, or set skip_holidays: false"
        )
    return out


def _start_s(inc: Incident) -> int:
    return inc.day * DAY_S + hhmm_to_s(inc.at)


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def draw_timing(
    sc: Scenario, seed: int, days: float, t: DayTimings, rng: np.random.Generator | None = None
) -> tuple[Scenario, dict[str, Any]]:
    """``sc`` with the day and incident times of ``seed`` (unchanged when ``t.draw`` is false), and a record of
    the timing that ran: start date, weekday, each incident in words, the first incident's route, state, day and
    start, and whether it was drawn.

    ``rng``: draw from this generator instead of the seed's own (:func:`timing_rng`); a training environment
    passes its stream of day seeds, ``seed`` is then only recorded."""
    start, incidents = sc.start_date, list(sc.incidents)
    if t.draw:
        rng = timing_rng(seed, sc.name) if rng is None else rng
        dates = _candidate_dates(sc, t) if sc.name not in t.keep_date else [sc.start_date]
        start = dates[int(rng.integers(len(dates)))]
        day = int(rng.integers(max(1, math.ceil(days))))
        at = hhmm_to_s(t.incident_hours[int(rng.integers(len(t.incident_hours)))])
        if incidents:
            shift = day * DAY_S + at - min(_start_s(i) for i in incidents)
            incidents = [
                i.model_copy(
                    update={"day": (_start_s(i) + shift) // DAY_S, "at": _hhmm((_start_s(i) + shift) % DAY_S)}
                )
                for i in incidents
            ]
        sc = sc.model_copy(update={"start_date": start, "incidents": tuple(incidents)})
    record = {
        "scenario": sc.name,
        "seed": int(seed),
        "start_date": start.isoformat(),
        "weekday": WEEKDAYS[start.weekday()],
        "incidents": [_incident_words(i) for i in incidents],
        "first_incident": None,
        "drawn": bool(t.draw),
    }
    if incidents:
        first = min(incidents, key=_start_s)
        record["first_incident"] = {
            "route": first.route,
            "state": first.state,
            "day": first.day,
            "at": first.at,
        }
    return sc, record


def _incident_words(inc: Incident) -> str:
    end = hhmm_to_s(inc.at) + int(round(inc.duration_min * 60))
    return f"{inc.route} {inc.state} day {inc.day} {inc.at}-{_hhmm(end % DAY_S)}" + (
        f" (+{end // DAY_S}d)" if end >= DAY_S else ""
    )


__all__ = ["WEEKDAYS", "DayTimings", "draw_timing", "timing_rng"]
