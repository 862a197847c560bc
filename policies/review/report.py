"""The review report: one self-contained HTML file (plots embedded as base64 PNG, no external assets).

A person reads it top-down, so it opens with what a committee decides on: the verdict, then three facts (what
the bundle decides and what it was trained on; the worst gate and its margin; whether the failures are *width*
failures, which more seeds could turn, or real ones), then the failed gates, each linked to its evidence further
down, then the table of every check. The sections follow in the order of :data:`SECTIONS`: the model card (its
training and evaluation as tables and plots), the stress suite (per scenario, with the timings that ran),
off-policy evaluation, the constraint checks; the review config closes the page.

Adding a section: write ``def my_section(result) -> list[str]`` in its own module (build it from
:mod:`~payroute.policies.review.report_html`), give its ``<h2>`` the id ``evidence_id("<check section>")`` and
the evidence of a check the id ``evidence_id("<check section>", "<check name>")``, and add it to
:data:`SECTIONS`: one line. A failed check links to the first of ``evidence_id(section, name)``,
``evidence_id(section, <name after its last ': '>)`` and ``evidence_id(section)`` that the page has (the stress
gates "margin vs best: fraud_surge" link to the fraud_surge scenario), else to its row in the checks table.

Everything that came from a file (bundle and card fields, scenario, route and policy names, messages quoting
them) is HTML-escaped where it is written into the page, and plot labels built from names are drawn with
``parse_math=False``, so ``<script>`` or ``$\\frac$`` in a name is shown as written.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from payroute.files import atomic_write_text
from payroute.policies.review.card import trained_on
from payroute.policies.review.checks import FAIL, PASS, WARN, Check
from payroute.policies.review.report_card import card_section
from payroute.policies.review.report_html import esc, evidence_id, figure, img, num, slug, table
from payroute.policies.review.report_roles import render_roles_section
from payroute.policies.review.report_shadow import shadow_section
from payroute.policies.review.report_statistics import statistics_section
from payroute.policies.review.report_stress import stress_section

if TYPE_CHECKING:
    from payroute.policies.review import ReviewResult

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2330;
line-height:1.45;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #e3e6ec;padding-bottom:.2rem;margin-top:2.2rem}
.verdict{font-size:1.6rem;font-weight:700;padding:.8rem 1.2rem;border-radius:8px;margin:1rem 0}
.verdict.pass{background:#e3f6e8;color:#17612c;border:1px solid #9fd8ad}
.verdict.fail{background:#fde8e8;color:#8c1d1d;border:1px solid #f1a7a7}
.facts{display:grid;grid-template-columns:repeat(3,1fr);gap:.8rem;margin:1rem 0}
.fact{border:1px solid #e3e6ec;border-radius:8px;padding:.7rem .9rem;background:#fafbfc}
.fact h3{margin:0 0 .3rem;font-size:.8rem;text-transform:uppercase;letter-spacing:.04em;color:#6b7280}
.fact p{margin:0}
table{border-collapse:collapse;width:100%;margin:.6rem 0;font-size:.92rem}
th,td{border-bottom:1px solid #e3e6ec;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f6f9}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.st{font-weight:700;white-space:nowrap}.st.pass{color:#17612c}.st.fail{color:#b42323}.st.notrun{color:#6b7280}.st.warn{color:#a16207}
ul.failed li{margin:.35rem 0}.muted{color:#6b7280}img{max-width:100%;margin:.5rem 0}
pre{background:#f5f6f9;padding:.8rem;border-radius:6px;overflow-x:auto;font-size:.85rem}
:target{background:#fff7d6}.wide{overflow-x:auto}.wide table{width:auto}
"""

Section = Callable[["ReviewResult"], list[str]]


