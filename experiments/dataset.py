"""Datasets for offline RL: logged episodes of a payroute environment, written as a Minari dataset.

What ``payroute dataset SCENARIO --policy P --explore E --days N --out DIR`` does, as a function
(:func:`write_dataset`). The environment (``payroute/Routing-v0`` or ``payroute/Risk-v0``) is made with
``gym.make`` and its default arguments, plus the scenario (and ``volume_scale`` if given). A behaviour policy
answers every step: a baseline of the environment's decision kind by name, or a policy bundle (run in ONNX by
:mod:`payroute.policies.bundle`), wrapped in the epsilon-greedy exploration ``payroute simulate --explore`` logs
with (:class:`~payroute.envs.baselines.exploration.EpsilonGreedy`). The behaviour policy is bound to the
environment's world, so it decides on what the environment shows the agent, and the exploration draws come from
their own generator under the world seed.

Episode ``i`` (of ``days``, one simulated day each) runs world seed ``seed + i``; every seed lies in the training
range ``[0, HELD_OUT_SEED_START)`` (:data:`payroute.vocabulary.HELD_OUT_SEED_START`), so a dataset never holds the
held-out days that ``payroute evaluate`` and the benchmark score on.

The folder ``DIR`` holds ``DIR/data``: Minari's ``arrow`` storage (``metadata.json``, one folder per episode).
Per episode: ``observations`` (steps + 1 rows), ``actions``, ``rewards``, ``terminations``, ``truncations``
(steps rows), and ``infos`` (steps + 1 rows; row ``t`` goes with observation ``t``):

* ``action_mask`` (int8, one per action): the actions eligible at observation ``t`` (the terminal row allows
  every action, as the environment's terminal info does);
* ``propensity`` (float64): the behaviour policy's probability of the action taken at observation ``t``
  (``(1 - E) 1{a = greedy} + E / eligible``); NaN on the terminal row, where no action is taken.

The dataset's metadata holds, under ``payroute``, everything needed to write it again: the payroute version, the
environment id and its ``gym.make`` arguments, the scenario (name or path, and the resolved scenario with its
hash), the policy, the exploration, the first seed and each episode's seed, and the command.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from payroute import __version__
from payroute.agents.training_env import resolve_entry_point
from payroute.envs.baselines import DEFAULT_BASELINES, make_policy, policy_names
from payroute.envs.baselines.exploration import EpsilonGreedy
from payroute.envs.scenarios import Scenario, load_scenario
from payroute.errors import PayrouteError
from payroute.files import atomic_folder, check_output_folder
from payroute.vocabulary import HELD_OUT_SEED_START

DATASET_ENVS: dict[str, str] = {"payroute/Routing-v0": "route", "payroute/Risk-v0": "risk"}
"""The environments a dataset can log, and the decision kind each one's agent answers."""

DATA_FORMAT = "arrow"
"""Minari's storage format for payroute datasets (``minari[arrow]``: pyarrow is a core dependency already)."""

DATASET_NAME = re.compile(r"[-_A-Za-z0-9]+-v[0-9]+")
"""The name of a dataset folder: a Minari dataset id (``minari list local`` fails on a folder named otherwise)."""

Report = Callable[[str, int, int], None]


def env_decision_kind(env_id: str) -> tuple[str, str]:
    """``(id, kind)`` for ``env_id`` (also given as ``payroute:payroute/Routing-v0``), or a one-line error."""
    plain = env_id.removeprefix("payroute:")
    if plain not in DATASET_ENVS:
        raise PayrouteError(f"--env = {env_id!r}: allowed: {', '.join(DATASET_ENVS)}")
    return plain, DATASET_ENVS[plain]


def _is_bundle(policy: str, kind: str) -> bool:
    if policy in policy_names(kind):
        return False
    return Path(policy).exists() or policy.endswith(".zip") or "/" in policy


def behaviour_policy_factory(
    policy: str, kind: str, scenario: Scenario, trusted_keys: Sequence[Any] = ()
) -> Callable[[], Any]:
    """A function that makes a fresh ``kind`` policy for each episode: the baseline named ``policy``, or the
    bundle at that path (loaded and checked against ``scenario`` once, here)."""
    if not _is_bundle(policy, kind):
        if policy not in policy_names(kind):
            raise PayrouteError(
                f"--policy = {policy!r}: not a {kind} policy; allowed: {', '.join(policy_names(kind))}, "
                "or the path of a policy bundle (a directory or .zip)"
            )
        return lambda: make_policy(kind, policy)
    from payroute.policies import load_bundle
    from payroute.policies.bundle.binding import bound_bundle, check_bundle_fits_scenario
    from payroute.policies.bundle.signing import trusted_keys as keys_from

    loaded = load_bundle(policy, trusted_keys=keys_from(trusted_keys))
    if loaded.decision_kind != kind:
        raise PayrouteError(
            f"--policy = {policy!r}: the bundle decides {loaded.decision_kind!r}; this environment needs a "
            f"{kind!r} policy"
        )
    check_bundle_fits_scenario(loaded, scenario)
    return lambda: bound_bundle(loaded)


