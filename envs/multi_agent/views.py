"""What each agent of the payment ecosystem sees, what it may do, and what it is paid.

One view per role (``router``, ``risk``, ``pricer``, ``treasury``, ``fraudster``). A view owns its agent's
observation and action spaces, builds the observation at a pending decision, turns an action from its space
into the world's action, and reads the agent's money from the world:

* the PSP's agents (router, risk, pricer, treasury) are paid what the ledger attributes to them
  (``PaymentWorld.agent_margin``; with ``reward_split="shared"`` the money of a payment is split between the
  agents that decided on it, so all agents' money adds up to the ledger's profit);
* the fraudster is paid its own net (``PaymentWorld.fraudster``): proceeds not recovered, minus its costs.

The router and risk views reuse the Routing-v0 and Risk-v0 features (:mod:`payroute.envs.features`); the
pricer and treasury views reuse Pricing-v0's and Treasury-v0's observations and actions (the pricer's
``(segments, families)`` action flattened row-major, since trainers want a 1-D ``Box``). An agent sees in
the ecosystem exactly what it sees in its single-agent environment.

Observations contain only what that agent could see in practice: never a route's hidden health, the true
approval probabilities, or whether a payment is fraud; the fraudster sees only its own attempts and money.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

from payroute.envs.features import Feature, RoutingFeatures, TransactionFeatures
from payroute.envs.single_agent.pricing import PricingEnv
from payroute.envs.single_agent.treasury import TreasuryEnv
from payroute.envs.world.clock import DAY_S, HOUR_S
from payroute.envs.world.decisions import RISK_ACTIONS, FraudAction
from payroute.envs.world.fraud import FraudsterBook
from payroute.vocabulary import ROLE_KIND

if TYPE_CHECKING:
    from payroute.envs.world.decisions import DecisionPoint
    from payroute.envs.world.world import PaymentWorld


DECLINE_ACTION = -1

CALENDAR = (
    Feature("hour_sin", "", "sin(2 pi hour/24)", -1.0, 1.0),
    Feature("hour_cos", "", "cos(2 pi hour/24)", -1.0, 1.0),
    Feature("weekday", "Mon=0..Sun=6", "/ 6", 0.0, 1.0),
    Feature("business_day", "flag", "", 0.0, 1.0),
    Feature("episode_progress", "share", "time / days of arrivals, clipped to 1", 0.0, 1.0),
)


def _calendar(world: PaymentWorld, out: np.ndarray, k: int) -> None:
    now = world.now
    angle = 2.0 * math.pi * (now % DAY_S) / DAY_S
    out[k] = math.sin(angle)
    out[k + 1] = math.cos(angle)
    out[k + 2] = world.calendar.weekday(now) / 6.0
    out[k + 3] = 1.0 if world.calendar.is_business_day(int(now // DAY_S)) else 0.0
    out[k + 4] = min(now / world.horizon_s, 1.0)


def _box(features: list[Feature]) -> spaces.Box:
    low = np.array([f.low for f in features], dtype=np.float32)
    high = np.array([f.high for f in features], dtype=np.float32)
    return spaces.Box(low, high, dtype=np.float32)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _log_usd(cents: np.ndarray, scale_usd: float = 1e6) -> np.ndarray:
    """log(1 + dollars) / log(1 + scale), clipped to [0, 1]."""
    return np.clip(np.log1p(np.maximum(cents, 0) / 100.0) / math.log1p(scale_usd), 0.0, 1.0)


class AgentView:
    """Base: the spaces, observation and money of one role. Built on a probe world (never run) for the
    spaces; :meth:`bind` attaches it to each episode's world."""

    role = ""

    def __init__(self, probe: PaymentWorld) -> None:
        self.world: PaymentWorld | None = None
        self.features: list[Feature] = []
        self.observation_space: spaces.Space
        self.action_space: spaces.Space

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def bind(self, world: PaymentWorld) -> None:
        self.world = world
        self._margin = world.agent_margin
        self._agent_id = world.hub.agent_ids[ROLE_KIND[self.role]]

    def money_cents(self) -> int:
        """The agent's money so far this episode (cents): what its rewards add up to."""
        return self._margin[self._agent_id]

    def observe(self, point: DecisionPoint) -> Any:
        raise NotImplementedError

    def final_observation(self, last: Any) -> Any:
        """The observation that goes with the episode's end (``last``: the agent's last observation)."""
        return last

    def blank_observation(self) -> Any:
        """An observation inside the space for an agent that has not decided yet (zeros, clipped)."""
        space = self.observation_space
        if isinstance(space, spaces.Dict):
            return {k: np.clip(np.zeros(s.shape, s.dtype), s.low, s.high) for k, s in space.spaces.items()}
        return np.clip(np.zeros(space.shape, space.dtype), space.low, space.high)

    def info(self, point: DecisionPoint) -> dict:
        return {}

    def to_world(self, action: Any, point: DecisionPoint) -> Any:
        raise NotImplementedError


