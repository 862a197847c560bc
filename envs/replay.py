"""Pickling and deep-copying an environment at any point: it is rebuilt from its record and replayed.

A SimPy world is a set of running generators, which neither ``pickle`` nor ``copy.deepcopy`` can copy. But a
payroute environment is deterministic given its constructor's arguments, the seed cursor it had before the
episode under way, that episode's ``reset`` (seed, options) and the actions since. :class:`Replayable` keeps
exactly that record; ``pickle.dumps`` and ``copy.deepcopy`` take the record, and loading it builds a new
environment with the same arguments and replays the episode: the copy's world, observations, masks, rewards
and seed cursor are those of the original, and both continue identically (the same next observation for the
same action, the same world at the next ``reset()`` without a seed).

What it costs: the record grows by one action per step, and loading replays the episode so far (as long as
the episode took to get there). Ray's and Stable-Baselines3's subprocess workers build their environments in
the worker and copy them rarely; a copy in a tight loop is better made right after ``reset``.

Besides the record, the pickled state holds what a client may have changed or drawn from without a step:
the spaces (their own generators: ``action_space.sample()`` continues identically), Gymnasium's ``spec``,
the scenario the next ``reset`` runs (a training mix sets it), and each class's own
:meth:`Replayable._replay_extra` (the ecosystem: what its PettingZoo wrapper has paid out). What an environment
carries from one episode to the next (:meth:`Replayable._carried_state`: the step credit's fraud history) is
recorded as each episode starts and put back before the replay.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np


def _copy_action(action: Any) -> Any:
    """A copy the caller cannot change later (a step per payment: the common forms without ``deepcopy``)."""
    kind = type(action)
    if kind is int or isinstance(action, np.generic):
        return action  # immutable
    if kind is np.ndarray:
        return action.copy()
    if kind is dict:
        return {k: _copy_action(v) for k, v in action.items()}
    return copy.deepcopy(action)


class Replayable:
    """Mixin for environments on :class:`~payroute.envs.episode.Episode` (``self.episode``): pickling and
    deep copies by record and replay (see the module docstring).

    The class calls :meth:`_record_reset` at the start of ``reset`` and :meth:`_record_step` after each step
    that the world accepted, and :meth:`_record_close` in ``close``; ``__init__``'s arguments are recorded on
    construction.
    """

    def __new__(cls, *args: Any, **kwargs: Any):
        self = super().__new__(cls)
        # the arguments as given, copied: a caller's dict changed later does not change the copies
        self._init_args = copy.deepcopy((args, kwargs))
        self._record: dict[str, Any] | None = None
        return self

    # ------------------------------------------------------------------ the seed cursor
    def seed_state(self) -> dict[str, Any]:
        """The seed cursor: what decides the next episodes' worlds, as a picklable copy
        (:meth:`Episode.seed_state <payroute.envs.episode.Episode.seed_state>`); everything else an episode starts
        from is built afresh at its reset. Exact resume puts it back with :meth:`set_seed_state`."""
        return self.episode.seed_state()

    def set_seed_state(self, state: Mapping[str, Any]) -> None:
        self.episode.set_seed_state(state)

    # ------------------------------------------------------------------ recording
    def _record_reset(self, seed: int | None, options: dict | None) -> None:
        self._record = {
            "seed_state": self.seed_state(),
            "scenario": self.episode.scenario,
            "seed": seed,
            "options": copy.deepcopy(options),
            "actions": [],
            "closed": False,
            "carried": copy.deepcopy(self._carried_state()),
        }

    def _record_step(self, action: Any) -> None:
        if self._record is not None:
            self._record["actions"].append(_copy_action(action))

    def _record_close(self) -> None:
        if self._record is not None:
            self._record["closed"] = True

    def _carried_state(self) -> Any:
        """What the environment carries from one episode to the next besides the seed cursor, as it is when an
        episode starts (Routing-v0's and Risk-v0's fraud history for their step credit); ``None``: nothing."""
        return None

    def _restore_carried(self, state: Any) -> None:
        """Put back what :meth:`_carried_state` returned, before the episode is replayed."""

    def _replay_extra(self) -> dict[str, Any]:
        """Attributes set back after the replay (the spaces, Gymnasium's ``spec``); a class adds its own."""
        names = ("spec", "action_space", "observation_space", "action_spaces", "observation_spaces")
        return {n: self.__dict__[n] for n in names if n in self.__dict__}

    # ------------------------------------------------------------------ pickle and copy
    def __getstate__(self) -> dict[str, Any]:
        record = self._record
        return {
            "init": self._init_args,
            "seed_state": self.seed_state(),  # used when no episode has started
            "episode": None if record is None else {**record, "actions": list(record["actions"])},
            "scenario": self.episode.scenario,
            "extra": self._replay_extra(),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        args, kwargs = copy.deepcopy(state["init"])
        type(self).__init__(self, *args, **kwargs)
        self._init_args = state["init"]
        record = state["episode"]
        if record is None:
            self.set_seed_state(state["seed_state"])
        else:
            self.set_seed_state(record["seed_state"])
            self.episode.scenario = record["scenario"]
            self._restore_carried(copy.deepcopy(record.get("carried")))
            self.reset(seed=record["seed"], options=copy.deepcopy(record["options"]))
            for action in record["actions"]:
                self.step(_copy_action(action))
            if record["closed"]:
                self.close()
        self.episode.scenario = state["scenario"]
        self.__dict__.update(state["extra"])