def render_html(result: ReviewResult) -> str:
    """The report as one HTML string."""
    body: list[str] = []
    for section in SECTIONS:
        body += section(result)
    body += [
        f"<h2 id='{evidence_id('config')}'>Review config</h2><pre>",
        esc(yaml.safe_dump(result.config.model_dump(mode="json"), sort_keys=False)),
        "</pre>",
    ]
    ids = set(re.findall(r"id='([^']+)'", "".join(body)))
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>payroute review: {esc(result.bundle)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Policy review: {esc(result.bundle)}</h1>",
        f"<p class='muted'>{esc(result.card.get('decision_kind', ''))} policy · scenario {esc(result.scenario)}"
        + (f" · champion {esc(result.champion)}" if result.champion else "")
        + (f" · logs {esc(Path(result.logs).name)}" if result.logs else "")
        + f" · reviewed {esc(result.started)} in {result.wall_s:.0f} s · payroute {esc(result.versions.get('payroute', '?'))}</p>",
        _verdict(result),
        _facts(result, ids),
    ]
    if result.failed:
        parts += [
            "<h3>Why it failed</h3><ul class='failed'>",
            *(
                f"<li><a href='#{_target(c, ids)}'><b>{esc(c.section)} / {esc(c.name)}</b></a>: {esc(c.summary)}"
                f"{' <i>(width failure)</i>' if is_width_failure(c) else ''}</li>"
                for c in result.failed
            ),
            "</ul>",
        ]
    parts += ["<h2 id='checks'>All checks</h2>", _checks_table(result.checks, ids), *body, "</body></html>"]
    return "\n".join(parts)


def write_html(result: ReviewResult, path: str | Path) -> None:
    """The report at ``path``, written whole or not at all (:mod:`payroute.files`)."""
    atomic_write_text(path, render_html(result))


# ---------------------------------------------------------------------- the opening
def _verdict(result: ReviewResult) -> str:
    n_pass = sum(c.status == PASS for c in result.checks)
    n_fail = len(result.failed)
    n_warn = sum(c.status == WARN for c in result.checks)
    n_skip = len(result.checks) - n_pass - n_fail - n_warn
    if result.passed:
        return (
            f"<div class='verdict pass'>PASS: all {n_pass} checks passed"
            + (f" ({n_skip} not run)" if n_skip else "")
            + (f" ({n_warn} reported as warnings)" if n_warn else "")
            + " · exit code 0</div>"
        )
    return f"<div class='verdict fail'>FAIL: {n_fail} of {n_pass + n_fail} checks failed · exit code 1</div>"


def gate_margin(check: Check) -> float | None:
    """How far the measured value is on the passing side of the threshold (negative: short of it), in the
    check's own unit; ``None`` for a check without both numbers. A gate's direction (at least / at most) is
    read from its status: a passed check whose value is below its threshold is an 'at most' gate. A check whose
    value and threshold are not comparable says its margin itself (``details["margin"]``)."""
    margin = (check.details or {}).get("margin")
    if isinstance(margin, int | float) and check.status in (PASS, FAIL):
        return float(margin)
    v, t = check.value, check.threshold
    if (
        v is None
        or t is None
        or not (math.isfinite(v) and math.isfinite(t))
        or check.status not in (PASS, FAIL)
    ):
        return None
    at_least = (v >= t) == (check.status == PASS)
    return v - t if at_least else t - v


def _scale(check: Check) -> float:
    d = check.details or {}
    lo, hi = d.get("low"), d.get("high")
    if isinstance(lo, int | float) and isinstance(hi, int | float) and hi > lo:
        return float(hi - lo)
    return max(abs(check.threshold or 0.0), abs(check.value or 0.0), 1e-12)


def worst_gate(checks: list[Check]) -> Check | None:
    """The failed gate furthest short of its threshold (else the passed one closest to it), relative to its
    interval's width (else to the threshold's size), so gates in different units compare."""
    gated = [c for c in checks if gate_margin(c) is not None]
    if not gated:
        return None
    return min(gated, key=lambda c: (c.status != FAIL, gate_margin(c) / _scale(c)))


