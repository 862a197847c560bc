"""The report's section for a price, treasury or fraud-side bundle in the stress worlds
(:mod:`payroute.policies.review.roles`): what ran, a plot of each gate's paired interval against the best
reference per stress scenario (and defense), and the table of every comparison.

Names from files are HTML-escaped and plot labels drawn with ``parse_math=False``, as in the rest of the report.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

import numpy as np

from payroute.policies.review.report_html import evidence_id
from payroute.policies.review.roles import GATES, REPORTED

if TYPE_CHECKING:
    from payroute.policies.review import ReviewResult
    from payroute.policies.review.roles import RoleStressResult

TITLES = {"price": "Price", "treasury": "Treasury", "fraud": "Fraud-side bundle"}
LABELS = {
    "margin_per_tx_usd": "margin / tx ($)",
    "approval_rate": "approval",
    "abandon_rate": "abandonment",
    "revenue_usd": "revenue ($)",
    "treasury_cost_per_tx_usd": "treasury cost / tx ($)",
    "liquidity_cost_per_tx_usd": "liquidity cost / tx ($)",
    "failed_payouts_per_1k": "failed payouts / 1,000",
    "delay_cost_per_tx_usd": "payout delay cost / tx ($)",
    "fraud_loss_per_tx_usd": "fraud loss / genuine payment ($)",
    "fraud_loss_usd": "fraud loss ($ / run)",
    "fraudster_net_usd": "fraudster net ($ / run)",
    "fraud_attempts": "attempts / run",
}


def render_roles_section(result: ReviewResult) -> list[str]:
    """The section, or nothing when the bundle is a route or risk bundle (or the stress suite did not run)."""
    roles = result.roles
    if roles is None:
        return []
    e = html.escape
    cfg = roles.config
    refs = ", ".join(e(r) for r in roles.gates.baselines) + (" and the champion" if result.champion else "")
    against = ""
    if roles.kind == "fraud":
        against = f", each against the shipped defenses {', '.join(e(d) for d in roles.gates.defenses)}"
    out = [
        f"<h2 id='{evidence_id('stress')}'>{TITLES[roles.kind]} in the stress worlds</h2>",
        f"<p>The bundle ({e(roles.candidate)}) and its references ({refs}) ran on the same seeds "
        f"({cfg.seeds} per scenario unless stress.seeds_by_scenario says more; {cfg.days:g} day(s) each, volume "
        f"{cfg.volume_multiplier:g}× each scenario's own) on {len(cfg.scenarios)} scenarios{against}. "
        f"Differences are bundle minus the best reference, paired by seed, with {cfg.confidence:.0%} Student-t "
        "intervals; the dashed red line is each gate.</p>",
    ]
    for group, err in roles.errors.items():
        out.append(f"<p><b>{e(group)}</b>: the bundle could not finish a run: {e(err)}</p>")
    if not roles.comparisons.empty:
        out.append(_img(_plot(roles), f"{roles.kind} gates per stress scenario"))
        out.append(_table(roles))
    return out


def _plot(roles: RoleStressResult) -> Any:
    from matplotlib.figure import Figure

    gates = [g for g in GATES[roles.kind] if getattr(roles.gates, g.threshold_field) is not None] or list(
        GATES[roles.kind]
    )
    best = roles.comparisons[roles.comparisons.is_best]
    fig = Figure(figsize=(4.2 * len(gates), 0.45 * len(best) + 1.6))
    axes = fig.subplots(1, len(gates), squeeze=False)[0]
    y = np.arange(len(best))
    for ax, gate in zip(axes, gates, strict=True):
        m = gate.metric
        mean, low, high = (
            best[f"{m}_diff"].to_numpy(),
            best[f"{m}_low"].to_numpy(),
            best[f"{m}_high"].to_numpy(),
        )
        ax.errorbar(mean, y, xerr=[mean - low, high - mean], fmt="o", color="#1f4e9c", capsize=3)
        thr = getattr(roles.gates, gate.threshold_field)
        if thr is not None:
            ax.axvline(thr, color="#b42323", linestyle="--", linewidth=1)
        ax.axvline(0, color="#9ca3af", linewidth=0.8)
        ax.set_yticks(y)
        ax.set_yticklabels([f"{g} vs {r}" for g, r in zip(best.group, best.reference, strict=True)] if ax is axes[0]
                           else [""] * len(y))  # fmt: skip
        for label in ax.get_yticklabels():
            label.set_parse_math(False)
        unit = LABELS.get(m, m)
        ax.set_title(gate.label if unit == gate.label else f"{gate.label}: {unit}", fontsize=9)
        ax.invert_yaxis()
    fig.tight_layout()
    return fig


def _table(roles: RoleStressResult) -> str:
    e = html.escape
    metrics = [m for m in REPORTED[roles.kind] if f"{m}_diff" in roles.comparisons]
    head = "<th>stress world</th><th>reference</th>" + "".join(
        f"<th>{e(LABELS.get(m, m))}: bundle / reference, Δ [interval]</th>" for m in metrics
    )
    body = ""
    for row in roles.comparisons.itertuples():
        cells = [f"<td>{e(str(row.group))}</td>", f"<td>{'<b>' if row.is_best else ''}{e(str(row.reference))}"
                 f"{' (best)</b>' if row.is_best else ''}</td>"]  # fmt: skip
        for m in metrics:
            c, r = getattr(row, f"candidate_{m}"), getattr(row, f"reference_{m}")
            d, lo, hi = getattr(row, f"{m}_diff"), getattr(row, f"{m}_low"), getattr(row, f"{m}_high")
            cells.append(f"<td class='num'>{c:.4g} / {r:.4g}<br>{d:+.4g} [{lo:+.4g}, {hi:+.4g}]</td>")
        body += "<tr>" + "".join(cells) + "</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(fig: Any, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


__all__ = ["render_roles_section"]
