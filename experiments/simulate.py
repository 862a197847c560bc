"""Run the payment world with baseline policies or a policy bundle: what ``payroute simulate`` does, as a function.

The router is a baseline by name, or a policy bundle (a directory or ``.zip``) bound as the route policy. With
``explore`` it is wrapped in epsilon-greedy exploration (:class:`~payroute.envs.baselines.exploration.EpsilonGreedyRoute`),
so the log holds the behaviour propensity of every decision. A log also records the routing observation of every
decision (``obs.<feature>`` columns, :mod:`payroute.policies.logs.recording`), so a bundle can be evaluated on it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from payroute.envs.baselines import bound_policies, policy_names
from payroute.envs.baselines.exploration import EpsilonGreedyRoute
from payroute.envs.features import routing_features
from payroute.envs.scenarios import Scenario, load_scenario
from payroute.envs.world import EventLog, PaymentWorld
from payroute.errors import PayrouteError


def is_bundle_path(route: str | Path) -> bool:
    """Whether ``--policy`` names a bundle rather than a baseline: not a baseline name, and an existing path or
    one that looks like a path (a ``/`` in it, or a ``.zip`` ending)."""
    text = str(route)
    if text in policy_names("route"):
        return False
    return Path(text).exists() or text.endswith(".zip") or "/" in text


def route_policy(route: Any, scenario: Scenario, trusted_keys: tuple[Any, ...] = ()) -> Any:
    """A fresh route policy: the baseline named ``route``, or the bundle at that path bound with its observation;
    a policy object (one with ``decide``) is used as it is."""
    if hasattr(route, "decide"):
        return route
    if not is_bundle_path(route):
        if route not in policy_names("route"):
            raise PayrouteError(
                f"unknown route policy {route!r}; available: {', '.join(policy_names('route'))}, "
                "or the path of a policy bundle (a directory or .zip)"
            )
        return bound_policies(route=str(route))["route"]
    from payroute.policies import load_bundle
    from payroute.policies.bundle.binding import bound_bundle, check_bundle_fits_scenario
    from payroute.policies.bundle.signing import trusted_keys as keys_from

    policy = load_bundle(route, trusted_keys=keys_from(trusted_keys))
    if policy.decision_kind != "route":
        raise PayrouteError(f"bundle {Path(route).name} decides {policy.decision_kind!r}, not 'route'")
    check_bundle_fits_scenario(policy, scenario)
    return bound_bundle(policy)


def run_simulation(
    scenario: str | Path,
    route: Any = "cheapest",
    risk: str = "threshold",
    days: float = 1.0,
    seed: int = 0,
    log_path: str | Path | None = None,
    drain: bool = True,
    progress: bool = False,
    overrides: dict[str, Any] | None = None,
    explore: float | None = None,
    log_observations: bool = True,
    trusted_keys: tuple[Any, ...] = (),
    retries: bool = False,
) -> dict[str, Any]:
    """Simulate ``days`` of ``scenario``; return the summary (counts, KPIs, wall time).

    ``route`` is a routing baseline name, a bundle path or a bound route policy; ``explore`` (epsilon in [0, 1]) wraps the router in
    epsilon-greedy exploration. With ``log_path`` every decision and outcome is logged, and with
    ``log_observations`` each routed transaction's row also holds the routing observation it was decided on.
    With a bundle router the summary's ``signature`` says who signed the bundle (``trusted_keys``: the public key
    files trusted besides the zoo's). ``retries`` turns the scenario's retries on (``retries.enabled: true``): a
    soft decline goes back to a router that takes retry decisions, and the log gains its ``attempt`` and ``retry``
    rows.
    """
    if retries:
        overrides = {
            **(overrides or {}),
            "retries": {**(overrides or {}).get("retries", {}), "enabled": True},
        }
    sc = load_scenario(scenario, overrides)
    policies = bound_policies(risk=risk)
    router = route_policy(route, sc, trusted_keys)
    signature = _bundle_signature(router)
    if explore is not None:
        router = EpsilonGreedyRoute(router, explore)
    log: EventLog | None = None
    if log_path is not None and log_observations:
        from payroute.policies.logs.recording import ObservationLog, RecordingRoute

        log = ObservationLog(log_path, [f.name for f in routing_features(sc)])
        router = RecordingRoute(router, log)
    elif log_path is not None:
        log = EventLog(log_path)
    policies["route"] = router
    start = time.perf_counter()
    try:
        world = PaymentWorld(sc, seed=seed, policies=policies, days=days, log=log, drain=drain)
        if progress:
            _run_with_progress(world, days)
        else:
            world.run(None if drain else world.horizon_s)
    except BaseException:
        if log is not None:
            log.discard()  # a log of a run that did not end is not written; a file there stays as it was
        raise
    if log is not None:
        log.close()
    wall = time.perf_counter() - start
    summary = world.summary()
    summary.update(policy=str(route), risk_policy=risk, wall_s=wall, log=str(log_path) if log_path else None)
    if signature is not None:  # who signed the bundle that routed, against the keys given
        summary["signature"] = signature
    if explore is not None:
        summary["exploration"] = {
            "epsilon": explore,
            "decisions": router.decisions,
            "explored": router.explored,
        }
    return summary


def _bundle_signature(router: Any) -> dict[str, Any] | None:
    """What a bundle router's signature says (status, key id, key file, a sentence); None for a baseline."""
    from payroute.policies.bundle.runtime import BoundBundlePolicy

    if not isinstance(router, BoundBundlePolicy):
        return None
    return {"bundle": router.policy.source.name, **router.policy.signature.to_dict()}


def _run_with_progress(world: PaymentWorld, days: float) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    hours = math.ceil(days * 24)
    with Progress(
        TextColumn("{task.description}", style="bold", markup=False),  # scenario names are not markup
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "sim hours · {task.fields[arrivals]:,} arrivals · approval {task.fields[approval]}", markup=False
        ),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(f"simulating {world.scenario.name}", total=hours, arrivals=0, approval="-")

        def on_hour(w: PaymentWorld) -> None:
            rate = w.kpis()["approval_rate"]
            bar.update(task, advance=1, arrivals=w.arrivals, approval=f"{rate:.1%}")

        world.on_hour = on_hour
        world.run(world.horizon_s)
        if world.drain:
            bar.update(task, description="settling in-flight payments and late chargebacks")
            world.run()
        bar.update(task, description=f"simulated {world.scenario.name}")
