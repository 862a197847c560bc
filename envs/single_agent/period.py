"""The machinery shared by the per-period environments (Pricing-v0, Treasury-v0).

A per-period environment is a :class:`~payroute.envs.world.PaymentWorld` in which one decision kind
(``price`` or ``treasury``) is answered from outside and every other kind by a baseline. ``reset()`` builds a
fresh world and runs it to the first decision of that kind; ``step(action)`` answers it and runs the world to
the next one (or to the end of the episode: the arrivals stop after ``days`` days and the world drains, so
late outcomes such as settlements and chargebacks reach the last step).

Seeding follows Gymnasium: ``reset(seed=s)`` runs the world of seed ``s`` (the same customers as
``payroute simulate --seed s``); ``reset()`` without a seed draws the next world seed from ``self.np_random``;
a ``seed`` given to the constructor is used by the first ``reset()`` that has none. The constructor's
arguments mirror the per-transaction environments': ``scenario``, ``seed``, ``days``, ``scenario_overrides``,
``baselines`` (baseline names for the other decision kinds) and ``reward_scale`` (rewards are dollars times it).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from payroute.envs.baselines import bound_policies
from payroute.envs.scenarios import Scenario, load_scenario
from payroute.envs.world import DecisionPoint, PaymentWorld
from payroute.envs.world.clock import DAY_S, HOUR_S

CALENDAR_FEATURES = (
    "hour_sin",
    "hour_cos",
    *(f"weekday_{d}" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")),
    "business_day",
    "episode_progress",
)
CALENDAR_UNITS: dict[str, tuple[str, str]] = {
    "hour_sin": ("", "sin(2 pi hour/24)"),
    "hour_cos": ("", "cos(2 pi hour/24)"),
    **{name: ("one-hot", "day of week") for name in CALENDAR_FEATURES[2:9]},
    "business_day": ("flag", "1 on a US business day"),
    "episode_progress": ("share", "time / days of arrivals, clipped to 1"),
}
"""Calendar feature -> (unit, scaling), for :meth:`PeriodDecisionEnv.feature_schema`."""


def _bound_policies(names: dict[str, str | None]) -> dict[str, Any]:

    return bound_policies(**names)


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


class PeriodDecisionEnv(gym.Env, ABC):
    """Base class: a world with one decision kind answered by the agent, one ``step`` per decision."""

    metadata = {"render_modes": []}
    decision_kind = ""

    def __init__(
        self,
        scenario: str | Path | Scenario = "default",
        seed: int | None = None,
        days: float = 1.0,
        scenario_overrides: dict[str, Any] | None = None,
        baselines: dict[str, str] | None = None,
        reward_scale: float = 1.0,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            raise ValueError(
                f"render_mode must be None (this environment does not render), got {render_mode!r}"
            )
        if days <= 0:
            raise ValueError(f"days must be > 0, got {days}")
        self.render_mode = render_mode
        self.scenario = load_scenario(scenario, scenario_overrides)
        self.days = days
        self.reward_scale = float(reward_scale)
        self._default_seed = seed
        names = dict(baselines or {})
        if self.decision_kind in names:
            raise ValueError(
                f"{self.decision_kind!r} is this environment's own decision; it takes no baseline"
            )
        names[self.decision_kind] = None
        self.baselines = names
        _bound_policies(names)  # unknown kinds or names fail here, at construction
        self.world: PaymentWorld | None = None
        self._point: DecisionPoint | None = None

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None and self._default_seed is not None:
            seed, self._default_seed = self._default_seed, None
        super().reset(seed=seed)
        world_seed = int(seed) if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        self.world = PaymentWorld(
            self.scenario, seed=world_seed, policies=_bound_policies(self.baselines), days=self.days
        )
        self._start_episode()
        self._point = self._next_point()
        if self._point is None:
            raise RuntimeError(f"the world ended before its first {self.decision_kind!r} decision")
        return self._observe(), self._info()

    def step(self, action):
        if self._point is None:
            raise RuntimeError("the episode is over (or never started): call reset()")
        self._point.resolve(self._to_world_action(action))
        self._point = self._next_point()
        reward = self._reward() * self.reward_scale
        terminated = self._point is None
        return self._observe(), reward, terminated, False, self._info()

    def close(self) -> None:
        self.world = None
        self._point = None

    OBSERVATION_UNITS: dict[str, tuple[str, str]] = {}
    """Observation block (the name before ``[``) -> (unit, scaling); each environment fills it in."""

    def feature_schema(self) -> list[dict]:
        """Each observation entry's name, unit, scaling, low and high, in observation order (the form of
        Routing-v0's ``feature_schema()``)."""
        units = {**CALENDAR_UNITS, **self.OBSERVATION_UNITS}
        space = self.observation_space
        return [
            {"name": name, "unit": units[name.split("[")[0]][0], "scaling": units[name.split("[")[0]][1],
             "low": float(lo), "high": float(hi)}
            for name, lo, hi in zip(self.observation_names, space.low, space.high, strict=True)
        ]  # fmt: skip

    # ------------------------------------------------------------------ helpers
    def _next_point(self) -> DecisionPoint | None:
        point = self.world.run_until_decision()
        if point is not None and point.kind != self.decision_kind:
            raise RuntimeError(
                f"unexpected outside decision {point.kind!r}: only {self.decision_kind!r} is ours"
            )
        return point

    @staticmethod
    def _hours(t0: float, t1: float) -> range:
        return range(int(t0 // HOUR_S), int(math.ceil(t1 / HOUR_S)))

    # ------------------------------------------------------------------ what each environment defines
    @abstractmethod
    def _start_episode(self) -> None:
        """Set up per-episode bookkeeping once the new world exists (before its first decision)."""

    @abstractmethod
    def _to_world_action(self, action: Any) -> Any:
        """Turn an action from the action space into the world's action for the decision kind."""

    @abstractmethod
    def _observe(self) -> np.ndarray:
        """The observation at the pending decision (or at the end of the episode)."""

    @abstractmethod
    def _reward(self) -> float:
        """The reward for the period that just ended."""

    @abstractmethod
    def _info(self) -> dict[str, Any]:
        """The info dict that goes with the observation."""
