"""The ``payroute`` command line: scenarios, simulate (and more as the project grows).

Bad input (an unknown scenario or policy, a config field out of range) prints a short message naming what was
wrong and what is allowed, and exits with code 2 — never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from payroute import __version__
from payroute.errors import PayrouteError
from payroute.policies.compare import ROUTING_BASELINE_ORDER

app = typer.Typer(
    name="payroute",
    help="payroute: a reinforcement-learning simulator for payment routing, risk, pricing and treasury.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
scenarios_app = typer.Typer(
    help="List the shipped scenarios, or show one resolved.", invoke_without_command=True
)
app.add_typer(scenarios_app, name="scenarios")

console = Console()
# result tables are wide: never squeeze them below 160 columns when the output is not a terminal
wide_console = console if console.is_terminal and console.width >= 160 else Console(width=160)
err_console = Console(stderr=True)


def user_errors(fn):
    """Turn a :class:`PayrouteError` into a short message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PayrouteError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        console.print(f"payroute {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """payroute command line."""


@scenarios_app.callback()
@user_errors
def scenarios(ctx: typer.Context) -> None:
    """List the shipped scenarios with a line each."""
    if ctx.invoked_subcommand is not None:
        return
    from payroute.envs.scenarios import available_scenarios, scenario_summary

    table = Table(title="payroute scenarios", show_lines=False)
    table.add_column("name", style="bold")
    table.add_column("description")
    for name in available_scenarios():
        table.add_row(name, scenario_summary(name))
    console.print(table)


@scenarios_app.command("show")
@user_errors
def scenarios_show(
    name: Annotated[str, typer.Argument(help="A shipped scenario name or a YAML path.")],
) -> None:
    """Print the resolved scenario (variants merged onto their base) as YAML."""
    import yaml

    from payroute.envs.scenarios import load_scenario

    scenario = load_scenario(name)
    sys.stdout.write(yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False, width=120))


@app.command()
@user_errors
def simulate(
    scenario: Annotated[str, typer.Argument(help="Scenario name (see `payroute scenarios`) or a YAML path.")],
    policy: Annotated[
        str, typer.Option(help="Routing policy: a baseline name, or a policy bundle (directory or .zip).")
    ] = "cheapest",
    risk: Annotated[str, typer.Option(help="Risk policy: a baseline name.")] = "threshold",
    days: Annotated[float, typer.Option(min=0.01, help="Days of arrivals to simulate.")] = 1.0,
    seed: Annotated[int, typer.Option(min=0, help="Episode seed (an integer >= 0).")] = 0,
    log: Annotated[Path | None, typer.Option(help="Write the event log to this Parquet file.")] = None,
    explore: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Epsilon-greedy exploration around the routing policy (logged propensities).",
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
    drain: Annotated[
        bool, typer.Option(help="After the last arrival, run until every payment has ended.")
    ] = True,
) -> None:
    """Simulate SCENARIO with a routing baseline or bundle and print the KPIs."""
    from payroute.experiments.simulate import run_simulation

    if log is not None and log.is_dir():
        raise PayrouteError(f"--log = {str(log)!r}: is a folder; allowed: a file path such as day.parquet")
    summary = run_simulation(
        scenario,
        route=policy,
        risk=risk,
        days=days,
        seed=seed,
        log_path=log,
        drain=drain,
        progress=not json_out,
        explore=explore,
    )
    if json_out:
        sys.stdout.write(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return
    _print_summary(summary)


@app.command()
@user_errors
def baselines(
    scenario: Annotated[str, typer.Argument(help="Scenario name or YAML path.")],
    seeds: Annotated[
        int,
        typer.Option(min=2, help="Number of seeds (first-seed .. first-seed+N-1), shared by every policy."),
    ] = 5,
    first_seed: Annotated[
        int,
        typer.Option(
            min=0, help="First seed; 1000000000 gives the held-out days `payroute evaluate` uses by default."
        ),
    ] = 0,
    days: Annotated[float, typer.Option(min=0.01, help="Days per run.")] = 1.0,
    policies: Annotated[
        str, typer.Option(help="Comma-separated routing policies (default: every baseline and the oracle).")
    ] = ",".join(ROUTING_BASELINE_ORDER),
    risk: Annotated[str, typer.Option(help="Risk policy bound for every run.")] = "threshold",
    volume_scale: Annotated[float | None, typer.Option(help="Override the scenario's volume_scale.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes to run seeds in parallel.")] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the summary as a Markdown table.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Write the per-seed runs to this Parquet file.")] = None,
) -> None:
    """Every routing baseline and the oracle on the same seeds: KPIs with paired 95% intervals."""
    from rich.progress import Progress

    from payroute.policies.compare import run_paired, summarise

    names = tuple(p.strip() for p in policies.split(",") if p.strip())
    if "cheapest" not in names:
        raise PayrouteError("--policies must include 'cheapest' (the reference of the paired intervals)")
    overrides = {"volume_scale": volume_scale} if volume_scale is not None else None
    with Progress(console=err_console, transient=True, disable=json_out or markdown) as bar:
        task = bar.add_task(f"{scenario}: {len(names)} policies x {seeds} seeds", total=len(names) * seeds)
        runs = run_paired(
            scenario,
            names,
            list(range(first_seed, first_seed + seeds)),
            days,
            risk,
            overrides,
            workers,
            lambda done, total: bar.update(task, completed=done),
        )
    table = summarise(runs)
    if out is not None:
        runs.to_parquet(out)
    if json_out:
        sys.stdout.write(table.to_json(orient="records", indent=2) + "\n")
        return
    if markdown:
        from payroute.policies.compare import markdown_table

        sys.stdout.write(markdown_table(table) + "\n")
        return
    _print_baselines(scenario, seeds, days, table)


@app.command()
def review(
    bundle: Annotated[Path, typer.Argument(help="The policy bundle to review (a directory or .zip).")],
    logs: Annotated[
        Path | None,
        typer.Option(help="Logged decisions (Parquet, event log schema) for off-policy evaluation."),
    ] = None,
    champion: Annotated[
        Path | None, typer.Option(help="A champion bundle the stress suite also compares with.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="Review thresholds (YAML); default: the shipped review_default.yaml.")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write the HTML report here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON summary here.")] = None,
) -> None:
    """Review a policy bundle: integrity, off-policy estimates, stress suite, constraints. Exit 0 pass, 1 fail,
    2 could not review."""
    from payroute.policies.review import EXIT_ERROR, error_summary

    try:
        result = _run_review(bundle, logs, champion, config, report, json_out)
    except PayrouteError as exc:
        err_console.print(f"[bold red]could not review:[/] {exc}", highlight=False, soft_wrap=True)
        if json_out is not None:
            json_out.write_text(json.dumps(error_summary(bundle, str(exc)), indent=2) + "\n")
        raise typer.Exit(code=EXIT_ERROR) from None
    _print_review(result, report, json_out)
    raise typer.Exit(code=result.exit_code)


def _run_review(bundle: Path, logs, champion, config, report: Path | None, json_out: Path | None):
    """Review with a progress bar; write the HTML report and the JSON summary where asked."""
    from rich.progress import Progress

    from payroute.policies.review import load_review_config, review_bundle

    cfg = load_review_config(config)
    with Progress(console=err_console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = review_bundle(bundle, logs=logs, champion=champion, config=cfg, progress=progress)
    if report is not None:
        from payroute.policies.review.report import write_html

        write_html(result, report)
    if json_out is not None:
        result.write_json(json_out)
    return result


def _print_review(result, report: Path | None, json_out: Path | None) -> None:
    t = Table(title=f"review of {result.bundle}")
    for col in ("result", "section", "check", "what was found"):
        t.add_column(col, overflow="fold")
    styles = {"pass": "green", "fail": "bold red"}
    for c in result.checks:
        t.add_row(f"[{styles.get(c.status, 'dim')}]{c.status.upper()}[/]", c.section, c.name, c.summary)
    wide_console.print(t)
    word = (
        "[bold green]PASS[/]" if result.passed else f"[bold red]FAIL[/] ({len(result.failed)} checks failed)"
    )
    console.print(f"verdict: {word} in {result.wall_s:.0f} s")
    for path, what in ((report, "report"), (json_out, "summary")):
        if path is not None:
            console.print(f"{what}: {path}")


@app.command()
@user_errors
def train(
    experiment: Annotated[
        str | None,
        typer.Argument(help="Experiment YAML (or a shipped name, e.g. quickstart); omit with --resume."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override the experiment's seed.")] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue this run folder from its last checkpoint.")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Run on this Ray cluster (e.g. 10.0.0.5:6379) instead of a local Ray.")
    ] = None,
    runs: Annotated[Path, typer.Option(help="Folder that holds the run folders.")] = Path("runs"),
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Train an experiment: run folder with config + hash, TensorBoard logs, checkpoints, policy networks."""
    from payroute.experiments.runner import train as run_train

    run_dir = run_train(
        experiment, seed=seed, resume=resume, ray_address=ray_address, runs_root=runs,
        argv=["payroute", *sys.argv[1:]], console=err_console, progress=not quiet,
    )  # fmt: skip
    record = json.loads((run_dir / "run.json").read_text())
    console.print(f"run folder: [bold]{run_dir}[/]  ({record.get('stop_reason')})")
    console.print(f"TensorBoard: tensorboard --logdir {run_dir / 'tb'}")


@app.command()
@user_errors
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `payroute train`.")],
    scenarios: Annotated[
        str | None,
        typer.Option(help="Comma-separated scenarios (default: the experiment's evaluation.scenarios)."),
    ] = None,
    seeds: Annotated[
        int | None, typer.Option(min=2, help="Number of held-out seeds (default: the experiment's).")
    ] = None,
    first_seed: Annotated[
        int | None, typer.Option(help="First evaluation seed (default: the experiment's, >= 1e9).")
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Processes running seeds in parallel.")] = None,
    checkpoint: Annotated[
        int | None,
        typer.Option(help="Evaluate this checkpoint's policy (its iteration) instead of the final one."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output folder (default: RUN_DIR/eval, or RUN_DIR/eval_checkpoint_N with --checkpoint)."
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """The trained policy, the baselines and the oracle on the same held-out seeds: KPIs with paired 95% intervals."""
    from rich.progress import Progress

    from payroute.experiments.evaluate import evaluate_run

    names = [s.strip() for s in scenarios.split(",") if s.strip()] if scenarios else None
    with Progress(console=err_console, transient=True, disable=json_out) as bar:
        tasks: dict[str, int] = {}

        def report(scenario: str, done: int, total: int) -> None:
            if scenario not in tasks:
                tasks[scenario] = bar.add_task(f"evaluating on {scenario}", total=total)
            bar.update(tasks[scenario], completed=done)

        result = evaluate_run(run_dir, names, seeds, first_seed, workers, out, report, checkpoint)
    if json_out:
        sys.stdout.write((result.out / "summary.json").read_text() + "\n")
        return
    print_evaluation(result)


@app.command()
@user_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `payroute train` (RLlib or SB3).")],
    out: Annotated[
        Path,
        typer.Option(
            help="Bundle path: a directory, or a .zip. A multi-agent run writes one bundle per role inside it."
        ),
    ],
    checkpoint: Annotated[
        int | None,
        typer.Option(min=1, help="Export the checkpoint of this iteration (default: the final policy)."),
    ] = None,
    parity: Annotated[
        int, typer.Option(min=1, help="Observations on which ONNX must reproduce the network within 1e-5.")
    ] = 10_000,
) -> None:
    """Export a run's learned policies as bundles (ONNX + card.json + golden vectors + checksums), no pickle."""
    from payroute.experiments.export import export_run

    with err_console.status("exporting: ONNX, parity check, model card"):
        written, skipped = export_run(run_dir, out, checkpoint, parity)
    from payroute.policies import load_bundle

    for role, path in written.items():
        card = load_bundle(path).card  # read back as a reviewer will: checksums, schema, golden vectors
        par = card.parity
        console.print(
            f"[bold]{role}[/] ({card.decision_kind}): {path}  parity on {par['observations']:,} "
            f"observations, max |Δlogit| {par['max_abs_diff']:.2g}"
        )
    for why in skipped.values():
        console.print(f"[yellow]not exported[/] {why}")
    console.print(f"review it: payroute review {next(iter(written.values()))}")


def print_evaluation(result) -> None:
    from payroute.experiments.evaluate import REFERENCE

    n_seeds = result.runs["seed"].nunique()
    meta = result.meta
    kind = meta.get("decision_kind", "route")
    for scenario, table in result.summary.groupby("scenario", sort=False):
        reference = REFERENCE.get(kind, str(meta.get("policies", ["", "cheapest"])[1]))
        _print_baselines(
            scenario, n_seeds, float(meta.get("days", 1.0)), table.drop(columns="scenario"), kind, reference
        )
        vs = result.versus[result.versus.scenario == scenario]
        t = Table(title=f"{scenario}: trained policy minus each policy (paired, {n_seeds} seeds)")
        for col in ("versus", "Δ margin/tx $ [95% CI]", "excludes 0", "Δ approval [95% CI]"):
            t.add_column(col, justify="left" if col == "versus" else "right")
        for r in vs.itertuples():
            t.add_row(
                r.versus,
                f"{r.margin_per_tx_usd_diff:+.4f} [{r.margin_per_tx_usd_low:+.4f}, {r.margin_per_tx_usd_high:+.4f}]",
                "yes" if r.margin_per_tx_usd_excludes_zero else "no",
                f"{r.approval_rate_diff * 100:+.2f} pt [{r.approval_rate_low * 100:+.2f}, {r.approval_rate_high * 100:+.2f}]",
            )
        wide_console.print(t)
        from payroute.experiments.evaluate import best_heuristic

        best = best_heuristic(table)
        if best is not None:
            r = vs[vs.versus == best].iloc[0]
            verdict = "beats" if r.margin_per_tx_usd_low > 0 else "does not beat"
            console.print(
                f"{scenario}: the trained policy {verdict} the best heuristic ({best}) on margin per transaction: "
                f"{r.margin_per_tx_usd_diff:+.4f} [{r.margin_per_tx_usd_low:+.4f}, {r.margin_per_tx_usd_high:+.4f}]"
            )
    console.print(f"report: {result.out / 'report.md'}  (Parquet, PNG plots and summary.json beside it)")


@app.command()
@user_errors
def sweep(
    experiment: Annotated[
        str, typer.Argument(help="Experiment YAML with a 'sweep' section (or a shipped name).")
    ],
    samples: Annotated[int | None, typer.Option(min=1, help="Trials (default: sweep.num_samples).")] = None,
    ray_address: Annotated[str | None, typer.Option(help="Run the trials on this Ray cluster.")] = None,
    runs: Annotated[Path, typer.Option(help="Folder that holds the run folders.")] = Path("runs"),
) -> None:
    """A Ray Tune search over the experiment's sweep space; the best trial and its run folder."""
    from payroute.experiments.sweep import sweep as run_sweep

    result = run_sweep(experiment, runs_root=runs, ray_address=ray_address, num_samples=samples)
    t = Table(title=f"sweep of {result.experiment}: {result.metric} ({result.mode})")
    for col in result.trials.columns:
        t.add_column(str(col), justify="right" if col != "run_dir" else "left")
    for row in result.trials.itertuples(index=False):
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    wide_console.print(t)
    if result.best_run_dir is None:
        raise PayrouteError("no trial reported the metric; see the Tune logs in " + str(result.tune_dir))
    console.print(f"best: {result.metric} = {result.best_value:.4g} in [bold]{result.best_run_dir}[/]")
    console.print(f"evaluate it: payroute evaluate {result.best_run_dir}")


@app.command()
@user_errors
def run(
    experiment: Annotated[str, typer.Option(help="Experiment to run end to end.")] = "quickstart",
    runs: Annotated[Path, typer.Option(help="Folder that holds the run folders.")] = Path("runs"),
    seed: Annotated[int | None, typer.Option(help="Override the experiment's seed.")] = None,
    review_config: Annotated[
        Path | None, typer.Option(help="Review thresholds (YAML); default: the shipped review_default.yaml.")
    ] = None,
) -> None:
    """Quickstart end to end: train, evaluate on held-out seeds, export the policy as a bundle and review it."""
    import time

    from rich.progress import Progress

    from payroute.experiments.evaluate import evaluate_run
    from payroute.experiments.export import export_run
    from payroute.experiments.runner import train as run_train

    start = time.perf_counter()
    console.rule(f"1/4 training {experiment}")
    run_dir = run_train(
        experiment, seed=seed, runs_root=runs, argv=["payroute", *sys.argv[1:]], console=err_console
    )
    trained_s = time.perf_counter() - start
    console.rule("2/4 evaluating on held-out seeds")
    with Progress(console=err_console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def report(scenario: str, done: int, total: int) -> None:
            if scenario not in tasks:
                tasks[scenario] = bar.add_task(f"evaluating on {scenario}", total=total)
            bar.update(tasks[scenario], completed=done)

        result = evaluate_run(run_dir, progress=report)
    print_evaluation(result)
    console.rule("3/4 exporting the policy bundle")
    with err_console.status("exporting: ONNX, parity check, model card"):
        written, _skipped = export_run(run_dir, run_dir / "bundle")
    role, bundle = next(iter(written.items()))
    console.print(f"{role}: {bundle}")
    console.rule("4/4 reviewing the bundle (payroute review)")
    review_dir = run_dir / "review"
    review_dir.mkdir(exist_ok=True)
    verdict = _run_review(
        bundle, None, None, review_config, review_dir / "report.html", review_dir / "summary.json"
    )
    _print_review(verdict, None, None)
    record = json.loads((run_dir / "run.json").read_text())
    summary = Table(title="payroute run: summary", show_header=False)
    summary.add_column("what", style="bold")
    summary.add_column("where")
    summary.add_row("run folder", str(run_dir))
    summary.add_row("training", f"{record.get('iterations')} iterations, {record.get('env_steps'):,} env steps, "
                    f"{trained_s:.0f} s ({record.get('stop_reason')})")  # fmt: skip
    summary.add_row("evaluation report", str(result.out / "report.md"))
    summary.add_row("plots", ", ".join(p.name for p in result.plots))
    summary.add_row("numbers (Parquet)", str(result.out))
    summary.add_row("TensorBoard", f"tensorboard --logdir {run_dir / 'tb'}")
    summary.add_row("policy bundle", str(bundle))
    word = "PASS" if verdict.passed else f"FAIL ({len(verdict.failed)} checks failed)"
    summary.add_row("review", f"{word}: {review_dir / 'report.html'}")
    summary.add_row("total time", f"{time.perf_counter() - start:.0f} s")
    wide_console.print(summary)


def _print_baselines(
    scenario: str, seeds: int, days: float, table, kind: str = "route", reference: str = "cheapest"
) -> None:
    what = {"route": "routing", "risk": "risk", "price": "pricing"}.get(kind, kind)
    t = Table(title=f"{scenario}: {what} policies on {seeds} paired seeds x {days:g} day(s)")
    for col in ("policy", "margin/tx $", f"Δ margin/tx vs {reference} [95% CI]", "approval", "Δ approval [95% CI]",
                "oracle share", "cost bps", "fraud bps", "SLA misses"):  # fmt: skip
        t.add_column(col, justify="left" if col == "policy" else "right")
    for r in table.itertuples():
        t.add_row(
            r.policy,
            f"{r.margin_per_tx_usd:.4f}",
            f"{r.margin_diff:+.4f} [{r.margin_diff_low:+.4f}, {r.margin_diff_high:+.4f}]",
            f"{r.approval_rate:.2%}",
            f"{r.approval_diff * 100:+.2f} pt [{r.approval_diff_low * 100:+.2f}, {r.approval_diff_high * 100:+.2f}]",
            "—" if r.oracle_share != r.oracle_share else f"{r.oracle_share:.0%}",  # NaN: no oracle in the run
            f"{r.route_cost_bps:.1f}",
            f"{r.fraud_loss_bps:.2f}",
            f"{r.sla_misses:,.0f}",
        )
    wide_console.print(t)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def bench(
    ctx: typer.Context,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of the table.")
    ] = False,
    skip_memory: Annotated[
        bool, typer.Option("--skip-memory", help="Skip the 3/10/30-day memory runs.")
    ] = False,
) -> None:
    """Every benchmark in one table: world, Routing-v0, ecosystem, RLlib sampling, bundle latency, OPE, memory
    (= make bench)."""
    import subprocess

    args = [
        sys.executable,
        "-m",
        "payroute.benchmarks.run",
        *(["--json"] if json_out else []),
        *(["--skip-memory"] if skip_memory else []),
    ]
    raise typer.Exit(subprocess.run([*args, *ctx.args], check=False).returncode)


def _print_summary(summary: dict) -> None:
    kpis = summary["kpis"]
    head = Table(
        title=f"{summary['scenario']} · seed {summary['seed']} · {summary['days']:g} day(s) · policy {summary['policy']}"
    )
    head.add_column("outcome")
    head.add_column("count", justify="right")
    head.add_column("share", justify="right")
    arrivals = max(summary["arrivals"], 1)
    head.add_row("arrivals", f"{summary['arrivals']:,}", "")
    for state, n in summary["terminal"].items():
        head.add_row(f"  {state}", f"{n:,}", f"{n / arrivals:.2%}")
    head.add_row("  in flight", f"{summary['in_flight']:,}", f"{summary['in_flight'] / arrivals:.2%}")
    for kind, n in summary["post_settlement"].items():
        head.add_row(f"later: {kind}", f"{n:,}", "")
    console.print(head)
    k = Table(title="KPIs")
    k.add_column("KPI")
    k.add_column("value", justify="right")
    k.add_row("approval rate", f"{kpis['approval_rate']:.2%}")
    k.add_row("margin per transaction", f"${kpis['margin_per_tx_usd']:.4f}")
    k.add_row("margin", f"${kpis['margin_usd']:,.2f}")
    k.add_row("route cost", f"{kpis['route_cost_bps']:.1f} bps of settled value")
    k.add_row("fraud loss", f"{kpis['fraud_loss_bps']:.2f} bps of settled value")
    k.add_row("SLA misses", f"{int(kpis['sla_misses']):,}")
    k.add_row("liquidity cost", f"${kpis['liquidity_cost_usd']:,.2f}")
    k.add_row("settled value", f"${kpis['settled_value_usd']:,.0f}")
    console.print(k)
    console.print(f"[dim]{summary['arrivals']:,} transactions in {summary['wall_s']:.2f} s "
                  f"({summary['arrivals'] / max(summary['wall_s'], 1e-9):,.0f} tx/s)[/]")  # fmt: skip
    if summary.get("exploration"):
        ex = summary["exploration"]
        console.print(f"exploration: epsilon {ex['epsilon']:g}, {ex['explored']:,} of {ex['decisions']:,} "
                      "routing decisions drawn uniformly from the eligible routes")  # fmt: skip
    if summary.get("log"):
        console.print(f"event log: {summary['log']}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