# ====================================================================== per-transaction roles
class RouterView(AgentView):
    """The Routing-v0 observation and action: ``Discrete(n_routes)``, ineligible routes masked.

    ``mask_in_observation``: the observation is ``{"observations": Box, "action_mask": Box(0, 1, (n,))}``
    (what RLlib's action-masking modules read); otherwise the mask is in the info (``info["action_mask"]``,
    the PettingZoo convention). ``invalid_action``: ``"raise"`` (a ``ValueError``) or ``"decline"`` (the
    payment is declined, terminal state ``declined``, reason ``invalid_action``: the margin is lost, nothing
    else is charged).
    """

    role = "router"

    def __init__(self, probe: PaymentWorld, mask_in_observation: bool = False, invalid_action: str = "raise"):
        super().__init__(probe)
        if invalid_action not in ("raise", "decline"):
            raise ValueError(f"router invalid_action must be 'raise' or 'decline', got {invalid_action!r}")
        self.invalid_action = invalid_action
        self.mask_in_observation = mask_in_observation
        self.route_names = [r.name for r in probe.routes]
        self._features = RoutingFeatures(probe)
        self.features = list(self._features.features)
        box = spaces.Box(self._features.low, self._features.high, dtype=np.float32)
        n = len(self.route_names)
        self.action_space = spaces.Discrete(n)
        if mask_in_observation:
            self.observation_space = spaces.Dict(
                {"observations": box, "action_mask": spaces.Box(0.0, 1.0, (n,), dtype=np.float32)}
            )
        else:
            self.observation_space = box

    def bind(self, world: PaymentWorld) -> None:
        super().bind(world)
        self._features = RoutingFeatures(world)

    def observe(self, point: DecisionPoint) -> Any:
        tx = point.payload
        obs = self._features.build(tx, self.world.now)
        self._mask = self._features.mask(tx)
        if self.mask_in_observation:
            return {"observations": obs, "action_mask": self._mask.astype(np.float32)}
        return obs

    def info(self, point: DecisionPoint) -> dict:
        return {"action_mask": self._mask}

    def to_world(self, action: Any, point: DecisionPoint) -> int:
        a = int(np.asarray(action).item())
        tx = point.payload
        if 0 <= a < len(self.route_names) and (tx.eligible_mask >> a) & 1:
            return a
        if self.invalid_action == "decline":
            return DECLINE_ACTION
        eligible = [self.route_names[i] for i in np.flatnonzero(self._features.mask(tx))]
        raise ValueError(
            f"router action {a} is masked for this payment; eligible routes: {eligible}. "
            "Use the action mask, or build the environment with router_invalid_action='decline'."
        )


class RiskView(AgentView):
    """The Risk-v0 observation (payment and calendar features, the risk score) and ``Discrete(3)``:
    0 allow, 1 challenge, 2 block."""

    role = "risk"

    def __init__(self, probe: PaymentWorld) -> None:
        super().__init__(probe)
        self._features = TransactionFeatures(probe)
        self.features = list(self._features.features)
        self.observation_space = _box(self.features)
        self.action_space = spaces.Discrete(len(RISK_ACTIONS))

    def bind(self, world: PaymentWorld) -> None:
        super().bind(world)
        self._features = TransactionFeatures(world)

    def observe(self, point: DecisionPoint) -> np.ndarray:
        out = np.zeros(self._features.size, dtype=np.float32)
        self._features.fill(out, point.payload, self.world.now)
        return out

    def to_world(self, action: Any, point: DecisionPoint) -> int:
        a = int(np.asarray(action).item())
        if a not in (0, 1, 2):
            raise ValueError(f"risk action must be 0 (allow), 1 (challenge) or 2 (block), got {action!r}")
        return a


# ====================================================================== per-period roles
class PeriodView(AgentView):
    """A role that decides once per period: observations describe the period since its last decision."""

    def observe(self, point: DecisionPoint | None) -> np.ndarray:
        out = self._observe()
        self._close_period()
        return out

    def final_observation(self, last: Any) -> np.ndarray:
        return self._observe()

    def _observe(self) -> np.ndarray:
        raise NotImplementedError

    def _close_period(self) -> None:
        pass


