"""``PaymentEcosystemEnv``: the payment world as a multi-agent environment (RLlib's ``MultiAgentEnv`` API).

Everyone who decides in the payment world can be an agent: the PSP's ``router``, ``risk`` desk, ``pricer``
and ``treasury``, and the ``fraudster`` attacking them. Any subset learns; the rest are bound to named
baselines. The agents act at their own times on one simulated clock, exactly as the single-agent
environments do (the same :class:`~payroute.envs.world.PaymentWorld`, scenarios and ledger attribution:
one code path), so the world hands back one pending decision at a time.

This module follows RLlib's multi-agent API (dict observations, rewards, ``terminateds`` / ``truncateds``
with ``"__all__"``, ``possible_agents``, ``agents``, ``observation_spaces`` / ``action_spaces``,
``get_observation_space(agent)``) but does not import Ray: :mod:`payroute.agents.rllib_env` is the
``MultiAgentEnv`` subclass RLlib trains on, and :mod:`payroute.envs.multi_agent.pettingzoo_env` the PettingZoo AEC
interface.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

from payroute.envs.baselines import bound_policies
from payroute.envs.multi_agent.views import VIEWS, AgentView, FraudsterView, RouterView
from payroute.envs.scenarios import Scenario, load_scenario
from payroute.envs.world import PaymentWorld
from payroute.envs.world.decisions import DecisionPoint
from payroute.vocabulary import KIND_ROLE, ROLE_KIND, ROLES

_OPTIONS = {
    "scenario": "default",
    "scenario_overrides": None,
    "days": 1.0,
    "seed": None,
    "learning": ("router", "risk", "fraudster"),
    "baselines": None,
    "reward_scale": 1.0,
    "router_mask_in_observation": False,
    "router_invalid_action": "raise",
    "reward_split": "shared",
}


def _bound_policies(learning: tuple[str, ...], baselines: dict[str, str]) -> dict[str, Any]:

    names: dict[str, str | None] = {ROLE_KIND[role]: name for role, name in baselines.items()}
    for role in learning:
        names[ROLE_KIND[role]] = None
    return bound_policies(**names)


class PaymentEcosystemEnv:
    """Every decision-maker of the payment world as an agent, learning or bound to a baseline.

    ## Description

    One episode is ``days`` of the scenario's payment world (then the world drains: every payment ends,
    every chargeback arrives). Agents (roles) and their decisions:

    | agent         | decides                                 | when                     | view          |
    |---------------|-----------------------------------------|--------------------------|---------------|
    | ``router``    | which eligible route carries a payment  | per payment past risk    | Routing-v0's  |
    | ``risk``      | allow / challenge / block a payment     | per payment past pricing | Risk-v0's     |
    | ``pricer``    | fee multipliers per segment x family    | pricing period (a day)   | PricerView    |
    | ``treasury``  | transfers and intraday credit lines     | treasury period (1 h)    | TreasuryView  |
    | ``fraudster`` | attack intensity and amounts by pattern | fraud period (1 h)       | FraudsterView |

    ``learning`` names the agents this environment hands decisions to; every other role is answered in
    process by the baseline ``baselines`` names (defaults: ``cheapest`` routing, ``threshold`` risk,
    ``static_pricing``, ``target_balance`` treasury, ``scripted_fraud``). Only the agent whose decision is
    pending receives an observation, so every ``step`` takes exactly one action: ``{agent: action}`` for the
    agent in the last observation dict.

    ## Action and observation spaces

    ``action_spaces[agent]`` / ``observation_spaces[agent]`` (also ``get_action_space(agent)``), one per
    learning agent; the tables are in :mod:`payroute.envs.multi_agent.views`. In short: router ``Discrete(n_routes)``
    with a mask (``info["action_mask"]``; or inside the observation with ``router_mask_in_observation=True``,
    for RLlib's action-masking modules), risk ``Discrete(3)``, pricer ``Box`` of multipliers, treasury ``Box``
    of transfer and credit fractions, fraudster ``Box`` of intensities and amount multipliers per pattern.

    ## Rewards

    Dollars (times ``reward_scale``). An agent's reward is its money since its previous observation, paid
    with its next observation. PSP agents: the ledger money attributed to them with ``reward_split="shared"``
    (each payment's revenue and costs split in whole cents between the pricer, risk desk and router that
    decided on it; period costs of liquidity and transfers to treasury); so over an episode the learning
    agents' rewards plus the bound agents' shares (``info["agent_money_usd"]`` at the end) add up to the
    ledger's profit. The fraudster: its proceeds not recovered minus its costs (attempts, blocked attempts,
    discovered frauds): not PSP money, it is the other side of the PSP's fraud loss.

    The attribution is the single-agent environments' (``PaymentWorld.agent_margin``); with
    ``reward_split="full"`` every deciding agent is credited a payment's whole margin, as Routing-v0 and
    Risk-v0 credit their one agent (then the agents' money no longer adds up to the ledger). The opportunity
    costs those environments add (the margin a decline or a false block forgoes) are not ledger money and are
    not paid here.

    ## Episode end

    After ``days`` of arrivals, once the world has drained: every agent that has acted gets a final
    observation and its last reward with ``terminateds[agent] = True`` and ``terminateds["__all__"] = True``
    (the form RLlib's multi-agent episodes need to close each agent's trajectory); ``agents`` is then empty.
    No truncation.

    ## Arguments

    ``PaymentEcosystemEnv(config=None, *, scenario="default", scenario_overrides=None, days=1.0, seed=None,
    learning=("router", "risk", "fraudster"), baselines=None, reward_scale=1.0,
    router_mask_in_observation=False, router_invalid_action="raise", reward_split="shared")``; ``config`` (a
    mapping of the same keys, as RLlib passes ``env_config``) and keyword arguments merge. ``baselines`` maps
    an agent (``"risk"``) or its decision kind (``"route"``) to a baseline name
    (:mod:`payroute.envs.baselines`). ``router_invalid_action="decline"`` declines a payment whose route is
    masked instead of raising. ``reset(seed=s)`` runs world seed ``s``; without one it draws the next from the
    generator seeded by the first seed given (``seed`` here, or the first ``reset``).

    ## Version history

    * v0: initial release.
    """

    metadata = {"render_modes": []}

    def __init__(self, config: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        options = {**dict(config or {}), **kwargs}
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"unknown PaymentEcosystemEnv options {unknown}; allowed: {sorted(_OPTIONS)}")
        options = {**_OPTIONS, **options}
        learning = tuple(options["learning"])
        bad = sorted(set(learning) - set(ROLES))
        if bad or not learning or len(set(learning)) != len(learning):
            raise ValueError(
                f"learning must name one or more distinct agents of {list(ROLES)}, got {list(learning)}"
            )
        # baselines by agent (``router``) or by the decision kind it answers (``route``)
        baselines = {KIND_ROLE.get(k, k): v for k, v in dict(options["baselines"] or {}).items()}
        bad = sorted(set(baselines) - set(ROLES))
        if bad:
            raise ValueError(f"baselines names unknown agents {bad}; agents: {list(ROLES)}")
        if options["reward_split"] not in ("shared", "full"):
            raise ValueError(f"reward_split must be 'shared' or 'full', got {options['reward_split']!r}")
        self.reward_split = options["reward_split"]
        clash = sorted(set(baselines) & set(learning))
        if clash:
            raise ValueError(f"{clash} cannot both learn and be bound to a baseline")
        if options["days"] <= 0:
            raise ValueError(f"days must be > 0, got {options['days']}")
        self.scenario: Scenario = load_scenario(options["scenario"], options["scenario_overrides"])
        self.days = float(options["days"])
        self.reward_scale = float(options["reward_scale"])
        self.baselines = baselines
        self.possible_agents: list[str] = [r for r in ROLES if r in learning]
        self.agents: list[str] = []
        self._seed = options["seed"]
        self._np_random: np.random.Generator | None = None

        probe = self._new_world(0)  # sizes the spaces; never run
        views: dict[str, AgentView] = {}
        for role in self.possible_agents:
            if role == "router":
                views[role] = RouterView(
                    probe, options["router_mask_in_observation"], options["router_invalid_action"]
                )
            else:
                views[role] = VIEWS[role](probe)
        self.views = views
        self.observation_spaces: dict[str, spaces.Space] = {a: v.observation_space for a, v in views.items()}
        self.action_spaces: dict[str, spaces.Space] = {a: v.action_space for a, v in views.items()}
        self.world: PaymentWorld | None = None
        self._point: DecisionPoint | None = None

    # ------------------------------------------------------------------ spaces
    def get_observation_space(self, agent_id: str) -> spaces.Space:
        return self.observation_spaces[agent_id]

    def get_action_space(self, agent_id: str) -> spaces.Space:
        return self.action_spaces[agent_id]

    @property
    def fraudster_view(self) -> FraudsterView | None:
        view = self.views.get("fraudster")
        return view if isinstance(view, FraudsterView) else None

    # ------------------------------------------------------------------ world
    def _new_world(self, seed: int) -> PaymentWorld:
        policies = _bound_policies(tuple(self.possible_agents), self.baselines)
        return PaymentWorld(
            self.scenario, seed=seed, policies=policies, days=self.days, reward_split=self.reward_split
        )

    @property
    def np_random(self) -> np.random.Generator:
        if self._np_random is None:
            self._np_random, _ = seeding.np_random(self._seed)
        return self._np_random

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a new world and run it to the first decision of a learning agent: ``(obs, infos)``."""
        if seed is not None:
            self._np_random, _ = seeding.np_random(int(seed))
            world_seed = int(seed)
        elif self._np_random is None and self._seed is not None:
            world_seed = int(self._seed)
            self._np_random, _ = seeding.np_random(world_seed)
        else:
            world_seed = int(self.np_random.integers(0, 2**31 - 1))
        world = self._new_world(world_seed)
        self.world = world
        for view in self.views.values():
            view.bind(world)
        self._paid = dict.fromkeys(self.possible_agents, 0)
        self._last_obs: dict[str, Any] = {}
        self.agents = list(self.possible_agents)
        self._point = world.run_until_decision()
        if self._point is None:
            raise RuntimeError(
                f"the episode has no decision for any learning agent {self.possible_agents}: "
                "check the scenario's volume and days"
            )
        agent = self._point.agent_id
        obs = self._observe(agent, self._point)
        return {agent: obs}, {agent: self.views[agent].info(self._point)}

    def step(self, action_dict: Mapping[str, Any]):
        """Answer the pending decision: ``(obs, rewards, terminateds, truncateds, infos)``."""
        point = self._point
        if point is None:
            raise RuntimeError("step() called after the episode ended (or before reset()); call reset()")
        agent = point.agent_id
        if agent not in action_dict or len(action_dict) != 1:
            raise ValueError(
                f"the pending decision is {agent!r}'s ({point.kind}): pass {{{agent!r}: action}}, "
                f"got actions for {sorted(action_dict)}"
            )
        view = self.views[agent]
        point.resolve(view.to_world(action_dict[agent], point))
        self._point = nxt = self.world.run_until_decision()
        if nxt is None:
            return self._end()
        agent = nxt.agent_id
        obs = self._observe(agent, nxt)
        return (
            {agent: obs},
            {agent: self._reward(agent)},
            {"__all__": False},
            {"__all__": False},
            {agent: self.views[agent].info(nxt)},
        )

    def _observe(self, agent: str, point: DecisionPoint) -> Any:
        obs = self.views[agent].observe(point)
        self._last_obs[agent] = obs
        return obs

    def _reward(self, agent: str) -> float:
        money = self.views[agent].money_cents()
        delta = money - self._paid[agent]
        self._paid[agent] = money
        return delta / 100.0 * self.reward_scale

    def _end(self):
        world = self.world
        final = self.final_info()
        obs, rewards, terminateds, truncateds, infos = {}, {}, {}, {}, {}
        for agent in self.possible_agents:
            if agent not in self._last_obs:
                continue  # never decided: not part of this episode (RLlib drops it)
            o = self.views[agent].final_observation(self._last_obs[agent])
            self._last_obs[agent] = o
            obs[agent] = o
            rewards[agent] = self._reward(agent)
            terminateds[agent] = True
            truncateds[agent] = False
            infos[agent] = final
        terminateds["__all__"] = True
        truncateds["__all__"] = False
        self.agents = []
        assert world.done
        return obs, rewards, terminateds, truncateds, infos

    # ------------------------------------------------------------------ helpers for wrappers and tests
    def last_observation(self, agent: str) -> Any:
        """The agent's latest observation (a blank one inside its space before its first decision)."""
        obs = self._last_obs.get(agent)
        return self.views[agent].blank_observation() if obs is None else obs

    def take_reward(self, agent: str) -> float:
        """The agent's money since it was last paid (what its next reward would hold), marked as paid."""
        return self._reward(agent)

    @property
    def pending_agent(self) -> str | None:
        return None if self._point is None else self._point.agent_id

    def final_info(self) -> dict[str, Any]:
        """The episode's accounts: KPIs, every agent's money (PSP agents by the ledger split, the fraudster's
        net), and the fraudster's books per pattern."""
        world = self.world
        money = {agent: cents / 100.0 for agent, cents in sorted(world.agent_margin.items())}
        money[world.hub.agent_ids["fraud"]] = world.fraudster.net_cents / 100.0
        return {
            "kpis": world.kpis(),
            "agent_money_usd": money,
            "fraudster": world.fraudster.summary(),
        }

    def close(self) -> None:
        self.world = None
        self._point = None
