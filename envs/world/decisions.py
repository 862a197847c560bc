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

With retries enabled (the scenario's ``retries``), a payment a card route softly declined is put to the router
again: the payload is a :class:`RetryRequest` and the action a :class:`RetryAction` (cascade to another eligible
route now, the same route after one of the scenario's delays, a step-up challenge and then a retry, or give up).
Only a router that says it understands this is asked (a bound policy with ``handles_retries = True``, or an
outside agent once ``hub.external_retries`` is set); for any other the world gives up at once, so a router
that does not know retries gets exactly the single-attempt world.

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
RETRY_KINDS = ("give_up", "cascade", "later", "step_up")
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


@dataclass(frozen=True)
class RetryAction:
    """What to do with a softly declined payment.

    ``give_up``; ``cascade``: send it now on ``route`` (an eligible route other than the one that declined it);
    ``later``: send it again on the same route after ``delays_s[delay_index]`` seconds (the scenario's set);
    ``step_up``: challenge the payer (the risk desk's step-up: it costs, a fraudster mostly fails it, a genuine
    payer may abandon), then send it at once on ``route`` (``-1``: the same route).
    """

    kind: str
    route: int = -1
    delay_index: int = 0


GIVE_UP = RetryAction("give_up")


@dataclass(frozen=True)
class RetryRequest:
    """The router is asked again about ``tx`` after attempt number ``attempt`` was softly declined.

    ``codes``/``routes``: every attempt's reason code and route index so far, in order; ``merchant_advice``: the
    last decline's (Mastercard MAC, ``""`` if none); ``elapsed_s`` since the payment arrived and
    ``budget_left_s`` of the scenario's latency budget; ``attempts_left`` of its attempt budget; ``delays_s``:
    the delays a ``later`` retry may take; ``eligible``: the routes that may take it now.
    """

    tx: Any
    eligible: list
    attempt: int
    codes: tuple[str, ...]
    routes: tuple[int, ...]
    merchant_advice: str
    elapsed_s: float
    budget_left_s: float
    attempts_left: int
    delays_s: tuple[float, ...]


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
        self.external_retries = False
        """Whether an outside router answers :class:`RetryRequest` decisions (an environment with retry steps)."""
        self.agent_ids = {**KIND_ROLE, **agent_ids}
        self.pending: list[DecisionPoint] = []
        self.world = world  # what a bound policy's ``decide(world, payload)`` is handed
        self.bound_listeners: dict[str, list[Callable[[Any, Any], None]]] = {}
        """kind -> functions called ``f(payload, action)`` at the instant a bound policy decides (a learning
        role's credit valuing what a baseline did with its payment)."""

    def answers(self, kind: str) -> bool:
        """Whether anyone answers ``kind`` (a bound policy or an outside agent); if not, nobody is asked."""
        return self.bound[kind] is not None or kind in self.external

    def asks_retries(self) -> bool:
        """Whether the router is put softly declined payments again (it says it understands retries)."""
        if "route" in self.external:
            return self.external_retries
        return bool(getattr(self.bound["route"], "handles_retries", False))

    def is_external(self, kind: str) -> bool:
        return kind in self.external

    def open(self, kind: str, payload: Any, info: dict | None = None) -> DecisionPoint:
        """Open a decision point for an outside agent; the caller yields ``point.event``."""
        point = DecisionPoint(kind, self.agent_ids[kind], payload, self.env.event(), self.env.now, info or {})
        self.pending.append(point)
        return point

    def ask(
        self,
        kind: str,
        payload: Any = None,
        shown: Any = _AS_ASKED,
        info: dict | None = None,
        listeners: bool = True,
    ) -> Generator[simpy.Event, Any, tuple[Any, float]]:
        """Ask for a ``kind`` decision; use as ``action, propensity = yield from hub.ask(kind, payload)``.

        A bound policy decides on ``payload`` at once (the asking process does not yield). An outside agent
        gets a :class:`DecisionPoint` showing ``shown`` (by default the payload) and ``info``; the asking
        process waits on it, and no simulated time passes until the answer comes. ``listeners=False``: the
        :attr:`bound_listeners` are not told (a retry decision, whose payload is not theirs).
        """
        if kind in self.external:
            point = self.open(kind, payload if shown is _AS_ASKED else shown, info)
            action = yield point.event
            return action, point.propensity
        decided = self.bound[kind].decide(self.world, payload)
        called = self.bound_listeners.get(kind) if listeners else None
        if called:
            for listener in called:
                listener(payload, decided[0])
        return decided
