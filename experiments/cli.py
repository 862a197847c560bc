"""The ``payroute`` command line: scenarios, simulate (and more as the project grows).

Bad input (an unknown scenario or policy, a config field out of range) prints a short message naming what was
wrong and what is allowed, and exits with code 2 — never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from payroute import __version__
from payroute.errors import PayrouteError
from payroute.experiments.cli_app import MlflowUri, RayAddress, app, scenarios_app, user_errors
from payroute.experiments.console import (
    EXPORTING,
    console,
    err_console,
    evaluating,
    print_error,
    progress_bar,
)
from payroute.files import atomic_path, atomic_write_text, check_output_file, check_output_folder
from payroute.policies.compare import RETRY_BASELINE_ORDER, baseline_order


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
    from payroute.experiments.console import print_scenarios

    print_scenarios()


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
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option(help="A trusted public key for a --policy bundle (payroute keygen); repeatable."),
    ] = None,
    retries: Annotated[
        bool,
        typer.Option(
            "--retries",
            help="Turn the scenario's retries on (retries.enabled: true): a soft decline goes back to the router.",
        ),
    ] = False,
) -> None:
    """Simulate SCENARIO with a routing baseline or bundle and print the KPIs."""
    from payroute.experiments.console import print_summary
    from payroute.experiments.simulate import run_simulation

    check_output_file(log, "--log")
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
        trusted_keys=tuple(trusted_key or ()),
        retries=retries,
    )
    if json_out:
        sys.stdout.write(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return
    print_summary(summary)


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
        str | None,
        typer.Option(
            help="Comma-separated routing policies: baseline names or route bundle paths (default: every "
            f"baseline and the oracle; with retries on, the retry routers {', '.join(RETRY_BASELINE_ORDER)} too)."
        ),
    ] = None,
    risk: Annotated[str, typer.Option(help="Risk policy bound for every run.")] = "threshold",
    volume_scale: Annotated[float | None, typer.Option(help="Override the scenario's volume_scale.")] = None,
    retries: Annotated[
        bool,
        typer.Option(
            "--retries",
            help="Turn the scenario's retries on (retries.enabled: true): a soft decline goes back to the router.",
        ),
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Processes to run seeds in parallel.")] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the summary as a Markdown table.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Write the per-seed runs to this Parquet file.")] = None,
    ray_address: RayAddress = None,
) -> None:
    """Every routing baseline and the oracle on the same seeds: KPIs with paired 95% intervals."""
    from payroute.envs.scenarios import load_scenario
    from payroute.experiments.cluster import ray_executor
    from payroute.experiments.console import print_baselines
    from payroute.experiments.simulate import is_bundle_path
    from payroute.experiments.whatif import route_arm
    from payroute.policies.compare import run_paired, summarise

    check_output_file(out, "--out")
    overrides: dict | None = {"volume_scale": volume_scale} if volume_scale is not None else None
    if retries:
        overrides = {**(overrides or {}), "retries": {"enabled": True}}
    sc = load_scenario(scenario, overrides)
    names = tuple(p.strip() for p in (policies or "").split(",") if p.strip()) or baseline_order(
        sc.retries.enabled
    )
    if "cheapest" not in names:
        raise PayrouteError("--policies must include 'cheapest' (the reference of the paired intervals)")
    # a bundle path is an arm named after its file (verified here, and again where it runs)
    arms = tuple(route_arm(Path(n).stem if is_bundle_path(n) else n, n, (sc,)) for n in names)
    what = f"{scenario}: {len(names)} policies x {seeds} seeds"
    seed_list = list(range(first_seed, first_seed + seeds))
    with ray_executor(ray_address) as executor, progress_bar(disable=json_out or markdown) as report:
        report(what, 0, len(names) * seeds)  # the bar shows before the first run ends
        runs = run_paired(
            sc, arms, seed_list, days, risk, None, workers, lambda d, t: report(what, d, t),
            executor=executor, spawn=any(is_bundle_path(n) for n in names),
        )  # fmt: skip
    table = summarise(runs)
    if out is not None:
        with atomic_path(out) as tmp:
            runs.to_parquet(tmp)
    if json_out:
        sys.stdout.write(table.to_json(orient="records", indent=2) + "\n")
        return
    if markdown:
        from payroute.policies.compare import markdown_table

        sys.stdout.write(markdown_table(table) + "\n")
        return
    print_baselines(scenario, seeds, days, table)


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
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option(
            help="A trusted Ed25519 public key (payroute keygen); repeatable. The zoo's is trusted."
        ),
    ] = None,
    shadow: Annotated[
        Path | None,
        typer.Option(
            help="Shadow replay: the bundle on every routing decision of this log (Parquet or CSV, with obs.*)."
        ),
    ] = None,
    shadow_out: Annotated[
        Path | None,
        typer.Option(help="Write the shadow replay's per-decision routes and values here (JSON)."),
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(
            help="Review on this scenario (a name or a YAML path, e.g. from payroute calibrate): the stress "
            "variants are layered on it."
        ),
    ] = None,
    ray_address: RayAddress = None,
    mlflow: MlflowUri = None,
) -> None:
    """Review a policy bundle: integrity, off-policy estimates, stress suite, constraints. Exit 0 pass, 1 fail,
    2 could not review."""
    from payroute.experiments.console import print_review
    from payroute.experiments.pipeline import run_review
    from payroute.policies.review import EXIT_ERROR, error_summary

    try:
        if mlflow is not None:
            from payroute.experiments.registry import check_records

            check_records(None, mlflow)
        result = run_review(bundle, logs, champion, config, report, json_out, tuple(trusted_key or ()),
                            ray_address, shadow=shadow, shadow_out=shadow_out, scenario=scenario)  # fmt: skip
    except PayrouteError as exc:
        print_error("could not review:", exc)
        if json_out is not None and not json_out.is_dir():
            with contextlib.suppress(PayrouteError):  # the error above is the one to report
                atomic_write_text(json_out, json.dumps(error_summary(bundle, str(exc)), indent=2) + "\n")
        raise typer.Exit(code=EXIT_ERROR) from None
    print_review(result, report, json_out)
    if mlflow is not None:
        from payroute.experiments.registry import write_records

        try:
            write_records([bundle], None, mlflow, result.to_dict(), report, say=console.print)
        except PayrouteError as exc:
            print_error("reviewed, but not registered:", exc)
            raise typer.Exit(code=EXIT_ERROR) from None
    raise typer.Exit(code=result.exit_code)


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
    from payroute.experiments.console import print_trained
    from payroute.experiments.runner import train as run_train

    if resume is None:
        check_output_folder(runs, "--runs")
    run_dir = run_train(
        experiment, seed=seed, resume=resume, ray_address=ray_address, runs_root=runs,
        argv=["payroute", *sys.argv[1:]], console=err_console, progress=not quiet,
    )  # fmt: skip
    print_trained(run_dir)


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
    ray_address: RayAddress = None,
) -> None:
    """The trained policy, the baselines and the oracle on the same held-out seeds: KPIs with paired 95% intervals."""
    from payroute.experiments.cluster import ray_executor
    from payroute.experiments.console import print_evaluation
    from payroute.experiments.evaluate import evaluate_run

    names = [s.strip() for s in scenarios.split(",") if s.strip()] if scenarios else None
    with ray_executor(ray_address) as executor, progress_bar(evaluating, disable=json_out) as report:
        result = evaluate_run(
            run_dir, names, seeds, first_seed, workers, out, report, checkpoint, executor=executor
        )
    if out is None and checkpoint is None:  # the run's own evaluation: its summary page shows it
        from payroute.config_io import read_json
        from payroute.experiments.run_page import write_run_page

        write_run_page(result, read_json(run_dir / "run.json"))
    if json_out:
        sys.stdout.write((result.out / "summary.json").read_text() + "\n")
        return
    print_evaluation(result)


@app.command()
@user_errors
def score(
    policy: Annotated[
        str, typer.Argument(help="A baseline name or a policy bundle path (directory or .zip).")
    ],
    task: Annotated[
        str,
        typer.Option(help="A benchmark task (docs/benchmark.md) or 'all': every task the policy applies to."),
    ] = "all",
    seeds: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="Evaluation seeds per task (default: the task's; other counts are not the benchmark's score).",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes running seeds in parallel.")] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """A policy's normalised benchmark score per task (0 = the reference baseline, 100 = the oracle or best known
    bound) with its paired 95% interval."""
    from payroute.experiments.console import print_scores
    from payroute.policies.benchmark import score as score_policy

    with progress_bar(lambda name: f"scoring on {name}", disable=json_out) as report:
        scores = score_policy(policy, task, seeds, workers, report)
    if json_out:
        sys.stdout.write(json.dumps([s.as_dict() for s in scores], indent=2) + "\n")
        return
    print_scores(scores)


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
    sign_key: Annotated[
        Path | None,
        typer.Option(help="Sign the bundle with this Ed25519 private key (payroute keygen): signature.json."),
    ] = None,
    ml_bom: Annotated[
        Path | None,
        typer.Option(help="Also write the model card(s) as a CycloneDX 1.6 ML-BOM (JSON) to this file."),
    ] = None,
    mlflow: MlflowUri = None,
) -> None:
    """Export a run's learned policies as bundles (ONNX + card.json + golden vectors + checksums), no pickle."""
    from payroute.experiments.console import print_export
    from payroute.experiments.export import export_run
    from payroute.experiments.registry import check_records, write_records

    check_records(ml_bom, mlflow)  # before any work
    with err_console.status(EXPORTING):
        written, skipped = export_run(run_dir, out, checkpoint, parity, sign_key=sign_key)
    print_export(written, skipped, sign_key)
    write_records(list(written.values()), ml_bom, mlflow, say=console.print)