def is_width_failure(check: Check) -> bool:
    """A failed gate on an interval whose estimate itself passes: more seeds (a narrower interval) could turn it.
    A check may say so itself with ``details["width_failure"]``."""
    if check.status != FAIL:
        return False
    d = check.details or {}
    if isinstance(d.get("width_failure"), bool):
        return d["width_failure"]
    mean, low, t = d.get("mean"), d.get("low"), check.threshold
    if not all(isinstance(x, int | float) for x in (mean, low, t)):
        return False
    return check.value == low and mean >= t


def _facts(result: ReviewResult, ids: set[str]) -> str:
    card = result.card
    actions = [str(a) for a in card.get("actions", [])]
    shown = ", ".join(actions[:6]) + (f" and {len(actions) - 6} more" if len(actions) > 6 else "")
    says = (result.signature or {}).get("says", "unsigned")
    decides = (
        f"A <b>{esc(card.get('decision_kind', '?'))}</b> policy choosing among {len(actions)} actions "
        f"({esc(shown)}) from {len(card.get('observation', []))} features; {esc(trained_on(card))} "
        f"(<a href='#{evidence_id('integrity', 'training')}'>the card's record</a>, {esc(says)})."
    )
    worst = worst_gate(result.checks)
    if worst is None:
        gate = "No gate with a measured value and a threshold ran."
    else:
        m = gate_margin(worst)
        side = "short of" if m < 0 else "above"
        gate = (
            f"<a href='#{_target(worst, ids)}'><b>{esc(worst.section)} / {esc(worst.name)}</b></a> "
            f"({esc(worst.status.upper())}): measured {num(worst.value)} against {num(worst.threshold)}, "
            f"{num(abs(m))} {side} the threshold."
        )
    failed = result.failed
    width = [c for c in failed if is_width_failure(c)]
    if not failed:
        widths = "No failures: nothing for more seeds to change."
    elif len(width) == len(failed):
        which = (
            "The failure is a width failure"
            if len(failed) == 1
            else f"All {len(failed)} failures are width failures"
        )
        widths = (
            f"{which}: the estimate passes, its interval reaches past the gate. More seeds or volume could change "
            "the verdict."
        )
    elif width:
        widths = (
            f"{len(width)} of {len(failed)} failures are width failures (more seeds could turn them); the other "
            f"{len(failed) - len(width)} real: the estimate itself is past the gate."
        )
    else:
        which = "The failure is real" if len(failed) == 1 else f"All {len(failed)} failures are real"
        widths = f"{which}: the estimate itself is past the gate; more seeds would not change the verdict."
    facts = (("What it decides", decides), ("Worst gate", gate), ("Width or real", widths))
    return (
        "<div class='facts'>"
        + "".join(f"<div class='fact'><h3>{t}</h3><p>{p}</p></div>" for t, p in facts)
        + "</div>"
    )


def _target(check: Check, ids: set[str]) -> str:
    """Where a check's evidence is on the page (see the module docstring)."""
    tail = check.name.rsplit(": ", 1)[-1]
    for cand in (
        evidence_id(check.section, check.name),
        evidence_id(check.section, tail),
        evidence_id(check.section),
    ):
        if cand in ids:
            return cand
    return _row_id(check)


def _row_id(check: Check) -> str:
    return f"check-{slug(check.section)}-{slug(check.name)}"


def _status_cell(status: str) -> str:
    css = {"pass": "pass", "fail": "fail", "warn": "warn"}.get(status, "notrun")
    return f"<td class='st {css}'>{html.escape(status.upper())}</td>"


def _checks_table(checks: list[Check], ids: set[str]) -> str:
    rows = "".join(
        f"<tr id='{_row_id(c)}'>{_status_cell(c.status)}<td>{esc(c.section)}</td><td>{esc(c.name)}</td>"
        f"<td class='num'>{num(c.value)}</td><td class='num'>{num(c.threshold)}</td>"
        f"<td>{esc(c.summary)}</td><td><a href='#{_target(c, ids)}'>evidence</a></td></tr>"
        for c in checks
    )
    return (
        "<table><tr><th>result</th><th>section</th><th>check</th><th>measured</th><th>threshold</th>"
        f"<th>what was found</th><th></th></tr>{rows}</table>"
    )


