"""The review report: one self-contained HTML file (plots embedded as base64 PNG, no external assets).

It opens with the verdict and, when the bundle failed, every failed check with the reason in words; then the
table of all checks; then one section each for integrity (the model card), the stress suite (paired intervals
against every reference, per scenario), off-policy evaluation (estimates with intervals, weight diagnostics),
and the constraint checks (masked actions by context source, malformed inputs case by case, latency); and the
review config that produced it. Plots are drawn with matplotlib's Agg canvas, so no display is needed.

Everything that came from a file (bundle and card fields, scenario, route and policy names, messages quoting
them) is HTML-escaped where it is written into the page, and plot labels built from names are drawn with
``parse_math=False``, so ``<script>`` or ``$\\frac$`` in a name is shown as written.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from payroute.files import atomic_write_text
from payroute.policies.review.checks import PASS, WARN, Check
from payroute.policies.review.report_statistics import statistics_section

if TYPE_CHECKING:
    from payroute.policies.review import ReviewResult
    from payroute.policies.review.stress import StressConfig

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2330;
line-height:1.45;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #e3e6ec;padding-bottom:.2rem;margin-top:2.2rem}
.verdict{font-size:1.6rem;font-weight:700;padding:.8rem 1.2rem;border-radius:8px;margin:1rem 0}
.verdict.pass{background:#e3f6e8;color:#17612c;border:1px solid #9fd8ad}
.verdict.fail{background:#fde8e8;color:#8c1d1d;border:1px solid #f1a7a7}
table{border-collapse:collapse;width:100%;margin:.6rem 0;font-size:.92rem}
th,td{border-bottom:1px solid #e3e6ec;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f6f9}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.st{font-weight:700;white-space:nowrap}.st.pass{color:#17612c}.st.fail{color:#b42323}.st.notrun{color:#6b7280}.st.warn{color:#a16207}
ul.failed li{margin:.35rem 0}.muted{color:#6b7280}img{max-width:100%;margin:.5rem 0}
pre{background:#f5f6f9;padding:.8rem;border-radius:6px;overflow-x:auto;font-size:.85rem}
"""


def render_html(result: ReviewResult) -> str:
    """The report as one HTML string."""
    e = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>payroute review: {e(result.bundle)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Policy review: {e(result.bundle)}</h1>",
        f"<p class='muted'>{e(result.card.get('decision_kind', ''))} policy · scenario {e(result.scenario)}"
        + (f" · champion {e(result.champion)}" if result.champion else "")
        + (f" · logs {e(Path(result.logs).name)}" if result.logs else "")
        + f" · reviewed {e(result.started)} in {result.wall_s:.0f} s · payroute {e(result.versions.get('payroute', '?'))}</p>",
    ]
    n_pass = sum(c.status == PASS for c in result.checks)
    n_fail = len(result.failed)
    n_warn = sum(c.status == WARN for c in result.checks)
    n_skip = len(result.checks) - n_pass - n_fail - n_warn
    if result.passed:
        parts.append(
            f"<div class='verdict pass'>PASS: all {n_pass} checks passed"
            + (f" ({n_skip} not run)" if n_skip else "")
            + (f" ({n_warn} reported as warnings)" if n_warn else "")
            + " · exit code 0</div>"
        )
    else:
        parts.append(
            f"<div class='verdict fail'>FAIL: {n_fail} of {n_pass + n_fail} checks failed · exit code 1</div>"
            "<h3>Why it failed</h3><ul class='failed'>"
            + "".join(f"<li><b>{e(c.section)} / {e(c.name)}</b>: {e(c.summary)}</li>" for c in result.failed)
            + "</ul>"
        )
    parts += ["<h2>All checks</h2>", _checks_table(result.checks)]
    parts += _integrity_section(result)
    parts += _stress_section(result)
    parts += _ope_section(result)
    parts += _constraints_section(result)
    parts += statistics_section(result)  # family-wise gates, OPE bound and tail, covariate shift
    parts += [
        "<h2>Review config</h2><pre>",
        e(yaml.safe_dump(result.config.model_dump(mode="json"), sort_keys=False)),
        "</pre></body></html>",
    ]
    return "\n".join(parts)


