"""``PaymentEcosystemEnv``: the payment world as a multi-agent environment (RLlib's ``MultiAgentEnv`` API).

Everyone who decides in the payment world can be an agent: the PSP's ``router``, ``risk`` desk, ``pricer``
and ``treasury``, and the ``fraudster`` attacking them. Any subset learns; the rest are bound to named
baselines. The agents act at their own times on one simulated clock, exactly as the single-agent
environments do (the same :class:`~payroute.envs.world.PaymentWorld`, scenarios and ledger attribution:
one code path), so the world hands back one pending decision at a time.

This module follows RLlib's multi-agent API (dict observations, rewards, ``terminateds`` / ``truncateds``
with ``"__all__"``, ``possible_agents``, ``agents``, ``observation_spaces`` / ``action_spaces``,
``get_observation_space(agent)``) but does not import Ray: the learners' RLlib adapter subclasses RLlib's
``MultiAgentEnv`` around it, and :mod:`payroute.envs.multi_agent.pettingzoo_env` the PettingZoo AEC
interface. Each agent is a role of :mod:`payroute.envs.roles` on one :class:`~payroute.envs.episode.Episode`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from payroute.envs.episode import Episode
from payroute.envs.info import InfoKey, with_info_table
from payroute.envs.replay import Replayable
from payroute.envs.roles import ROLE_CLASSES, FraudsterRole, Role, RouterRole
from payroute.envs.scenarios import Scenario, load_scenario
from payroute.envs.world import PaymentWorld
from payroute.envs.world.books import FINAL_KPIS
from payroute.envs.world.decisions import DecisionPoint
from payroute.vocabulary import KIND_ROLE, ROLE_KIND, ROLES

_OPTIONS = {
    "scenario": "default",
    "seed": None,
    "days": 1.0,
    "scenario_overrides": None,
    "baselines": None,
    "learning": ("router", "risk", "fraudster"),
    "reward_scale": 1.0,
    "router_mask_in_observation": False,
    "router_invalid_action": "decline",
    "reward_split": "shared",
}


class PaymentEcosystemEnv(Replayable):
    """Every decision-maker of the payment world as an agent, learning or bound to a baseline.

    ## Description

    One episode is ``days`` of the scenario's payment world (then the world drains: every payment ends,
    every chargeback arrives). Agents (roles) and their decisions:

    | agent         | decides                                 | when                     | observation   |
    |---------------|-----------------------------------------|--------------------------|---------------|
    | ``router``    | which eligible route carries a payment  | per payment past risk    | Routing-v0's  |
    | ``risk``      | allow / challenge / block a payment     | per payment past pricing | Risk-v0's     |
    | ``pricer``    | fee multipliers per segment x family    | pricing period (a day)   | Pricing-v0's  |
    | ``treasury``  | transfers and intraday credit lines     | treasury period (1 h)    | Treasury-v0's |
    | ``fraudster`` | attack intensity and amounts by pattern | fraud period (1 h)       | its own       |

    ``learning`` names the agents this environment hands decisions to; every other role is answered in
    process by the baseline ``baselines`` names (defaults: ``cheapest`` routing, ``threshold`` risk,
    ``static_pricing``, ``target_balance`` treasury, ``scripted_fraud``). Only the agent whose decision is
    pending receives an observation, so every ``step`` takes exactly one action: ``{agent: action}`` for the
    agent in the last observation dict.

    ## Action and observation spaces

    ``action_spaces[agent]`` / ``observation_spaces[agent]`` (also ``get_action_space(agent)``), one per
    learning agent; the tables are in :mod:`payroute.envs.roles`. In short: router ``Discrete(n_routes)``
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

    ## Copies

    It pickles and deep-copies at any point, mid-episode included: the copy is rebuilt from the constructor's
    arguments and replays the episode so far (:mod:`payroute.envs.replay`), then continues exactly as the
    original. So do its RLlib and PettingZoo wrappers, which hold it.

    ## Episode end

    After ``days`` of arrivals, once the world has drained: every agent that has acted gets a final
    observation and its last reward with ``terminateds[agent] = True`` and ``terminateds["__all__"] = True``
    (the form RLlib's multi-agent episodes need to close each agent's trajectory); ``agents`` is then empty.
    No truncation.

    ## Arguments

    ``PaymentEcosystemEnv(scenario="default", seed=None, days=1.0, scenario_overrides=None, baselines=None, *,
    learning=("router", "risk", "fraudster"), reward_scale=1.0, router_mask_in_observation=False,
    router_invalid_action="decline", reward_split="shared")``: the single-agent environments' arguments, then the
    ecosystem's own. The first argument may instead be a mapping of the same keys (``config``, as RLlib passes
    ``env_config``); keyword arguments that differ from their defaults override it. ``baselines`` maps
    an agent (``"risk"``) or its decision kind (``"route"``) to a baseline name
    (:mod:`payroute.envs.baselines`). A masked route declines the payment (``router_invalid_action="decline"``,
    the default, as a client that samples without the mask expects); ``"raise"`` raises ``ValueError`` instead, for
    debugging. ``reset(seed=s)`` runs world seed ``s``; without one it draws the next from the
    generator seeded by the first seed given (``seed`` here, or the first ``reset``).

    ## Info

    At its decisions an agent's info holds its role's keys (only the router has one, ``action_mask``; the
    PettingZoo wrapper gives the other agents an empty dict); at the end every agent that acted gets the same
    dict (:meth:`final_info`). Generated from ``RouterRole.INFO_KEYS`` and ``FINAL_INFO_KEYS``
    (:mod:`payroute.envs.info`): ``int``, ``float`` and numpy arrays of a fixed type.

    ## Version history

    * v0: initial release.
    """

    FINAL_INFO_KEYS: tuple[InfoKey, ...] = (
        FINAL_KPIS,
        InfoKey(
            "agent_money_usd",
            "dict[str, ...]",
            "$",
            "every agent's money this episode, learning or bound to a baseline, by agent id",
            when=("terminal",),
            fields=(
                InfoKey(
                    "agent",
                    "float",
                    "$",
                    "PSP agents: the ledger money attributed to them; the fraudster: its net",
                ),
            ),
        ),
        InfoKey(
            "fraudster",
            "dict[str, ...]",
            "",
            "the fraudster's books by fraud pattern (scenario order)",
            when=("terminal",),
            fields=(
                InfoKey(
                    "pattern",
                    "dict",
                    "",
                    "one pattern's counts and money",
                    fields=(
                        InfoKey("attempts", "int", "payments", "attempts launched"),
                        InfoKey("challenged", "int", "payments", "attempts the risk desk challenged"),
                        InfoKey("blocked", "int", "payments", "attempts blocked or stopped by a challenge"),
                        InfoKey("approved", "int", "payments", "attempts a route approved"),
                        InfoKey("failed", "int", "payments", "attempts a route declined or failed"),
                        InfoKey("detected", "int", "payments", "approved attempts discovered later"),
                        InfoKey("recovered", "int", "payments", "payouts returned on a revocable rail"),
                        InfoKey("proceeds_cents", "int", "cents", "what approved attempts brought in"),
                        InfoKey("recovered_cents", "int", "cents", "proceeds taken back by returns"),
                        InfoKey("attempt_cost_cents", "int", "cents", "the cost of every attempt"),
                        InfoKey("blocked_cost_cents", "int", "cents", "the extra cost of blocked attempts"),
                        InfoKey("detection_cost_cents", "int", "cents", "the extra cost of detected frauds"),
                        InfoKey("net_cents", "int", "cents", "proceeds - recovered - costs"),
                    ),
                ),
            ),
        ),
    )
    """The info every agent that acted gets at the episode's end (:meth:`final_info`); at its decisions an
    agent's info holds its role's keys (``Role.INFO_KEYS``: only the router's ``action_mask``)."""

    metadata = {"render_modes": []}
    # an experiment's scenario, overrides, days and baselines reach the constructor, and its agents.learn
    # becomes ``learning`` (payroute.agents.training_env.env_kwargs)
    takes_scenario = True
    takes_learning = True

    def __init__(
        self,
        scenario: str | Path | Scenario | Mapping[str, Any] | None = "default",
        seed: int | None = None,
        days: float = 1.0,
        scenario_overrides: dict[str, Any] | None = None,
        baselines: dict[str, str] | None = None,
        *,
        learning: tuple[str, ...] | list[str] = ("router", "risk", "fraudster"),
        reward_scale: float = 1.0,
        router_mask_in_observation: bool = False,
        router_invalid_action: str = "decline",
        reward_split: str = "shared",
        **unknown: Any,
    ) -> None:
        given = {
            "scenario": scenario,
            "seed": seed,
            "days": days,
            "scenario_overrides": scenario_overrides,
            "baselines": baselines,
            "learning": learning,
            "reward_scale": reward_scale,
            "router_mask_in_observation": router_mask_in_observation,
            "router_invalid_action": router_invalid_action,
            "reward_split": reward_split,
        }
        config: dict[str, Any] = {}
        if scenario is None or isinstance(
            scenario, Mapping
        ):  # RLlib's env_config: the options in one mapping
            config = dict(scenario or {})
            given = {k: v for k, v in given.items() if k != "scenario" and v != _OPTIONS[k]}
        options = {**config, **given, **unknown}
        bad = sorted(set(options) - set(_OPTIONS))
        if bad:
            raise ValueError(f"unknown PaymentEcosystemEnv options {bad}; allowed: {sorted(_OPTIONS)}")
        options = {**_OPTIONS, **options}
        learning = tuple(options["learning"])
        bad = sorted(set(learning) - set(ROLES))
        if bad or not learning or len(set(learning)) != len(learning):
            raise ValueError(
                f"learning must name one or more distinct agents of {list(ROLES)}, got {list(learning)}"
            )
        # baselines by agent (``router``) or by the decision kind it answers (``route``)
        by_role = {KIND_ROLE.get(k, k): v for k, v in dict(options["baselines"] or {}).items()}
        bad = sorted(set(by_role) - set(ROLES))
        if bad:
            raise ValueError(f"baselines names unknown agents {bad}; agents: {list(ROLES)}")
        if options["reward_split"] not in ("shared", "full"):
            raise ValueError(f"reward_split must be 'shared' or 'full', got {options['reward_split']!r}")
        clash = sorted(set(by_role) & set(learning))
        if clash:
            raise ValueError(f"{clash} cannot both learn and be bound to a baseline")
        self.reward_split = options["reward_split"]
        loaded: Scenario = load_scenario(options["scenario"], options["scenario_overrides"])
        self.reward_scale = float(options["reward_scale"])
        self.baselines = by_role
        self.possible_agents: list[str] = [r for r in ROLES if r in learning]
        self.agents: list[str] = []
        roles: dict[str, Role] = {}
        for name in self.possible_agents:
            if name == "router":
                roles[name] = RouterRole(
                    loaded,
                    mask_in_observation=options["router_mask_in_observation"],
                    invalid_action=options["router_invalid_action"],
                    invalid_hint="Use the action mask, or build the environment with "
                    "router_invalid_action='decline' (the default).",
                )
            elif name == "pricer":  # trainers want a 1-D Box: Pricing-v0's (S, F) action, flattened row-major
                roles[name] = ROLE_CLASSES[name](loaded, flat=True)
            else:
                roles[name] = ROLE_CLASSES[name](loaded)
        self.roles = roles
        self.episode = Episode(
            loaded,
            roles.values(),
            days=options["days"],
            baselines={ROLE_KIND[r]: v for r, v in by_role.items()},
            seed=options["seed"],
            reward_split=self.reward_split,
        )
        self.observation_spaces: dict[str, spaces.Space] = {a: r.observation_space for a, r in roles.items()}
        self.action_spaces: dict[str, spaces.Space] = {a: r.action_space for a, r in roles.items()}
        self._paid: dict[str, int] = {}
        self._last_obs: dict[str, Any] = {}

    # ------------------------------------------------------------------ spaces and state
    @property
    def scenario(self) -> Scenario:
        return self.episode.scenario

    @property
    def days(self) -> float:
        return self.episode.days

    @property
    def world(self) -> PaymentWorld | None:
        return self.episode.world

    @property
    def np_random(self) -> np.random.Generator:
        return self.episode.np_random

    def get_observation_space(self, agent_id: str) -> spaces.Space:
        return self.observation_spaces[agent_id]

    def get_action_space(self, agent_id: str) -> spaces.Space:
        return self.action_spaces[agent_id]

    @property
    def fraudster_role(self) -> FraudsterRole | None:
        role = self.roles.get("fraudster")
        return role if isinstance(role, FraudsterRole) else None

    # ------------------------------------------------------------------ the episode
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a new world and run it to the first decision of a learning agent: ``(obs, infos)``."""
        self._paid = dict.fromkeys(self.possible_agents, 0)
        self._last_obs = {}
        self.agents = list(self.possible_agents)
        self._record_reset(seed, options)
        point = self.episode.reset(seed)
        agent = point.agent_id
        obs = self._observe(agent, point)
        return {agent: obs}, {agent: self.roles[agent].info(point)}

    def step(self, action_dict: Mapping[str, Any]):
        """Answer the pending decision: ``(obs, rewards, terminateds, truncateds, infos)``."""
        point = self.episode.point
        if point is None:
            raise RuntimeError("step() called after the episode ended (or before reset()); call reset()")
        agent = point.agent_id
        if agent not in action_dict or len(action_dict) != 1:
            raise ValueError(
                f"the pending decision is {agent!r}'s ({point.kind}): pass {{{agent!r}: action}}, "
                f"got actions for {sorted(action_dict)}"
            )
        nxt = self.episode.advance(self.roles[agent].to_world(action_dict[agent], point))
        self._record_step(action_dict)
        if nxt is None:
            return self._end()
        agent = nxt.agent_id
        obs = self._observe(agent, nxt)
        return (
            {agent: obs},
            {agent: self._reward(agent)},
            {"__all__": False},
            {"__all__": False},
            {agent: self.roles[agent].info(nxt)},
        )

    def _observe(self, agent: str, point: DecisionPoint) -> Any:
        obs = self.roles[agent].observe(point)
        self._last_obs[agent] = obs
        return obs

    def _reward(self, agent: str) -> float:
        money = self.roles[agent].money_cents()
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
            o = self.roles[agent].final_observation(self._last_obs[agent])
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
        return self.roles[agent].blank_observation() if obs is None else obs

    def take_reward(self, agent: str) -> float:
        """The agent's money since it was last paid (what its next reward would hold), marked as paid."""
        return self._reward(agent)

    @property
    def pending_agent(self) -> str | None:
        point = self.episode.point
        return None if point is None else point.agent_id

    def final_info(self) -> dict[str, Any]:
        """The episode's accounts: KPIs, every agent's money (PSP agents by the ledger split, the fraudster's
        net), and the fraudster's books per pattern (:attr:`FINAL_INFO_KEYS`)."""
        world = self.world
        money = {agent: cents / 100.0 for agent, cents in sorted(world.agent_margin.items())}
        money[world.hub.agent_ids["fraud"]] = world.fraudster.net_cents / 100.0
        return {"kpis": world.kpis(), "agent_money_usd": money, "fraudster": world.fraudster.summary()}

    def _replay_extra(self) -> dict[str, Any]:
        # what take_reward (the PettingZoo wrapper) has paid out between steps, which a replay of steps leaves out
        return {**super()._replay_extra(), "_paid": dict(self._paid)}

    def close(self) -> None:
        self._record_close()
        self.episode.close()


PaymentEcosystemEnv.__doc__ = with_info_table(
    PaymentEcosystemEnv.__doc__, RouterRole.INFO_KEYS + PaymentEcosystemEnv.FINAL_INFO_KEYS
)
