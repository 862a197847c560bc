"""RLlib (new API stack) training for experiments: PPO, APPO and DQN, single- or multi-agent.

:class:`RLlibTrainer` turns an experiment config into an RLlib
``AlgorithmConfig``:

* the environment is :class:`~payroute.agents.training_env.ExperimentEnv` (single agent: held-out seeds,
  reward clipping, running KPIs) or :class:`ExperimentMultiAgentEnv` (an RLlib ``MultiAgentEnv`` named by
  ``module:Class``), built on every env runner from a plain config dict;
* PPO and APPO use :class:`~payroute.agents.rllib.module.MaskedActorCritic` on the routing environment's
  ``{"observations", "action_mask"}`` observation, so masked routes are never sampled; DQN uses RLlib's
  default Q-network on the plain observation with ``invalid_action="penalize"`` (it cannot mask);
* several learning agents get one module each in a ``MultiRLModuleSpec`` and a policy mapping by agent id;
* :class:`KPICallbacks` logs the world's KPIs from the environments' infos.

Ray starts locally unless ``resources.ray_address`` (or ``--ray-address``) names a cluster.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import ray
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.appo import APPOConfig
from ray.rllib.algorithms.dqn import DQNConfig
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from payroute.agents.networks import PolicyNet, linear_stack, policy_from_linears
from payroute.agents.rllib.batched import BatchedEnvRunner
from payroute.agents.rllib.env import RLlibPaymentEcosystem
from payroute.agents.rllib.module import MaskedActorCritic, MaskedActorCriticWithTarget
from payroute.agents.rllib.resume import restore_extras, save_extras
from payroute.agents.trainer_api import IterationReport, flatten_scalars
from payroute.agents.training_env import (
    ExperimentEnv,
    experiment_env_config,
    make_env,
    resolve_entry_point,
)
from payroute.envs.multi_agent.ecosystem import PaymentEcosystemEnv
from payroute.vocabulary import KPI_NAMES

DEFAULT_MODULE = "default_policy"
# what goes to TensorBoard from RLlib's result dict (the rest is timers and bookkeeping)
_ENV_RUNNER_STATS = (
    "episode_return_mean",
    "episode_return_min",
    "episode_return_max",
    "episode_len_mean",
    "num_episodes",
    "num_env_steps_sampled",
    "num_env_steps_sampled_lifetime",
    "agent_episode_returns_mean",
    "module_episode_returns_mean",
)
_NOISE = ("timers", "learner_connector", "num_module_steps_trained_lifetime_throughput", "weights_seq_no")


# ---------------------------------------------------------------------------- environments
class ExperimentMultiAgentEnv(MultiAgentEnv):
    """A payroute multi-agent environment (``module:Class``) built from an experiment config dict.

    The inner environment must be an RLlib ``MultiAgentEnv`` (the ecosystem, ``PaymentEcosystemEnv``, is
    put in its RLlib adapter); this shell only builds it from the config,
    seeds its first reset from the experiment seed and the env runner's index, and, when the inner
    environment exposes its seed cursor (``seed_state()`` / ``set_seed_state(state)``: the ecosystem, the
    RTGS game), records the episode under way so that a resumed run rebuilds it (:meth:`replay_episode`, the
    multi-agent form of :meth:`TrainingEnv.replay_episode <payroute.agents.training_env.TrainingEnv.replay_episode>`).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        kwargs = dict(config.get("kwargs", {}))
        if _is_ecosystem(resolve_entry_point(config["env_id"])):
            self.inner = RLlibPaymentEcosystem(kwargs)  # the Ray-free ecosystem in RLlib's MultiAgentEnv
        else:
            self.inner = make_env(config["env_id"], kwargs)
        if not isinstance(self.inner, MultiAgentEnv):
            raise TypeError(f"{config['env_id']} is not an RLlib MultiAgentEnv")
        worker = int(getattr(config, "worker_index", 0) or 0)
        self._first_seed = int(
            np.random.SeedSequence([int(config.get("seed", 0)), worker]).generate_state(1)[0]
        )
        self.possible_agents = list(self.inner.possible_agents)
        self.agents = list(getattr(self.inner, "agents", self.possible_agents))
        self.observation_spaces = dict(self.inner.observation_spaces)
        self.action_spaces = dict(self.inner.action_spaces)
        # an environment of the user's own without a seed cursor is not rebuilt on resume (it starts afresh)
        self.replayable = callable(getattr(self.inner, "seed_state", None)) and callable(
            getattr(self.inner, "set_seed_state", None)
        )
        self._episode: dict[str, Any] | None = None  # where the episode under way began, and its actions

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and self._first_seed is not None:
            seed = self._first_seed
        self._first_seed = None
        if self.replayable:
            # the seed this episode was given, the environment's seed cursor before it and its actions so far:
            # enough to rebuild the episode exactly (replay_episode) from a checkpoint taken mid-episode
            self._episode = {
                "seed": seed,
                "seed_state": self.inner.seed_state(),
                "options": copy.deepcopy(options),
                "actions": [],
            }
        out = self.inner.reset(seed=seed, options=options)
        self.agents = list(self.inner.agents)
        return out

    def step(self, action_dict):
        if self._episode is not None:
            self._episode["actions"].append(copy.deepcopy(action_dict))
        out = self.inner.step(action_dict)
        self.agents = list(self.inner.agents)
        return out

    # ------------------------------------------------------------------ exact resume
    def episode_record(self) -> dict[str, Any] | None:
        """The episode under way as a picklable record (``None`` before the first reset or when the inner
        environment has no seed cursor)."""
        if self._episode is None:
            return None
        return {**self._episode, "actions": list(self._episode["actions"])}

    def replay_episode(self, record: dict[str, Any], outer: Any = None) -> None:
        """Rebuild the episode of ``record``: the seed cursor put back, the same reset, the same actions.

        ``outer``: the wrappers around this environment in the vector environment (reset and steps go through
        them). Afterwards the next reset draws the world the recorded environment would have drawn.
        """
        env = outer if outer is not None else self
        self.inner.set_seed_state(copy.deepcopy(record["seed_state"]))
        self._first_seed = None
        env.reset(seed=record["seed"], options=copy.deepcopy(record["options"]))
        for action in record["actions"]:
            env.step(copy.deepcopy(action))


