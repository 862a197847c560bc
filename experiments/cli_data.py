"""``payroute calibrate`` and ``payroute dataset``: commands that turn logs into scenarios and worlds into data sets
(registered on the app by :mod:`payroute.experiments.cli`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from payroute.experiments.cli_app import app, user_errors
from payroute.experiments.console import console, progress_bar
from payroute.files import atomic_write_text, check_output_file


@app.command()
@user_errors
def calibrate(
    log: Annotated[
        Path, typer.Argument(help="The log: payroute's own event log (Parquet), or a flat CSV/Parquet.")
    ],
    out: Annotated[Path, typer.Option(help="Write the calibrated scenario YAML here.")],
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
) -> None:
    """Fit a scenario to LOG: volume and arrival profile, mixes, amounts, approval, latency, fees, fraud."""
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
