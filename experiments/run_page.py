"""One HTML page per run: what was trained, how it learned, how it compares, whether it may ship, where it all is.

``payroute run`` writes ``<run>/summary.html`` after its review, and ``payroute evaluate`` after each evaluation
(without a review verdict, which only a review gives). The page is built from the files the run folder already
holds (``run.json``, ``metrics.jsonl``, the evaluation's tables and plots, the review's JSON) and adds no number
of its own:

* the verdict in one sentence: the trained policy against the best heuristic on held-out days (paired 95%
  interval), and the review's verdict;
* the learning curve: the margin per transaction of the training days (the policy explores and trains on them,
  often at reduced volume) per iteration, with the evaluated policies as reference lines (held-out days) and the
  trained policy's own held-out value at the last iteration: the reference lines show where the curve has to
  get, the dot where the final policy got;
* the evaluation table (the best heuristic and the oracle's share of uplift, when the evaluation ran the oracle);
* where everything is: the run folder's files, linked relative to the page.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import pandas as pd

from payroute.envs.baselines.routers import ORACLES
from payroute.experiments.evaluate import TRAINED, Evaluation, best_heuristic
from payroute.experiments.rundir import read_metrics
from payroute.files import atomic_write_text

PAGE = "summary.html"
CURVE_KPI = "kpi/margin_per_tx_usd"

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.verdict { font-size: 1.05em; padding: .6em .9em; border-left: 5px solid #888; background: #f6f6f6; }
.pass { border-color: #2a8a2a; } .fail { border-color: #c0392b; }
table { border-collapse: collapse; font-size: .9em; } td, th { padding: .25em .6em; border-bottom: 1px solid #ddd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } tr.best td { font-weight: 600; }
img { max-width: 100%; }
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _rel(path: Path, page_dir: Path) -> str:
    try:
        return Path(path).resolve().relative_to(page_dir.resolve()).as_posix()
    except ValueError:
        return Path(path).resolve().as_uri()


def learning_curve(metrics: list[dict[str, Any]]) -> pd.DataFrame:
    """Per iteration with a training-day KPI: ``iteration``, ``env_steps``, ``margin_per_tx_usd``."""
    rows = [
        {
            "iteration": r["iteration"],
            "env_steps": r.get("env_steps", math.nan),
            "margin_per_tx_usd": r[CURVE_KPI],
        }
        for r in metrics
        if isinstance(r.get(CURVE_KPI), int | float) and math.isfinite(r[CURVE_KPI])
    ]
    return pd.DataFrame(rows, columns=["iteration", "env_steps", "margin_per_tx_usd"])


def _curve_png(curve: pd.DataFrame, table: pd.DataFrame, scenario: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.2))
    cmap = plt.get_cmap("tab10")
    if not curve.empty:
        ax.plot(curve.env_steps, curve.margin_per_tx_usd, marker="o", lw=2.2, color="black",
                label="training days (the policy exploring)")  # fmt: skip
    x_end = float(curve.env_steps.max()) if not curve.empty else 1.0
    for i, r in enumerate(table.itertuples()):
        if r.policy == TRAINED:
            ax.plot([x_end], [r.margin_per_tx_usd], marker="*", ms=16, color="black", ls="none",
                    label="trained policy, held-out days")  # fmt: skip
            continue
        style = "--" if r.policy in ORACLES else ":"
        ax.axhline(
            r.margin_per_tx_usd, ls=style, lw=1.4, color=cmap(i % 10), label=f"{r.policy}, held-out days"
        )
    ax.set_xlabel("environment steps trained on")
    ax.set_ylabel("margin per transaction ($)")
    ax.set_title(f"learning curve ({scenario}); reference lines: the evaluated policies")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _summary_table(table: pd.DataFrame, best: str | None) -> str:
    head = ("policy", "margin/tx $", "Δ vs reference [95% CI]", "approval", "oracle share", "fraud bps")
    rows = ["<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in table.itertuples():
        share = "—" if r.oracle_share != r.oracle_share else f"{r.oracle_share:.0%}"
        cls = ' class="best"' if r.policy in (TRAINED, best) else ""
        name = f"{r.policy} (best heuristic)" if r.policy == best else r.policy
        rows.append(
            f"<tr{cls}><td>{_e(name)}</td><td class=num>{r.margin_per_tx_usd:.4f}</td>"
            f"<td class=num>{r.margin_diff:+.4f} [{r.margin_diff_low:+.4f}, {r.margin_diff_high:+.4f}]</td>"
            f"<td class=num>{r.approval_rate:.2%}</td><td class=num>{share}</td>"
            f"<td class=num>{r.fraud_loss_bps:.2f}</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def headline(evaluation: Evaluation, scenario: str) -> str:
    """The trained policy against the best heuristic on ``scenario``, in one sentence."""
    table = evaluation.summary[evaluation.summary.scenario == scenario]
    best = best_heuristic(table)
    vs = evaluation.versus
    row = vs[(vs.scenario == scenario) & (vs.versus == best)] if best is not None else vs.iloc[0:0]
    if row.empty:
        return f"no heuristic was evaluated on {scenario}"
    r = row.iloc[0]
    low, high = r.margin_per_tx_usd_low, r.margin_per_tx_usd_high
    word = "beats" if low > 0 else ("loses to" if high < 0 else "does not separate from")
    return (
        f"On {len(evaluation.meta['seeds'])} held-out days of {scenario} the trained policy {word} the best "
        f"heuristic, {best}: {r.margin_per_tx_usd_diff:+.4f} $/tx [{low:+.4f}, {high:+.4f}] (paired 95%)."
    )


def render(
    evaluation: Evaluation,
    record: dict[str, Any],
    review: Any | None = None,
    review_report: Path | None = None,
    bundle: Path | None = None,
) -> str:
    run_dir = Path(evaluation.run_dir)
    meta = evaluation.meta
    scenario = meta["scenarios"][0]
    table = evaluation.summary[evaluation.summary.scenario == scenario]
    lines = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>payroute run: {_e(meta['experiment'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>payroute run: {_e(meta['experiment'])}</h1>",
    ]
    verdicts = [_e(headline(evaluation, scenario))]
    css = "verdict"
    if review is not None:
        word = "PASS" if review.passed else f"FAIL ({len(review.failed)} of {len(review.checks)} checks)"
        css += " pass" if review.passed else " fail"
        link = f" (<a href='{_e(_rel(review_report, run_dir))}'>report</a>)" if review_report else ""
        verdicts.append(f"Review: <b>{word}</b>{link}.")
        if not review.passed:
            failed = "; ".join(f"{c.section} / {c.name}" for c in review.failed[:6])
            verdicts.append(f"Failed: {_e(failed)}{' …' if len(review.failed) > 6 else ''}.")
    else:
        verdicts.append("Review: not run here (<code>payroute review BUNDLE</code>).")
    lines.append(f"<p class='{css}'>" + "<br>".join(verdicts) + "</p>")

    iterations, steps = record.get("iterations"), record.get("env_steps")
    trained = (
        f"{iterations} iterations, {steps:,} environment steps" if isinstance(steps, int) else "unfinished"
    )
    wall = record.get("train_wall_s")
    lines.append(
        f"<p>Trained: {_e(trained)}{f', {wall:.0f} s' if isinstance(wall, int | float) else ''} "
        f"({_e(record.get('stop_reason', record.get('status', '')))}); config hash "
        f"<code>{_e(str(meta['config_hash'])[:12])}</code>. Evaluated on seeds {meta['seeds'][0]}.."
        f"{meta['seeds'][-1]}, never used in training or to choose anything.</p>"
    )
    curve = learning_curve(read_metrics(run_dir))
    lines += [
        "<h2>Learning curve</h2>",
        f"<img alt='learning curve' src='data:image/png;base64,{_curve_png(curve, table, scenario)}'>",
        "<p>The curve is measured on the days the policy trained on, while it explores (and at the training "
        "volume); the lines and the star on held-out evaluation days.</p>",
    ]
    for sc in meta["scenarios"]:
        t = evaluation.summary[evaluation.summary.scenario == sc]
        lines += [f"<h2>Evaluation: {_e(sc)}</h2>", _summary_table(t, best_heuristic(t))]
        if not any(p in ORACLES for p in t.policy):
            lines.append(
                "<p>No oracle in this evaluation (<code>evaluation.oracle: false</code>): no oracle share.</p>"
            )
        for f in evaluation.plots:
            if f.stem.endswith(f"_{sc}"):
                lines.append(f"<p><img alt='{_e(f.stem)}' src='{_e(_rel(f, run_dir))}'></p>")
    where = [
        ("run folder", run_dir),
        ("configuration", run_dir / "config.yaml"),
        ("per-iteration metrics", run_dir / "metrics.jsonl"),
        ("evaluation report", evaluation.out / "report.md"),
        ("evaluation numbers (Parquet)", evaluation.out),
        ("policy bundle", bundle),
        ("review report", review_report),
    ]
    items = [f"<li>{_e(k)}: <a href='{_e(_rel(v, run_dir))}'>{_e(_rel(v, run_dir))}</a></li>"
             for k, v in where if v is not None]  # fmt: skip
    items.append(f"<li>TensorBoard: <code>tensorboard --logdir {_e(run_dir / 'tb')}</code></li>")
    lines += ["<h2>Where everything is</h2>", "<ul>", *items, "</ul>", "</body></html>"]
    return "\n".join(lines)


def write_run_page(
    evaluation: Evaluation,
    record: dict[str, Any],
    review: Any | None = None,
    review_report: Path | None = None,
    bundle: Path | None = None,
) -> Path:
    """Write ``<run>/summary.html`` (atomically) and return its path."""
    path = Path(evaluation.run_dir) / PAGE
    atomic_write_text(path, render(evaluation, record, review, review_report, bundle))
    return path
