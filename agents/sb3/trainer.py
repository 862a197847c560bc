"""Stable-Baselines3 training for single-agent experiments: PPO, MaskablePPO, DQN, A2C.

MaskablePPO (sb3-contrib) reads the routing environment's ``action_masks()`` and never samples a masked
route. PPO, A2C and DQN cannot mask: the environment is made with ``invalid_action="penalize"``, so a masked
choice declines the payment with a penalty and the policy learns to avoid it.

One training iteration is one ``learn()`` call of ``batch_size`` environment steps (on-policy) or
``steps_per_iteration`` (DQN), continuing the step count; losses come from SB3's logger (``sb3/train/...``),
KPIs from the environments' infos. With the trainers' decision credit (``env.credit`` other than ``resolved``:
the same :class:`TrainingEnv` credit RLlib trains on) an iteration is complete days of at least ``batch_size``
steps in all, each step paid its own payment's credit, and one update of the algorithm on them
(:mod:`payroute.agents.sb3.days`). A checkpoint also keeps the days under way (replayed on restore), the
random generators and the KPI windows, so a restored run continues the saved one exactly; the replay buffer
of DQN is not checkpointed: a resumed DQN run refills it.
"""

from __future__ import annotations

import math
import pickle
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from payroute.agents.networks import ACTIVATIONS, PolicyNet, linear_stack, policy_from_linears
from payroute.agents.sb3.days import train_on_days
from payroute.agents.trainer_api import (
    IterationReport,
    flatten_scalars,
    process_rng_state,
    set_process_rng_state,
)
from payroute.agents.training_env import ExperimentEnv, TrainingEnv, experiment_env_config
from payroute.vocabulary import KPI_NAMES

ALGORITHMS = {"PPO": PPO, "MaskablePPO": MaskablePPO, "DQN": DQN, "A2C": A2C}
MODEL_FILE = "model.zip"
RESUME_FILE = "resume.pkl"


def _training_env(env: Any) -> TrainingEnv:
    """The :class:`TrainingEnv` under a sub-environment's wrappers (Monitor)."""
    while not isinstance(env, TrainingEnv):
        env = env.env
    return env


