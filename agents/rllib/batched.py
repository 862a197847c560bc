"""A batched sampler for RLlib's new API stack: :class:`BatchedEnvRunner`, selected by ``trainer.sampler.env_runner: batched``.

RLlib's :class:`~ray.rllib.env.single_agent_env_runner.SingleAgentEnvRunner` spends most of a routing step on
its own machinery: a connector pass into and out of the module, a torch distribution, an episode object
appended to item by item, an info dict per step (pickled when the runner is remote). The world and the
features of a Routing-v0 step cost far less. This runner keeps RLlib's env runner interface (it *is* a
``SingleAgentEnvRunner``: the same construction, weights, metrics, checkpoints, ``payroute train``, Tune and
the Ray cluster path) and replaces ``sample()`` with a plain loop:

* the runner's vector of environments is stepped one sub-environment at a time, straight into the
  :class:`~payroute.agents.training_env.TrainingEnv` (no vector wrapper, no autoreset);
* observations and action masks are written into preallocated arrays, one row per environment;
* one forward pass of the policy MLP per vector step (torch, no gradient), the mask applied as the module
  applies it (:class:`~payroute.agents.rllib.module.MaskedActorCritic`), the action drawn in numpy (Gumbel-max
  over the masked logits, from the runner's own seeded generator) with its log-probability;
* each finished episode is handed over in one piece: a :class:`SingleAgentEpisode` built from whole arrays,
  with the module's action-distribution inputs and log-probabilities, as RLlib's PPO/APPO learners expect;
* per-step infos are kept only when asked for (``trainer.sampler.keep_infos``; otherwise only the episode's
  last, which carries the KPIs and the decision credit); the running KPIs of ``kpi_every_steps`` are logged.

Complete episodes (the decision credits) and fixed-length fragments (``credit: resolved``) are both supported.
Unlike RLlib's runner in ``complete_episodes`` mode, which re-seeds every sub-environment with the same seed at
each ``sample()`` call (so every iteration replays the same simulated days), each sub-environment is seeded
once and then continues its own stream of days.

**Asynchronous sampling** (``trainer.sampler.async_sampling: true``, remote env runners): after handing over a batch
the runner starts the next one in a background thread, with the weights it has, while the learner updates on
the other core; weights that arrive meanwhile are applied when that batch is handed over, before the next one
starts. The learner thus always trains on a batch sampled by the policy one update older (PPO's importance
ratio is taken against the sampling policy's recorded log-probabilities, as APPO's is). Which weights sample
which batch does not depend on timing, so a fixed seed still gives the same trained policy.

Exact resume: :meth:`BatchedEnvRunner.batched_state` and :meth:`~BatchedEnvRunner.set_batched_state` (called by
:mod:`payroute.agents.rllib.resume`) keep the days under way, the action generator, the seed cursors and a batch
sampled in the background; the environments' own episode records rebuild the worlds.

Single-agent environments with a ``Discrete`` action space and the masked actor-critic (PPO, APPO) only; the
experiment schema refuses anything else.
"""

from __future__ import annotations

import threading
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer
from ray.rllib.utils.torch_utils import FLOAT_MIN

from payroute.agents.training_env import TrainingEnv

_MIN_ROWS = 1024


class _Track:
    """One sub-environment's episode under way: growing arrays, one row per step."""

    __slots__ = ("obs", "mask", "actions", "logp", "logits", "rewards", "n", "id_", "t0", "infos")

    def __init__(self, obs_dim: int, n_actions: int, rows: int, id_: str, t0: int = 0) -> None:
        self.obs = np.empty((rows + 1, obs_dim), np.float32)
        self.mask = np.empty((rows + 1, n_actions), np.float32)
        self.actions = np.empty(rows, np.int64)
        self.logp = np.empty(rows, np.float32)
        self.logits = np.empty((rows, n_actions), np.float32)
        self.rewards = np.empty(rows, np.float64)
        self.n = 0
        self.id_ = id_
        self.t0 = t0
        self.infos: list[dict] | None = None  # every step's info, only with keep_infos

    def grow(self) -> None:
        """Twice the rows (observations and masks keep their one extra row)."""
        more = len(self.actions)
        for name in ("obs", "mask", "actions", "logp", "logits", "rewards"):
            old = getattr(self, name)
            new = np.empty((len(old) + more,) + old.shape[1:], old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)


