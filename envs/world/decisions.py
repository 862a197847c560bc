"""Decision points: where the SimPy world asks a policy what to do.

A world process that needs a decision asks its :class:`DecisionHub`. If a bound, in-process policy answers
that decision kind, the answer comes at once (no SimPy event, no gym overhead). Otherwise the hub opens a
:class:`DecisionPoint` (kind, agent id, payload, a SimPy event), the process yields the event, and the
world stops stepping until an outside agent answers it with :meth:`DecisionPoint.resolve` — that is how a
Gymnasium ``step(action)`` reaches inside the simulation. No simulated time passes while a decision waits.

Decision kinds and their actions:

============  ==================  ============================================================
kind          when                action
============  ==================  ============================================================
``route``     per transaction     index of an eligible route
``risk``      per transaction     0 allow, 1 challenge (step-up), 2 block
``price``     per pricing period  fee multipliers, array (segments x families)
``treasury``  per period          :class:`TreasuryAction`
``fraud``     per period          :class:`FraudAction`, or an array of intensities per fraud pattern
============  ==================  ============================================================

A bound policy implements ``decide(world, payload) -> (action, propensity)``; the propensity is the
probability the policy gave the action it took (1.0 for a deterministic policy), which the event log records.
Every process asks the same way, whoever answers: ``action, propensity = yield from hub.ask(kind, payload)``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

import simpy

from payroute.vocabulary import DECISION_KINDS, KIND_ROLE

RISK_ACTIONS = ("allow", "challenge", "block")
ALLOW, CHALLENGE, BLOCK = 0, 1, 2
_AS_ASKED = object()  # ask(): the outside agent sees the payload the bound policy would have seen


class InvalidActionError(ValueError):
    """An outside agent chose an action the world cannot take (a masked route, an unknown risk action)."""


class BoundPolicy(Protocol):
    """An in-process policy for one decision kind."""

    def decide(self, world: Any, payload: Any) -> tuple[Any, float]: ...


@dataclass(frozen=True)
class TreasuryAction:
    """Transfers to start now (account -> amount in cents, funded from the account's ``funded_from``;
    negative sweeps back) and intraday credit lines to allow (account -> cents, at most the scenario's limit)."""

    transfers: dict[str, int] = field(default_factory=dict)
    credit_lines: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FraudAction:
    """What a fraudster does in the coming fraud period, per pattern (the world's ``fraud.pattern_names`` order):
    ``intensity`` times the scenario's attack rate (0 = no attacks), and ``amount_multiplier`` on the pattern's
    amount band (``None``: 1.0, the usual amounts). A plain array as the ``fraud`` action means intensities only."""

    intensity: tuple[float, ...]
    amount_multiplier: tuple[float, ...] | None = None


class DecisionPoint:
    """A decision the world is waiting on."""

    __slots__ = ("kind", "agent_id", "payload", "event", "t", "action", "propensity", "info")

    def __init__(
        self, kind: str, agent_id: str, payload: Any, event: simpy.Event, t: float, info: dict
    ) -> None:
        self.kind = kind
        self.agent_id = agent_id
        self.payload = payload
        self.event = event
        self.t = t
        self.info = info
        self.action: Any = None
        self.propensity = 1.0

    def resolve(self, action: Any, propensity: float = 1.0) -> None:
        self.action = action
        self.propensity = float(propensity)
        self.event.succeed(action)


class DecisionHub:
    """Who answers each decision kind: a bound policy, or an outside agent (``None``)."""

    def __init__(
        self,
        env: simpy.Environment,
        bound: dict[str, BoundPolicy | None],
        agent_ids: dict[str, str],
        world: Any = None,
    ):
        unknown = sorted(set(bound) - set(DECISION_KINDS))
        if unknown:
            raise ValueError(f"unknown decision kinds {unknown}; known: {list(DECISION_KINDS)}")
        self.env = env
        self.bound = {k: bound.get(k) for k in DECISION_KINDS}
        self.external = {k for k in DECISION_KINDS if k in bound and bound[k] is None}
        self.agent_ids = {**KIND_ROLE, **agent_ids}
        self.pending: list[DecisionPoint] = []
        self.world = world  # what a bound policy's ``decide(world, payload)`` is handed
        self.bound_listeners: dict[str, list[Callable[[Any, Any], None]]] = {}
        """kind -> functions called ``f(payload, action)`` at the instant a bound policy decides (a learning
        role's credit valuing what a baseline did with its payment)."""

    def answers(self, kind: str) -> bool:
        """Whether anyone answers ``kind`` (a bound policy or an outside agent); if not, nobody is asked."""
        return self.bound[kind] is not None or kind in self.external

    def is_external(self, kind: str) -> bool:
        return kind in self.external

    def open(self, kind: str, payload: Any, info: dict | None = None) -> DecisionPoint:
        """Open a decision point for an outside agent; the caller yields ``point.event``."""
        point = DecisionPoint(kind, self.agent_ids[kind], payload, self.env.event(), self.env.now, info or {})
        self.pending.append(point)
        return point

    def ask(
        self, kind: str, payload: Any = None, shown: Any = _AS_ASKED, info: dict | None = None
    ) -> Generator[simpy.Event, Any, tuple[Any, float]]:
        """Ask for a ``kind`` decision; use as ``action, propensity = yield from hub.ask(kind, payload)``.

        A bound policy decides on ``payload`` at once (the asking process does not yield). An outside agent
        gets a :class:`DecisionPoint` showing ``shown`` (by default the payload) and ``info``; the asking
        process waits on it, and no simulated time passes until the answer comes.
        """
        if kind in self.external:
            point = self.open(kind, payload if shown is _AS_ASKED else shown, info)
            action = yield point.event
            return action, point.propensity
        decided = self.bound[kind].decide(self.world, payload)
        listeners = self.bound_listeners.get(kind)
        if listeners:
            for listener in listeners:
                listener(payload, decided[0])
        return decided
