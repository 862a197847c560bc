"""The one paired-comparison engine: policies on common random numbers, the same seeds, paired intervals.

The world's demand does not depend on the policies, so runs on one seed see the same payments and differences
between policies are paired. Every comparison in payroute runs here:

- ``payroute baselines`` and ``payroute evaluate``: :func:`run_paired` / :func:`run_paired_detailed`, then
  :func:`summarise` (per policy, KPI means, the paired 95% interval of margin per transaction and of approval
  against the cheapest route, and the oracle share (policy - cheapest) / (oracle - cheapest)) and :func:`versus`
  (one policy minus each other one);
- the review's stress suite (:mod:`payroute.policies.review.stress`) and what-if analysis: :class:`Run` lists executed by :func:`run_all`.

An arm is a baseline name or a :class:`NamedPolicy`: a label and a factory of the bound policy (a trained network,
a bundle via :func:`bundle_policy`, a router for a scenario variant). A :class:`Run` is one world: an arm on a
scenario and seed, every other decision bound to a baseline. :func:`run_all` runs a list of them in order, in this
process, in worker processes or through an :class:`Executor` (a Ray cluster: ``payroute.experiments.cluster``),
with the same numbers every way.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from payroute.envs.baselines import bound_policies
from payroute.envs.scenarios import Scenario, load_scenario
from payroute.envs.world import PaymentWorld
from payroute.errors import PayrouteError
from payroute.policies.bundle.binding import bound_bundle
from payroute.policies.bundle.loading import load_bundle, load_bundle_files, read_bundle_files
from payroute.policies.bundle.runtime import BundlePolicy
from payroute.policies.bundle.sandbox import GraphLimits
from payroute.policies.bundle.signing import TrustedKey
from payroute.stats import paired_interval
from payroute.vocabulary import HEADLINE_KPIS

ROUTING_BASELINE_ORDER = (
    "cheapest",
    "fastest",
    "priority",
    "success_rate",
    "cost_aware",
    "thompson",
    "ucb",
    "oracle",
    "clairvoyant",
)
RETRY_BASELINE_ORDER = ("no_retry", "static_cascade", "sr_cascade", "decision_engine", "volume_sr")
"""The routers that also decide after a soft decline: `payroute baselines` adds them where retries are on."""


def baseline_order(retries: bool) -> tuple[str, ...]:
    """The routing policies `payroute baselines` compares by default: with retries on, the retry routers too."""
    if not retries:
        return ROUTING_BASELINE_ORDER
    return (*ROUTING_BASELINE_ORDER[:-2], *RETRY_BASELINE_ORDER, *ROUTING_BASELINE_ORDER[-2:])


KPI_COLUMNS = HEADLINE_KPIS


# ---------------------------------------------------------------------- the engine
@dataclass(frozen=True)
class NamedPolicy:
    """A policy that is not a registered baseline (a trained network, a bundle, a scenario variant's router),
    under a label for the tables.

    ``make`` builds a fresh bound policy for one run; it must pickle when seeds run in worker processes.
    """

    name: str
    make: Callable[[], Any]


PolicyRef = str | NamedPolicy


def _label(p: PolicyRef) -> str:
    return p.name if isinstance(p, NamedPolicy) else p


# per process: bundles verified once, then reused by every run; keyed by path and how they are verified
_LOADED: dict[tuple[str, tuple[TrustedKey, ...] | None, GraphLimits | None], BundlePolicy] = {}


def remember_bundle(policy: BundlePolicy) -> None:
    """Reuse this verified bundle (in this process) wherever an arm names its path and its verification."""
    _LOADED[(str(policy.source), policy.trusted_keys, policy.limits)] = policy


def _bound_bundle(
    path: str, trusted_keys: tuple[TrustedKey, ...] | None = None, limits: GraphLimits | None = None
) -> Any:
    policy = _LOADED.get((path, trusted_keys, limits))
    if policy is None:
        policy = load_bundle(path, trusted_keys=trusted_keys, limits=limits)
        _LOADED[(path, trusted_keys, limits)] = policy
    return bound_bundle(policy)


@dataclass(frozen=True)
class ShippedBundle:
    """A bundle's files as bytes, for a worker that cannot read the path it was verified at (a Ray node): the
    worker verifies them again (:func:`~payroute.policies.bundle.loading.load_bundle_files`) against the same
    trusted keys and under the same limits before it binds the policy. ``digest`` (sha256 over the files' names
    and contents) keys the worker's cache, so a changed bundle under the same path is never reused."""

    source: str
    files: dict[str, bytes]
    digest: str
    trusted_keys: tuple[TrustedKey, ...] | None = None
    limits: GraphLimits | None = None


def _bound_shipped(shipped: ShippedBundle) -> Any:
    key = (f"sha256:{shipped.digest}", shipped.trusted_keys, shipped.limits)
    policy = _LOADED.get(key)
    if policy is None:
        policy = load_bundle_files(
            shipped.files, shipped.source, trusted_keys=shipped.trusted_keys, limits=shipped.limits
        )
        _LOADED[key] = policy
    return bound_bundle(policy)


def _ship(
    path: str, trusted_keys: tuple[TrustedKey, ...] | None, limits: GraphLimits | None
) -> ShippedBundle:
    files = read_bundle_files(path)
    verified = _LOADED.get((path, trusted_keys, limits))
    listed = hashlib.sha256(files.get("checksums.sha256", b"")).hexdigest()
    if verified is not None and verified.checksums_sha256 not in (None, listed):
        raise PayrouteError(
            f"bundle {Path(path).name} changed on disk after it was verified; review it again"
        )
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return ShippedBundle(path, files, h.hexdigest(), trusted_keys, limits)


def ship_bundles(runs: Sequence[Run]) -> list[Run]:
    """``runs`` with every bundle arm (:func:`bundle_policy`) carrying its bundle's bytes instead of its path:
    each bundle is read once and shared by every run that uses it."""
    shipped: dict[tuple[Any, ...], NamedPolicy] = {}
    out = []
    for run in runs:
        make = run.policy.make if isinstance(run.policy, NamedPolicy) else None
        if isinstance(make, functools.partial) and make.func is _bound_bundle:
            key = (run.policy.name, *make.args)
            if key not in shipped:
                shipped[key] = NamedPolicy(
                    run.policy.name, functools.partial(_bound_shipped, _ship(*_bundle_args(make)))
                )
            run = replace(run, policy=shipped[key])
        out.append(run)
    return out


def _bundle_args(make: functools.partial) -> tuple[str, Any, Any]:
    path, *rest = make.args
    keys, limits = (*rest, None, None)[:2]
    return path, keys, limits


def bundle_policy(bundle: str | Path | BundlePolicy, name: str | None = None) -> NamedPolicy:
    """A policy bundle as an arm: loaded and verified once per process, bound afresh into every world.

    Given a loaded :class:`BundlePolicy`, every process verifies it as it was verified here: against the same
    trusted keys and, when no trusted key signed it, under the same time and memory limits (a worker process
    of :func:`run_all` reloads it from its path). Given a path, with the defaults of :func:`load_bundle`."""
    if isinstance(bundle, BundlePolicy):
        load = functools.partial(_bound_bundle, str(bundle.source), bundle.trusted_keys, bundle.limits)
        return NamedPolicy(name or bundle.source.name, load)
    return NamedPolicy(name or Path(bundle).name, functools.partial(_bound_bundle, str(bundle)))


@dataclass(frozen=True)
class Run:
    """One world of a comparison: ``policy`` making decision ``kind`` on ``scenario`` and ``seed``, every other
    decision bound to the baseline named in ``others`` (kind -> name; the defaults for kinds not named).

    ``detail`` records the hourly series and route mix; ``keep_errors`` turns a policy that fails in the world
    (:class:`~payroute.errors.PayrouteError`, ``ValueError``, ``RuntimeError``) into an outcome with the error
    instead of stopping the comparison.
    """

    scenario: Scenario
    policy: PolicyRef
    seed: int
    days: float = 1.0
    kind: str = "route"
    others: tuple[tuple[str, str], ...] = ()
    detail: bool = False
    keep_errors: bool = False
    measure: Callable[[Any], dict[str, float]] | None = None
    """More numbers from the finished world (``measure(world) -> {name: value}``, into ``Outcome.extra``); a
    module-level function, so the run pickles into worker processes."""


@dataclass
class Outcome:
    """What one run gave: the world's KPIs and arrivals, its wall time, and the error when it failed."""

    kpis: dict[str, float]
    arrivals: int
    wall_s: float
    error: str = ""
    hourly: dict[str, list[float]] | None = None
    route_mix: dict[str, int] | None = None
    extra: dict[str, float] | None = None


def run_policies(run: Run) -> dict[str, Any]:
    """The world's bound policies for ``run``: its policy for ``run.kind``, the named baselines elsewhere."""
    names: dict[str, str | None] = dict(run.others)
    if isinstance(run.policy, NamedPolicy):
        names[run.kind] = None
        policies = bound_policies(**names)
        policies[run.kind] = run.policy.make()
        return policies
    names[run.kind] = run.policy
    return bound_policies(**names)


def run_one(run: Run) -> Outcome:
    """Build and run the world of ``run``."""
    start = time.perf_counter()
    try:
        world = PaymentWorld(run.scenario, seed=run.seed, policies=run_policies(run), days=run.days)
        margin_by_hour: list[float] = []
        if run.detail:
            world.on_hour = lambda w: margin_by_hour.append(w.kpis()["margin_usd"])
        world.run()
    except (PayrouteError, ValueError, RuntimeError) as err:
        if not run.keep_errors:
            raise
        return Outcome({}, 0, time.perf_counter() - start, f"{type(err).__name__}: {err}")
    out = Outcome(world.kpis(), world.arrivals, time.perf_counter() - start)
    if run.measure is not None:
        out.extra = run.measure(world)
    if run.detail:
        out.hourly = {
            "attempts": world.by_hour_attempts.tolist(),
            "approved": world.by_hour_approved.tolist(),
            "margin_usd_cum": [*margin_by_hour, world.kpis()["margin_usd"]],
        }
        out.route_mix = dict(world.route_counts)
    return out


class Executor(Protocol):
    """Somewhere else to run :func:`run_all`'s jobs (a Ray cluster: ``payroute.experiments.cluster``).

    ``map`` calls the picklable ``fn`` on every job, wherever it likes, and yields the results in the order
    of ``jobs``; an exception ``fn`` raised is raised again here, as itself. The jobs it gets carry their
    bundles as bytes (:func:`ship_bundles`), so its workers need not see this machine's files."""

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Any]: ...


