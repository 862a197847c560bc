"""The environment as a trainer sees it: a payroute environment plus what training needs and nothing else.

:func:`make_env` builds any payroute environment from an experiment's ``env`` section (a Gymnasium id in
the ``payroute/`` namespace, or a ``module:Class`` path for multi-agent environments) with the scenario, its
overrides and the baselines bound to the agents that do not learn. :class:`TrainingEnv` wraps a single-agent
one for training:

* **held-out seeds.** Every episode's world seed is drawn below :data:`HELD_OUT_SEED_START`; evaluation seeds
  start at that limit, so a policy is never evaluated on a world it was trained on.
* **reward clipping** (optional, ``reward_clip_usd``): the final step of an episode carries everything that
  resolves only when the world drains (fraud discovered days later, settlements after the last arrival): a
  single reward thousands of times larger than a step's. Trainers that standardise advantages per batch
  (RLlib PPO) would let it drown every other step's signal; clipping keeps the per-step signal.
* **running KPIs.** Every ``kpi_every_steps`` steps ``info["kpis_running"]`` carries the world's KPIs so far,
  so TensorBoard and the progress bar move during a long episode; the final step carries ``info["kpis"]``.
* **decision credit** (``credit="decision"``, routing and risk): the final step's info also carries
  ``decision_rewards``, one number per step: the margin that step's own payment finally earned or cost
  (fee revenue - route cost - fraud loss - SLA penalty - credit cost, minus the lost margin of a decline),
  known only once the world has drained. Their sum equals the episode's return; only the timing differs.
  Routing is a contextual bandit with delayed feedback: a payout's SLA miss is booked when it settles the
  next morning and a fraud loss when it is discovered days later, both in the last step of the episode,
  where no per-step credit assignment can find the decision that caused them. A trainer that replaces
  each step's reward by its decision reward (RLlib: :class:`payroute.agents.rllib.trainer.DecisionCredit`,
  with complete episodes) learns from exact credit instead.
* **expected fraud credit** (``credit="expected"``, routing and risk): decision credit where the fraud loss of
  each sent payment is its expectation instead of its realisation: P(fraud | risk score, the
  payment's cell, its base rate over every day this environment has simulated) x the loss fraud would cause on
  the route it took (:class:`payroute.envs.world.fraud.FraudPosterior`,
  :func:`~payroute.envs.world.fraud.expected_fraud_loss_cents`; what the oracle routes by). Fraud is a few
  payments in ten thousand and its losses are heavy-tailed: a choice for a risky payout is charged thousands of
  dollars on the rare day the payment turns out to be fraud and nothing on the others. The expectation charges
  every risky payment its expected cost, every time: the same mean (the posterior is calibrated) and a far
  smaller variance. For the risk desk a payment it challenged keeps its realised loss: passing a challenge is
  evidence the score's posterior leaves out, and what a challenge stops is the desk's to learn. The router
  values every payment by the score's posterior, as the oracle does. Training signal only: evaluation counts
  the realised losses.
* **expected outcome credit** (``credit="expected_outcome"``): expected fraud credit where the route's answer
  is also taken at its expectation. A route approves with a probability the world knows at the instant it
  answers (segment, drift, hidden health); the step is paid its realised margin plus (P(success) - 1{success})
  x what a success is worth over a decline (price - route cost - the expected fraud loss, plus the decline
  charge when the environment books one). The added term has mean zero, so the mean credit is unchanged; the
  coin flip (a dollar or more either way, where choosing a route is worth cents) is gone. Routing-v0 with a
  tenth of the noise needs a tenth of the days to see the same difference between routes.
* **route baseline** (``baseline="route_mean"``, routers with expected credit): each step's credit minus a
  reference that does not depend on the step's action: the mean, over the payment's eligible routes, of the
  expected margin of sending it there, valued at the instant of the decision knowing the routes' hidden state
  (:func:`payroute.envs.baselines.routers.route_values`, what the oracle routes by; Routing-v0's decline charge
  included). A baseline independent of the action leaves the policy gradient's mean unchanged; what it takes
  out is the part of each payment's margin that no route choice changes (its price, its size), which a critic
  must otherwise learn before the differences between routes show through: on a random router's day the
  spread of card payments' credit shrank by more than twenty times. Training signal only, like the others.

No ray or stable_baselines3 import here: both trainers use this module.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from typing import Any

import gymnasium as gym
import numpy as np

from payroute.envs.baselines.routers import observed_route_values
from payroute.envs.scenarios.timings import DayTimings, draw_timing
from payroute.envs.world.decisions import ALLOW
from payroute.envs.world.fraud import FraudPosterior, expected_fraud_loss_cents
from payroute.vocabulary import HELD_OUT_SEED_START, ROLE_KIND

CREDITS = ("resolved", "decision", "expected", "expected_outcome")
"""How a single-agent environment's steps are paid (see the module docstring)."""

