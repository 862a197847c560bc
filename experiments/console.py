"""What ``payroute`` prints: the consoles, the result tables and the one progress bar of the commands.

Results go to stdout (``console``; tables through ``wide_console``, never squeezed below 160 columns when the
output is not a terminal), progress and errors to stderr (``err_console``), so ``payroute ... > file`` keeps the
numbers and nothing else.

**Text is never markup.** Scenario names, config keys, policy names, card fields, file and zip entry names all
come from files a user (or an attacker) wrote, and they reach these consoles inside messages, table cells, titles
and progress lines. The consoles are made with ``markup=False`` and every progress column with
:func:`text_column` (``markup=False``), so ``[/x]`` or ``[red]...[/red]`` in any of them prints as written. The
project's own styling is given as styles, never as markup in a string: ``style=`` arguments, column styles, and
:class:`rich.text.Text` pieces (:func:`styled`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console(markup=False)
# result tables are wide: never squeeze them below 160 columns when the output is not a terminal
wide_console = console if console.is_terminal and console.width >= 160 else Console(width=160, markup=False)
err_console = Console(stderr=True, markup=False)

Report = Callable[[str, int, int], None]
"""``report(name, done, total)``: ``done`` of ``total`` steps of the part called ``name`` are finished."""

EXPORTING = "exporting: ONNX, parity check, model card"


def styled(*parts: str | tuple[str, str]) -> Text:
    """Plain text with the project's own styling: ``styled(("error:", "bold red"), " ", message)``; every string
    is taken literally (no markup is parsed in any part)."""
    return Text.assemble(*parts)


def text_column(template: str, style: str = "") -> Any:
    """A progress-bar text column whose formatted text (task descriptions, fields) is never parsed as markup."""
    from rich.progress import TextColumn

    return TextColumn(template, style=style, markup=False)


def print_error(prefix: str, exc: BaseException | str) -> None:
    """A user error on stderr: ``prefix`` in bold red, then the message exactly as written."""
    err_console.print(styled((prefix, "bold red"), " ", str(exc)), soft_wrap=True)


@contextmanager
def progress_bar(label: Callable[[str], str] = str, *, disable: bool = False) -> Iterator[Report]:
    """A transient progress bar on stderr that yields ``report(name, done, total)``.

    Each ``name`` gets its own line, titled ``label(name)``, on the first report of it; a report of ``0`` done
    shows a line before any work is finished.
    """
    from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TimeRemainingColumn

    columns = (text_column("{task.description}", "progress.description"), BarColumn(), TaskProgressColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=err_console, transient=True, disable=disable) as bar:
        tasks: dict[str, TaskID] = {}

        def report(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(label(name), total=total)
            bar.update(tasks[name], completed=done, total=total)

        yield report


def evaluating(scenario: str) -> str:
    """The progress line of an evaluation on ``scenario``."""
    return f"evaluating on {scenario}"


def print_scenarios() -> None:
    """The shipped scenarios with a line each."""
    from payroute.envs.scenarios import available_scenarios, scenario_summary

    table = Table(title="payroute scenarios", show_lines=False)
    table.add_column("name", style="bold")
    table.add_column("description")
    for name in available_scenarios():
        table.add_row(name, scenario_summary(name))
    console.print(table)


def print_summary(summary: dict) -> None:
    """One simulation (``payroute simulate``): outcomes, KPIs, speed."""
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
    console.print(f"{summary['arrivals']:,} transactions in {summary['wall_s']:.2f} s "
                  f"({summary['arrivals'] / max(summary['wall_s'], 1e-9):,.0f} tx/s)", style="dim")  # fmt: skip
    if summary.get("exploration"):
        ex = summary["exploration"]
        console.print(f"exploration: epsilon {ex['epsilon']:g}, {ex['explored']:,} of {ex['decisions']:,} "
                      "routing decisions drawn uniformly from the eligible routes")  # fmt: skip
    if summary.get("log"):
        console.print(f"event log: {summary['log']}")
    if summary.get("signature"):
        sig = summary["signature"]
        console.print(f"bundle {sig['bundle']}: {sig['says']}")


def print_baselines(
    scenario: str, seeds: int, days: float, table, kind: str = "route", reference: str = "cheapest"
) -> None:
    """Policies on paired seeds: KPIs with the paired 95% intervals against ``reference``."""
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


def print_evaluation(result) -> None:
    """An evaluation (``payroute evaluate``): the policy table and the trained policy's paired differences."""
    from payroute.experiments.evaluate import REFERENCE, best_heuristic

    n_seeds = result.runs["seed"].nunique()
    meta = result.meta
    kind = meta.get("decision_kind", "route")
    for scenario, table in result.summary.groupby("scenario", sort=False):
        reference = REFERENCE.get(kind, str(meta.get("policies", ["", "cheapest"])[1]))
        print_baselines(
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
        best = best_heuristic(table)
        if best is not None:
            r = vs[vs.versus == best].iloc[0]
            verdict = "beats" if r.margin_per_tx_usd_low > 0 else "does not beat"
            console.print(
                f"{scenario}: the trained policy {verdict} the best heuristic ({best}) on margin per transaction: "
                f"{r.margin_per_tx_usd_diff:+.4f} [{r.margin_per_tx_usd_low:+.4f}, {r.margin_per_tx_usd_high:+.4f}]"
            )
    console.print(f"report: {result.out / 'report.md'}  (Parquet, PNG plots and summary.json beside it)")


def print_review(result, report: Path | None, json_out: Path | None) -> None:
    """A review (``payroute review``): every check, the verdict, and where the report and summary went."""
    t = Table(title=f"review of {result.bundle}")
    for col in ("result", "section", "check", "what was found"):
        t.add_column(col, overflow="fold")
    styles = {"pass": "green", "fail": "bold red", "warn": "yellow"}
    for c in result.checks:
        t.add_row(Text(c.status.upper(), style=styles.get(c.status, "dim")), c.section, c.name, c.summary)
    wide_console.print(t)
    word = ("PASS", "bold green") if result.passed else ("FAIL", "bold red")
    failed = "" if result.passed else f" ({len(result.failed)} checks failed)"
    console.print(styled("verdict: ", word, f"{failed} in {result.wall_s:.0f} s"))
    for path, what in ((report, "report"), (json_out, "summary")):
        if path is not None:
            console.print(f"{what}: {path}")


def print_trained(run_dir: Path) -> None:
    """A finished training run (``payroute train``): its folder, why it stopped, and TensorBoard."""
    from payroute.config_io import read_json

    record = read_json(run_dir / "run.json")
    console.print(styled("run folder: ", (str(run_dir), "bold"), f"  ({record.get('stop_reason')})"))
    console.print(f"TensorBoard: tensorboard --logdir {run_dir / 'tb'}")


def print_export(written: dict[str, Path], skipped: dict[str, str], sign_key: Path | None = None) -> None:
    """Exported bundles (``payroute export``), each read back as a reviewer will: checksums, signature, schema,
    golden vectors; then the roles not exported and why."""
    from payroute.policies import load_bundle
    from payroute.policies.bundle.signing import default_trusted_keys, load_private_key, public_key_of

    keys = default_trusted_keys()
    if sign_key is not None:
        keys += (public_key_of(load_private_key(sign_key), sign_key.name),)
    for role, path in written.items():
        policy = load_bundle(path, trusted_keys=keys)
        card = policy.card
        par = card.parity
        console.print(
            styled(
                (role, "bold"),
                f" ({card.decision_kind}): {path}  parity on {par['observations']:,} "
                f"observations, max |Δlogit| {par['max_abs_diff']:.2g}; {policy.signature.describe()}",
            )
        )
    for why in skipped.values():
        console.print(styled(("not exported", "yellow"), f" {why}"))
    console.print(f"review it: payroute review {next(iter(written.values()))}")


def print_sweep(result) -> None:
    """A sweep's trials (``payroute sweep``); the best trial's run folder, when one reported the metric."""
    t = Table(title=f"sweep of {result.experiment}: {result.metric} ({result.mode})")
    for col in result.trials.columns:
        t.add_column(str(col), justify="right" if col != "run_dir" else "left")
    for row in result.trials.itertuples(index=False):
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    wide_console.print(t)


def print_best_trial(result) -> None:
    console.print(
        styled(f"best: {result.metric} = {result.best_value:.4g} in ", (str(result.best_run_dir), "bold"))
    )
    console.print(f"evaluate it: payroute evaluate {result.best_run_dir}")


def print_run_summary(run: Any) -> None:
    """The end of ``payroute run``: where every result of the quickstart is, and the review's verdict."""
    record = run.record
    summary = Table(title="payroute run: summary", show_header=False)
    summary.add_column("what", style="bold")
    summary.add_column("where")
    summary.add_row("summary page", str(run.page))
    summary.add_row("run folder", str(run.run_dir))
    summary.add_row("training", f"{record.get('iterations')} iterations, {record.get('env_steps'):,} env steps, "
                    f"{run.trained_s:.0f} s ({record.get('stop_reason')})")  # fmt: skip
    summary.add_row("evaluation report", str(run.evaluation.out / "report.md"))
    summary.add_row("plots", ", ".join(p.name for p in run.evaluation.plots))
    summary.add_row("numbers (Parquet)", str(run.evaluation.out))
    summary.add_row("TensorBoard", f"tensorboard --logdir {run.run_dir / 'tb'}")
    summary.add_row("policy bundle", str(run.bundle))
    verdict = run.review
    word = "PASS" if verdict.passed else f"FAIL ({len(verdict.failed)} checks failed)"
    summary.add_row("review", f"{word}: {run.review_dir / 'report.html'}")
    summary.add_row("total time", f"{run.total_s:.0f} s")
    wide_console.print(summary)


def print_scores(scores) -> None:
    """Benchmark scores: per task, the score with its paired 95% interval and the KPI means behind it."""
    from payroute.policies.benchmark import get_task

    t = Table(title="benchmark scores (0 = reference, 100 = oracle or best known bound; docs/benchmark.md)")
    for col in ("task", "policy", "score [95% CI]", "policy KPI", "reference", "top", "seeds"):
        t.add_column(col, justify="left" if col in ("task", "policy", "reference", "top") else "right")
    for s in scores:
        task = get_task(s.task)
        t.add_row(
            s.task,
            s.policy,
            f"{s.score:.1f} [{s.low:.1f}, {s.high:.1f}]",
            f"{s.policy_kpi:,.2f}",
            f"{task.reference} {s.reference_kpi:,.2f}",
            f"{task.top} {s.top_kpi:,.2f}",
            f"{s.seeds} from {s.first_seed:,}",
        )
    wide_console.print(t)


def print_calibration(summary: dict, values: dict) -> None:
    """What ``payroute calibrate`` fitted: rows used and left out, the flagged values, the fit report's verdicts."""
    left = ", ".join(f"{n:,} {why}" for why, n in summary["rows_left_out"].items()) or "none"
    say = functools.partial(console.print, markup=False, soft_wrap=True)
    say(f"calibrated {summary['rows_used']:,} of {summary['rows_read']:,} rows ({summary['date_from']} to "
        f"{summary['date_to']}); rows left out: {left}")  # fmt: skip
    say(f"{summary['fitted']} values fitted; kept from the base and flagged:")
    for path in summary["flagged"]:
        say(f"  {path} ({values[path]['status']}: {values[path].get('note', '')})")
    if "report" in summary:
        r = summary["report"]
        verdicts = ", ".join(f"{k} {v}" for k, v in r["blocks"].items())
        days = f"{r['days']:g} simulated day{'' if r['days'] == 1 else 's'}"
        say(f"fit report ({days}): {verdicts}; wrote {r['path']}")
    say(f"wrote {summary['out']}; run it with: payroute simulate {summary['out']}")


def print_check(result: dict[str, Any]) -> None:
    """``payroute calibrate --check``: each KPI, its day range, the published range and whether it is inside."""
    seeds = result["seeds"]
    t = Table(
        title=f"{result['scenario']}: {result['days']} fresh day(s), seeds {seeds[0]}..{seeds[1]}, "
        f"volume_scale {result['volume_scale']:g}, success_rate routing"
    )
    for name, justify in (("KPI", "left"), ("unit", "left"), ("measured", "right"), ("by day", "right"),
                          ("published", "right"), ("", "left"), ("source", "left")):  # fmt: skip
        t.add_column(name, justify=justify, overflow="fold")

    def fmt(v: float | None, unit: str) -> str:
        if v is None:
            return "-"
        return f"{v:.1%}" if unit == "share" else f"{v:.2f}"

    for r in result["rows"]:
        verdict = {True: ("in", "green"), False: ("OUT", "bold red"), None: ("n/a", "dim")}[r["inside"]]
        t.add_row(
            r["label"], r["unit"], fmt(r["value"], r["unit"]),
            f"{fmt(r['day_min'], r['unit'])}-{fmt(r['day_max'], r['unit'])}",
            f"{fmt(r['low'], r['unit'])}-{fmt(r['high'], r['unit'])}", Text(*verdict), r["source"],
        )  # fmt: skip
    wide_console.print(t)
    outside = result["outside"]
    say = functools.partial(console.print, markup=False, soft_wrap=True)
    say(f"{len(result['rows']) - len(outside)} of {len(result['rows'])} inside their published ranges"
        + (f"; outside: {', '.join(outside)}" if outside else ""))  # fmt: skip
