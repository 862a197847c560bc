"""``payroute sweep EXP.yaml``: a hyperparameter search with Ray Tune over the experiment's ``sweep`` section.

``sweep.space`` maps dotted config paths (``trainer.hyperparameters.lr``, ``trainer.network.hidden``...) to
distributions (``choice``, ``uniform``, ``loguniform``, ``randint``). Each trial is an ordinary
``payroute train`` run of the experiment with the sampled values (validated like any config, with its own
hash and run folder under ``runs/<name>/``), reporting ``sweep.metric`` (a KPI of the episodes that ended,
or the episode return) to Tune after every iteration. The best trial is reported with its run folder, which
``payroute evaluate`` takes as it is. Trials reserve one CPU for the trainer plus one per env runner.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from payroute.errors import ConfigError, PayrouteError
from payroute.experiments.schema import Experiment, check_scenario_overrides, load_experiment


@dataclass
class SweepResult:
    experiment: str
    metric: str
    mode: str
    trials: pd.DataFrame  # one row per trial: the sampled values, the metric, the run folder
    best_run_dir: Path | None
    best_value: float | None
    tune_dir: Path


def _domain(dist: Any) -> Any:
    from ray import tune

    if dist.choice is not None:
        return tune.choice(dist.choice)
    if dist.uniform is not None:
        return tune.uniform(*dist.uniform)
    if dist.loguniform is not None:
        return tune.loguniform(*dist.loguniform)
    return tune.randint(dist.randint[0], dist.randint[1] + 1)  # inclusive upper bound, as written


def check_space(exp: Experiment, source: str, max_combinations: int = 256) -> None:
    """Every value the sweep can give a trial, validated against the experiment schema before anything runs.

    Each dimension's candidates are every ``choice`` and both ends of a range (a bound that holds at both ends
    holds between them). Up to ``max_combinations`` combinations of them are validated together (so that,
    say, a ``minibatch_size`` swept above a swept ``batch_size`` is caught); with more, each dimension's
    candidates are validated with the others at the experiment's own values. A bad one is a
    :class:`ConfigError` naming ``source``, the sweep dimension, the value and what the schema allows.
    """
    if exp.sweep is None:
        return
    space = exp.sweep.space
    paths = list(space)
    per_dim = [[(path, i, v) for i, v in enumerate(space[path].candidates())] for path in paths]
    if math.prod(len(c) for c in per_dim) <= max_combinations:
        combos = list(itertools.product(*per_dim))
    else:
        combos = [(c,) for dim in per_dim for c in dim]
    touches_scenarios = any(
        p.split(".")[0] in _SCENARIO_FIELDS or p.startswith("evaluation.scenario") for p in paths
    )
    for combo in combos:
        changes = {path: value for path, _, value in combo}
        where = ", ".join(f"sweep.space[{path!r}].{_kind(space[path])}.{i} = {v!r}" for path, i, v in combo)
        try:
            candidate = exp.with_changes(changes)
            if touches_scenarios:
                check_scenario_overrides(candidate, source)
        except PayrouteError as err:
            detail = str(err).split("\n", 1)
            body = detail[1] if len(detail) > 1 and str(err).startswith(f"{exp.name} (changed") else str(err)
            raise ConfigError(f"{source}: {where} gives an invalid experiment:\n{body}") from None


_SCENARIO_FIELDS = ("scenario", "scenario_overrides", "train_scenarios")


def _kind(dist: Any) -> str:
    return next(k for k in ("choice", "uniform", "loguniform", "randint") if getattr(dist, k) is not None)


def _metric_of(scalars: dict[str, float], metric: str) -> float | None:
    keys = ["agent/"] if metric == "episode_return_mean" else [f"kpi/{metric}", f"kpi_running/{metric}"]
    for key in keys:
        if key == "agent/":
            vals = [v for k, v in scalars.items() if k.startswith("agent/") and k.endswith("/episode_return")]
            vals = [v for v in vals if not math.isnan(v)]
            if vals:
                return float(sum(vals) / len(vals))
            continue
        v = scalars.get(key)
        if v is not None and not math.isnan(v):
            return float(v)
    return None


def _trial(config: dict[str, Any]) -> None:
    """One Tune trial: train the experiment with this trial's values, reporting after every iteration."""
    from ray import tune

    from payroute.experiments.runner import train
    from payroute.experiments.schema import experiment_from_dict

    base = experiment_from_dict(config["__experiment"])
    exp = base.with_changes({k: v for k, v in config.items() if not k.startswith("__")})
    metric = exp.sweep.metric
    state: dict[str, Any] = {"run_dir": ""}

    def report(rep: Any) -> None:
        value = _metric_of(rep.scalars, metric)
        tune.report(
            {
                metric: value if value is not None else float("nan"),
                "iteration": rep.iteration,
                "env_steps": rep.env_steps,
                "run_dir": state["run_dir"],
            }
        )

    def on_start(run_dir: Path) -> None:
        state["run_dir"] = str(run_dir)

    train(
        exp,
        runs_root=Path(config["__runs_root"]),
        argv=["payroute", "sweep", str(config["__source"])],
        progress=False,
        on_iteration=report,
        on_start=on_start,
    )