class _PeriodEnvView(AgentView):
    """The observation and action of a per-period Gymnasium environment (Pricing-v0, Treasury-v0), reused
    as is: that environment, never reset, keeps its per-period bookkeeping on the ecosystem's world. One code
    path: the agent sees in the ecosystem exactly what it sees alone."""

    env_class: type = object

    def __init__(self, probe: PaymentWorld) -> None:
        super().__init__(probe)
        self._env = self.env_class(scenario=probe.scenario, days=probe.days)
        self.observation_space = self._env.observation_space
        self.features = [Feature(name, "", "", -math.inf, math.inf) for name in self._env.observation_names]

    def bind(self, world: PaymentWorld) -> None:
        super().bind(world)
        self._env.world = world
        self._env._start_episode()
        self._first = True

    def observe(self, point: DecisionPoint | None) -> np.ndarray:
        if not self._first:
            self._env._reward()  # closes the period that just ended (what the environment's step() does)
        self._first = False
        return self._env._observe()

    def final_observation(self, last: Any) -> np.ndarray:
        return self.observe(None)

    def to_world(self, action: Any, point: DecisionPoint) -> Any:
        return self._env._to_world_action(action)


class PricerView(_PeriodEnvView):
    """Pricing-v0's observation and action, the action flattened for trainers that need a 1-D ``Box``.

    Action: ``Box(min_multiplier, max_multiplier, (S * 3,))``, row-major (segment, family) — Pricing-v0's
    ``(S, 3)`` action, flattened; families ``card, bank, cross_border``; 1.0 charges the list price.
    Observation: Pricing-v0's (:class:`~payroute.envs.single_agent.pricing.PricingEnv`): volumes, mix, abandonment,
    switching, approval, own and competitor prices, churn, profit per payment of the period since the last
    pricing decision, calendar.
    """

    role = "pricer"

    env_class = PricingEnv

    def __init__(self, probe: PaymentWorld) -> None:
        super().__init__(probe)
        box = self._env.action_space
        self.segments = list(probe.segments)
        self.action_space = spaces.Box(box.low.ravel(), box.high.ravel(), dtype=np.float32)


class TreasuryView(_PeriodEnvView):
    """Treasury-v0's observation and action (:class:`~payroute.envs.single_agent.treasury.TreasuryEnv`).

    Action: ``Box``: per fundable account the transfer as a fraction of its target balance in [-1, 1], then
    per credit account the intraday credit line as a fraction of its limit in [0, 1] (``action_names``).
    Observation: balances, transfers in transit, queued payouts, credit lines, value queued per prefunded
    route, expected inflows and payouts for the next hours, calendar.
    """

    role = "treasury"

    env_class = TreasuryEnv

    def __init__(self, probe: PaymentWorld) -> None:
        super().__init__(probe)
        self.action_space = self._env.action_space
        self.action_names = list(self._env.action_names)
        self.credit_accounts = list(self._env.credit_accounts)
        self.fundable = list(self._env.fundable)


