"""Scores on the benchmark's tasks: ``100 x (policy - reference) / (top - reference)`` with a paired 95% interval.

Every arm of a task runs on the same evaluation seeds (common random numbers) through the one comparison engine
(:func:`payroute.policies.compare.run_all`); the interval is the delta method's on the ratio of the mean paired
differences (:func:`payroute.stats.paired_ratio_interval`). The reference therefore scores 0 and the top 100
exactly, with intervals of zero width; a policy above the top (possible where the top is a bound, not an oracle)
scores above 100.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from payroute.envs.baselines import BASELINES_BY_KIND
from payroute.envs.scenarios import load_scenario
from payroute.errors import PayrouteError
from payroute.policies.benchmark.tasks import (
    TASKS,
    Task,
    free_liquidity,
    get_task,
    rtgs_planner,
    rtgs_value,
    top_arm,
)
from payroute.policies.bundle.binding import check_bundle_fits_scenario
from payroute.policies.bundle.loading import load_bundle
from payroute.policies.bundle.runtime import BundlePolicy
from payroute.policies.compare import NamedPolicy, PolicyRef, Run, bundle_policy, run_all
from payroute.stats import paired_ratio_interval

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Score:
    """A policy's score on a task, its paired 95% interval, and the KPI means it came from."""

    task: str
    policy: str
    score: float
    low: float
    high: float
    first_seed: int
    seeds: int
    policy_kpi: float
    reference_kpi: float
    top_kpi: float

    def as_dict(self) -> dict:
        return asdict(self)


def _is_bundle(text: str) -> bool:
    return text.endswith(".zip") or "/" in text or "\\" in text or Path(text).is_dir()


def load_policy(text: str) -> str | BundlePolicy:
    """A baseline name as it is, or the verified bundle at the path ``text``."""
    return load_bundle(text) if _is_bundle(text) else text


def policy_label(policy: str | BundlePolicy) -> str:
    return policy if isinstance(policy, str) else f"bundle {policy.source.name}"


def applies(policy: str | BundlePolicy, task: Task) -> bool:
    """Whether ``policy`` makes ``task``'s decision: a baseline of its kind (or its top), a bundle of its kind."""
    if isinstance(policy, BundlePolicy):
        return policy.decision_kind == task.kind
    return policy in task.baseline_names()


def tasks_for(policy: str | BundlePolicy, task: str | Task) -> list[Task]:
    """The tasks ``task`` names (``all``: every task ``policy`` applies to; a :class:`Task` itself: that task); a
    clear error when none fits."""
    if task == "all":
        chosen = [t for t in TASKS.values() if applies(policy, t)]
        if not chosen:
            kinds = "; ".join(
                f"{k}: {', '.join(t.baseline_names())}" for k, t in _first_task_by_kind().items()
            )
            raise PayrouteError(
                f"policy {policy_label(policy)!r} makes no benchmark task's decision; baselines by task kind: {kinds}"
            )
        return chosen
    t = task if isinstance(task, Task) else get_task(task)
    if not applies(policy, t):
        what = (
            f"a {policy.decision_kind!r} bundle"
            if isinstance(policy, BundlePolicy)
            else f"{policy!r} is not a {t.kind} baseline"
        )
        raise PayrouteError(
            f"task {t.name} scores {t.kind} policies and {what}; {t.kind} baselines: {', '.join(t.baseline_names())}"
            ", or a bundle path"
        )
    return [t]


def _first_task_by_kind() -> dict[str, Task]:
    out: dict[str, Task] = {}
    for t in TASKS.values():
        out.setdefault(t.kind, t)
    return out


def _arm(policy: str | BundlePolicy) -> PolicyRef:
    return bundle_policy(policy, policy_label(policy)) if isinstance(policy, BundlePolicy) else policy