class _Capture(KVWriter):
    """Keeps the last values SB3's logger dumped."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        for k, v in key_values.items():
            if isinstance(v, int | float | np.floating | np.integer) and not isinstance(v, bool):
                self.values[k] = float(v)

    def close(self) -> None:
        pass


class _KPIRecorder(BaseCallback):
    """Collects final and running KPIs and episode returns from the infos of every step."""

    def __init__(self) -> None:
        super().__init__()
        self.final: deque[dict[str, float]] = deque(maxlen=20)
        self.running: dict[int, dict[str, float]] = {}
        self.returns: deque[float] = deque(maxlen=20)
        self.episodes = 0

    def _on_step(self) -> bool:
        for i, info in enumerate(self.locals.get("infos", ())):
            if "kpis" in info:
                self.final.append(info["kpis"])
                self.episodes += 1
                self.running.pop(i, None)
            if "kpis_running" in info:
                self.running[i] = info["kpis_running"]
            if "episode" in info:
                self.returns.append(float(info["episode"]["r"]))
        return True


class SB3Trainer:
    """One Stable-Baselines3 model for one single-agent experiment."""

    library = "sb3"

    def __init__(self, exp: Any, ray_address: str | None = None) -> None:
        if len(exp.agents.learn) != 1:
            raise ValueError("Stable-Baselines3 trains one agent; use trainer.library 'rllib' for several")
        torch.set_num_threads(1)
        self.exp = exp
        self.role = exp.agents.learn[0]
        self.algo_cls = ALGORITHMS[exp.trainer.algorithm]
        self.env_config = experiment_env_config(exp, penalize_invalid=exp.trainer.algorithm != "MaskablePPO")
        # the trainers' decision credit: complete days, each step paid its own payment's credit (as RLlib's)
        self.decision_credit = exp.env.credit != "resolved"
        if self.decision_credit and exp.trainer.algorithm == "DQN":
            raise ValueError(
                f"env.credit {exp.env.credit!r} needs an on-policy algorithm (PPO, MaskablePPO, A2C)"
            )
        self.venv = self._make_venv()
        self.capture = _Capture()
        self.kpis = _KPIRecorder()
        self.model = self._new_model()
        self.iteration = 0
        self._episodes_before = 0

    def _make_venv(self) -> DummyVecEnv:
        n = self.exp.resources.num_envs_per_env_runner

        def factory(i: int):
            return lambda: Monitor(ExperimentEnv({**self.env_config, "seed": self.exp.seed * 1000 + i}))

        return DummyVecEnv([factory(i) for i in range(n)])

    def _new_model(self) -> Any:
        exp = self.exp
        hp = exp.trainer.hyperparameters
        net = exp.trainer.network
        act = ACTIVATIONS[net.activation]
        n_envs = self.venv.num_envs
        common = {"learning_rate": hp.lr, "gamma": hp.gamma, "seed": exp.seed, "verbose": 0, "device": "cpu"}
        if exp.trainer.algorithm == "DQN":
            kw = {
                **common,
                "batch_size": hp.batch_size,
                "buffer_size": hp.buffer_size,
                "learning_starts": hp.learning_starts,
                "target_update_interval": hp.target_update_steps,
                "exploration_fraction": 1.0,
                "exploration_final_eps": hp.exploration_final_eps,
                "policy_kwargs": {"net_arch": list(net.hidden), "activation_fn": act},
            }
        else:
            n_steps = max(hp.batch_size // n_envs, 1)
            kw = {
                **common,
                "n_steps": n_steps,
                "gae_lambda": hp.gae_lambda,
                "ent_coef": hp.entropy_coeff,
                "vf_coef": hp.vf_coeff,
                "max_grad_norm": hp.grad_clip if hp.grad_clip is not None else 1e9,
                "policy_kwargs": {
                    "net_arch": {"pi": list(net.hidden), "vf": list(net.hidden)},
                    "activation_fn": act,
                },
            }
            if exp.trainer.algorithm in ("PPO", "MaskablePPO"):
                kw.update(batch_size=hp.minibatch_size, n_epochs=hp.epochs, clip_range=hp.clip)
        kw.update(exp.trainer.library_options)
        model = self.algo_cls("MlpPolicy", self.venv, **kw)
        if exp.trainer.algorithm == "DQN":
            # SB3 schedules epsilon over a fraction of the learn() call; we learn in chunks, so set the schedule
            # over the experiment's exploration_steps in absolute steps instead
            model.exploration_schedule = _linear_epsilon(
                model, hp.exploration_steps, hp.exploration_final_eps
            )
        model.set_logger(Logger(folder=None, output_formats=[self.capture]))
        return model

    @property
    def env_steps(self) -> int:
        return int(self.model.num_timesteps)

    def _steps_per_iteration(self) -> int:
        hp = self.exp.trainer.hyperparameters
        if self.exp.trainer.algorithm == "DQN":
            return hp.steps_per_iteration
        return self.model.n_steps * self.venv.num_envs

    def train_iteration(self) -> IterationReport:
        if self.decision_credit:
            self._train_on_days()
        else:
            self.model.learn(
                total_timesteps=self._steps_per_iteration(), callback=self.kpis, reset_num_timesteps=False,
                log_interval=1,
            )  # fmt: skip
        self.iteration += 1
        scalars: dict[str, float] = {}
        final = list(self.kpis.final)
        running = list(self.kpis.running.values())
        for k in KPI_NAMES:
            vals = [d[k] for d in final if k in d]
            scalars[f"kpi/{k}"] = float(np.mean(vals)) if vals else math.nan
            vals = [d[k] for d in running if k in d]
            scalars[f"kpi_running/{k}"] = float(np.mean(vals)) if vals else math.nan
        rets = list(self.kpis.returns)
        scalars[f"agent/{self.role}/episode_return"] = float(np.mean(rets)) if rets else math.nan
        logged = {**self.capture.values, **dict(self.model.logger.name_to_value)}
        scalars.update(flatten_scalars("sb3", _nest(logged)))
        episodes = self.kpis.episodes - self._episodes_before
        self._episodes_before = self.kpis.episodes
        return IterationReport(self.iteration, self.env_steps, scalars, episodes)

    def _train_on_days(self) -> None:
        """One iteration with decision credit: complete days, one update (:mod:`payroute.agents.sb3.days`)."""
        masked = self.exp.trainer.algorithm == "MaskablePPO"
        days = train_on_days(self.model, self.venv.envs, self._steps_per_iteration(), masked)
        for day in days:
            if "kpis" in day.info:
                self.kpis.final.append(day.info["kpis"])
            self.kpis.returns.append(float(day.rewards.sum()))
            self.kpis.episodes += 1

    def save(self, folder: Path) -> None:
        # our epsilon schedule holds the model itself: rebuilt on restore, never pickled
        exclude = ["exploration_schedule"] if self.exp.trainer.algorithm == "DQN" else None
        self.model.save(Path(folder) / MODEL_FILE, exclude=exclude)
        (Path(folder) / "iteration.txt").write_text(str(self.iteration))
        with open(Path(folder) / RESUME_FILE, "wb") as fh:
            pickle.dump(self._resume_state(), fh, protocol=pickle.HIGHEST_PROTOCOL)

    def _resume_state(self) -> dict[str, Any]:
        """What ``model.save`` leaves out and the next iterations depend on: the days under way (each
        environment's seed cursor and actions, replayed on restore), the observation the model acts on next,
        the random generators and the KPI windows."""
        model = self.model
        return {
            "rng": process_rng_state(),
            "action_space_rng": model.action_space.np_random.bit_generator.state,
            "envs": [_training_env(env).episode_record() for env in self.venv.envs],
            "last_obs": model._last_obs,
            "last_episode_starts": model._last_episode_starts,
            "ep_info_buffer": model.ep_info_buffer,
            "ep_success_buffer": model.ep_success_buffer,
            "kpis": (self.kpis.final, self.kpis.running, self.kpis.returns, self.kpis.episodes),
            "episodes_before": self._episodes_before,
        }

    def _set_resume_state(self, state: dict[str, Any]) -> None:
        for env, record in zip(self.venv.envs, state["envs"], strict=True):
            if record is not None:
                _training_env(env).replay_episode(record, outer=env)
        model = self.model
        model._last_obs = state["last_obs"]
        model._last_episode_starts = state["last_episode_starts"]
        model.ep_info_buffer = state["ep_info_buffer"]
        model.ep_success_buffer = state["ep_success_buffer"]
        self.kpis.final, self.kpis.running, self.kpis.returns, self.kpis.episodes = state["kpis"]
        self._episodes_before = state["episodes_before"]
        model.action_space.np_random.bit_generator.state = state["action_space_rng"]
        set_process_rng_state(state["rng"])

    def restore(self, folder: Path, env_steps: int = 0) -> None:
        self.model = self.algo_cls.load(Path(folder) / MODEL_FILE, env=self.venv, device="cpu")
        if self.exp.trainer.algorithm == "DQN":
            hp = self.exp.trainer.hyperparameters
            self.model.exploration_schedule = _linear_epsilon(
                self.model, hp.exploration_steps, hp.exploration_final_eps
            )
        self.model.set_logger(Logger(folder=None, output_formats=[self.capture]))
        self.iteration = int((Path(folder) / "iteration.txt").read_text())
        if (Path(folder) / RESUME_FILE).is_file():  # absent from checkpoints written before it existed
            with open(Path(folder) / RESUME_FILE, "rb") as fh:
                self._set_resume_state(pickle.load(fh))  # the run's own folder (model.zip pickles too)

    def policy_nets(self) -> dict[str, PolicyNet]:
        policy = self.model.policy
        if self.exp.trainer.algorithm == "DQN":
            linears, act = linear_stack(policy.q_net.q_net)
            output = "q_values"
        else:
            linears, act = linear_stack(
                torch.nn.ModuleList([policy.mlp_extractor.policy_net, policy.action_net])
            )
            output = "logits"
        env = self.venv.envs[0].unwrapped
        names = getattr(env, "route_names", None) or getattr(env, "action_names", None) or ()
        net = policy_from_linears(
            linears, act,
            decision_kind=getattr(env, "decision_kind", ""), output=output,
            feature_names=tuple(getattr(env, "feature_names", ()) or ()), action_names=tuple(names),
            trainer=f"sb3/{self.exp.trainer.algorithm}",
        )  # fmt: skip
        return {self.role: net}

    def close(self) -> None:
        self.venv.close()


def _nest(flat: dict[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


class _linear_epsilon:  # noqa: N801  (used like SB3's schedule functions)
    """Epsilon from 1 to ``final`` over the first ``steps`` environment steps, then ``final``.

    SB3 calls it with the remaining-progress fraction of the current learn() call; it reads the model's
    absolute step count instead.
    """

    def __init__(self, model: Any, steps: int, final: float) -> None:
        self.model, self.steps, self.final = model, steps, final

    def __call__(self, _progress_remaining: float) -> float:
        t = self.model.num_timesteps
        return 1.0 + (self.final - 1.0) * min(t / self.steps, 1.0)