class FraudsterView(PeriodView):
    """How hard to attack, with which patterns, at which amounts, each fraud period (an hour by default).

    Action: ``Box`` of ``2 P`` numbers (``P`` patterns in the world's order, ``pattern_names``): the intensity
    per pattern, times the scenario's attack rate, in ``[0, fraud.max_intensity]``; then the amount multiplier
    per pattern on the pattern's amount band, in ``fraud.amount_multiplier_range``. Out-of-range values are
    clipped.

    Observation: only what an attacker sees of its own attacks in the period since its last decision, per
    pattern: attempts relative to the scenario's rate (clipped to ``2 max_intensity``), the shares approved,
    challenged, blocked and failed on the route, frauds discovered (chargebacks, returns, reimbursements)
    relative to the scenario's rate (clipped to 10), its proceeds and its costs (log(1+dollars)/log(1+1e6)),
    the intensity in force / max and the amount multiplier in force (log, scaled to [-1, 1]); then the
    calendar.

    Money: proceeds not recovered minus costs (:class:`~payroute.envs.world.fraud.FraudsterBook`).
    """

    role = "fraudster"
    PER_PATTERN = (
        "attempts",
        "approved_rate",
        "challenged_rate",
        "blocked_rate",
        "failed_rate",
        "detected",
        "proceeds",
        "costs",
        "intensity",
        "amount_multiplier",
    )

    def __init__(self, probe: PaymentWorld) -> None:
        super().__init__(probe)
        fraud = probe.scenario.fraud
        self.pattern_names = list(probe.fraud.pattern_names)
        p = len(self.pattern_names)
        self.max_intensity = fraud.max_intensity
        self.amount_range = tuple(fraud.amount_multiplier_range)
        self._log_amount_scale = max(
            abs(math.log(self.amount_range[0])), abs(math.log(self.amount_range[1])), 1e-9
        )
        f: list[Feature] = []
        units = {
            "attempts": ("x scenario rate", "clipped to 2 x max_intensity", 0, 2 * self.max_intensity),
            "approved_rate": ("share of attempts", "", 0, 1),
            "challenged_rate": ("share of attempts", "", 0, 1),
            "blocked_rate": ("share of attempts", "", 0, 1),
            "failed_rate": ("share of attempts", "", 0, 1),
            "detected": ("x scenario rate", "clipped to 10", 0, 10),
            "proceeds": ("log(1+dollars)", "/ log(1+1e6)", 0, 1),
            "costs": ("log(1+dollars)", "/ log(1+1e6)", 0, 1),
            "intensity": ("x scenario rate", "/ max_intensity", 0, 1),
            "amount_multiplier": ("log(multiplier)", "/ max |log| of the range", -1, 1),
        }
        for name in self.PER_PATTERN:
            unit, scaling, lo, hi = units[name]
            f += [Feature(f"{name}[{pat}]", unit, scaling, lo, hi) for pat in self.pattern_names]
        self.features = f + list(CALENDAR)
        self.observation_space = _box(self.features)
        lo = [0.0] * p + [self.amount_range[0]] * p
        hi = [self.max_intensity] * p + [self.amount_range[1]] * p
        self.action_space = spaces.Box(np.array(lo, np.float32), np.array(hi, np.float32), dtype=np.float32)
        sc = probe.scenario
        period_h = max(1, sc.fraud_period_s // HOUR_S)
        self._rate_per_period = np.array(
            [
                sc.fraud.patterns[n].attacks_per_day * sc.volume_scale * period_h / 24.0
                for n in self.pattern_names
            ]
        )

    def money_cents(self) -> int:
        return self.world.fraudster.net_cents

    def bind(self, world: PaymentWorld) -> None:
        super().bind(world)
        book = world.fraudster
        self._counts0 = book.counts.copy()
        self._money0 = book.money.copy()

    def _observe(self) -> np.ndarray:
        w = self.world
        book: FraudsterBook = w.fraudster
        c = book.counts - self._counts0
        m = book.money - self._money0
        attempts = c[0]
        parts = [
            np.clip(_ratio(attempts, self._rate_per_period), 0, 2 * self.max_intensity),
            _ratio(c[3], attempts),
            _ratio(c[1], attempts),
            _ratio(c[2], attempts),
            _ratio(c[4], attempts),
            np.clip(_ratio(c[5], self._rate_per_period), 0, 10),
            _log_usd(m[0] - m[1]),
            _log_usd(m[2:].sum(axis=0)),
            np.clip(w.fraud_intensity / self.max_intensity, 0, 1),
            np.clip(np.log(w.fraud_amount_multiplier) / self._log_amount_scale, -1, 1),
        ]
        out = np.empty(self.observation_space.shape, dtype=np.float32)
        k = 0
        for part in parts:
            out[k : k + part.size] = part
            k += part.size
        _calendar(w, out, k)
        return out

    def _close_period(self) -> None:
        book = self.world.fraudster
        self._counts0 = book.counts.copy()
        self._money0 = book.money.copy()

    def to_world(self, action: Any, point: DecisionPoint) -> FraudAction:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        p = len(self.pattern_names)
        if a.shape != (2 * p,) or not np.all(np.isfinite(a)):
            raise ValueError(
                f"fraudster action must be {2 * p} finite numbers: intensities for {self.pattern_names}, "
                f"then amount multipliers for the same patterns; got {action!r}"
            )
        a = np.clip(a, self.action_space.low, self.action_space.high)
        return FraudAction(intensity=tuple(a[:p]), amount_multiplier=tuple(a[p:]))


VIEWS: dict[str, type[AgentView]] = {
    "router": RouterView,
    "risk": RiskView,
    "pricer": PricerView,
    "treasury": TreasuryView,
    "fraudster": FraudsterView,
}