def _check_inputs(explore: float, days: int, seed: int) -> None:
    if not (isinstance(explore, int | float) and math.isfinite(explore) and 0.0 <= explore <= 1.0):
        raise PayrouteError(f"--explore = {explore!r}: allowed: a number in [0, 1] (epsilon)")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise PayrouteError(f"--days = {days!r}: allowed: a whole number of days >= 1 (one episode each)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PayrouteError(f"--seed = {seed!r}: allowed: an integer >= 0")
    if seed + days > HELD_OUT_SEED_START:
        raise PayrouteError(
            f"--seed = {seed}: with --days {days} the episodes would run seeds up to {seed + days - 1}; "
            f"allowed: seeds below {HELD_OUT_SEED_START} (from there on they are held out for evaluation)"
        )


def _scenario_hash(scenario: Scenario) -> str:
    text = json.dumps(scenario.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


REWARD_ARGUMENTS = ("credit", "baseline", "decline_cost")
"""The environment arguments that decide its rewards: recorded with every dataset, defaults included."""


@dataclass(frozen=True)
class DatasetPlan:
    """A dataset checked and ready to write (:func:`plan_dataset`); :func:`write_planned` writes it."""

    out: Path
    env_id: str
    kind: str
    env_kwargs: dict[str, Any]
    scenario_name: str
    policy: str
    explore: float
    seeds: tuple[int, ...]
    new_policy: Callable[[], Any]
    metadata: dict[str, Any]


def plan_dataset(
    scenario: str | Path,
    out: str | Path,
    *,
    env_id: str = "payroute/Routing-v0",
    policy: str | None = None,
    explore: float = 0.1,
    days: int = 1,
    seed: int = 0,
    volume_scale: float | None = None,
    trusted_keys: Sequence[Any] = (),
) -> DatasetPlan:
    """Check every input of a dataset before any episode runs: the environment, the exploration, the seeds
    (below the held-out range), the output folder (must not exist), the scenario and the policy (a baseline of
    the environment's decision kind, or a bundle that fits the scenario; by default the kind's default baseline,
    ``cheapest`` or ``threshold``). Bad input raises
    :class:`~payroute.errors.PayrouteError` with one line naming the option, the value and what is allowed."""
    plain_id, kind = env_decision_kind(env_id)
    policy = str(policy) if policy is not None else DEFAULT_BASELINES[kind]
    _check_inputs(explore, days, seed)
    out = Path(out)
    check_output_folder(out, "--out", new=True)
    if not DATASET_NAME.fullmatch(out.name):
        raise PayrouteError(
            f"--out = {str(out)!r}: the folder's name is the Minari dataset id; allowed: NAME-vN, "
            "letters, digits, '-' and '_' (e.g. routing-default-v0)"
        )
    overrides = {"volume_scale": float(volume_scale)} if volume_scale is not None else None
    resolved = load_scenario(scenario, overrides)
    new_policy = behaviour_policy_factory(policy, kind, resolved, trusted_keys)
    EpsilonGreedy(new_policy(), explore, kind)  # the exploration's own checks, before any work
    env_kwargs: dict[str, Any] = {"scenario": str(scenario)}
    if overrides:
        env_kwargs["scenario_overrides"] = overrides
    # how the rewards were paid, written out (the defaults of this version) so the dataset says what its rewards
    # are and a later version with other defaults rebuilds the same environment
    parameters = inspect.signature(resolve_entry_point(plain_id).__init__).parameters
    env_kwargs.update({k: parameters[k].default for k in REWARD_ARGUMENTS if k in parameters})
    seeds = tuple(seed + i for i in range(days))
    metadata = {
        "dataset_id": out.name,
        "algorithm_name": f"{policy} with epsilon-greedy exploration (epsilon {explore:g})",
        "description": (
            f"{days} day(s) of {plain_id} on scenario {resolved.name!r}, logged by {policy!r} with "
            f"epsilon-greedy exploration (epsilon {explore:g}); world seeds {seeds[0]}..{seeds[-1]}. "
            "infos: action_mask (eligible actions at each observation), propensity (the behaviour "
            "probability of the action taken there; NaN on the terminal row)."
        ),
        "requirements": [f"payroute=={__version__}"],
        "payroute": {
            "version": __version__,
            "env_id": plain_id,
            "env_kwargs": env_kwargs,
            "scenario": str(scenario),
            "scenario_name": resolved.name,
            "scenario_sha256": _scenario_hash(resolved),
            "scenario_resolved": resolved.model_dump(mode="json"),
            "policy": policy,
            "explore": float(explore),
            "exploration": "epsilon-greedy",
            "days": days,
            "seed": seed,
            "episode_seeds": list(seeds),
            "held_out_seed_start": HELD_OUT_SEED_START,
            "command": _command(scenario, plain_id, policy, explore, days, seed, volume_scale, out),
        },
    }
    return DatasetPlan(
        out, plain_id, kind, env_kwargs, resolved.name, policy, float(explore), seeds, new_policy, metadata
    )


def write_planned(plan: DatasetPlan, report: Report | None = None) -> dict[str, Any]:
    """Run and write the episodes of ``plan``; ``plan.out`` appears only complete (written beside it, then
    renamed). ``report(name, done, total)`` is told the simulated hours done. Returns a summary."""
    import gymnasium as gym

    import payroute  # noqa: F401  (registers the payroute/ ids)

    env = gym.make(plan.env_id, **plan.env_kwargs)
    steps = 0
    days = len(plan.seeds)
    try:
        with atomic_folder(plan.out) as tmp:
            storage = _new_storage(tmp / "data", env, plan.metadata)
            for i, world_seed in enumerate(plan.seeds):
                behaviour = EpsilonGreedy(plan.new_policy(), plan.explore, plan.kind)
                buffer = _episode(env, behaviour, world_seed, i, days, report)
                storage.update_episodes([buffer])
                steps += len(buffer)
    finally:
        env.close()
    return {
        "out": str(plan.out),
        "data_path": str(plan.out / "data"),
        "dataset_id": plan.out.name,
        "env_id": plan.env_id,
        "scenario": plan.scenario_name,
        "policy": plan.policy,
        "explore": plan.explore,
        "episodes": days,
        "steps": steps,
        "seeds": list(plan.seeds),
    }


def write_dataset(
    scenario: str | Path, out: str | Path, *, report: Report | None = None, **options: Any
) -> dict:
    """:func:`plan_dataset` then :func:`write_planned`: ``days`` logged episodes of ``env_id`` on ``scenario``
    in the new folder ``out``; returns the summary."""
    return write_planned(plan_dataset(scenario, out, **options), report)


def _command(
    scenario: Any,
    env_id: str,
    policy: str,
    explore: float,
    days: int,
    seed: int,
    volume_scale: Any,
    out: Path,
) -> str:
    parts = ["payroute", "dataset", str(scenario), "--env", env_id, "--policy", policy]
    parts += ["--explore", f"{explore:g}", "--days", str(days), "--seed", str(seed)]
    if volume_scale is not None:
        parts += ["--volume-scale", f"{volume_scale:g}"]
    return " ".join([*parts, "--out", out.name])


def _new_storage(data_path: Path, env: Any, metadata: dict[str, Any]) -> Any:
    import warnings

    import minari
    from minari.dataset.minari_storage import MinariStorage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Minari warns when an env spec has a callable or missing field
        storage = MinariStorage.new(
            data_path,
            observation_space=env.observation_space,
            action_space=env.action_space,
            env_spec=env.spec,
            data_format=DATA_FORMAT,
        )
    spec = env.spec.to_json()
    storage.update_metadata({**metadata, "minari_version": minari.__version__, "eval_env_spec": spec})
    return storage


def _episode(
    env: Any, behaviour: EpsilonGreedy, world_seed: int, index: int, days: int, report: Report | None
) -> Any:
    """One logged episode of world seed ``world_seed`` as a Minari episode buffer."""
    from minari.data_collector.episode_buffer import EpisodeBuffer

    try:
        obs, info = env.reset(seed=world_seed)
    except RuntimeError as exc:  # a world with no decision for the agent (a volume too small for a day)
        raise PayrouteError(f"world seed {world_seed}: {exc}; raise --volume-scale") from None
    inner = env.unwrapped
    kind = behaviour.kind
    behaviour.bind(inner.world)
    horizon_h = inner.days * 24.0
    observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
    masks, propensities = [np.asarray(info["action_mask"], dtype=np.int8)], []
    terminated = truncated = False
    while not (terminated or truncated):
        point = inner.episode.point
        payload = (point.payload, point.info["eligible"]) if kind == "route" else point.payload
        action, propensity = behaviour.decide(inner.world, payload)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(int(action))
        rewards.append(float(reward))
        terminations.append(bool(terminated))
        truncations.append(bool(truncated))
        masks.append(np.asarray(info["action_mask"], dtype=np.int8))
        propensities.append(float(propensity))
        if report is not None and len(actions) % 500 == 0:
            hours = min(inner.world.now / 3600.0, horizon_h)
            report("dataset", int(24 * index + 24 * hours / horizon_h), 24 * days)
    if report is not None:
        report("dataset", 24 * (index + 1), 24 * days)
    propensities.append(math.nan)
    buffer = EpisodeBuffer(
        id=index,
        seed=world_seed,
        observations=observations,
        actions=actions,
        rewards=rewards,
        terminations=terminations,
        truncations=truncations,
        infos={"action_mask": np.stack(masks), "propensity": propensities},
    )
    return buffer
