"""The shadow replay's section of the review report (:mod:`payroute.policies.review.shadow`).

Agreement with the logged decisions (overall, by segment, instrument, logged route and hour), the flow of
traffic between routes as a matrix plot and a table, the routes that gain and lose traffic, the largest-value
disagreements with their context, and the estimated difference (bundle - logged) with its interval. Every name
that came from a file is HTML-escaped; plot labels are drawn with ``parse_math=False``.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

import numpy as np

from payroute.policies.review.report_html import evidence_id

if TYPE_CHECKING:
    from payroute.policies.review.shadow import ShadowResult

_BY_TITLES = {
    "segment": "payer segment",
    "instrument": "instrument",
    "logged_route": "logged route",
    "hour": "hour of day",
}


def shadow_section(shadow: ShadowResult | None) -> list[str]:
    """The report's HTML for the shadow replay (a 'not run' line without ``--shadow``)."""
    out = [f"<h2 id='{evidence_id('shadow')}'>Shadow replay</h2>"]
    if shadow is None:
        return [*out, "<p class='muted'>Not run: no log was given (<code>--shadow LOG.parquet</code>).</p>"]
    e = html.escape
    d = shadow.difference[shadow.estimator]
    out.append(
        f"<p>The bundle was shown the observation and eligible routes of every one of {shadow.n:,} routing "
        f"decisions in {e(shadow.log)} and took its greedy route. It takes the logged route on "
        f"<b>{shadow.agreement:.1%}</b> of them ({int(shadow.agree.sum()):,}). "
        f"{e(shadow.estimator.upper())} estimates what routing them its way would have been worth at "
        f"<b>{d['value']:+.2f} cents per decision</b> against the logged {shadow.logged_mean:.2f} "
        f"({shadow.confidence:.0%} paired bootstrap interval [{_f(d['ci_low'])}, {_f(d['ci_high'])}], "
        f"{shadow.n_bootstrap} resamples). Values of single decisions are the reward model's ({e(shadow.reward_model)}) "
        "estimated margin of the shadow route minus the logged one.</p>"
    )
    out.append(
        _img(_plot(shadow), "shadow replay: traffic from logged route to shadow route, agreement by hour")
    )
    rows = [[name, _f(v["value"]), f"[{_f(v['ci_low'])}, {_f(v['ci_high'])}]", _f(v["std_error"])]
            for name, v in shadow.difference.items()]  # fmt: skip
    out += ["<h3>Estimated difference (bundle − logged), cents per decision</h3>",
            _table(["estimator", "difference", "interval", "std error"], rows)]  # fmt: skip
    out.append("<h3>Where the routes move</h3>")
    rows = [[r["route"], f"{r['logged']:,}", f"{r['shadow']:,}", f"{r['moved_in']:,}", f"{r['moved_out']:,}",
             f"{r['net']:+,}"] for r in shadow.routes]  # fmt: skip
    out.append(_table(["route", "logged", "shadow", "moved in", "moved out", "net"], rows))
    moved = sorted((f for f in shadow.flow if f["logged"] != f["shadow"]), key=lambda f: -f["decisions"])
    rows = [[f["logged"], f["shadow"], f"{f['decisions']:,}", f"{f['amount_usd']:,.2f}",
             f"{f['value_diff_cents']:+,.0f}"] for f in moved]  # fmt: skip
    out += [
        "<details><summary>Flow table: every (logged → shadow) pair that differs</summary>",
        _table(["logged route", "shadow route", "decisions", "amount $", "estimated Δ value, cents"], rows),
        "</details>",
    ]
    out.append("<h3>Agreement by context</h3>")
    for by, title in _BY_TITLES.items():
        rows = [[str(g["value"]), f"{g['decisions']:,}", f"{g['agreement']:.1%}",
                 f"{g['value_diff_cents_per_decision']:+.2f}"] for g in shadow.by.get(by, [])]  # fmt: skip
        table = _table([title, "decisions", "agreement", "estimated Δ cents/decision"], rows)
        out.append(table if by != "hour" else f"<details><summary>by hour of day</summary>{table}</details>")
    out.append("<h3>Largest-value disagreements</h3>")
    out.append(
        "<p class='muted'>Ranked by the size of the estimated value difference. An estimate for a route the log "
        "rarely took rests on few decisions (the column says how many): read it as a lead to check, not a fact.</p>"
    )
    if not shadow.largest:
        out.append("<p class='muted'>None: the bundle takes the logged route on every decision.</p>")
    else:
        header = ["tx", "hour", "amount $", "segment", "instrument", "risk", "fraud", "logged", "shadow",
                  "shadow route's logged decisions", "propensity", "realised ¢", "estimated Δ ¢"]  # fmt: skip
        rows = [[str(x["tx_id"]), f"{x['hour']:02d}", f"{x['amount_usd']:,.2f}", x["segment"], x["instrument"],
                 f"{x['risk_score']:.2f}", "" if x["is_fraud"] is None else ("yes" if x["is_fraud"] else "no"),
                 x["logged_route"], x["shadow_route"], f"{x['shadow_route_logged_decisions']:,}",
                 f"{x['propensity']:.3f}", f"{x['reward_cents']:+,.0f}", f"{x['value_diff_cents']:+,.1f}"]
                for x in shadow.largest]  # fmt: skip
        out.append(_table(header, rows))
    return out


def _f(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:+.2f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(fig: Any, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def _plot(shadow: ShadowResult) -> Any:
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure  # Agg canvas: no display, no pyplot state

    names = shadow.route_names
    k = len(names)
    counts = np.zeros((k, k))
    index = {n: i for i, n in enumerate(names)}
    for f in shadow.flow:
        counts[index[f["logged"]], index[f["shadow"]]] = f["decisions"]
    fig = Figure(figsize=(11, 0.9 + 0.32 * max(k, 8)))
    ax, hx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    shown = np.where(counts > 0, counts, np.nan)
    image = ax.imshow(shown, cmap="Blues", norm=LogNorm(vmin=1, vmax=max(counts.max(), 1)))
    dark = np.sqrt(max(counts.max(), 1))  # cells darker than this get white text
    for i, j in zip(*np.nonzero(counts), strict=True):
        color = "white" if counts[i, j] > dark else ("#b42323" if i != j else "black")
        ax.text(j, i, f"{int(counts[i, j]):,}", ha="center", va="center", fontsize=6, color=color,
                fontweight="bold" if i != j else "normal")  # fmt: skip
    ax.plot([-0.5, k - 0.5], [-0.5, k - 0.5], color="#6b7280", lw=0.6, ls=":")  # the diagonal: agreement
    ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=7, parse_math=False)
    ax.set_yticks(range(k), names, fontsize=7, parse_math=False)
    ax.set_xlabel("shadow route (the bundle)", fontsize=8)
    ax.set_ylabel("logged route", fontsize=8)
    ax.set_title("decisions: logged → shadow route (off the dotted diagonal: moved)", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.7)
    hours = shadow.by.get("hour", [])
    if hours:
        hx.bar([h["value"] for h in hours], [h["agreement"] * 100 for h in hours], color="#1f5fbf")
        hx.axhline(
            shadow.agreement * 100, color="black", ls="--", lw=1, label=f"overall {shadow.agreement:.1%}"
        )
        hx.set_xlabel("hour of day (arrival)", fontsize=8)
        hx.set_ylim(0, 100)
        hx.legend(fontsize=8)
    hx.set_title("agreement with the logged route, %", fontsize=9)
    return fig


__all__ = ["shadow_section"]