def run_all(
    runs: Sequence[Run],
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    *,
    spawn: bool = False,
    executor: Executor | None = None,
) -> list[Outcome]:
    """Every run, in order: in this process when ``workers`` <= 1, else in that many worker processes (the same
    numbers either way: each world depends on its scenario, seed and policies only). ``spawn`` starts fresh
    processes instead of forking (needed where onnxruntime sessions exist: they must not cross a fork).
    ``executor`` (``workers`` and ``spawn`` then unused) runs them elsewhere, bundles shipped as bytes and
    verified again where they run."""
    runs = list(runs)
    out: list[Outcome] = []
    if executor is not None and runs:
        for i, res in enumerate(executor.map(run_one, ship_bundles(runs))):
            out.append(res)
            if progress:
                progress(i + 1, len(runs))
        return out
    if workers <= 1 or len(runs) <= 1:
        for i, run in enumerate(runs):
            out.append(run_one(run))
            if progress:
                progress(i + 1, len(runs))
        return out
    context = get_context("spawn") if spawn else None
    with ProcessPoolExecutor(max_workers=min(workers, len(runs)), mp_context=context) as pool:
        for i, res in enumerate(pool.map(run_one, runs, chunksize=max(1, len(runs) // (8 * workers)))):
            out.append(res)
            if progress:
                progress(i + 1, len(runs))
    return out


# ---------------------------------------------------------------------- policies on the same seeds
@dataclass
class PairedRuns:
    """Per-run KPIs and, for plots: attempts and approvals by hour of day, the cumulative margin at the end
    of each simulated hour (and once more after the world drained: ``drained``), and the route mix."""

    runs: pd.DataFrame
    hourly: pd.DataFrame
    margin_curve: pd.DataFrame
    route_mix: pd.DataFrame


def run_paired(
    scenario: str | Scenario,
    policies: tuple[PolicyRef, ...] = ROUTING_BASELINE_ORDER,
    seeds: int | list[int] = 5,
    days: float = 1.0,
    risk: str = "threshold",
    overrides: dict[str, Any] | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    kind: str = "route",
    others: dict[str, str] | None = None,
    executor: Executor | None = None,
    spawn: bool = False,
) -> pd.DataFrame:
    """One row per (policy, seed) with the run's KPIs; every policy sees the same seeds.

    ``policies`` are baseline names for decision ``kind`` or :class:`NamedPolicy` entries; ``risk`` and
    ``others`` (kind -> baseline name) bind every other decision; ``executor`` runs the worlds elsewhere and
    ``spawn`` starts fresh worker processes (bundles among the policies) (:func:`run_all`).
    """
    return _run(
        scenario,
        policies,
        seeds,
        days,
        risk,
        overrides,
        workers,
        progress,
        kind,
        others,
        False,
        executor,
        spawn,
    ).runs


def run_paired_detailed(
    scenario: str | Scenario,
    policies: tuple[PolicyRef, ...],
    seeds: int | list[int],
    days: float = 1.0,
    risk: str = "threshold",
    overrides: dict[str, Any] | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    kind: str = "route",
    others: dict[str, str] | None = None,
    executor: Executor | None = None,
    spawn: bool = False,
) -> PairedRuns:
    """:func:`run_paired` plus the hourly series and route mix of every run (long format)."""
    return _run(
        scenario,
        policies,
        seeds,
        days,
        risk,
        overrides,
        workers,
        progress,
        kind,
        others,
        True,
        executor,
        spawn,
    )


def _run(
    scenario,
    policies,
    seeds,
    days,
    risk,
    overrides,
    workers,
    progress,
    kind,
    others,
    detail,
    executor=None,
    spawn=False,
) -> PairedRuns:
    sc = load_scenario(scenario, overrides)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    other = dict(others or {})
    if kind == "risk":
        other.pop("risk", None)
    for p in policies:  # fail fast on a bad name, before any work
        if not isinstance(p, NamedPolicy):
            bound_policies(**{"risk": risk, **other, kind: p})
    labels = [_label(p) for p in policies]
    if len(set(labels)) != len(labels):
        raise ValueError(f"policy labels must be unique, got {labels}")
    names = tuple({"risk": risk, **other}.items())
    runs = [Run(sc, p, s, days, kind, names, detail) for s in seed_list for p in policies]
    outcomes = run_all(runs, workers, progress, spawn=spawn, executor=executor)
    results = [
        {"policy": _label(r.policy), "seed": r.seed, "arrivals": o.arrivals, **o.kpis}
        for r, o in zip(runs, outcomes, strict=True)
    ]
    if not detail:
        return PairedRuns(pd.DataFrame(results), pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    rows, hourly, curve, mix = results, [], [], []
    for job, res in zip(runs, outcomes, strict=True):
        label, h = _label(job.policy), res.hourly
        for hour in range(24):
            hourly.append(
                {"policy": label, "seed": job.seed, "hour": hour, "attempts": h["attempts"][hour],
                 "approved": h["approved"][hour]}
            )  # fmt: skip
        last = len(h["margin_usd_cum"]) - 1
        for step, m in enumerate(h["margin_usd_cum"]):
            curve.append(
                {"policy": label, "seed": job.seed, "hours": step + 1 if step < last else np.nan,
                 "drained": step == last, "margin_usd_cum": m}
            )  # fmt: skip
        for name, count in res.route_mix.items():
            mix.append({"policy": label, "seed": job.seed, "route": name, "count": count})
    return PairedRuns(pd.DataFrame(rows), pd.DataFrame(hourly), pd.DataFrame(curve), pd.DataFrame(mix))


def summarise(runs: pd.DataFrame, reference: str = "cheapest", oracle: str = "oracle") -> pd.DataFrame:
    """Per policy: KPI means, the paired interval of margin/tx against ``reference``, and the oracle share."""
    wide = runs.pivot(index="seed", columns="policy", values="margin_per_tx_usd")
    approval = runs.pivot(index="seed", columns="policy", values="approval_rate")
    ref = wide[reference] if reference in wide else None
    gap = None
    if ref is not None and oracle in wide:
        gap = float((wide[oracle] - ref).mean())
    out = []
    for policy, group in runs.groupby("policy", sort=False):
        row: dict[str, Any] = {"policy": policy, "seeds": len(group)}
        for k in KPI_COLUMNS:
            row[k] = float(group[k].mean())
        if ref is not None:
            d = paired_interval(wide[policy].to_numpy(), ref.to_numpy())
            row.update(margin_diff=d.mean, margin_diff_low=d.low, margin_diff_high=d.high)
            a = paired_interval(approval[policy].to_numpy(), approval[reference].to_numpy())
            row.update(approval_diff=a.mean, approval_diff_low=a.low, approval_diff_high=a.high)
            row["oracle_share"] = d.mean / gap if gap and abs(gap) > 1e-12 else np.nan
        out.append(row)
    return pd.DataFrame(out)


def markdown_table(table: pd.DataFrame) -> str:
    """The summary as a Markdown table (what ``payroute baselines --markdown`` prints)."""
    head = (
        "| policy | margin/tx ($) | Δ margin/tx vs cheapest [95% CI] | approval | Δ approval, points [95% CI] "
        "| oracle share | route cost (bps) | fraud loss (bps) | SLA misses |"
    )
    lines = [head, "|" + " --- |" * 9]
    for r in table.itertuples():
        lines.append(
            f"| {r.policy} | {r.margin_per_tx_usd:.4f} | {r.margin_diff:+.4f} [{r.margin_diff_low:+.4f}, "
            f"{r.margin_diff_high:+.4f}] | {r.approval_rate:.2%} | {r.approval_diff * 100:+.2f} "
            f"[{r.approval_diff_low * 100:+.2f}, {r.approval_diff_high * 100:+.2f}] | {r.oracle_share:.0%} | "
            f"{r.route_cost_bps:.1f} | {r.fraud_loss_bps:.2f} | {r.sla_misses:,.0f} |"
        )
    return "\n".join(lines)


def versus(
    runs: pd.DataFrame, policy: str, metrics: tuple[str, ...] = ("margin_per_tx_usd", "approval_rate")
) -> pd.DataFrame:
    """Paired intervals of ``policy`` minus each other policy, per metric (same seeds)."""
    out = []
    for other in runs["policy"].unique():
        if other == policy:
            continue
        row: dict[str, Any] = {"policy": policy, "versus": other}
        for m in metrics:
            wide = runs.pivot(index="seed", columns="policy", values=m)
            d = paired_interval(wide[policy].to_numpy(), wide[other].to_numpy())
            row.update({f"{m}_diff": d.mean, f"{m}_low": d.low, f"{m}_high": d.high,
                        f"{m}_excludes_zero": d.excludes_zero})  # fmt: skip
        out.append(row)
    return pd.DataFrame(out)