def write_html(result: ReviewResult, path: str | Path) -> None:
    """The report at ``path``, written whole or not at all (:mod:`payroute.files`)."""
    atomic_write_text(path, render_html(result))


# ---------------------------------------------------------------------- pieces
def _status_cell(status: str) -> str:
    css = {"pass": "pass", "fail": "fail", "warn": "warn"}.get(status, "notrun")
    return f"<td class='st {css}'>{html.escape(status.upper())}</td>"


def _num(x: float | None, fmt: str = "{:.4g}") -> str:
    return "" if x is None or not np.isfinite(x) else fmt.format(x)


def _checks_table(checks: list[Check]) -> str:
    rows = "".join(
        f"<tr>{_status_cell(c.status)}<td>{html.escape(c.section)}</td><td>{html.escape(c.name)}</td>"
        f"<td class='num'>{_num(c.value)}</td><td class='num'>{_num(c.threshold)}</td>"
        f"<td>{html.escape(c.summary)}</td></tr>"
        for c in checks
    )
    return (
        "<table><tr><th>result</th><th>section</th><th>check</th><th>measured</th><th>threshold</th>"
        f"<th>what was found</th></tr>{rows}</table>"
    )


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = ""
    for row in rows:
        cells = []
        for v in row:
            if isinstance(v, float | np.floating):
                cells.append(f"<td class='num'>{_num(float(v))}</td>")
            else:
                cells.append(f"<td>{html.escape(str(v))}</td>")
        body += "<tr>" + "".join(cells) + "</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(fig: Any, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # Agg canvas by default: no display, no pyplot state

    return Figure(figsize=(width, height))


def _integrity_section(result: ReviewResult) -> list[str]:
    card = result.card
    scen = card.get("scenario") or {}
    exp = card.get("experiment") or {}
    sig = result.signature or {}
    claims = sig.get("claims", "unsigned claims (nobody vouches for them)")
    rows = [
        ["signature", sig.get("says", "unsigned")],
        ["decision kind", card.get("decision_kind", "")],
        ["agent id", card.get("agent_id") or ""],
        ["observation", f"{len(card.get('observation', []))} features"],
        ["actions", ", ".join(card.get("actions", []))],
        [
            "scenario",
            f"{scen.get('name', '')} (sha256 {str(scen.get('sha256', ''))[:12]})" if scen else "not recorded",
        ],
        [
            "experiment",
            f"{exp.get('name', '')} (sha256 {str(exp.get('sha256', ''))[:12]})" if exp else "not recorded",
        ],
        ["seeds", str(card.get("seeds") or "not recorded")],
        ["git commit", card.get("git_commit") or "not recorded"],
        ["versions", ", ".join(f"{k} {v}" for k, v in (card.get("versions") or {}).items())],
        ["reward", str(card.get("reward") or "not recorded")],
        [f"training: {claims}", str(card.get("training") or "not recorded")],
        [f"evaluation on the card: {claims}", str(card.get("evaluation") or "not recorded")],
    ]
    note = (
        "<p class='muted'>Everything the card records (training, evaluation, versions, configs) is what the "
        f"bundle's maker wrote: {html.escape(claims)}. The review's own findings are the checks above.</p>"
    )
    return ["<h2>Integrity and model card</h2>", note, _table(["field", "value"], rows)]


def _more_seeds(cfg: StressConfig) -> str:
    """'(fraud_surge: 20) ' for the scenarios with their own number of seeds."""
    if not cfg.seeds_by_scenario:
        return ""
    return "(" + ", ".join(f"{html.escape(k)}: {v}" for k, v in cfg.seeds_by_scenario.items()) + ") "


