"""What the four single-agent environments share: one role on the episode core, as a Gymnasium ``Env``.

The constructor is the one every payroute environment on the payment world takes: ``scenario`` (a shipped name,
a YAML path or a :class:`~payroute.envs.scenarios.Scenario`), ``seed`` (the first ``reset()`` without one runs
it), ``days`` (of arrivals per episode), ``scenario_overrides`` (merged into the scenario), ``baselines``
(baseline names for the other decision kinds, e.g. ``{"risk": "threshold"}``), ``reward_scale`` (rewards are
dollars times it), then each environment's own options. Seeding, the world and its drain are
:class:`~payroute.envs.episode.Episode`'s; what the agent sees, may do and is paid is its role's
(:mod:`payroute.envs.roles`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym

from payroute.envs.episode import Episode
from payroute.envs.replay import Replayable
from payroute.envs.roles import Role
from payroute.envs.scenarios import Scenario, load_scenario
from payroute.envs.world import DecisionPoint, PaymentWorld


class UnsupportedRenderMode(TypeError, ValueError):
    """A ``render_mode`` other than ``None``. A ``TypeError`` (and a ``ValueError``) because Stable-Baselines3's
    ``make_vec_env`` asks every environment id for ``render_mode="rgb_array"`` and, on a ``TypeError``, makes it
    again without one: the form of an environment that does not render."""


RESET_OPTIONS = {
    "credit_history": "with a seed: 'forget' (the default) starts the step credit's fraud history afresh, so the "
    "same seed gives the same rewards; 'keep' carries it on, as a trainer that seeds every day does",
}
"""What ``reset(options=...)`` may hold."""


class SingleAgentEnv(Replayable, gym.Env):
    """Base class: one step per decision of :attr:`role` on the payment world; every other kind bound.

    Pickling and ``copy.deepcopy`` work at any point, mid-episode included (:mod:`payroute.envs.replay`: the
    copy is rebuilt from the constructor's arguments and replays the episode so far, then continues exactly as
    the original). ``render_mode`` must be ``None``: there is nothing to draw.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}
    decision_kind: ClassVar[str] = ""
    takes_scenario: ClassVar[bool] = True
    """Built on the episode core: takes ``(scenario, seed, days, scenario_overrides, baselines, ...)``."""
    masks_actions: ClassVar[bool] = False
    """Some actions can be invalid for a step (an action mask): the environment then also takes
    ``invalid_action`` (what a masked action does) and ``dict_observation`` (the mask inside the observation)."""

    def __init__(
        self,
        scenario: str | Path | Scenario,
        seed: int | None,
        days: float,
        scenario_overrides: dict[str, Any] | None,
        baselines: dict[str, str] | None,
        reward_scale: float,
        render_mode: str | None,
        role: Any,
    ) -> None:
        """``role``: a function of the loaded scenario that returns the environment's :class:`Role`."""
        super().__init__()
        if render_mode is not None:
            raise UnsupportedRenderMode(
                f"render_mode {render_mode!r} is not supported: render_mode must be None (payroute environments "
                "do not render; read env.unwrapped.world, its KPIs and event log instead)"
            )
        self.render_mode = render_mode
        loaded = load_scenario(scenario, scenario_overrides)
        self.days = float(days)
        self.reward_scale = float(reward_scale)
        self.role: Role = role(loaded)
        self.episode = Episode(loaded, [self.role], days=self.days, baselines=baselines, seed=seed)
        self.baselines = dict(self.episode.baselines)
        self.observation_space = self.role.observation_space
        self.action_space = self.role.action_space
        self._last_obs: Any = None

    # ------------------------------------------------------------------ the episode's state
    @property
    def scenario(self) -> Scenario:
        return self.episode.scenario

    @scenario.setter
    def scenario(self, scenario: Scenario) -> None:  # the next reset's world runs it (training mixes)
        self.episode.scenario = scenario

    @property
    def world(self) -> PaymentWorld | None:
        return self.episode.world

    @property
    def agent_id(self) -> str:
        return self.role.name

    def feature_schema(self) -> list[dict]:
        """Each observation entry's name, unit, scaling, low and high, in observation order."""
        return self.role.feature_schema()

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options:
            unknown = sorted(set(options) - set(RESET_OPTIONS))
            if unknown:
                raise ValueError(f"unknown reset options {unknown}; known: {sorted(RESET_OPTIONS)}")
            if options.get("credit_history", "forget") not in ("forget", "keep"):
                raise ValueError(
                    f"reset option credit_history must be 'forget' or 'keep', got {options['credit_history']!r}"
                )
        keep = bool(options) and options.get("credit_history") == "keep"
        if seed is not None and self._expected is not None and not keep:
            self._expected.forget()  # a seeded reset repeats its episode exactly, step credit included
        self._record_reset(seed, options)
        point = self.episode.reset(seed)
        if self._expected is not None:
            self._expected.bind(
                self.world
            )  # the new day's world (no learning decision has been answered yet)
        self._np_random = self.episode.np_random  # env.np_random: the generator of the next world seeds
        obs = self._last_obs = self.role.observe(point)
        return obs, self._info(point)

    def step(self, action: Any):
        point = self.episode.point
        if point is None:
            raise RuntimeError("step() called before reset() or after the episode ended; call reset()")
        world_action = self.role.to_world(action, point)
        pay = self._open_credit(point, world_action)  # valued before the world moves on
        point = self.episode.advance(world_action)
        self._record_step(action)
        if point is None:  # the role's final observation may still book money (a last period's profit)
            obs = self._last_obs = self.role.final_observation(self._last_obs)
        else:
            obs = self._last_obs = self.role.observe(point)
        resolved = self.role.reward_usd()  # the role's books move on whichever credit pays the step
        reward = (resolved if pay is None else pay() / 100.0) * self.reward_scale
        if point is None:
            return obs, reward, True, False, self._final_info()
        return obs, reward, False, False, self._info(point)

    def close(self) -> None:
        self._record_close()
        self.episode.close()
        super().close()

    # ------------------------------------------------------------------ what each environment adds
    _expected: Any = None
    """The step credit of an environment that pays decisions by their own (:mod:`payroute.envs.roles.credit`):
    it carries a fraud history from day to day, forgotten at a seeded reset, kept in a copy."""

    def _carried_state(self) -> Any:
        return None if self._expected is None else self._expected.posterior

    def _restore_carried(self, state: Any) -> None:
        if self._expected is not None and state is not None:
            self._expected.posterior = state

    def _open_credit(self, point: DecisionPoint, world_action: Any) -> Callable[[], float] | None:
        """When the environment pays decisions by a credit of their own: a function that, once the world has
        run to the next decision, returns the step's reward in cents (before ``reward_scale``). ``None``: the
        role's money as it resolves (:meth:`Role.reward_usd`)."""
        return None

    def _info(self, point: DecisionPoint) -> dict[str, Any]:
        return self.role.info(point)

    def _final_info(self) -> dict[str, Any]:
        return self._info(None)
