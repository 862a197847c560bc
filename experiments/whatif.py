"""What-if analysis: run policies on a scenario and on a changed version of it, on common random numbers.

An analyst's question — "what if card_alpha is down for two hours on a Friday afternoon?" — is a scenario
change. :func:`compare` runs every policy on the same seeds of the scenario as it is and as changed, and returns a
tidy table of paired differences with 95% intervals::

    from payroute.experiments import whatif

    table = whatif.compare(
        ["success_rate", "priority"],
        scenario="default",
        changes={"start_date": "2026-03-06", "incidents": [
            {"route": "card_alpha", "at": "14:00", "duration_min": 120, "state": "down"}]},
        seeds=5,
    )
    whatif.plot_differences(table, "approval_rate")

Because both versions of the world see the same customers and the same luck, the difference is the effect of
the change alone, and a handful of seeds gives a sharp answer. The runs go through the paired-comparison engine
(:func:`payroute.policies.compare.run_all`): each policy is two arms, one per version of the scenario.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from payroute.envs.scenarios import Scenario, load_scenario
from payroute.envs.world import PaymentWorld
from payroute.errors import PayrouteError
from payroute.experiments.cluster import ray_executor
from payroute.experiments.simulate import is_bundle_path, route_policy
from payroute.policies.bundle.binding import check_bundle_fits_scenario
from payroute.policies.bundle.loading import load_bundle
from payroute.policies.compare import (
    NamedPolicy,
    PolicyRef,
    Run,
    bundle_policy,
    remember_bundle,
    run_all,
    run_policies,
)
from payroute.stats import paired_interval
from payroute.vocabulary import HEADLINE_KPIS

DEFAULT_METRICS = HEADLINE_KPIS
PolicySpec = str | Callable[[], Any]  # a routing baseline name, a bundle path, or a factory


def _route_policy(spec: PolicySpec, scenario: Scenario) -> Any:
    """A fresh route policy from a baseline name, a bundle path, or a zero-argument factory."""
    if callable(spec):
        return spec()
    return route_policy(spec, scenario)


def _run(spec: PolicySpec, scenario: Scenario, seed: int, days: float, risk: str) -> Run:
    """One world of the comparison: ``spec`` routing ``scenario`` on ``seed``, ``risk`` deciding risk."""
    arm = NamedPolicy(_name(spec), functools.partial(_route_policy, spec, scenario))
    return Run(scenario, arm, seed, days, "route", (("risk", risk),))


def run(
    policy: PolicySpec,
    scenario: str | Path | Scenario = "default",
    changes: dict[str, Any] | None = None,
    seed: int = 0,
    days: float = 1.0,
    risk: str = "threshold",
) -> PaymentWorld:
    """One finished world: ``policy`` routing ``scenario`` (with ``changes`` merged in) on ``seed``."""
    sc = load_scenario(scenario, changes)
    policies = run_policies(_run(policy, sc, seed, days, risk))
    world = PaymentWorld(sc, seed=seed, policies=policies, days=days)
    world.run()
    return world


def compare(
    policies: Iterable[PolicySpec] | dict[str, PolicySpec],
    scenario: str | Path | Scenario = "default",
    changes: dict[str, Any] | None = None,
    seeds: int | list[int] = 5,
    days: float = 1.0,
    base_changes: dict[str, Any] | None = None,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    risk: str = "threshold",
    workers: int = 1,
    ray_address: str | None = None,
) -> pd.DataFrame:
    """Each policy on ``scenario`` (+ ``base_changes``) and on it with ``changes`` too, same seeds.

    ``scenario`` is a shipped name, a YAML path (e.g. ``"my_scenario.yaml"`` from ``payroute calibrate``: a
    what-if on your own traffic) or a :class:`Scenario`.

    Returns one row per policy and metric: ``base`` and ``changed`` means over seeds, and the paired difference
    ``diff`` (changed − base) with its 95% interval ``diff_low``/``diff_high``. ``workers`` > 1 runs the worlds
    in worker processes (the policies must then pickle: names, bundle paths, module-level factories);
    ``ray_address`` (``HOST:PORT``) runs them on that Ray cluster instead, bundles shipped as bytes, with the
    same numbers.
    """
    if not changes:
        raise PayrouteError("compare needs the change to evaluate: pass changes={...} (scenario overrides)")
    named = policies if isinstance(policies, dict) else {_name(p): p for p in policies}
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    base_sc = load_scenario(scenario, base_changes)
    changed_sc = load_scenario(base_sc, changes)
    arms = {name: route_arm(name, spec, (base_sc, changed_sc)) for name, spec in named.items()}
    runs = [
        Run(sc, arm, s, days, "route", (("risk", risk),))
        for arm in arms.values()
        for sc in (base_sc, changed_sc)
        for s in seed_list
    ]
    # a bundle verified here holds an onnxruntime session, which must not cross a fork: spawn the workers
    spawn = any(isinstance(spec, str) and is_bundle_path(spec) for spec in named.values())
    with ray_executor(ray_address) as executor:
        kpis = iter(o.kpis for o in run_all(runs, workers, spawn=spawn, executor=executor))
    rows = []
    for name in named:
        base = [next(kpis) for _ in seed_list]
        changed = [next(kpis) for _ in seed_list]
        for m in metrics:
            a = np.array([k[m] for k in base])
            b = np.array([k[m] for k in changed])
            d = paired_interval(b, a)
            rows.append(
                {
                    "policy": name,
                    "metric": m,
                    "base": float(a.mean()),
                    "changed": float(b.mean()),
                    "diff": d.mean,
                    "diff_low": d.low,
                    "diff_high": d.high,
                    "seeds": len(seed_list),
                }
            )
    return pd.DataFrame(rows)


def route_arm(name: str, spec: PolicySpec, scenarios: tuple[Scenario, ...]) -> PolicyRef:
    """A policy as an arm of the engine: a bundle path verified once here (its decision kind and its fit to
    every scenario checked) and then in each worker process, from its path or its shipped bytes; a baseline by
    name; a factory as it is."""
    if isinstance(spec, str) and is_bundle_path(spec):
        policy = load_bundle(spec)
        if policy.decision_kind != "route":
            raise PayrouteError(f"bundle {Path(spec).name} decides {policy.decision_kind!r}, not 'route'")
        for sc in scenarios:
            check_bundle_fits_scenario(policy, sc)
        remember_bundle(policy)
        return bundle_policy(policy, name)
    if isinstance(spec, str):
        route_policy(spec, scenarios[0])  # an unknown name fails here, before any world runs
        return spec
    return NamedPolicy(name, spec)


def _name(spec: PolicySpec) -> str:
    return spec if isinstance(spec, str) else getattr(spec, "__name__", repr(spec))


def plot_differences(table: pd.DataFrame, metric: str = "margin_per_tx_usd", ax=None):
    """Horizontal bars of the paired difference per policy, with 95% interval whiskers."""
    import matplotlib.pyplot as plt

    sub = table[table["metric"] == metric]
    if sub.empty:
        raise PayrouteError(f"no rows for metric {metric!r}; metrics: {sorted(table['metric'].unique())}")
    if ax is None:
        _fig, ax = plt.subplots(figsize=(7, 0.6 * len(sub) + 1.2))
    y = np.arange(len(sub))
    err = np.vstack([sub["diff"] - sub["diff_low"], sub["diff_high"] - sub["diff"]])
    ax.barh(
        y, sub["diff"], xerr=err, color=["#c44e52" if d < 0 else "#4c72b0" for d in sub["diff"]], capsize=4
    )
    ax.set_yticks(y, sub["policy"])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(
        f"change in {metric} (changed − base), 95% CI over {int(sub['seeds'].iloc[0])} paired seeds"
    )
    return ax


def hourly_approval(world: PaymentWorld) -> pd.Series:
    """Approval rate by hour of day (ET) of a finished world."""
    attempts = world.by_hour_attempts.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(attempts > 0, world.by_hour_approved / attempts, np.nan)
    return pd.Series(rate, index=pd.RangeIndex(24, name="hour"), name="approval_rate")


def plot_hourly_approval(worlds: dict[str, PaymentWorld], ax=None):
    """Approval by hour for several finished worlds (e.g. base vs changed, policy vs policy)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _fig, ax = plt.subplots(figsize=(8, 3.5))
    for label, world in worlds.items():
        hourly_approval(world).plot(ax=ax, label=label, marker="o", markersize=3)
    ax.set_xlabel("hour of day (ET)")
    ax.set_ylabel("approval rate")
    ax.legend()
    return ax
