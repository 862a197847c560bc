"""What an RLlib checkpoint leaves out, so that a restored run is the run that was saved.

RLlib's ``save_to_path`` keeps the module weights, the optimizer state, the algorithm's metrics and iteration
counter and the connectors. It does not keep what decides the *next* iterations' samples and updates:

* every process's random generators (Python, NumPy, torch): the env runners sample actions from torch's, the
  local learner shuffles minibatches with NumPy's;
* the episodes under way: with ``truncate_episodes`` a simulated day spans iterations, and a restored env
  runner would start fresh days from its first seed (the fresh run's iteration 1, not the killed run's next);
  each sub-environment's seed cursor and the actions of its day so far (``TrainingEnv.episode_record``, and
  for multi-agent environments ``ExperimentMultiAgentEnv.episode_record`` with the inner environment's
  ``seed_state()``: a SimPy world cannot be pickled mid-day, so it is rebuilt by replaying them), the env
  runner's episode objects, the observation it will act on next, its per-episode metrics and its own metrics logger;
* learner state outside the learner's checkpoint: PPO's adaptive KL coefficients;
* DQN's replay buffer and its generator.

:func:`save_extras` writes them to ``resume.pkl`` beside RLlib's checkpoint and :func:`restore_extras` puts
them back after ``restore_from_path``, random generators last. The env runners' private attributes are read
here by name (``ray==2.60.0``, pinned in constraints.txt); ``tests/agents/rllib/test_resume.py`` compares a
resumed run with an uninterrupted one, so an upgrade that moves them fails there rather than silently.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_RL_MODULE
from ray.rllib.utils.metrics import WEIGHTS_SEQ_NO

from payroute.agents.trainer_api import process_rng_state, set_process_rng_state

RESUME_FILE = "resume.pkl"


# ---------------------------------------------------------------------------- env runners
def _recorder(env: Any) -> Any:
    """The environment inside a sub-environment's wrappers that records its episodes (``episode_record`` /
    ``replay_episode``: :class:`TrainingEnv`, or the multi-agent ``ExperimentMultiAgentEnv``), if there is one."""
    while env is not None and not callable(getattr(type(env), "episode_record", None)):
        env = getattr(env, "env", None)
    return env


def _sub_envs(runner: Any) -> list[Any]:
    vector = runner.env.unwrapped
    envs = getattr(vector, "envs", None)
    if envs is None:
        raise RuntimeError(
            f"exact resume needs synchronous sub-environments; {type(vector).__name__} runs them elsewhere"
        )
    return list(envs)


def runner_state(runner: Any) -> dict[str, Any] | None:
    """Everything of one env runner (single- or multi-agent) that decides its next samples.

    ``None`` without an env, and for a multi-agent environment that cannot be rebuilt (one of the user's own
    without a seed cursor): that runner then starts afresh on resume, as RLlib's own restore leaves it.
    """
    if getattr(runner, "env", None) is None:
        return None
    # the batched sampler first: it waits for a batch sampling in the background, which steps the environments
    batched = runner.batched_state() if callable(getattr(runner, "batched_state", None)) else None
    subs = _sub_envs(runner)
    records = []
    for sub in subs:
        inner = _recorder(sub)
        if inner is None:
            raise RuntimeError(f"exact resume needs payroute's TrainingEnv; got {type(sub).__name__}")
        if not getattr(inner, "replayable", True):
            return None
        records.append(inner.episode_record())
    vector = runner.env.unwrapped
    autoreset = getattr(vector, "_autoreset_envs", None)  # a multi-agent vector env has none before a reset
    return {
        "rng": process_rng_state(),
        "envs": records,
        "autoreset": None if autoreset is None else np.array(autoreset, copy=True),
        "needs_initial_reset": runner._needs_initial_reset,
        "episodes": runner._ongoing_episodes,
        "shared_data": getattr(runner, "_shared_data", {}),
        "cached_to_module": runner._cached_to_module,
        "episodes_for_metrics": dict(runner._ongoing_episodes_for_metrics),
        "done_for_metrics": list(runner._done_episodes_for_metrics),
        "metrics": runner.metrics.get_state(),
        "weights_seq_no": runner._weights_seq_no,
        "env_steps_lifetime": runner.num_env_steps_sampled_lifetime,
        "batched": batched,
    }


def set_runner_state(runner: Any, state: dict[str, Any] | None, weights: Any = None) -> None:
    """Put ``state`` (from :func:`runner_state`) back into a freshly built env runner of the same config.

    ``weights``: the learner's (inference) module state, set here, in order. RLlib's own restore sends the
    remote runners their weights asynchronously and, after that, the stale module of the driver's env runner;
    a remote runner could sample the first resumed iteration with either.
    """
    if state is None or getattr(runner, "env", None) is None:
        return
    if weights is not None:
        runner.set_state({COMPONENT_RL_MODULE: weights, WEIGHTS_SEQ_NO: 0})  # 0: set whatever it holds
    subs = _sub_envs(runner)
    if len(subs) != len(state["envs"]):
        raise RuntimeError(
            f"the checkpoint has {len(state['envs'])} sub-environments, this runner {len(subs)}"
        )
    for sub, record in zip(subs, state["envs"], strict=True):
        if record is not None:
            _recorder(sub).replay_episode(record, outer=sub)
    if state["autoreset"] is not None:
        runner.env.unwrapped._autoreset_envs = np.array(state["autoreset"], copy=True)
    runner._needs_initial_reset = state["needs_initial_reset"]
    runner._ongoing_episodes = state["episodes"]
    runner._shared_data = state["shared_data"]
    runner._cached_to_module = state["cached_to_module"]
    runner._ongoing_episodes_for_metrics.clear()
    runner._ongoing_episodes_for_metrics.update(state["episodes_for_metrics"])
    runner._done_episodes_for_metrics[:] = state["done_for_metrics"]
    runner.metrics.set_state(state["metrics"])
    runner._weights_seq_no = state["weights_seq_no"]
    runner.num_env_steps_sampled_lifetime = state["env_steps_lifetime"]
    if state.get("batched") is not None:
        runner.set_batched_state(state["batched"])
    set_process_rng_state(state["rng"])


# ---------------------------------------------------------------------------- learners
def _learners(algo: Any) -> list[Any] | None:
    """The learner whose extras this module saves: the local one (``num_learners = 0``, every shipped
    experiment); ``None`` for remote learners (APPO's), whose state RLlib's checkpoint alone restores (APPO
    samples asynchronously: it is not reproducible even without an interruption)."""
    group = algo.learner_group
    return [group._learner] if group.is_local else None


def learner_state(learner: Any) -> dict[str, Any]:
    kl = getattr(learner, "curr_kl_coeffs_per_module", None)
    return {"kl": {mid: v.detach().clone() for mid, v in kl.items()} if kl is not None else {}}


def set_learner_state(learner: Any, state: dict[str, Any]) -> None:
    for mid, value in state["kl"].items():
        learner.curr_kl_coeffs_per_module[mid].data.copy_(value)


def _buffer_state(buffer: Any) -> dict[str, Any] | None:
    """DQN's replay buffer and the generator it samples with (RLlib seeds that one from the OS, so DQN is not
    reproducible even without an interruption; a resumed run at least continues the same buffer)."""
    if buffer is None:
        return None
    rng = getattr(buffer, "rng", None)
    return {"buffer": buffer.get_state(), "rng": rng.bit_generator.state if rng is not None else None}


def _set_buffer_state(buffer: Any, state: dict[str, Any] | None) -> None:
    if buffer is None or state is None:
        return
    buffer.set_state(state["buffer"])
    if state["rng"] is not None:
        buffer.rng.bit_generator.state = state["rng"]


# ---------------------------------------------------------------------------- the algorithm
def _has_env_runners(algo: Any) -> bool:
    return algo.env_runner_group.num_remote_env_runners() > 0


def save_extras(algo: Any, folder: Path) -> None:
    """Write what :mod:`this module <payroute.agents.rllib.resume>` restores to ``folder/resume.pkl``."""
    state: dict[str, Any] = {
        "learners": [learner_state(learner) for learner in learners]
        if (learners := _learners(algo))
        else None,
        "local_runner": runner_state(algo.env_runner) if algo.env_runner is not None else None,
        "remote_runners": (
            algo.env_runner_group.foreach_env_runner(runner_state, local_env_runner=False)
            if _has_env_runners(algo)
            else []
        ),
        "replay_buffer": _buffer_state(getattr(algo, "local_replay_buffer", None)),
        "driver_rng": process_rng_state(),
    }
    with open(Path(folder) / RESUME_FILE, "wb") as fh:
        pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)


def restore_extras(algo: Any, folder: Path) -> bool:
    """Put back what :func:`save_extras` wrote; ``False`` when the checkpoint has none (an older one)."""
    path = Path(folder) / RESUME_FILE
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        state = pickle.load(
            fh
        )  # the run's own folder, written by save_extras (RLlib's checkpoint pickles too)
    learners = _learners(algo)
    if learners is not None and state["learners"] is not None:
        for learner, learned in zip(learners, state["learners"], strict=True):
            set_learner_state(learner, learned)
    _set_buffer_state(getattr(algo, "local_replay_buffer", None), state["replay_buffer"])
    remote = state["remote_runners"]
    if len(remote) != algo.env_runner_group.num_remote_env_runners():
        raise RuntimeError(
            f"the checkpoint has {len(remote)} env runners, this configuration "
            f"{algo.env_runner_group.num_remote_env_runners()}"
        )
    weights = algo.learner_group.get_state(
        components=f"{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}", inference_only=True
    )[COMPONENT_LEARNER][COMPONENT_RL_MODULE]
    for index, runner in enumerate(remote, start=1):
        algo.env_runner_group.foreach_env_runner(
            lambda r, s=runner: set_runner_state(r, s, weights),
            local_env_runner=False,
            remote_worker_ids=[index],
        )
    if algo.env_runner is not None:
        set_runner_state(algo.env_runner, state["local_runner"], weights)
    set_process_rng_state(state["driver_rng"])  # last: the replays above run no policy, but be sure
    return True
