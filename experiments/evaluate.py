"""``payroute evaluate RUN_DIR``: the trained policy against the baselines and the oracle, seed by seed.

Every policy runs on the same held-out seeds (``evaluation.seeds``, at or above 10^9; training worlds use
seeds below that), so their differences are paired (common random numbers). For each evaluation scenario:

* ``summary``: KPI means per policy, the paired 95% interval of margin per transaction and of approval
  against the reference baseline (``cheapest`` for routing), and the oracle share
  (policy - cheapest) / (oracle - cheapest) — :func:`payroute.policies.compare.summarise`;
* ``versus``: the trained policy minus each other policy, with paired intervals;
* plots: KPIs by policy, approval by hour, cumulative margin, route mix.

A routing or risk policy is bound into the world in-process (:mod:`payroute.agents.learned`), so seeds run in
parallel worker processes; a policy for another decision kind is evaluated by stepping its environment.
Everything is written under ``RUN_DIR/eval/`` (or ``--out``): Parquet files of every number, the PNGs,
``summary.json`` and ``report.md``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from payroute.agents.learned import LEARNED_POLICIES, rollout_kpis
from payroute.agents.networks import PolicyNet, load_policy
from payroute.envs.baselines import policy_names
from payroute.envs.baselines.routers import ORACLES
from payroute.errors import PayrouteError
from payroute.experiments import plots
from payroute.experiments.rundir import EVAL_DIR, policy_folder, read_run
from payroute.experiments.schema import ROLE_KIND, Experiment
from payroute.files import atomic_path, atomic_write_text, check_output_folder
from payroute.policies.compare import (
    Executor,
    NamedPolicy,
    PairedRuns,
    run_paired_detailed,
    summarise,
    versus,
)

TRAINED = "trained"
REFERENCE = {"route": "cheapest", "risk": "threshold"}
ORACLE = {"route": "oracle"}


@dataclass
class Evaluation:
    run_dir: Path
    out: Path
    runs: pd.DataFrame
    summary: pd.DataFrame
    versus: pd.DataFrame
    plots: list[Path]
    meta: dict[str, Any]  # what summary.json holds: agent, decision kind, seeds, days, policies, ...


def load_run_policies(run_dir: Path, checkpoint: int | None = None) -> dict[str, PolicyNet]:
    """The learned policy per agent: checkpoint ``N``'s, or the final one, or the newest checkpoint's for an
    unfinished run (:func:`~payroute.experiments.rundir.policy_folder`)."""
    folder, _label = policy_folder(run_dir, checkpoint)
    nets = {p.name: load_policy(p) for p in sorted(folder.iterdir()) if (p / "policy.json").is_file()}
    if not nets:
        raise PayrouteError(f"no policy networks in {folder}")
    return nets


def _compared(exp: Experiment, kind: str) -> tuple[str, ...]:
    allowed = policy_names(kind)
    names = [n for n in exp.evaluation.baselines if n in allowed]
    foreign = [n for n in exp.evaluation.baselines if n not in allowed]
    if foreign and kind != "route":
        names = [REFERENCE.get(kind, allowed[0])]  # routing baselines listed by default mean nothing here
    elif foreign:
        raise PayrouteError(
            f"evaluation.baselines: unknown {kind} policies {foreign}; allowed: {', '.join(allowed)}"
        )
    ref = REFERENCE.get(kind)
    if ref and ref not in names:
        names.insert(0, ref)
    oracle = ORACLE.get(kind)
    if exp.evaluation.oracle and oracle and oracle not in names:
        names.append(oracle)
    return tuple(n for n in names if n != TRAINED)


def _rollout_job(
    exp: Experiment, net: PolicyNet, scenario: str, overrides: dict, seed: int
) -> dict[str, Any]:
    from payroute.agents.training_env import env_kwargs, make_env

    kwargs = env_kwargs(
        exp.env.id,
        scenario,
        overrides,
        exp.evaluation.days,
        exp.agents.baselines.named(),
        dict(exp.env.kwargs),
    )
    env = make_env(exp.env.id, kwargs)
    return {"policy": TRAINED, "seed": seed, **rollout_kpis(env, net, seed)}


def evaluate_run(
    run_dir: Path,
    scenarios: list[str] | None = None,
    seeds: int | None = None,
    first_seed: int | None = None,
    workers: int | None = None,
    out: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    checkpoint: int | None = None,
    *,
    executor: Executor | None = None,
) -> Evaluation:
    """Evaluate the run's policy; ``executor`` runs the worlds elsewhere (a Ray cluster: ``--ray-address``)."""
    run_dir = Path(run_dir)
    check_output_folder(out, "--out")
    exp, _record = read_run(run_dir)
    nets = load_run_policies(run_dir, checkpoint)
    if len(nets) != 1:
        raise PayrouteError(
            f"{run_dir} has {len(nets)} learning agents; evaluate compares one learned policy with the baselines"
        )
    role, net = next(iter(nets.items()))
    kind = net.spec.decision_kind or ROLE_KIND.get(role, "")
    ev = exp.evaluation
    seed_list = list(
        range(first_seed or ev.seeds.start, (first_seed or ev.seeds.start) + (seeds or ev.seeds.count))
    )
    if min(seed_list) < ev.seeds.start and first_seed is None:
        raise PayrouteError("evaluation seeds must be held out (>= 1e9)")
    names = _compared(exp, kind)
    others = {ROLE_KIND[r]: n for r, n in exp.agents.baselines.named().items() if ROLE_KIND[r] != kind}
    risk = others.pop("risk", "threshold")
    if out is None:  # a checkpoint's evaluation beside the final one's, not over it
        out = run_dir / (EVAL_DIR if checkpoint is None else f"{EVAL_DIR}_checkpoint_{checkpoint}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_workers = workers or ev.workers

    all_runs, all_summary, all_versus, figures = [], [], [], []
    frames: dict[str, list[pd.DataFrame]] = {"hourly": [], "margin_curve": [], "route_mix": []}
    for scenario in scenarios or ev.scenarios:
        report = (lambda d, t, s=scenario: progress(s, d, t)) if progress else None
        if kind in LEARNED_POLICIES:
            entry = NamedPolicy(TRAINED, functools.partial(LEARNED_POLICIES[kind], net))
            paired = run_paired_detailed(
                scenario, (entry, *names), seed_list, ev.days, risk, ev.scenario_overrides or None,
                n_workers, report, kind=kind, others=others, executor=executor,
            )  # fmt: skip
        else:
            paired = run_paired_detailed(
                scenario, names, seed_list, ev.days, risk, ev.scenario_overrides or None, n_workers, report,
                kind=kind, others=others, executor=executor,
            )  # fmt: skip
            rows = [_rollout_job(exp, net, scenario, dict(ev.scenario_overrides), s) for s in seed_list]
            paired = PairedRuns(
                pd.concat([pd.DataFrame(rows), paired.runs], ignore_index=True),
                paired.hourly, paired.margin_curve, paired.route_mix,
            )  # fmt: skip
        runs = paired.runs.assign(scenario=scenario)
        ref = REFERENCE.get(kind, names[0])
        table = summarise(runs.drop(columns="scenario"), reference=ref, oracle=ORACLE.get(kind, "oracle"))
        all_runs.append(runs)
        all_summary.append(table.assign(scenario=scenario))
        all_versus.append(versus(runs.drop(columns="scenario"), TRAINED).assign(scenario=scenario))
        for key in frames:
            df = getattr(paired, key)
            if not df.empty:
                frames[key].append(df.assign(scenario=scenario))
        title = f"{exp.name} on {scenario}"
        figures.append(plots.kpi_bars(runs, title, out / f"kpis_{scenario}.png"))
        if not paired.hourly.empty:
            figures.append(
                plots.approval_by_hour(paired.hourly, title, out / f"approval_by_hour_{scenario}.png")
            )
            figures.append(
                plots.cumulative_margin(
                    paired.margin_curve, title, out / f"cumulative_margin_{scenario}.png", ref
                )
            )
            figures.append(plots.route_mix(paired.route_mix, title, out / f"route_mix_{scenario}.png"))

    runs = pd.concat(all_runs, ignore_index=True)
    summary = pd.concat(all_summary, ignore_index=True)
    vs = pd.concat(all_versus, ignore_index=True)
    tables = {"runs": runs, "summary": summary, "versus": vs}
    tables.update({key: pd.concat(dfs, ignore_index=True) for key, dfs in frames.items() if dfs})
    for key, table in tables.items():
        with atomic_path(out / f"{key}.parquet") as tmp:
            table.to_parquet(tmp)
    meta = {
        "run_dir": str(run_dir),
        "experiment": exp.name,
        "config_hash": exp.config_hash(),
        "agent": role,
        "decision_kind": kind,
        "scenarios": list(scenarios or ev.scenarios),
        "seeds": seed_list,
        "days": ev.days,
        "scenario_overrides": ev.scenario_overrides,
        "policies": [TRAINED, *names],
        "best_heuristic": {sc: best_heuristic(t) for sc, t in summary.groupby("scenario", sort=False)},
        "summary": json.loads(summary.to_json(orient="records")),
        "versus": json.loads(vs.to_json(orient="records")),
    }
    atomic_write_text(out / "summary.json", json.dumps(meta, indent=2))
    atomic_write_text(out / "report.md", markdown_report(exp, meta, summary, vs, figures, out))
    return Evaluation(run_dir, out, runs, summary, vs, figures, meta)


def _share(x: float) -> str:
    return "—" if x != x else f"{x:.0%}"


def best_heuristic(summary: pd.DataFrame) -> str | None:
    """The baseline with the highest margin per transaction (not the trained policy, not the oracle)."""
    pool = summary[~summary.policy.isin([TRAINED, *ORACLES])]
    if pool.empty:
        return None
    return str(pool.sort_values("margin_per_tx_usd", ascending=False).iloc[0]["policy"])


def markdown_report(
    exp: Experiment, meta: dict, summary: pd.DataFrame, vs: pd.DataFrame, figures: list[Path], out: Path
) -> str:
    lines = [
        f"# Evaluation of `{exp.name}`",
        "",
        f"Run: `{meta['run_dir']}` (config hash `{meta['config_hash'][:12]}`). Seeds "
        f"{meta['seeds'][0]}..{meta['seeds'][-1]} ({len(meta['seeds'])}, held out), {meta['days']:g} day(s) each; "
        "every policy on the same seeds, intervals are paired 95% Student-t intervals.",
        "",
    ]
    for scenario, table in summary.groupby("scenario", sort=False):
        lines += [
            f"## {scenario}",
            "",
            "| policy | margin/tx $ | Δ vs reference [95% CI] | approval | Δ approval pt [95% CI] | oracle share |"
            " fraud bps | SLA misses |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in table.itertuples():
            lines.append(
                f"| {r.policy} | {r.margin_per_tx_usd:.4f} | {r.margin_diff:+.4f} [{r.margin_diff_low:+.4f}, "
                f"{r.margin_diff_high:+.4f}] | {r.approval_rate:.2%} | {r.approval_diff * 100:+.2f} "
                f"[{r.approval_diff_low * 100:+.2f}, {r.approval_diff_high * 100:+.2f}] | {_share(r.oracle_share)} | "
                f"{r.fraud_loss_bps:.2f} | {r.sla_misses:,.0f} |"
            )
        best = best_heuristic(table)
        lines += ["", f"Trained policy minus each other policy ({scenario}; best heuristic: {best}):", ""]
        lines += [
            "| versus | Δ margin/tx $ [95% CI] | excludes 0 | Δ approval pt [95% CI] |",
            "|---|---:|:-:|---:|",
        ]
        for r in vs[vs.scenario == scenario].itertuples():
            lines.append(
                f"| {r.versus} | {r.margin_per_tx_usd_diff:+.4f} [{r.margin_per_tx_usd_low:+.4f}, "
                f"{r.margin_per_tx_usd_high:+.4f}] | {'yes' if r.margin_per_tx_usd_excludes_zero else 'no'} | "
                f"{r.approval_rate_diff * 100:+.2f} [{r.approval_rate_low * 100:+.2f}, {r.approval_rate_high * 100:+.2f}] |"
            )
        lines.append("")
        for f in figures:
            if f.stem.endswith(f"_{scenario}"):
                lines.append(f"![{f.stem}]({f.relative_to(out)})")
        lines.append("")
    return "\n".join(lines)
