"""The machinery shared by the per-transaction environments (Routing-v0, Risk-v0).

One Gymnasium step per transaction that needs this agent's decision; between steps the SimPy world runs on
with every other decision bound to a baseline. Rewards are the money the ledger attributes to this agent's
decisions between its consecutive steps, so outcomes that resolve later (a settlement, a chargeback weeks
later) reach the agent when they happen; what is still unresolved when the day ends is settled by draining
the world, and paid in the final step's reward.

While an episode runs, the cyclic garbage collector's young generation runs less often (threshold 50,000
allocations instead of Python's 700), as in :meth:`PaymentWorld.run`: a simulated day keeps tens of thousands of
payments alive, and with the default threshold the collector would sweep them again and again, several percent
of the step time. The setting is process-wide, so it is counted: the first episode to start raises it, and when
the last one ends (terminates, or its env is closed or collected) the previous thresholds come back.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import gymnasium as gym
import numpy as np

from payroute.envs.baselines import bound_policies
from payroute.envs.scenarios import Scenario, load_scenario
from payroute.envs.world import PaymentWorld
from payroute.envs.world.decisions import DecisionPoint


def _bound_baselines(kind: str, others: dict[str, str]) -> dict[str, Any]:

    names: dict[str, str | None] = dict(others)
    names[kind] = None
    return bound_policies(**names)


_YOUNG_THRESHOLD = 50_000
_collector = {"episodes": 0, "saved": None}  # running episodes in this process; thresholds before the first


class _CollectorHold:
    """One env's claim on the raised young-generation threshold (see the module docstring)."""

    def __init__(self) -> None:
        self.held = False

    def acquire(self) -> None:
        if self.held:
            return
        self.held = True
        if _collector["episodes"] == 0:
            before = gc.get_threshold()
            _collector["saved"] = before
            gc.set_threshold(max(before[0], _YOUNG_THRESHOLD), *before[1:])
        _collector["episodes"] += 1

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        _collector["episodes"] = max(_collector["episodes"] - 1, 0)
        if _collector["episodes"] == 0 and _collector["saved"] is not None:
            gc.set_threshold(*_collector["saved"])
            _collector["saved"] = None


class TransactionDecisionEnv(gym.Env):
    """Base class: one step per decision of ``decision_kind`` on the payment world."""

    metadata = {"render_modes": []}
    decision_kind = ""

    def __init__(
        self,
        scenario: str | Scenario = "default",
        seed: int | None = None,
        days: float = 1.0,
        scenario_overrides: dict[str, Any] | None = None,
        baselines: dict[str, str] | None = None,
        reward_scale: float = 1.0,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        if render_mode is not None:
            raise ValueError(
                f"render_mode {render_mode!r} is not supported; payroute environments do not render"
            )
        self.scenario = load_scenario(scenario, scenario_overrides)
        self.days = float(days)
        self.baselines = dict(baselines or {})
        self.reward_scale = float(reward_scale)
        self._ctor_seed = seed
        self._first_reset = True
        self.world: PaymentWorld | None = None
        self._point: DecisionPoint | None = None
        self._last_obs: np.ndarray | None = None
        self._probe = self._new_world(0)  # sizes the spaces; never run
        self._agent_id = self._probe.hub.agent_ids[self.decision_kind]
        self._collector = _CollectorHold()
        weakref.finalize(self, self._collector.release)  # an env dropped mid-episode gives its claim back

    # ------------------------------------------------------------------ world
    def _new_world(self, seed: int) -> PaymentWorld:
        policies = _bound_baselines(self.decision_kind, self.baselines)
        return PaymentWorld(self.scenario, seed=seed, policies=policies, days=self.days)

    @property
    def agent_id(self) -> str:
        return self._agent_id

    def _episode_seed(self, seed: int | None) -> int:
        if seed is not None:
            return int(seed)
        if self._first_reset and self._ctor_seed is not None:
            return int(self._ctor_seed)
        return int(self.np_random.integers(0, 2**31 - 1))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed if seed is not None else (self._ctor_seed if self._first_reset else None))
        episode_seed = self._episode_seed(seed)
        self._first_reset = False
        self.world = self._new_world(episode_seed)
        self._on_new_world(self.world)
        self._margin_seen = 0
        self._extra_seen = 0.0
        self._collector.acquire()
        self._point = self.world.run_until_decision()
        if self._point is None:
            self._collector.release()
            raise RuntimeError(
                "the episode has no decisions for this agent: check the scenario's volume and days"
            )
        obs = self._observe(self._point)
        self._last_obs = obs
        return obs, self._info(self._point)

    def _collect_reward(self) -> float:
        """Ledger margin attributed to this agent since the last step, plus any shaping term, in dollars."""
        margin = self.world.agent_margin[self._agent_id]
        delta = margin - self._margin_seen
        self._margin_seen = margin
        extra = self._extra_total() - self._extra_seen
        self._extra_seen += extra
        return (delta + extra) / 100.0 * self.reward_scale

    def _advance(self, action: Any, propensity: float = 1.0):
        self._point.resolve(action, propensity)
        self._point = self.world.run_until_decision()
        reward = self._collect_reward()
        terminated = self._point is None
        if terminated:
            self._collector.release()
            obs = self._last_obs
            info = {
                "action_mask": np.zeros(self.action_space.n, dtype=np.int8),
                "kpis": self.world.kpis(),
                **self._final_info(),
            }
        else:
            obs = self._observe(self._point)
            self._last_obs = obs
            info = self._info(self._point)
        return obs, float(reward), terminated, False, info

    def close(self) -> None:
        self._collector.release()
        super().close()

    # ------------------------------------------------------------------ for subclasses
    def _on_new_world(self, world: PaymentWorld) -> None:
        pass

    def _extra_total(self) -> float:
        return 0.0

    def _observe(self, point: DecisionPoint) -> np.ndarray:
        raise NotImplementedError

    def _info(self, point: DecisionPoint) -> dict:
        raise NotImplementedError

    def _final_info(self) -> dict:
        return {}
