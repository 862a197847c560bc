"""The report's stress-suite section: the paired intervals of every scenario, the timings that ran, and the KPIs.

Each scenario has its own anchor (:func:`~payroute.policies.review.report_html.evidence_id` of ``stress`` and
the scenario), which the failed stress gates link to. Nothing grows with the seeds but the timing counts: the
intervals are one row per scenario and reference, the timings are counted per weekday and start time (the
per-seed list is in the JSON), so the page of a 200-seed review is the size of a 5-seed one.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from payroute.envs.scenarios.timings import WEEKDAYS
from payroute.policies.review.report_html import esc, evidence_id, figure, img, table

if TYPE_CHECKING:
    from payroute.policies.review import ReviewResult
    from payroute.policies.review.stress import StressConfig


def _more_seeds(cfg: StressConfig) -> str:
    """'(fraud_surge: 20) ' for the scenarios with their own number of seeds."""
    if not cfg.seeds_by_scenario:
        return ""
    return "(" + ", ".join(f"{esc(k)}: {v}" for k, v in cfg.seeds_by_scenario.items()) + ") "


def _counts(values: list[str], order: tuple[str, ...] = ()) -> str:
    rank = {v: i for i, v in enumerate(order)}
    counts = sorted(Counter(values).items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))
    return " · ".join(f"{esc(k)} {n}" for k, n in counts)


def timings_summary(timings: list[dict[str, Any]], scenario: str) -> str:
    """In words, the timings ``scenario`` ran on: dates per weekday and incident starts, or the fixed calendar."""
    rows = [t for t in timings if t["scenario"] == scenario]
    if not rows:
        return ""
    dates = sorted({t["start_date"] for t in rows})
    firsts = [t["first_incident"] for t in rows if t.get("first_incident")]
    if not any(t["drawn"] for t in rows):
        return f"Timing: the scenario's own, {esc(dates[0])} ({esc(rows[0]['weekday'])})" + (
            f", {esc(rows[0]['incidents'][0])}." if firsts else "."
        )
    span = (
        f"{esc(dates[0])} (the scenario's own date)"
        if len(dates) == 1
        else f"{esc(dates[0])} to {esc(dates[-1])}"
    )
    text = (
        f"Timing drawn per seed: {len(rows)} seeds on {len(dates)} date(s), {span}; by weekday "
        f"{_counts([t['weekday'] for t in rows], WEEKDAYS)}"
    )
    if firsts:
        multi_day = any(f["day"] for f in firsts)
        starts = [f"day {f['day']} {f['at']}" if multi_day else f["at"] for f in firsts]
        text += f"; {esc(firsts[0]['route'])} {esc(firsts[0]['state'])} from {_counts(starts)}"
    return text + "."


def stress_section(result: ReviewResult) -> list[str]:
    stress = result.stress
    if stress is None and getattr(result, "roles", None) is not None:
        return []  # a price, treasury or fraud bundle: its stress suite is the roles section
    out = [f"<h2 id='{evidence_id('stress')}'>Stress suite</h2>"]
    if stress is None:
        return [*out, "<p class='muted'>Not run.</p>"]
    cfg = stress.config
    out.append(
        f"<p>The bundle ({esc(stress.candidate)}) and every reference ran on the same {cfg.seeds} seeds "
        f"{_more_seeds(cfg)}({cfg.days:g} day(s) each, volume {cfg.volume_multiplier:g}× each scenario's own) on "
        f"{len(cfg.scenarios)} scenarios"
        + (
            f", each layered on {esc(Path(cfg.base).name)} (its changes scaled to that world: docs/review.md). "
            if cfg.base is not None
            else ". "
        )
        + (
            "Each seed's day and incident times were drawn from the seed, the same for every policy on it (counted "
            "under each scenario). "
            if cfg.timings.draw
            else "Every seed ran each scenario's own calendar (stress.timings.draw: false). "
        )
        + f"Differences are bundle minus reference, paired by seed, with {cfg.confidence:.0%} "
        "Student-t intervals; the dashed red line is the gate against the best reference (drawn bold).</p>"
    )
    comp = stress.comparisons
    if len(comp):
        out.append(img(_stress_plot(result), "paired differences per stress scenario"))
    for scenario in cfg.scenarios:
        out.append(f"<h3 id='{evidence_id('stress', scenario)}'>{esc(scenario)}</h3>")
        words = timings_summary(stress.timings, scenario)
        if words:
            out.append(f"<p class='muted'>{words}</p>")
        if scenario in stress.errors:
            out.append(f"<p class='st fail'>{esc(scenario)}: {esc(stress.errors[scenario])}</p>")
            continue
        rows = [
            [
                r.reference + (" (best)" if r.is_best else ""),
                f"{r.candidate_margin_per_tx_usd:.4f}",
                f"{r.reference_margin_per_tx_usd:.4f}",
                f"{r.margin_diff:+.4f} [{r.margin_diff_low:+.4f}, {r.margin_diff_high:+.4f}]",
                f"{r.approval_diff * 100:+.2f} [{r.approval_diff_low * 100:+.2f}, {r.approval_diff_high * 100:+.2f}]",
                "" if not np.isfinite(r.oracle_share) else f"{r.oracle_share:.0%}",
                int(r.seeds),
            ]
            for r in comp[comp.scenario == scenario].itertuples()
        ] if len(comp) else []  # fmt: skip
        out.append(
            table(
                [
                    "reference",
                    "bundle margin/tx $",
                    "reference margin/tx $",
                    "Δ margin/tx $ [CI]",
                    "Δ approval pt [CI]",
                    "oracle share",
                    "seeds",
                ],
                rows,
            )  # fmt: skip
        )
    means = stress.runs.groupby(["scenario", "policy"], sort=False)[
        ["margin_per_tx_usd", "approval_rate", "route_cost_bps", "fraud_loss_bps", "sla_misses"]
    ].mean()
    rows = [
        [s, p, f"{m.margin_per_tx_usd:.4f}", f"{m.approval_rate:.2%}", f"{m.route_cost_bps:.1f}",
         f"{m.fraud_loss_bps:.2f}", f"{m.sla_misses:.0f}"]
        for (s, p), m in means.iterrows()
    ]  # fmt: skip
    out += [
        "<details><summary>KPI means per scenario and policy</summary>",
        table(
            ["scenario", "policy", "margin/tx $", "approval", "route cost bps", "fraud bps", "SLA misses"],
            rows,
        ),
        "</details>",
    ]
    return out


def _stress_plot(result: ReviewResult) -> Any:
    stress = result.stress
    comp = stress.comparisons
    scenarios = list(dict.fromkeys(comp.scenario))
    refs = list(dict.fromkeys(comp.reference))
    gate_m = result.config.stress.min_margin_diff_vs_best_usd
    gate_a = result.config.stress.min_approval_diff_vs_best
    fig = figure(11, 0.9 + 0.55 * len(scenarios) * max(len(refs), 1) ** 0.5 * 1.3)
    axes = fig.subplots(1, 2, sharey=True)
    ticks, labels = [], []
    y = 0.0
    for s in scenarios:
        rows = comp[comp.scenario == s]
        for r in rows.itertuples():
            for ax, (m, lo, hi) in zip(
                axes,
                ((r.margin_diff, r.margin_diff_low, r.margin_diff_high),
                 (r.approval_diff * 100, r.approval_diff_low * 100, r.approval_diff_high * 100)),
                strict=True,
            ):  # fmt: skip
                if lo >= 0:
                    color = "#17612c"
                elif hi < 0:
                    color = "#b42323"
                else:
                    color = "#6b7280"
                ax.errorbar(m, y, xerr=[[m - lo], [hi - m]], fmt="o", color=color, ms=4, capsize=2,
                            mfc="white" if not r.is_best else color, lw=2.2 if r.is_best else 1.0)  # fmt: skip
            ticks.append(y)
            labels.append(f"{s} · {r.reference}" + (" (best)" if r.is_best else ""))
            y -= 1
        y -= 0.6
    axes[0].set_yticks(ticks, labels, fontsize=7, parse_math=False)  # names from files: "$" is not TeX
    for ax, title, gate in ((axes[0], "Δ margin per transaction, USD (bundle − reference)", gate_m),
                            (axes[1], "Δ approval rate, points", None if gate_a is None else gate_a * 100)):  # fmt: skip
        ax.axvline(0, color="black", lw=0.8)
        if gate is not None:
            ax.axvline(gate, color="#b42323", ls="--", lw=1)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    return fig


__all__ = ["stress_section", "timings_summary"]
