"""The one episode core: seeding, a world with bound baselines, running it to the learners' next decision.

Every payroute environment on the payment world — the four single-agent ones and the ecosystem — is a set of
roles (:mod:`payroute.envs.roles`) on an :class:`Episode`. The episode answers every decision kind that no role
learns with a baseline (:func:`payroute.envs.baselines.bound_policies`, fresh for each world), runs the SimPy
world until a learning role must decide, hands that :class:`~payroute.envs.world.DecisionPoint` out, and after
the answer runs on to the next. After ``days`` of arrivals the world drains (every payment ends, every
chargeback arrives) and :meth:`Episode.advance` returns ``None``: the episode is over.

Seeding, the same for every environment: ``reset(seed=s)`` runs world seed ``s`` (the same customers as
``payroute simulate --seed s``) and seeds the generator of later world seeds with ``s``; ``reset()`` without a
seed runs the constructor's ``seed`` if it is the first reset, and otherwise the next draw of that generator
(seeded by the first seed given, or from the operating system if none ever was).

While an episode runs, the garbage collector's young generation runs less often
(:class:`~payroute.envs.world.collector.CollectorHold`, the same hold as :meth:`PaymentWorld.run`); the hold
is given back when the episode ends, the environment is closed, or the episode object is collected.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from gymnasium.utils import seeding

from payroute.envs.baselines import bound_policies
from payroute.envs.roles.base import Role
from payroute.envs.scenarios import Scenario
from payroute.envs.world import DecisionPoint, PaymentWorld
from payroute.envs.world.collector import CollectorHold

SEED_BOUND = 2**31 - 1
"""World seeds drawn without a given seed lie in ``[0, SEED_BOUND)``."""


class Episode:
    """A payment world with ``roles`` answered from outside and every other decision kind by a baseline.

    ``baselines`` maps decision kinds (``route``, ``risk``, ``price``, ``treasury``, ``fraud``) to baseline
    names; kinds it leaves out get their default baseline; naming a learning role's kind is an error.
    ``reward_split`` is the world's attribution of a payment's money to the agents that decided on it.
    """

    def __init__(
        self,
        scenario: Scenario,
        roles: Iterable[Role],
        *,
        days: float = 1.0,
        baselines: Mapping[str, str] | None = None,
        seed: int | None = None,
        reward_split: str = "full",
    ) -> None:
        if days <= 0:
            raise ValueError(f"days must be > 0, got {days}")
        self.scenario = scenario
        self.days = float(days)
        self.roles = list(roles)
        self.reward_split = reward_split
        names: dict[str, str | None] = dict(baselines or {})
        for role in self.roles:
            if role.kind in names:
                raise ValueError(f"{role.kind!r} is this environment's own decision; it takes no baseline")
            names[role.kind] = None
        bound_policies(**names)  # unknown kinds or names fail here, at construction
        self.baselines = names
        self._first_seed = seed
        self._first = True
        self._np_random: np.random.Generator | None = None
        self.world: PaymentWorld | None = None
        self.point: DecisionPoint | None = None
        self._hold = CollectorHold()
        weakref.finalize(self, self._hold.release)  # an episode dropped while running gives its claim back

    # ------------------------------------------------------------------ seeding
    @property
    def np_random(self) -> np.random.Generator:
        """The generator world seeds are drawn from when ``reset`` is given none."""
        if self._np_random is None:
            self._np_random, _ = seeding.np_random(self._first_seed)
        return self._np_random

    def world_seed(self, seed: int | None) -> int:
        """The seed of the next world (see the module docstring)."""
        first, self._first = self._first, False
        if seed is None and first and self._first_seed is not None:
            seed = self._first_seed
        if seed is not None:
            self._np_random, _ = seeding.np_random(int(seed))
            return int(seed)
        return int(self.np_random.integers(0, SEED_BOUND))

    def seed_state(self) -> dict[str, Any]:
        """What decides the next worlds' seeds (resets without a seed), as a picklable copy: the generator and
        whether the first reset is still to come. :meth:`set_seed_state` puts it back (exact resume)."""
        return {"first": self._first, "np_random": copy.deepcopy(self._np_random)}

    def set_seed_state(self, state: Mapping[str, Any]) -> None:
        self._first = bool(state["first"])
        self._np_random = copy.deepcopy(state["np_random"])

    # ------------------------------------------------------------------ running
    def reset(self, seed: int | None = None) -> DecisionPoint:
        """A new world, its roles bound, run to the first decision of a learning role (returned)."""
        world = self.world = PaymentWorld(
            self.scenario,
            seed=self.world_seed(seed),
            policies=bound_policies(**self.baselines),
            days=self.days,
            reward_split=self.reward_split,
        )
        for role in self.roles:
            role.bind(world)
        self._hold.acquire()
        self.point = world.run_until_decision()
        if self.point is None:
            self._hold.release()
            raise RuntimeError(
                f"the episode has no decision for {[r.name for r in self.roles]}: "
                "check the scenario's volume and days"
            )
        return self.point

    def advance(self, action: Any, propensity: float = 1.0) -> DecisionPoint | None:
        """Answer the pending decision with the world's ``action``; run to the next one (``None``: the world
        has drained and the episode is over)."""
        self.point.resolve(action, propensity)
        self.point = self.world.run_until_decision()
        if self.point is None:
            self._hold.release()
        return self.point

    def close(self) -> None:
        self._hold.release()
        self.point = None
