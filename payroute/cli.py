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
    policy: Annotated[str, typer.Option(help="Routing policy: a baseline name.")] = "cheapest",
    risk: Annotated[str, typer.Option(help="Risk policy: a baseline name.")] = "threshold",
    days: Annotated[float, typer.Option(min=0.01, help="Days of arrivals to simulate.")] = 1.0,
    seed: Annotated[int, typer.Option(min=0, help="Episode seed (an integer >= 0).")] = 0,
    log: Annotated[Path | None, typer.Option(help="Write the event log to this Parquet file.")] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
    drain: Annotated[
        bool, typer.Option(help="After the last arrival, run until every payment has ended.")
    ] = True,
) -> None:
    """Simulate SCENARIO with baseline policies and print the KPIs."""
    from payroute.simulate import run_simulation

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
    )
    if json_out:
        sys.stdout.write(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return
    _print_summary(summary)


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
    if summary.get("log"):
        console.print(f"event log: {summary['log']}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