BASELINES = ("none", "route_mean")
"""What a router's decision credit is measured against (see the module docstring, route baseline)."""


def resolve_entry_point(env_id: str) -> Any:
    """The class (or factory) behind an experiment's ``env.id``: a registered gym id or ``module:Class``."""
    import payroute  # noqa: F401  (registers the payroute/ gym ids)

    if ":" in env_id:
        module, _, name = env_id.partition(":")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise LookupError(f"cannot import {env_id!r}: {exc}") from None
    if env_id not in gym.registry:
        known = sorted(k for k in gym.registry if k.startswith("payroute/"))
        raise LookupError(
            f"environment {env_id!r} is not registered; registered payroute environments: {known}"
        )
    entry = gym.registry[env_id].entry_point
    if callable(entry):
        return entry
    module, _, name = str(entry).partition(":")
    return getattr(importlib.import_module(module), name)


def env_kwargs(
    env_id: str,
    scenario: str,
    scenario_overrides: dict[str, Any] | None,
    days: float,
    baselines: dict[str, str],
    extra: dict[str, Any],
    learn: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """Constructor arguments for ``env_id``.

    The single-agent environments (``takes_scenario``) take the episode core's ``(scenario, seed, days,
    scenario_overrides, baselines, ...)``; ``baselines`` are passed by decision kind (an experiment names them by
    agent). An environment of your own (``module:Class``) takes them too when its class sets ``takes_scenario =
    True``. Any other environment (the multi-agent ones, configured by their RLlib ``config`` mapping; the RTGS
    game) gets ``extra`` only, and refuses scenario overrides. An environment whose class sets ``takes_learning
    = True`` (the ecosystem) is also told which agents learn (``learning``: the experiment's ``agents.learn``).
    """
    cls = resolve_entry_point(env_id)
    if not getattr(cls, "takes_scenario", False):
        if scenario_overrides:
            raise LookupError(f"{env_id} takes no scenario overrides")
        return dict(extra)
    kw: dict[str, Any] = {"scenario": scenario, "days": days}
    if scenario_overrides:
        kw["scenario_overrides"] = dict(scenario_overrides)
    if baselines:
        kw["baselines"] = {ROLE_KIND.get(k, k): v for k, v in baselines.items()}
    kw.update(extra)
    if learn and getattr(cls, "takes_learning", False):
        kw["learning"] = list(learn)
    return kw


def experiment_env_config(
    exp: Any, *, dict_observation: bool = False, penalize_invalid: bool = False
) -> dict:
    """The config dict :class:`ExperimentEnv` is built from, for experiment ``exp`` (a validated
    experiment config; only read here).

    An environment that pays steps by a credit of its own (``credits``: Routing-v0's ``credit`` and ``baseline``
    arguments) is built with ``credit="resolved"`` unless the experiment's ``env.kwargs`` choose one: the
    trainer's decision credit (``env.credit``) replaces the step rewards it is given.

    A trainer says what its algorithm needs from an environment with an action mask (``masks_actions``):
    ``dict_observation`` (the mask inside the observation, for RLlib's masking modules) and
    ``penalize_invalid`` (a masked action declines the payment at a penalty instead of raising, for algorithms
    that cannot mask); an experiment's own ``env.kwargs`` win over the latter.
    """
    kwargs = env_kwargs(
        exp.env.id, exp.scenario, exp.scenario_overrides, exp.env.days, exp.agents.baselines.named(),
        dict(exp.env.kwargs), learn=exp.agents.learn,
    )  # fmt: skip
    cls = resolve_entry_point(exp.env.id)
    if getattr(cls, "credits", None):
        # the environment's own step credit (Routing-v0's expected margin) stays off unless the experiment's
        # env.kwargs ask for it: env.credit (the trainer's decision credit) decides how steps are paid
        kwargs.setdefault("credit", "resolved")
        if "baseline" in inspect.signature(cls).parameters:  # Routing-v0's route mean; Risk-v0 has none
            kwargs.setdefault("baseline", "none")
    if getattr(cls, "masks_actions", False):
        if dict_observation:
            kwargs["dict_observation"] = True
        if penalize_invalid:
            kwargs.setdefault("invalid_action", "penalize")
    return {
        "env_id": exp.env.id,
        "kwargs": kwargs,
        "seed": exp.seed,
        "reward_clip_usd": exp.env.reward_clip_usd,
        "kpi_every_steps": exp.env.kpi_every_steps,
        "train_scenarios": [[name, w] for name, w in exp.train_scenarios.items()],
        "credit": exp.env.credit,
        "baseline": exp.env.baseline,
        "train_timings": exp.train_timings.model_dump(mode="json") if exp.train_timings else None,
    }


def make_env(env_id: str, kwargs: dict[str, Any]) -> Any:
    """The raw environment (no training wrappers)."""
    cls = resolve_entry_point(env_id)
    if ":" not in env_id:
        return gym.make(env_id, **kwargs).unwrapped
    return cls(**kwargs)


class TrainingEnv(gym.Wrapper):
    """A single-agent payroute environment with held-out seeds, optional reward clipping and running KPIs.

    It pickles and deep-copies mid-episode: the copy replays the episode record (:meth:`replay_episode`), which
    rebuilds the decision credit's bookkeeping as well as the world."""

    def __init__(
        self,
        env: gym.Env,
        seed: int = 0,
        reward_clip_usd: float | None = None,
        kpi_every_steps: int = 0,
        credit: str = "resolved",
        scenarios: list[tuple[Any, float]] | None = None,
        baseline: str = "none",
        timings: DayTimings | None = None,
    ) -> None:
        super().__init__(env)
        if credit not in CREDITS:
            raise ValueError(f"credit must be one of {', '.join(CREDITS)}, got {credit!r}")
        kind = getattr(env.unwrapped, "decision_kind", None)
        if credit != "resolved" and kind not in ("route", "risk"):
            raise ValueError(f"credit={credit!r} is implemented for payroute/Routing-v0 and Risk-v0 only")
        if baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
        own = getattr(env.unwrapped, "credit", "resolved")
        if credit != "resolved" and own != "resolved":
            raise ValueError(
                f"credit={credit!r} replaces the environment's step rewards, which it pays by credit={own!r}: "
                "make the environment with credit='resolved', or train on its own credit with credit='resolved'"
            )
        if baseline != "none" and (credit not in ("expected", "expected_outcome") or kind != "route"):
            raise ValueError(
                f"baseline={baseline!r} needs payroute/Routing-v0 with credit 'expected' or 'expected_outcome'"
            )
        self.baseline = baseline
        self.reward_clip = reward_clip_usd
        self.kpi_every = int(kpi_every_steps)
        self.credit = credit
        self._per_decision = credit != "resolved"
        self._expected_fraud = credit in ("expected", "expected_outcome")
        self._expected_approval = credit == "expected_outcome"
        # one fraud history for the environment's whole life: the base rates a PSP knows from its past days (a
        # fresh one each day would start every cell near zero fraud until its first fraud arrives)
        self._posterior = FraudPosterior() if self._expected_fraud else None
        self._seeds = np.random.default_rng(seed)
        self._steps = 0
        self._episode: dict[str, Any] | None = None  # where the episode under way began (see replay_episode)
        self._mix: tuple[list[Any], np.ndarray] | None = None
        if scenarios:
            weights = np.array([w for _, w in scenarios], dtype=np.float64)
            self._mix = ([sc for sc, _ in scenarios], weights / weights.sum())
        # each day's date and incident times drawn (train_timings): the calendars are drawn from the scenarios
        # as loaded, never from the previous day's draw
        self._timings = timings if timings is not None and timings.draw else None
        self._calendar_of = getattr(env.unwrapped, "scenario", None)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._seeds = np.random.default_rng(seed)
        # the seed cursor and the fraud history before this episode's draws, and its actions so far: enough to
        # rebuild the episode exactly (replay_episode) when a run resumes from a checkpoint taken mid-episode
        self._episode = {
            "seeds": self._seeds.bit_generator.state,
            "posterior": copy.deepcopy(self._posterior),
            "options": copy.deepcopy(options),
            "actions": [],
        }
        world_seed = int(self._seeds.integers(0, HELD_OUT_SEED_START))
        if self._mix is not None or self._timings is not None:
            # the day's scenario, then its calendar, from the same stream of draws as its seed
            scenario = self._calendar_of
            if self._mix is not None:
                mix, p = self._mix
                scenario = mix[int(self._seeds.choice(len(mix), p=p))]
            if self._timings is not None:
                days = float(getattr(self.env.unwrapped, "days", 1.0))
                scenario, _ = draw_timing(scenario, world_seed, days, self._timings, rng=self._seeds)
            self.env.unwrapped.scenario = scenario
        self._steps = 0
        # every day is seeded here; the environment's own step credit keeps its fraud history across them
        keep = (
            {"credit_history": "keep"}
            if getattr(self.env.unwrapped, "credit", "resolved") != "resolved"
            else {}
        )
        obs, info = self.env.reset(seed=world_seed, options={**(options or {}), **keep} or None)
        if self._per_decision:
            self._start_credit(info)
        return obs, info

    def step(self, action):
        if self._episode is not None:
            self._episode["actions"].append(action.copy() if isinstance(action, np.ndarray) else action)
        if self._per_decision:
            self._note_decision(action)
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._steps += 1
        if self.reward_clip is not None:
            # plain Python on one number: numpy's call costs more than the step's credit
            reward = float(min(max(reward, -self.reward_clip), self.reward_clip))
        if self.kpi_every and self._steps % self.kpi_every == 0 and not terminated:
            world = getattr(self.env.unwrapped, "world", None)
            if world is not None:
                info = {**info, "kpis_running": world.kpis()}
        if self._per_decision:
            if terminated or truncated:
                info = {**info, "decision_rewards": self._decision_rewards()}
            else:
                self._pending = info["transaction"]["id"]
        return obs, reward, terminated, truncated, info

    # ------------------------------------------------------------------ exact resume
    def episode_record(self) -> dict[str, Any] | None:
        """The episode under way as a picklable record (``None`` before the first reset).

        Its seed cursor and fraud history as they were before the episode's reset, the reset options and
        every action since. A SimPy world cannot be pickled mid-day; replaying the record rebuilds it.
        """
        if self._episode is None:
            return None
        return {**self._episode, "actions": list(self._episode["actions"])}

    def replay_episode(self, record: dict[str, Any], outer: gym.Env | None = None) -> None:
        """Rebuild the episode of ``record``: the same world seed and scenario, the same actions, the same state.

        ``outer`` is the stack of wrappers around this environment (a vector environment's sub-environment);
        the reset and the steps go through it so that its own bookkeeping is the one the episode left. Every
        draw comes from the restored seed cursor and the world's own seeded generators, so the environment
        ends where the recorded one was: the next reset draws the seed the recorded environment would draw.
        """
        env = outer if outer is not None else self
        self._seeds.bit_generator.state = record["seeds"]
        self._posterior = copy.deepcopy(record["posterior"])
        env.reset(options=copy.deepcopy(record["options"]))
        for action in record["actions"]:
            env.step(action)

    # the credit bookkeeping of the episode under way: it holds the world's payments, and the replay rebuilds it
    _EPISODE_STATE = ("_decided", "_penalty", "_pending", "_p_fraud", "_reference", "_answers")

    def __getstate__(self) -> dict[str, Any]:
        """Pickling and ``copy.deepcopy``: everything but the episode's credit bookkeeping, which loading rebuilds
        by replaying the episode record (the inner environment pickles the same way, :mod:`payroute.envs.replay`)."""
        return {k: v for k, v in self.__dict__.items() if k not in self._EPISODE_STATE}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._episode is not None:
            self.replay_episode(self._episode)

    # ------------------------------------------------------------------ decision credit
    def _start_credit(self, info: dict) -> None:
        self._decided: list[Any] = []  # the payment each step routed
        self._penalty: list[int] = []  # invalid-action penalty of each step (cents)
        self._pending = info["transaction"]["id"]
        if self._expected_fraud:
            self._p_fraud: list[tuple[float, float]] = []  # (P(fraud | score, cell), recovery share)
        self._reference: list[float] = []  # route baseline of each step (cents)
        if self._expected_approval:
            # each payment's route answer: (P(success) at that instant, whether it succeeded)
            self._answers: dict[int, tuple[float, bool]] = {}
            self.env.unwrapped.world.outcome_listeners.append(self._on_answer)

    def _on_answer(self, tx: Any, route: Any, approved: bool, reason: str) -> None:
        # called at the instant the world drew the answer, so the route's health and drift are the ones it used
        self._answers[tx.id] = (route.success_probability(tx), approved)

    def _note_decision(self, action: Any) -> None:
        env = self.env.unwrapped
        world = env.world
        tx = world.live[self._pending]
        a = action if type(action) is int else int(np.asarray(action).item())  # noqa: E721 - not bool
        valid = 0 <= a < env.action_space.n and (env.decision_kind != "route" or (tx.eligible_mask >> a) & 1)
        self._decided.append(tx)
        self._penalty.append(0 if valid else env.invalid_penalty_cents)
        if self._expected_fraud:
            p_fraud = self._posterior(world, tx)
            self._p_fraud.append(p_fraud)
        if self.baseline == "route_mean":
            self._reference.append(self._route_mean(env, world, tx, p_fraud))

    @staticmethod
    def _route_mean(env: Any, world: Any, tx: Any, p_fraud: tuple[float, float]) -> float:
        """The route baseline of ``tx``: the mean expected margin of its eligible routes (cents), valued with
        what the observation's feature pass has just computed for it (:func:`observed_route_values`)."""
        # without decline_cost the charge is 0, and subtracting (1 - p) x 0 changes no value
        charge = env.decline_charge_cents if env.decline_cost else None
        values = observed_route_values(env.features, world, tx, None, *p_fraud, charge)
        n = len(values)
        if n >= 8:
            return float(np.mean(values))  # numpy's pairwise sum from 8 numbers on
        total = 0.0  # fewer than 8: added in the order np.mean adds them (the same mean to the bit)
        for v in values:
            total += v
        return total / n

    def _decision_rewards(self) -> np.ndarray:
        env = self.env.unwrapped
        agent = env.agent_id
        out = np.empty(len(self._decided), dtype=np.float64)
        # what the world attributed to the agent for this payment: a router is not charged the challenge costs
        # (the risk desk's); a risk desk is paid the whole margin, challenge costs and fraud losses included
        router = env.decision_kind == "route"
        lost = env.lost_cents_by_tx
        routes = env.world.routes
        for i, tx in enumerate(self._decided):
            if agent not in tx.agents:
                cents = 0
            else:
                cents = tx.margin_cents + (tx.challenge_cost_cents if router else 0)
                # expected fraud credit: a router for every payment; a risk desk for what it did not challenge
                own_fraud = self._expected_fraud and (router or tx.risk_action == ALLOW)
                answer = self._answers.get(tx.id) if self._expected_approval else None
                route = routes[tx.route] if tx.route >= 0 else None
                fraud_cents = 0.0  # the expected fraud loss of the payment sent on its route
                if own_fraud and route is not None and (answer is not None or tx.state == "settled"):
                    fraud_cents = expected_fraud_loss_cents(env.world, tx, route, *self._p_fraud[i])
                if own_fraud:
                    # the realised loss out, the expected loss of a sent payment on its route in
                    cents += tx.fraud_loss_cents
                    if tx.state == "settled":
                        cents -= fraud_cents
                if answer is not None:
                    # expected approval credit: the route's yes/no is a coin with a known bias at the instant it
                    # is tossed; adding (P(yes) - 1{yes}) x what a yes is worth over a no keeps the mean (the
                    # term's expectation is zero whatever it multiplies) and takes out most of the coin's noise
                    p_yes, yes = answer
                    worth = tx.price_cents - route.cost_cents(tx) - fraud_cents
                    if router:
                        worth += env.decline_charge_cents(tx, route)
                    cents += (p_yes - (1.0 if yes else 0.0)) * worth
            # the decline (route) or friction (risk) charge exactly as the environment booked it in its reward
            out[i] = (cents - lost.get(tx.id, 0) - self._penalty[i]) / 100.0
        if self._reference:
            out -= np.asarray(self._reference) / 100.0
        out *= env.reward_scale
        if self.reward_clip is not None:
            np.clip(out, -self.reward_clip, self.reward_clip, out=out)
        return out.astype(np.float32)

    def action_masks(self) -> np.ndarray:
        """The current action mask (sb3-contrib MaskablePPO reads it through the wrapper)."""
        return self.env.unwrapped.action_masks()


class ExperimentEnv(TrainingEnv):
    """:class:`TrainingEnv` built from one config dict, the form RLlib's env runners construct envs from.

    ``config``: ``env_id``, ``kwargs`` (constructor arguments, see :func:`env_kwargs`), ``seed``,
    ``reward_clip_usd``, ``kpi_every_steps``, ``credit``, ``train_timings`` (a :class:`DayTimings` as a dict:
    each day's date and incident times drawn) and ``train_scenarios`` (``[[name, weight], ...]``:
    each day's scenario drawn by weight, the kwargs' scenario overrides applied to each). RLlib's
    ``EnvContext`` adds ``worker_index`` and ``vector_index``; each sub-environment gets its own stream of world
    seeds from them.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        worker = int(getattr(config, "worker_index", 0) or 0)
        vector = int(getattr(config, "vector_index", 0) or 0)
        env = make_env(config["env_id"], dict(config.get("kwargs", {})))
        seed = np.random.SeedSequence([int(config.get("seed", 0)), worker, vector]).generate_state(1)[0]
        super().__init__(
            env,
            seed=int(seed),
            reward_clip_usd=config.get("reward_clip_usd"),
            kpi_every_steps=int(config.get("kpi_every_steps", 0)),
            credit=config.get("credit", "resolved"),
            baseline=config.get("baseline", "none"),
            scenarios=training_mix(config, env) if config.get("train_scenarios") else None,
            timings=DayTimings.model_validate(config["train_timings"])
            if config.get("train_timings")
            else None,
        )


def training_mix(config: dict[str, Any], env: Any) -> list[tuple[Any, float]]:
    """The scenarios of ``config["train_scenarios"]`` with their weights, each checked to fit ``env``.

    A day of any of them must look the same to the policy as a day of the experiment's scenario: the same
    observation entries (route names, accounts, segments) and the same actions; a scenario that does not is
    refused here, by name, rather than feeding a network entries it was not built for.
    """
    kwargs = dict(config.get("kwargs", {}))
    base = env.unwrapped
    names = tuple(getattr(base, "feature_names", ()) or ())
    out = []
    for name, weight in config["train_scenarios"]:
        other = make_env(config["env_id"], {**kwargs, "scenario": name})
        if (
            other.observation_space != base.observation_space
            or other.action_space != base.action_space
            or tuple(getattr(other, "feature_names", ()) or ()) != names
        ):
            raise ValueError(
                f"train_scenarios: {name!r} does not give the observation and actions of "
                f"{base.scenario.name!r} (its routes, accounts or segments differ); mix only scenarios that do"
            )
        out.append((other.scenario, float(weight)))  # loaded with the experiment's overrides
    return out