def _is_ecosystem(cls: Any) -> bool:
    return inspect.isclass(cls) and issubclass(cls, PaymentEcosystemEnv)


def is_multi_agent(env_id: str) -> bool:
    cls = resolve_entry_point(env_id)
    return inspect.isclass(cls) and (issubclass(cls, MultiAgentEnv) or _is_ecosystem(cls))


def map_agent_to_module(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    """Each agent is trained by the module of the same name."""
    return str(agent_id)


# ---------------------------------------------------------------------------- KPIs
def _kpis_in(infos: Any, key: str) -> dict[str, float] | None:
    if not isinstance(infos, dict):
        return None
    if key in infos and isinstance(infos[key], dict):
        return infos[key]
    for value in infos.values():  # multi-agent: one info dict per agent
        if isinstance(value, dict) and isinstance(value.get(key), dict):
            return value[key]
    return None


class KPICallbacks(RLlibCallback):
    """Logs ``kpi/<name>`` at each episode's end and ``kpi_running/<name>`` from the running snapshots.

    With ``credit: decision`` (or ``expected``) in the env config it also applies decision credit: when an episode ends, each
    step's reward is replaced by the margin its own payment finally made
    (``info["decision_rewards"]``, see :mod:`payroute.agents.training_env`). That needs the whole episode in
    one piece, so the trainer samples complete episodes (``batch_mode="complete_episodes"``).
    """

    def on_episode_step(self, *, episode, metrics_logger=None, **kwargs) -> None:
        if metrics_logger is None:
            return
        kpis = _kpis_in(episode.get_infos(-1), "kpis_running")
        if kpis:
            for k in KPI_NAMES:
                if k in kpis:
                    metrics_logger.log_value(("kpi_running", k), float(kpis[k]), reduce="mean", window=20)

    def on_episode_end(self, *, episode, metrics_logger=None, env_runner=None, **kwargs) -> None:
        final = episode.get_infos(-1)
        credit = final.get("decision_rewards") if isinstance(final, dict) else None
        if credit is not None:
            if len(credit) != len(episode):
                raise RuntimeError(
                    f"decision credit needs whole episodes: got a chunk of {len(episode)} steps for an episode "
                    f"of {len(credit)} (sample with batch_mode='complete_episodes')"
                )
            episode.set_rewards(new_data=[float(x) for x in credit])
        if metrics_logger is None:
            return
        kpis = _kpis_in(final, "kpis")
        if kpis:
            for k in KPI_NAMES:
                if k in kpis:
                    metrics_logger.log_value(("kpi", k), float(kpis[k]), reduce="mean", window=20)
            metrics_logger.log_value("kpi_episodes", 1, reduce="sum")


# ---------------------------------------------------------------------------- the trainer
class RLlibTrainer:
    """One RLlib algorithm for one experiment."""

    library = "rllib"

    def __init__(self, exp: Any, ray_address: str | None = None) -> None:
        self.exp = exp
        self.roles = list(exp.agents.learn)
        torch.set_num_threads(
            1
        )  # many tiny matmuls: threads only contend (and 2-thread softmax is pathological)
        address = ray_address or exp.resources.ray_address
        # inside a Tune trial Ray is already up, and not ours to stop
        self._owns_ray = not ray.is_initialized()
        logging.getLogger("ray").setLevel(logging.ERROR)
        if self._owns_ray:
            init: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.ERROR,
            }
            # "local": always a fresh local instance, never a cluster some other program left running
            init["address"] = address or "local"
            if not address and exp.resources.num_cpus:
                init["num_cpus"] = exp.resources.num_cpus
            ray.init(**init)
        self.multi_agent = is_multi_agent(exp.env.id)
        if self.multi_agent and exp.env.credit != "resolved":
            raise ValueError(f"env.credit {exp.env.credit!r} is for the single-agent Routing-v0 and Risk-v0")
        self.env_config = experiment_env_config(
            exp,
            dict_observation=exp.trainer.algorithm in ("PPO", "APPO"),
            penalize_invalid=exp.trainer.algorithm == "DQN",
        )
        self.batched = exp.trainer.sampler.env_runner == "batched"
        if self.batched:
            if self.multi_agent:
                raise ValueError(
                    f"trainer.sampler.env_runner 'batched' is for single-agent environments; {exp.env.id} is "
                    "multi-agent"
                )
            sampler = exp.trainer.sampler
            self.env_config["batched_sampler"] = {
                "async_sampling": sampler.async_sampling,
                "keep_infos": sampler.keep_infos,
            }
        self.probe = self._probe_env()
        self.config = self._algorithm_config()
        self.algo: Algorithm = self.config.build_algo()
        self._episodes_seen = 0

    # ------------------------------------------------------------------ config
    def _probe_env(self) -> Any:
        if self.multi_agent:
            return ExperimentMultiAgentEnv(self.env_config)
        return ExperimentEnv(self.env_config)

    def _module_spec(self, obs_space: gym.Space, act_space: gym.Space) -> RLModuleSpec:
        net = self.exp.trainer.network
        algo = self.exp.trainer.algorithm
        if algo == "DQN":
            return RLModuleSpec(
                observation_space=obs_space,
                action_space=act_space,
                model_config={
                    "fcnet_hiddens": list(net.hidden),
                    "fcnet_activation": net.activation,
                    "head_fcnet_hiddens": [],
                    "dueling": False,
                    "double_q": True,
                },
            )
        module = MaskedActorCriticWithTarget if algo == "APPO" else MaskedActorCritic
        return RLModuleSpec(
            module_class=module,
            observation_space=obs_space,
            action_space=act_space,
            model_config={"hidden": list(net.hidden), "activation": net.activation},
        )

    def _algorithm_config(self):
        exp = self.exp
        hp = exp.trainer.hyperparameters
        algo = exp.trainer.algorithm
        res = exp.resources
        if algo == "PPO":
            config = PPOConfig().training(
                lr=hp.lr, gamma=hp.gamma, lambda_=hp.gae_lambda, clip_param=hp.clip,
                entropy_coeff=hp.entropy_coeff, vf_loss_coeff=hp.vf_coeff, grad_clip=hp.grad_clip,
                train_batch_size_per_learner=hp.batch_size, minibatch_size=hp.minibatch_size,
                num_epochs=hp.epochs, **exp.trainer.library_options,
            )  # fmt: skip
        elif algo == "APPO":
            extra = {"minibatch_size": hp.minibatch_size} if hp.minibatch_size else {}
            config = APPOConfig().training(
                lr=hp.lr, gamma=hp.gamma, lambda_=hp.gae_lambda, clip_param=hp.clip,
                entropy_coeff=hp.entropy_coeff, vf_loss_coeff=hp.vf_coeff, grad_clip=hp.grad_clip,
                train_batch_size_per_learner=hp.batch_size, num_epochs=hp.epochs, **extra,
                **exp.trainer.library_options,
            )  # fmt: skip
        else:
            config = DQNConfig().training(
                lr=hp.lr, gamma=hp.gamma, train_batch_size_per_learner=hp.batch_size,
                replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": hp.buffer_size},
                num_steps_sampled_before_learning_starts=hp.learning_starts,
                target_network_update_freq=hp.target_update_steps,
                epsilon=[(0, 1.0), (hp.exploration_steps, hp.exploration_final_eps)],
                double_q=True, dueling=False, **exp.trainer.library_options,
            )  # fmt: skip
            config = config.reporting(min_sample_timesteps_per_iteration=hp.steps_per_iteration)
        env_cls = ExperimentMultiAgentEnv if self.multi_agent else ExperimentEnv
        config = (
            # RLlib's pre-check steps the env with unmasked random actions, which a masked env must refuse;
            # payroute environments have their own checker tests
            config.environment(env=env_cls, env_config=self.env_config, disable_env_checking=True)
            .env_runners(
                num_env_runners=res.num_env_runners,
                num_envs_per_env_runner=1 if self.multi_agent else res.num_envs_per_env_runner,
                batch_mode="truncate_episodes" if exp.env.credit == "resolved" else "complete_episodes",
                # a complete simulated day can take longer than RLlib's default 60 s sample timeout, after
                # which it would silently train on nothing: wait for the episodes instead
                **({} if exp.env.credit == "resolved" else {"sample_timeout_s": None}),
            )
            .env_runners(**({"env_runner_cls": BatchedEnvRunner} if self.batched else {}))
            .callbacks(KPICallbacks)
            .debugging(seed=exp.seed, log_level="ERROR")
        )
        if self.multi_agent:
            specs = {
                role: self._module_spec(self.probe.observation_spaces[role], self.probe.action_spaces[role])
                for role in self.roles
            }
            config = config.multi_agent(
                # a list, not a set: RLlib builds the modules in this order, each drawing its initial weights
                # from torch's generator, so a set's order (which follows the process's string-hash seed)
                # would give each run of the same seed different networks
                policies=list(self.roles),
                policy_mapping_fn=map_agent_to_module,
                policies_to_train=list(self.roles),
            ).rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs=specs))
        else:
            config = config.rl_module(
                rl_module_spec=self._module_spec(self.probe.observation_space, self.probe.action_space)
            )
        return config

    # ------------------------------------------------------------------ training
    @property
    def iteration(self) -> int:
        return int(self.algo.iteration)

    env_steps = 0  # sampled so far, counted here (and restored from the checkpoint record on resume)

    def train_iteration(self) -> IterationReport:
        result = self.algo.train()
        runners = result.get("env_runners", {})
        sampled = _finite(runners.get("num_env_steps_sampled"))
        if sampled is None:  # seen as NaN in the first iteration after a restore
            sampled = _finite(
                result.get("learners", {}).get("__all_modules__", {}).get("num_env_steps_trained")
            )
        self.env_steps += int(sampled or 0)
        scalars: dict[str, float] = {}
        for k in KPI_NAMES:
            v = runners.get("kpi", {}).get(k)
            scalars[f"kpi/{k}"] = float(v) if v is not None else math.nan
            v = runners.get("kpi_running", {}).get(k)
            scalars[f"kpi_running/{k}"] = float(v) if v is not None else math.nan
        returns = runners.get("agent_episode_returns_mean", {}) if self.multi_agent else {}
        for role in self.roles:
            v = returns.get(role) if self.multi_agent else runners.get("episode_return_mean")
            scalars[f"agent/{role}/episode_return"] = float(v) if v is not None else math.nan
        for module_id, stats in result.get("learners", {}).items():
            if isinstance(stats, dict) and module_id != "__all_modules__":
                name = self._role_of(module_id)
                scalars.update(flatten_scalars(f"rllib/learners/{name}", stats, skip=_NOISE))
        kept = {k: v for k, v in runners.items() if k in _ENV_RUNNER_STATS}
        scalars.update(flatten_scalars("rllib/env_runners", kept))
        scalars["rllib/time_this_iter_s"] = float(result.get("time_this_iter_s", 0.0))
        episodes = int(_finite(runners.get("kpi_episodes")) or 0)
        return IterationReport(self.iteration, self.env_steps, scalars, episodes)

    def _role_of(self, module_id: str) -> str:
        return self.roles[0] if module_id == DEFAULT_MODULE and not self.multi_agent else module_id

    # ------------------------------------------------------------------ state
    def save(self, folder: Path) -> None:
        """RLlib's checkpoint plus what it leaves out (:mod:`payroute.agents.rllib.resume`)."""
        self.algo.save_to_path(str(Path(folder).resolve() / "algorithm"))
        save_extras(self.algo, Path(folder))

    def restore(self, folder: Path, env_steps: int = 0) -> None:
        """Continue the saved run: its next iterations are the ones it would have run."""
        self.algo.restore_from_path(str(Path(folder).resolve() / "algorithm"))
        restore_extras(self.algo, Path(folder))
        self.env_steps = int(env_steps)

    def _module(self, role: str) -> Any:
        mid = role if self.multi_agent else DEFAULT_MODULE
        learner = getattr(self.algo.learner_group, "_learner", None)
        if learner is not None:
            return learner.module[mid]
        self.algo.env_runner_group.sync_weights(from_worker_or_learner_group=self.algo.learner_group)
        return self.algo.get_module(mid)

    def policy_nets(self) -> dict[str, PolicyNet]:
        out: dict[str, PolicyNet] = {}
        for role in self.roles:
            module = self._module(role)
            env = self.probe
            if self.exp.trainer.algorithm == "DQN":
                linears, act = linear_stack(torch.nn.ModuleList([module.encoder, module.af]))
                output = "q_values"
            else:
                linears, act = linear_stack(module.policy_net())
                output = "logits"
            inner = env.unwrapped if not self.multi_agent else env.inner
            out[role] = policy_from_linears(
                linears, act,
                decision_kind=getattr(inner, "decision_kind", ""), output=output,
                feature_names=tuple(getattr(inner, "feature_names", ()) or ()),
                action_names=tuple(_action_names(inner)), trainer=f"rllib/{self.exp.trainer.algorithm}",
            )  # fmt: skip
        return out

    def close(self) -> None:
        try:
            self.algo.stop()
        finally:
            if self._owns_ray and ray.is_initialized():
                ray.shutdown()


def _finite(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _action_names(env: Any) -> list[str]:
    for attr in ("route_names", "action_names"):
        names = getattr(env, attr, None)
        if names:
            return list(names)
    return []