def task_values(
    task: Task,
    policies: Sequence[str | BundlePolicy],
    seeds: int | None = None,
    workers: int = 1,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """The KPI of every arm on every seed of ``task`` (label -> values in seed order): the reference, the top
    and ``policies`` (each must apply to the task), all on the same seeds."""
    seed_list = task.seed_list(seeds)
    for p in policies:
        if not applies(p, task):
            tasks_for(p, task)  # raises the error that says why
    labels = [policy_label(p) for p in policies]
    wanted = [p for p, lab in zip(policies, labels, strict=True) if lab not in (task.reference, task.top)]
    if task.kind == "rtgs":
        return _rtgs_values(task, wanted, seed_list, progress)
    scenario = load_scenario(task.scenario, dict(task.overrides))
    for p in wanted:
        if isinstance(p, BundlePolicy):
            try:
                check_bundle_fits_scenario(p, scenario)
            except PayrouteError as err:
                raise PayrouteError(
                    f"{policy_label(p)} cannot be scored on task {task.name}: {err}"
                ) from None
    top = top_arm(task)
    arms: list[PolicyRef] = [
        task.reference,
        *([top] if top is not None else []),
        *(_arm(p) for p in wanted),
    ]
    runs = [Run(scenario, arm, s, task.days, task.kind) for arm in arms for s in seed_list]
    spawn = any(isinstance(p, BundlePolicy) for p in wanted)  # onnxruntime sessions must not cross a fork
    report = (lambda d, t: progress(task.name, d, t)) if progress else None
    if progress:
        progress(task.name, 0, len(runs))
    outcomes = run_all(runs, workers, report, spawn=spawn)
    n = len(seed_list)
    out: dict[str, np.ndarray] = {}
    for i, arm in enumerate(arms):
        chunk = outcomes[i * n : (i + 1) * n]
        out[arm.name if isinstance(arm, NamedPolicy) else arm] = np.array(
            [o.kpis["margin_usd"] / task.days for o in chunk]
        )
        if i == 0 and top is None:  # the treasury task: the top is the reference's own day, costs given back
            out[task.top] = np.array([free_liquidity(o.kpis, task.days) for o in chunk])
    return out


def _rtgs_values(
    task: Task, wanted, seed_list: list[int], progress: Progress | None
) -> dict[str, np.ndarray]:
    names = [task.reference, *wanted]
    total = len(seed_list) * (len(names) + 1)
    done = 0
    out: dict[str, list[float]] = {name: [] for name in [*names, task.top]}
    for s in seed_list:
        for name in names:
            out[name].append(rtgs_value(name, s))
        out[task.top].append(rtgs_planner(s))
        done += len(names) + 1
        if progress:
            progress(task.name, done, total)
    return {k: np.array(v) for k, v in out.items()}


def score_from_values(task: Task, label: str, values: dict[str, np.ndarray], first_seed: int) -> Score:
    """The score of ``values[label]`` against the task's reference and top (paired, seed by seed)."""
    ref, top, pol = values[task.reference], values[task.top], values[label]
    gap = top - ref
    if float(gap.mean()) == 0.0:
        raise PayrouteError(
            f"task {task.name}: the reference and the top tie on these seeds, so no score is defined"
        )
    r = paired_ratio_interval(pol - ref, gap)
    return Score(task.name, label, 100.0 * r.mean, 100.0 * r.low, 100.0 * r.high, first_seed, len(pol),
                 float(pol.mean()), float(ref.mean()), float(top.mean()))  # fmt: skip


def score(
    policy: str,
    task: str | Task = "all",
    seeds: int | None = None,
    workers: int = 1,
    progress: Progress | None = None,
) -> list[Score]:
    """``policy`` (a baseline name or a bundle path) scored on ``task`` (a task name or ``all``: every task it
    applies to; or a :class:`Task` of one's own). ``seeds`` overrides each task's seed count (fewer seeds: not the
    benchmark's score)."""
    loaded = load_policy(policy)
    chosen = tasks_for(loaded, task)
    label = policy_label(loaded)
    out = []
    for t in chosen:
        values = task_values(t, [loaded], seeds, workers, progress)
        out.append(score_from_values(t, label, values, t.seed_list(seeds)[0]))
    return out


def baselines_for(task: Task) -> list[str]:
    """Every baseline a task's table lists: the baselines of its kind, then its top."""
    return [n for n in BASELINES_BY_KIND[task.kind] if n != task.top] + [task.top]
