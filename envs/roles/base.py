"""What every role shares: spaces built from the scenario alone, a world bound per episode, money and reward.

A :class:`Role` is one decision-maker of the payment world (``router``, ``risk``, ``pricer``, ``treasury``,
``fraudster``: :data:`payroute.vocabulary.ROLES`). It owns its observation and action spaces (computed from the
:class:`~payroute.envs.scenarios.Scenario`, no world needed), builds its observation at a pending decision,
turns an action from its space into the world's action, and reads what it has earned. The single-agent
environments put one role on the episode core; the ecosystem puts several on one episode: the same code.

Life of a role: ``bind(world)`` at the start of each episode; then, at each of its decisions, ``observe(point)``
and ``info(point)``, and ``to_world(action, point)`` when the action comes; ``final_observation(last)`` at the
end. Money: ``money_cents()`` is the ledger money attributed to the role so far (what the ecosystem pays);
``reward_usd()`` is its single-agent environment's reward since the previous call, in dollars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from gymnasium import spaces

from payroute.envs.features import Feature
from payroute.envs.info import InfoKey
from payroute.vocabulary import ROLE_KIND

if TYPE_CHECKING:
    from payroute.envs.world.decisions import DecisionPoint
    from payroute.envs.world.world import PaymentWorld


def discrete_action(action: Any, n: int, what: str, noun: str = "an integer", detail: str = "") -> int:
    """``action`` as an index in ``range(n)``, or a ``TypeError``/``ValueError`` that says what was given.

    Accepted: a Python or NumPy integer, or an integer array holding one element (the form SB3 and RLlib
    pass). Refused: ``bool``, floats (``2.5``, and ``2.0`` too: an index is not a quantity), strings, arrays
    of several elements, and integers outside ``0..n-1``.
    """
    if type(action) is int:  # noqa: E721 - the common case, and not bool
        a = action
    elif isinstance(action, np.integer):
        a = int(action)
    elif isinstance(action, np.ndarray) and action.size == 1 and np.issubdtype(action.dtype, np.integer):
        a = int(action.reshape(()))
    else:
        given = (
            f"array of dtype {action.dtype} and shape {action.shape}"
            if isinstance(action, np.ndarray)
            else (f"{type(action).__name__} {action!r}")
        )
        raise TypeError(
            f"{what} action must be {noun} in 0..{n - 1}{detail} (a Python or NumPy integer, or an integer array "
            f"of one element), got {given}"
        )
    if not 0 <= a < n:
        raise ValueError(f"{what} action must be {noun} in 0..{n - 1}{detail}, got {a}")
    return a


def box_action(
    action: Any, shape: tuple[int, ...], what: str, detail: str = "", unit: str = "numbers"
) -> np.ndarray:
    """``action`` as a float64 array of ``shape``, or a ``TypeError``/``ValueError`` that says what was given.

    Accepted: anything NumPy reads as ``prod(shape)`` real numbers, flat or in ``shape``; refused: strings,
    booleans, other sizes, NaN and infinities. (Values outside the space are clipped by the caller, as
    Gymnasium's ``Box`` clients expect.)
    """
    expected = f"{what} action must be {int(np.prod(shape))} finite {unit} in shape {shape}" + (
        f" ({detail})" if detail else ""
    )
    a = np.asarray(action)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise TypeError(f"{expected}, got {type(action).__name__} {action!r} (dtype {a.dtype})")
    if a.size != int(np.prod(shape)) or a.shape not in (shape, (a.size,)):
        raise ValueError(f"{expected}, got shape {a.shape}: {action!r}")
    a = a.astype(np.float64).reshape(shape)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{expected}, got non-finite values: {action!r}")
    return a


def box(features: list[Feature]) -> spaces.Box:
    """The ``Box`` of a feature list's bounds (float32)."""
    low = np.array([f.low for f in features], dtype=np.float32)
    high = np.array([f.high for f in features], dtype=np.float32)
    return spaces.Box(low, high, dtype=np.float32)


class Role:
    """One decision-maker: its spaces, observation, action translation and money (see the module docstring)."""

    name: ClassVar[str] = ""
    INFO_KEYS: ClassVar[tuple[InfoKey, ...]] = ()
    """What :meth:`info` returns at the role's decisions (the ecosystem's per-agent infos)."""

    def __init__(self) -> None:
        self.world: PaymentWorld | None = None
        self.features: list[Feature] = []
        self.observation_space: spaces.Space
        self.action_space: spaces.Space
        self.charges_cents = 0
        """Opportunity costs the role's single-agent environment charges (declines, friction), in cents."""
        self._paid_cents = self._charged_cents = 0

    @property
    def kind(self) -> str:
        """The decision kind this role answers (``route`` for the router, ...)."""
        return ROLE_KIND[self.name]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature_schema(self) -> list[dict]:
        """Each observation entry's name, unit, scaling, low and high, in observation order."""
        return [dict(f.__dict__) for f in self.features]

    # ------------------------------------------------------------------ an episode
    def bind(self, world: PaymentWorld) -> None:
        """Attach to the world of a new episode (before its first decision)."""
        self.world = world
        self._margin = world.agent_margin
        self.agent_id = world.hub.agent_ids[self.kind]
        self.charges_cents = 0
        self._paid_cents = self._charged_cents = 0

    def observe(self, point: DecisionPoint | None) -> Any:
        raise NotImplementedError

    def info(self, point: DecisionPoint) -> dict:
        """The info that goes with the role's observation at ``point``: the keys of :attr:`INFO_KEYS`."""
        return {}

    def to_world(self, action: Any, point: DecisionPoint) -> Any:
        raise NotImplementedError

    def final_observation(self, last: Any) -> Any:
        """The observation that goes with the episode's end (``last``: the role's last observation)."""
        return last

    def blank_observation(self) -> Any:
        """An observation inside the space for a role that has not decided yet (zeros, clipped)."""
        space = self.observation_space
        if isinstance(space, spaces.Dict):
            return {k: np.clip(np.zeros(s.shape, s.dtype), s.low, s.high) for k, s in space.spaces.items()}
        return np.clip(np.zeros(space.shape, space.dtype), space.low, space.high)

    # ------------------------------------------------------------------ money
    def money_cents(self) -> int:
        """The ledger money attributed to this role so far this episode (cents)."""
        return self._margin[self.agent_id]

    def reward_usd(self) -> float:
        """The role's reward in its single-agent environment since the previous call, in dollars: its money,
        less the growth of :attr:`charges_cents` (the opportunity costs that environment books)."""
        money, charges = self.money_cents(), self.charges_cents
        delta, charged = money - self._paid_cents, charges - self._charged_cents
        self._paid_cents, self._charged_cents = money, charges
        return (delta - charged) / 100.0