def sweep(
    experiment: str | Path,
    runs_root: Path = Path("runs"),
    ray_address: str | None = None,
    num_samples: int | None = None,
) -> SweepResult:
    import datetime as dt

    exp: Experiment = load_experiment(experiment)
    if exp.sweep is None:
        raise PayrouteError(f"{experiment}: no 'sweep' section (a search space is needed)")
    spec = exp.sweep
    check_space(exp, str(experiment))  # the whole space, before Ray starts

    import ray
    from ray import tune

    runs_root = Path(runs_root).resolve()
    address = ray_address or exp.resources.ray_address
    if not ray.is_initialized():
        init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        # "local": always a fresh local instance, never a cluster some other program left running
        init["address"] = address or "local"
        if not address and exp.resources.num_cpus:
            init["num_cpus"] = exp.resources.num_cpus
        ray.init(**init)
    param_space: dict[str, Any] = {path: _domain(d) for path, d in spec.space.items()}
    param_space.update(__experiment=exp.resolved(), __runs_root=str(runs_root), __source=str(experiment))
    cpus = 1 + (exp.resources.num_env_runners if exp.trainer.library == "rllib" else 0)
    trainable = tune.with_resources(_trial, tune.PlacementGroupFactory([{"CPU": 1}] * cpus))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    tune_dir = runs_root / exp.name / "sweeps"
    tune_dir.mkdir(parents=True, exist_ok=True)
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            num_samples=num_samples or spec.num_samples,
            max_concurrent_trials=spec.max_concurrent,
            metric=spec.metric,
            mode=spec.mode,
        ),
        run_config=tune.RunConfig(name=stamp, storage_path=str(tune_dir), verbose=0),
    )
    grid = tuner.fit()
    rows = []
    for result in grid:
        cfg = {k: v for k, v in (result.config or {}).items() if not k.startswith("__")}
        m = result.metrics or {}
        rows.append({**cfg, spec.metric: m.get(spec.metric), "iterations": m.get("iteration"),
                     "run_dir": m.get("run_dir"), "error": str(result.error) if result.error else None})  # fmt: skip
    trials = pd.DataFrame(rows)
    best_dir, best_value = None, None
    scored = trials.dropna(subset=[spec.metric]) if not trials.empty else trials
    if not scored.empty:
        best = scored.sort_values(spec.metric, ascending=spec.mode == "min").iloc[0]
        best_dir, best_value = Path(best["run_dir"]), float(best[spec.metric])
    ray.shutdown()
    return SweepResult(exp.name, spec.metric, spec.mode, trials, best_dir, best_value, tune_dir / stamp)