@app.command()
@user_errors
def keygen(
    out: Annotated[Path, typer.Option(help="Folder for signing.key (mode 0600) and signing.pub.")],
) -> None:
    """Make an Ed25519 key pair for signing bundles: keep signing.key secret, give signing.pub to reviewers."""
    from payroute.policies.bundle.signing import generate_keypair

    private, public, kid = generate_keypair(out)
    console.print(f"key id {kid}", highlight=False)
    console.print(f"private key (keep it secret; payroute export --sign-key): {private}", markup=False)
    console.print(f"public key (reviewers: payroute review --trusted-key): {public}", markup=False)


@app.command()
@user_errors
def sign(
    bundle: Annotated[Path, typer.Argument(help="The bundle: a folder, or a .zip.", show_default=False)],
    sign_key: Annotated[
        Path, typer.Option(help="The Ed25519 private key to sign with (payroute keygen).", show_default=False)
    ],
) -> None:
    """Sign an existing bundle (verified first; only signature.json changes): a reviewer's approval, or a new key."""
    from payroute.policies.bundle.countersign import sign_bundle

    signature = sign_bundle(bundle, sign_key)
    console.print(f"signed by {signature.key_id}: {bundle.name}", markup=False, highlight=False)
    console.print("reviewers trust it with: payroute review BUNDLE --trusted-key signing.pub", markup=False)


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
    from payroute.experiments.console import print_best_trial, print_sweep
    from payroute.experiments.sweep import sweep as run_sweep

    check_output_folder(runs, "--runs")
    result = run_sweep(experiment, runs_root=runs, ray_address=ray_address, num_samples=samples)
    print_sweep(result)
    if result.best_run_dir is None:
        raise PayrouteError("no trial reported the metric; see the Tune logs in " + str(result.tune_dir))
    print_best_trial(result)


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
    from payroute.experiments.console import print_run_summary
    from payroute.experiments.pipeline import run_quickstart

    argv = ["payroute", *sys.argv[1:]]
    print_run_summary(run_quickstart(experiment, runs, seed, review_config, argv))


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


# the commands defined in their own modules register themselves on the app when imported
from payroute.experiments import cli_data  # noqa: E402, F401


def main() -> None:
    app()


if __name__ == "__main__":
    main()
