"""``payroute calibrate`` and ``payroute dataset``: commands that turn logs into scenarios and worlds into data sets
(registered on the app by :mod:`payroute.experiments.cli`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from payroute.errors import PayrouteError
from payroute.experiments.cli_app import app, user_errors
from payroute.experiments.console import console, progress_bar
from payroute.files import atomic_write_text, check_output_file


@app.command()
@user_errors
def calibrate(
    log: Annotated[
        Path | None,
        typer.Argument(help="The log: payroute's own event log (Parquet), or a flat CSV/Parquet."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the calibrated scenario YAML here (needed with LOG).")
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(help="Mapping YAML of a flat one-row-per-attempt log (docs/calibration_inputs.md)."),
    ] = None,
    base: Annotated[
        str, typer.Option(help="Base scenario: what the log cannot identify comes from it.")
    ] = "default",
    name: Annotated[
        str | None, typer.Option(help="Name of the calibrated scenario (default: OUT's stem).")
    ] = None,
    prior_strength: Annotated[
        float, typer.Option(min=0.0, help="Pseudo-rows of the base behind each approval rate (shrinkage).")
    ] = 20.0,
    start_date: Annotated[
        str | None, typer.Option(help="Own log only: the date of its day 0 (default: the base's start_date).")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Also simulate the fitted scenario as the log routed and write the fit report: an HTML page "
            "with plots for a .html/.htm path, else JSON."
        ),
    ] = None,
    report_days: Annotated[
        float | None,
        typer.Option(min=0.01, help="Days the report simulates (default: the log's, at most 7)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
    check: Annotated[
        str | None,
        typer.Option(
            help="Instead of fitting a log: simulate fresh days of this scenario (a name or a YAML path) under "
            "success_rate and set its card fraud, approval, processor gap, merchant cost and per-item fees "
            "against the published ranges (docs/calibration.md)."
        ),
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="--check: fresh one-day worlds to simulate.")] = 8,
    volume_scale: Annotated[
        float | None, typer.Option(help="--check: override the scenario's volume_scale.")
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="--check: exit 1 if any KPI is outside its published range.")
    ] = False,
) -> None:
    """Fit a scenario to LOG: volume and arrival profile, mixes, amounts, approval, latency, fees, fraud.

    With --check SCENARIO instead: measure SCENARIO against the published ranges of docs/calibration.md
    (exit 0 whatever it finds, unless --strict).
    """
    if check is not None:
        _check(check, log, out, days, volume_scale, strict, json_out)
        return
    if log is None or out is None:
        raise PayrouteError("payroute calibrate needs a LOG and --out (or --check SCENARIO)")
    from payroute.envs.calibration import calibrate as fit_log

    check_output_file(out, "--out")
    check_output_file(report, "--report")
    result = fit_log(log, mapping, base, name or out.stem, prior_strength, start_date)
    fit, page = None, None
    if report is not None:
        fit, simulated = result.compare(report_days)
        if report.suffix.lower() in (".html", ".htm"):
            from payroute.experiments.fit_report import render_fit_report

            page = render_fit_report(result, fit, simulated)
    atomic_write_text(out, result.yaml_text())
    if report is not None:
        atomic_write_text(
            report, page if page is not None else json.dumps(fit, indent=2, sort_keys=True) + "\n"
        )
    summary = result.summary(out, report, fit)
    if json_out:
        sys.stdout.write(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return
    from payroute.experiments.console import print_calibration

    print_calibration(summary, result.provenance["values"])


def _check(
    scenario: str,
    log: Path | None,
    out: Path | None,
    days: int,
    volume_scale: float | None,
    strict: bool,
    json_out: bool,
) -> None:
    """``payroute calibrate --check SCENARIO``: the scenario's KPIs against the published ranges."""
    if log is not None or out is not None:
        raise PayrouteError("--check measures a scenario: give it no LOG and no --out")
    from payroute.envs.calibration.check import check_scenario

    with progress_bar(lambda _name: f"checking {scenario}: simulated days") as report:
        result = check_scenario(
            scenario, days=days, volume_scale=volume_scale, on_day=lambda i: report("days", i + 1, days)
        )
    if json_out:
        sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    else:
        from payroute.experiments.console import print_check

        print_check(result)
    if strict and result["outside"]:
        raise typer.Exit(code=1)


@app.command()
@user_errors
def dataset(
    scenario: Annotated[str, typer.Argument(help="Scenario name (see `payroute scenarios`) or a YAML path.")],
    out: Annotated[
        Path, typer.Option(help="The dataset folder to create, named NAME-vN (must not exist yet).")
    ],
    env: Annotated[
        str, typer.Option(help="payroute/Routing-v0 or payroute/Risk-v0.")
    ] = "payroute/Routing-v0",
    policy: Annotated[
        str | None,
        typer.Option(
            help="Behaviour policy: a baseline of the env's decision kind (default: cheapest for Routing-v0, "
            "threshold for Risk-v0), or a bundle path."
        ),
    ] = None,
    explore: Annotated[
        float, typer.Option(help="Epsilon-greedy exploration around the policy, in [0, 1].")
    ] = 0.1,
    days: Annotated[int, typer.Option(help="Days to log: one episode each.")] = 1,
    seed: Annotated[
        int, typer.Option(help="World seed of the first episode (then +1 each); below 1000000000.")
    ] = 0,
    volume_scale: Annotated[float | None, typer.Option(help="Override the scenario's volume_scale.")] = None,
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option(help="A trusted public key for a --policy bundle (payroute keygen); repeatable."),
    ] = None,
) -> None:
    """Log episodes of an environment as a Minari dataset for offline RL (propensities and masks in infos).

    Episode i runs world seed SEED+i, a training seed (below the held-out range).
    The folder's name is the dataset id (NAME-vN). Its contents and how to load it: docs/datasets.md.
    """
    from payroute.experiments.dataset import plan_dataset, write_planned

    plan = plan_dataset(
        scenario, out, env_id=env, policy=policy, explore=explore, days=days, seed=seed,
        volume_scale=volume_scale, trusted_keys=tuple(trusted_key or ()),
    )  # fmt: skip
    with progress_bar(lambda _name: f"logging {scenario}: simulated hours") as report:
        summary = write_planned(plan, report)
    console.print(
        f"wrote {summary['out']}: {summary['episodes']} episode(s), {summary['steps']:,} steps of "
        f"{summary['env_id']}\nload it: minari.MinariDataset({summary['data_path']!r})",
        soft_wrap=True,
    )