def _writable(track: _Track | None) -> _Track | None:
    if track is not None:
        for name in ("obs", "mask", "actions", "logp", "logits", "rewards"):
            setattr(track, name, np.array(getattr(track, name), copy=True))
        if track.infos is not None:
            track.infos = list(track.infos)
    return track


def _training_env(env: Any) -> TrainingEnv:
    inner = env
    while inner is not None and not isinstance(inner, TrainingEnv):
        inner = getattr(inner, "env", None)
    if inner is None:
        raise TypeError(f"the batched env runner needs a payroute TrainingEnv, got {type(env).__name__}")
    return inner


class BatchedEnvRunner(SingleAgentEnvRunner):
    """RLlib's single-agent env runner with a batched ``sample()`` (see the module docstring)."""

    def __init__(self, *, config: Any, **kwargs: Any) -> None:
        super().__init__(config=config, **kwargs)
        torch.set_num_threads(1)
        options = dict(self.config.env_config.get("batched_sampler", {}) or {})
        self._async = bool(options.get("async_sampling", False)) and bool(self.worker_index)
        self._keep_infos = bool(options.get("keep_infos", False))
        self._rng = np.random.default_rng(
            np.random.SeedSequence([int(self.config.seed or 0), int(self.worker_index or 0), 0x5A4D])
        )
        self._envs: list[TrainingEnv] = []
        self._tracks: list[_Track | None] = []
        self._initial_seeded = False
        self._episodes_begun = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._prefetched: tuple[list[dict[str, Any]], int, list[dict]] | BaseException | None = None
        self._returns: dict[str, tuple[int, float]] = {}  # length and return of days handed over in fragments
        self._pending_state: dict[str, Any] | None = None
        self._stop = False
        if self.env is not None:
            self._setup_arrays()

    # ------------------------------------------------------------------ set-up
    def _setup_arrays(self) -> None:
        self._envs = [_training_env(e) for e in self.env.unwrapped.envs]
        space = self.env.single_observation_space
        if not isinstance(space, gym.spaces.Dict) or not isinstance(
            self.env.single_action_space, gym.spaces.Discrete
        ):
            raise TypeError("the batched env runner needs a masked Dict observation and a Discrete action")
        self._obs_dim = int(space["observations"].shape[0])
        self._n_actions = int(self.env.single_action_space.n)
        n = len(self._envs)
        self._obs = np.zeros((n, self._obs_dim), np.float32)
        self._mask = np.zeros((n, self._n_actions), np.float32)
        self._tracks = [None] * n

    def _policy(self) -> torch.nn.Module:
        return self.module.policy_net()

    # ------------------------------------------------------------------ the loop
    def _reset_env(self, i: int) -> None:
        seed = None
        if not self._initial_seeded and self._seed is not None:
            seed = self._seed + i  # what gymnasium's SyncVectorEnv gives sub-environment i
        obs, info = self._envs[i].reset(seed=seed)
        track = _Track(self._obs_dim, self._n_actions, _MIN_ROWS, self._new_id())
        if self._keep_infos:
            track.infos = [info]
        track.obs[0] = obs["observations"]
        track.mask[0] = obs["action_mask"]
        self._obs[i] = obs["observations"]
        self._mask[i] = obs["action_mask"]
        self._tracks[i] = track

    def _new_id(self) -> str:
        self._episodes_begun += 1  # unique across runners, and not drawn from the action generator
        return f"{int(self.worker_index or 0):08x}{self._episodes_begun:024x}"

    def _run(
        self, *, steps: int | None, episodes: int | None
    ) -> tuple[list[dict[str, Any]], int, list[dict]]:
        """Step the vector until ``steps`` steps (then cut fragments) or ``episodes`` whole episodes.

        Returns the finished episodes (and fragments) as arrays, the number of steps and the running KPIs seen.
        """
        n = len(self._envs)
        if any(t is None for t in self._tracks):
            for i in range(n):
                if self._tracks[i] is None:
                    self._reset_env(i)
            self._initial_seeded = True
        policy = self._policy()
        done: list[dict[str, Any]] = []
        running: list[dict[str, float]] = []
        ts = 0
        keep = self._keep_infos
        rng = self._rng
        obs_t = torch.from_numpy(self._obs)
        log_mask = np.empty_like(self._mask)
        while (ts < steps) if steps is not None else (len(done) < episodes):
            if self._stop:
                break
            with torch.no_grad():
                logits = policy(obs_t).numpy()
            with np.errstate(divide="ignore"):
                np.log(self._mask, out=log_mask)
            np.maximum(log_mask, FLOAT_MIN, out=log_mask)
            logits = logits + log_mask  # exactly the module's masked logits (MaskedActorCritic._masked)
            top = logits.max(axis=1, keepdims=True)
            shifted = logits.astype(np.float64) - top
            logz = np.log(np.exp(shifted).sum(axis=1))
            gumbel = -np.log(-np.log(rng.random(logits.shape)))
            actions = np.argmax(shifted + gumbel, axis=1)
            logps = shifted[np.arange(n), actions] - logz
            for i in range(n):
                track = self._tracks[i]
                if track.n == len(track.actions):
                    track.grow()
                a = int(actions[i])
                k = track.n
                track.actions[k] = a
                track.logp[k] = logps[i]
                track.logits[k] = logits[i]
                obs, reward, terminated, truncated, info = self._envs[i].step(a)
                track.rewards[k] = reward
                track.n = k + 1
                o, m = obs["observations"], obs["action_mask"]
                track.obs[k + 1] = o
                track.mask[k + 1] = m
                self._obs[i] = o
                self._mask[i] = m
                ts += 1
                if keep:
                    track.infos.append(info)
                if "kpis_running" in info:
                    running.append(dict(info["kpis_running"]))
                if terminated or truncated:
                    done.append(self._finish(track, info, terminated, truncated))
                    self._reset_env(i)
        if steps is not None:  # fragments: cut every episode under way and continue it
            for i in range(n):
                track = self._tracks[i]
                if track.n:
                    done.append(self._finish(track, None, False, False))
                    nxt = _Track(self._obs_dim, self._n_actions, _MIN_ROWS, track.id_, track.t0 + track.n)
                    nxt.obs[0] = track.obs[track.n]
                    nxt.mask[0] = track.mask[track.n]
                    if keep:
                        nxt.infos = [track.infos[-1]]
                    self._tracks[i] = nxt
        return done, ts, running

    @staticmethod
    def _finish(track: _Track, info: dict | None, terminated: bool, truncated: bool) -> dict[str, Any]:
        k = track.n
        return {
            "id": track.id_,
            "t0": track.t0,
            "obs": track.obs[: k + 1].copy(),
            "mask": track.mask[: k + 1].copy(),
            "actions": track.actions[:k].copy(),
            "logp": track.logp[:k].copy(),
            "logits": track.logits[:k].copy(),
            "rewards": track.rewards[:k].copy(),
            "info": info or {},
            "infos": track.infos,
            "terminated": bool(terminated),
            "truncated": bool(truncated),
        }

    # ------------------------------------------------------------------ episodes out
    def _episode(self, raw: dict[str, Any]) -> SingleAgentEpisode:
        k = len(raw["actions"])
        obs = InfiniteLookbackBuffer(
            data={"observations": raw["obs"], "action_mask": raw["mask"]},
            lookback=0,
            space=self.env.single_observation_space,
        )
        episode = SingleAgentEpisode(
            id_=raw["id"],
            observations=obs,
            observation_space=self.env.single_observation_space,
            actions=InfiniteLookbackBuffer(data=raw["actions"], lookback=0),
            action_space=self.env.single_action_space,
            rewards=[float(r) for r in raw["rewards"]],
            infos=raw["infos"] if raw["infos"] is not None else [{}] * k + [raw["info"]],
            terminated=raw["terminated"],
            truncated=raw["truncated"],
            extra_model_outputs={
                Columns.ACTION_LOGP: InfiniteLookbackBuffer(data=raw["logp"], lookback=0),
                Columns.ACTION_DIST_INPUTS: InfiniteLookbackBuffer(data=raw["logits"], lookback=0),
            },
            t_started=raw["t0"],
            len_lookback_buffer=0,
        )
        return episode

    def _hand_over(
        self, raws: list[dict[str, Any]], ts: int, running: list[dict]
    ) -> list[SingleAgentEpisode]:
        out = []
        completed = 0
        for raw in raws:
            episode = self._episode(raw)
            if episode.is_done:
                completed += 1
                # the KPI callbacks and the decision credit (KPICallbacks.on_episode_end) see the whole episode
                self._make_on_episode_callback("on_episode_end", 0, [episode])
                self._ongoing_episodes_for_metrics.pop(episode.id_, None)
                ret = float(np.sum(episode.get_rewards()))
                prior = self._returns.pop(raw["id"], (0, 0.0))
                self._log_episode_metrics(prior[0] + len(episode), prior[1] + ret, 0.0)
            else:
                prior = self._returns.get(raw["id"], (0, 0.0))
                self._returns[raw["id"]] = (prior[0] + len(episode), prior[1] + float(raw["rewards"].sum()))
            out.append(episode.to_numpy())
        for kpis in running:
            for key, value in kpis.items():
                self.metrics.log_value(("kpi_running", key), float(value), reduce="mean", window=20)
        self._increase_sampled_metrics(ts, completed)
        return out

    def sample(
        self,
        *,
        num_timesteps: int | None = None,
        num_episodes: int | None = None,
        explore: bool | None = None,
        random_actions: bool = False,
        force_reset: bool = False,
    ) -> list[SingleAgentEpisode]:
        if explore is False or random_actions or force_reset:
            # RLlib's own loop would step the same environments behind this sampler's back
            raise ValueError(
                "the batched sampler samples the policy's exploring actions only (no explore=False, "
                "random_actions or force_reset): use trainer.sampler.env_runner 'rllib' for those"
            )
        if num_timesteps is None and num_episodes is None:
            if self.config.batch_mode == "truncate_episodes":
                num_timesteps = self.config.get_rollout_fragment_length(self.worker_index) * self.num_envs
            else:
                num_episodes = self.num_envs
        request = (num_timesteps, num_episodes)
        if self._async:
            self._join()
            prefetched, self._prefetched = self._prefetched, None
            if prefetched is None:  # the first call (or one after a restore without a batch in flight)
                prefetched = self._run(steps=num_timesteps, episodes=num_episodes)
            self._apply_pending()
            self._thread = threading.Thread(target=self._prefetch, args=request, daemon=True)
            self._thread.start()
        else:
            prefetched = self._run(steps=num_timesteps, episodes=num_episodes)
        return self._hand_over(*prefetched)

    def _join(self) -> None:
        """Wait for the batch in flight (its arrays stay in ``_prefetched``); raise what it raised."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if isinstance(self._prefetched, BaseException):
            exc, self._prefetched = self._prefetched, None
            raise exc

    # ------------------------------------------------------------------ exact resume (agents/rllib/resume.py)
    def batched_state(self) -> dict[str, Any]:
        """What decides this runner's next samples beyond RLlib's state and the environments' episode records:
        the days under way as arrays, the action generator, the seed and id cursors, and the batch sampled in
        the background (waited for first, so the environments' records are taken between two batches)."""
        self._join()
        return {
            "tracks": self._tracks,
            "obs": self._obs.copy(),
            "mask": self._mask.copy(),
            "rng": self._rng.bit_generator.state,
            "initial_seeded": self._initial_seeded,
            "episodes_begun": self._episodes_begun,
            "returns": dict(self._returns),
            "prefetched": self._prefetched,
        }

    def set_batched_state(self, state: dict[str, Any]) -> None:
        """Put :meth:`batched_state` back (after the environments replayed their days; the weights are the
        learner's, so weights waiting for a hand-over when the checkpoint was taken are not needed)."""
        self._join()
        self._tracks = [_writable(t) for t in state["tracks"]]  # Ray hands arrays over read-only
        self._obs[:] = state["obs"]
        self._mask[:] = state["mask"]
        self._rng.bit_generator.state = state["rng"]
        self._initial_seeded = bool(state["initial_seeded"])
        self._episodes_begun = int(state["episodes_begun"])
        self._returns = dict(state["returns"])
        self._prefetched = state["prefetched"]
        self._pending_state = None

    def _prefetch(self, steps: int | None, episodes: int | None) -> None:
        try:
            self._prefetched = self._run(steps=steps, episodes=episodes)
        except BaseException as exc:  # raised again by the sample() call that collects this batch
            self._prefetched = exc

    def _apply_pending(self) -> None:
        with self._lock:
            state, self._pending_state = self._pending_state, None
        if state is not None:
            super().set_state(state)

    def set_state(self, state: dict[str, Any]) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                # mid-batch: the weights wait for the hand-over (the batch under way keeps its policy)
                if self._pending_state is None:
                    self._pending_state = dict(state)
                else:
                    self._pending_state.update(state)
                return
        if self._thread is not None:
            self._thread.join()
        super().set_state(state)

    def stop(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        super().stop()