# ---------------------------------------------------------------------- sections
def _ope_section(result: ReviewResult) -> list[str]:
    out = [f"<h2 id='{evidence_id('ope')}'>Off-policy evaluation</h2>"]
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
    out.append(img(_ope_plot(result), "off-policy estimates"))
    rows = [
        [name, f"{e.value:.2f}", f"[{e.ci_low:.2f}, {e.ci_high:.2f}]", f"{e.std_error:.2f}"]
        for name, e in ope.estimates.items()
    ]
    lm = ope.logged_mean
    rows.append(
        ["logged mean", f"{lm.value:.2f}", f"[{lm.ci_low:.2f}, {lm.ci_high:.2f}]", f"{lm.std_error:.2f}"]
    )
    out.append(table(["estimator", "cents/decision", "interval", "std error"], rows))
    out.append(
        table(
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
    fig = figure(11, 3.2)
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
    out = [f"<h2 id='{evidence_id('constraints')}'>Constraint checks</h2>"]
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
            f"<h3 id='{evidence_id('constraints', 'masked_actions')}'>Masked actions</h3>",
            table(["contexts", "count", "violations", "rate", "max masked prob."], rows),
        ]
    malformed = by_name.get("malformed_inputs")
    if malformed is not None:
        rows = [
            [c["case"], c["expected"], c["got"], "ok" if c["ok"] else "FAIL"]
            for c in malformed.details["cases"]
        ]
        out += [
            f"<h3 id='{evidence_id('constraints', 'malformed_inputs')}'>Malformed inputs</h3>",
            "<p>Documented behaviour (policies/bundle/runtime.py): NaN, infinities, wrong lengths and masks allowing no "
            "action are refused with a clear error; finite values outside the declared ranges are passed to the "
            "network and must give an allowed action.</p>",
            table(["input", "expected", "got", ""], rows),
        ]
    caps = by_name.get("action_caps")
    if caps is not None:
        out += [
            f"<h3 id='{evidence_id('constraints', 'action_caps')}'>Action caps</h3>",
            f"<p>{html.escape(caps.summary)}</p>",
        ]
    lat = by_name.get("latency")
    if lat is not None and len(cons.latency_ms):
        fig = figure(8, 2.6)
        ax = fig.subplots()
        t = cons.latency_ms
        ax.hist(np.minimum(t, np.percentile(t, 99.9)), bins=60, color="#1f5fbf")
        ax.axvline(lat.details["p99_ms"], color="black", lw=1, label=f"p99 {lat.details['p99_ms']:.3f} ms")
        ax.axvline(lat.threshold, color="#b42323", ls="--", lw=1, label=f"budget {lat.threshold:g} ms")
        ax.set_xlabel("milliseconds per decision")
        ax.legend(fontsize=8)
        out += [
            f"<h3 id='{evidence_id('constraints', 'latency')}'>Latency</h3>",
            f"<p>{html.escape(lat.summary)}</p>",
            img(fig, "latency histogram"),
        ]
    return out


# The report's sections, in page order, after the opening and the checks table: one line each (module docstring).
SECTIONS: list[Section] = [
    card_section,
    stress_section,
    render_roles_section,  # price, treasury and fraud-side bundles (report_roles.py)
    _ope_section,
    _constraints_section,
    statistics_section,  # family-wise gates, OPE bound and tail, covariate shift (report_statistics.py)
    lambda result: shadow_section(result.shadow),  # --shadow LOG (report_shadow.py)
]

__all__ = ["SECTIONS", "gate_margin", "is_width_failure", "render_html", "worst_gate", "write_html"]