def _stress_section(result: ReviewResult) -> list[str]:
    stress = result.stress
    out = ["<h2>Stress suite</h2>"]
    if stress is None:
        return [*out, "<p class='muted'>Not run.</p>"]
    cfg = stress.config
    out.append(
        f"<p>The bundle ({html.escape(stress.candidate)}) and every reference ran on the same {cfg.seeds} seeds "
        f"{_more_seeds(cfg)}({cfg.days:g} day(s) each, volume {cfg.volume_multiplier:g}× each scenario's own) on "
        f"{len(cfg.scenarios)} scenarios. Differences are bundle minus reference, paired by seed, with "
        f"{cfg.confidence:.0%} Student-t intervals; the dashed red line is the gate against the best reference "
        "(drawn bold).</p>"
    )
    comp = stress.comparisons
    if len(comp):
        out.append(_img(_stress_plot(result), "paired differences per stress scenario"))
        rows = [
            [
                r.scenario,
                r.reference + (" (best)" if r.is_best else ""),
                f"{r.candidate_margin_per_tx_usd:.4f}",
                f"{r.reference_margin_per_tx_usd:.4f}",
                f"{r.margin_diff:+.4f} [{r.margin_diff_low:+.4f}, {r.margin_diff_high:+.4f}]",
                f"{r.approval_diff * 100:+.2f} [{r.approval_diff_low * 100:+.2f}, {r.approval_diff_high * 100:+.2f}]",
                "" if not np.isfinite(r.oracle_share) else f"{r.oracle_share:.0%}",
            ]
            for r in comp.itertuples()
        ]
        out.append(
            _table(
                [
                    "scenario",
                    "reference",
                    "bundle margin/tx $",
                    "reference margin/tx $",
                    "Δ margin/tx $ [CI]",
                    "Δ approval pt [CI]",
                    "oracle share",
                ],
                rows,
            )  # fmt: skip
        )
    for scenario, err in stress.errors.items():
        out.append(f"<p class='st fail'>{html.escape(scenario)}: {html.escape(err)}</p>")
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
        _table(
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
    fig = _figure(11, 0.9 + 0.55 * len(scenarios) * max(len(refs), 1) ** 0.5 * 1.3)
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


def _ope_section(result: ReviewResult) -> list[str]:
    out = ["<h2>Off-policy evaluation</h2>"]
    ope = result.ope
    if ope is None:
        return [*out, "<p class='muted'>Not run: no logs were given (<code>--logs FILE.parquet</code>).</p>"]
    d = ope.diagnostics
    out.append(
        f"<p>Value per logged decision in cents (the payment's margin), estimated for the bundle from "
        f"{d.n:,} logged routing decisions, with {ope.confidence:.0%} bootstrap intervals ({ope.n_bootstrap} "
        f"resamples). The logging policy's own mean is the dashed line. Reward model: {ope.reward_model}"
        + (
            " (the log says which payments were fraud and which were sent; fraud losses are shared across "
            "routes of the same loss class)"
            if ope.reward_model == "fraud-aware ridge"
            else ""
        )
        + ".</p>"
    )
    out.append(_img(_ope_plot(result), "off-policy estimates"))
    rows = [
        [name, f"{e.value:.2f}", f"[{e.ci_low:.2f}, {e.ci_high:.2f}]", f"{e.std_error:.2f}"]
        for name, e in ope.estimates.items()
    ]
    lm = ope.logged_mean
    rows.append(
        ["logged mean", f"{lm.value:.2f}", f"[{lm.ci_low:.2f}, {lm.ci_high:.2f}]", f"{lm.std_error:.2f}"]
    )
    out.append(_table(["estimator", "cents/decision", "interval", "std error"], rows))
    out.append(
        _table(
            ["diagnostic", "value"],
            [
                ["smallest propensity", f"{d.min_propensity:.4f}"],
                ["largest weight", f"{d.max_weight:.2f}"],
                ["mean weight", f"{d.mean_weight:.3f}"],
                ["effective sample size", f"{d.effective_sample_size:,.0f} ({d.effective_sample_share:.1%})"],
                [
                    "clipped weights",
                    f"{d.clipped_share:.2%}" + ("" if d.clip_weight is None else f" at {d.clip_weight:g}"),
                ],
                ["switch-DR model-only share", f"{d.switch_model_share:.2%} (τ = {d.switch_tau:g})"],
            ],
        )
    )
    return out


def _ope_plot(result: ReviewResult) -> Any:
    ope = result.ope
    fig = _figure(11, 3.2)
    ax, hx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1]})
    names = list(ope.estimates)
    for i, name in enumerate(names):
        e = ope.estimates[name]
        color = "#1f5fbf" if name == result.config.ope.estimator else "#6b7280"
        if np.isfinite(e.ci_low):
            ax.errorbar(
                e.value,
                -i,
                xerr=[[e.value - e.ci_low], [e.ci_high - e.value]],
                fmt="o",
                color=color,
                capsize=3,
            )
        else:
            ax.plot(e.value, -i, "o", color=color)
    ax.axvline(ope.logged_mean.value, color="black", ls="--", lw=1)
    ax.set_yticks([-i for i in range(len(names))], names)
    ax.set_title("estimated value, cents per decision", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    w = result.ope_weights
    if w is not None and len(w):
        hx.hist(w, bins=50, color="#1f5fbf", log=True)
        hx.set_title("importance weights π(a|x)/μ(a|x)", fontsize=9)
    return fig


def _constraints_section(result: ReviewResult) -> list[str]:
    out = ["<h2>Constraint checks</h2>"]
    cons = result.constraints
    if cons is None:
        return [*out, "<p class='muted'>Not run.</p>"]
    by_name = {c.name: c for c in cons.checks}
    masked = by_name.get("masked_actions")
    if masked is not None and masked.details.get("sources"):
        rows = [
            [
                s,
                f"{d['contexts']:,}",
                f"{d['violations']:,}",
                f"{d['rate']:.2%}",
                f"{d['max_masked_probability']:.2g}",
            ]
            for s, d in masked.details["sources"].items()
        ]
        out += [
            "<h3>Masked actions</h3>",
            _table(["contexts", "count", "violations", "rate", "max masked prob."], rows),
        ]
    malformed = by_name.get("malformed_inputs")
    if malformed is not None:
        rows = [
            [c["case"], c["expected"], c["got"], "ok" if c["ok"] else "FAIL"]
            for c in malformed.details["cases"]
        ]
        out += [
            "<h3>Malformed inputs</h3>",
            "<p>Documented behaviour (policies/bundle/runtime.py): NaN, infinities, wrong lengths and masks allowing no "
            "action are refused with a clear error; finite values outside the declared ranges are passed to the "
            "network and must give an allowed action.</p>",
            _table(["input", "expected", "got", ""], rows),
        ]
    caps = by_name.get("action_caps")
    if caps is not None:
        out += ["<h3>Action caps</h3>", f"<p>{html.escape(caps.summary)}</p>"]
    lat = by_name.get("latency")
    if lat is not None and len(cons.latency_ms):
        fig = _figure(8, 2.6)
        ax = fig.subplots()
        t = cons.latency_ms
        ax.hist(np.minimum(t, np.percentile(t, 99.9)), bins=60, color="#1f5fbf")
        ax.axvline(lat.details["p99_ms"], color="black", lw=1, label=f"p99 {lat.details['p99_ms']:.3f} ms")
        ax.axvline(lat.threshold, color="#b42323", ls="--", lw=1, label=f"budget {lat.threshold:g} ms")
        ax.set_xlabel("milliseconds per decision")
        ax.legend(fontsize=8)
        out += ["<h3>Latency</h3>", f"<p>{html.escape(lat.summary)}</p>", _img(fig, "latency histogram")]
    return out


__all__ = ["render_html", "write_html"]
