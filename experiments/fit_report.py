"""The fit report as one HTML page: the log beside a simulation of the scenario fitted to it, with plots.

``payroute calibrate LOG --out my.yaml --report fit.html`` writes it. The numbers (a distance per quantity, a
``pass`` / ``warn`` verdict per block) are :func:`payroute.envs.calibration.report.fit_comparison`'s, the same as
the JSON report's; this module only draws them: the verdict summary first, then the values the log could not
identify (kept from the base and flagged), then one section per block with its plots (logged beside simulated)
and its table of distances. Plots are PNGs embedded as base64 (matplotlib's Agg canvas), so the page is one
self-contained file; everything taken from the log or the scenario is escaped.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.ticker import NullFormatter
from scipy.stats import chi2

from payroute.envs.calibration import Calibration
from payroute.envs.calibration.stats import (
    AMOUNT_BINS,
    LOG_AMOUNT_HI,
    LOG_LAT_BINS,
    LOG_LAT_HI,
    LOG_LAT_LO,
    LogStats,
)
from payroute.errors import PayrouteError
from payroute.policies.review.report_html import esc, figure, img, table

LOGGED, SIMULATED = ("logged", "tab:blue"), ("simulated", "tab:orange")
BLOCK_TITLES = {
    "arrivals": "Arrivals: volume and intraday profile",
    "mixes": "Mixes: instruments, segments, categories, networks, corridors, urgency",
    "amounts": "Amounts by family",
    "approval": "Approval by route x segment",
    "latency": "Latency by route",
    "fees": "Fee per approved attempt, by route",
    "fraud": "Fraud attacks by pattern",
    "discovery": "Fraud discovery timing (chargebacks and returns)",
}
_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2330;
line-height:1.45;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #e3e6ec;padding-bottom:.2rem;margin-top:2.2rem}
.verdict{font-size:1.6rem;font-weight:700;padding:.8rem 1.2rem;border-radius:8px;margin:1rem 0}
.verdict.pass{background:#e3f6e8;color:#17612c;border:1px solid #9fd8ad}
.verdict.warn{background:#fdf3dc;color:#7a4d05;border:1px solid #efcf87}
table{border-collapse:collapse;width:100%;margin:.6rem 0;font-size:.92rem}
th,td{border-bottom:1px solid #e3e6ec;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f6f9}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.st{font-weight:700;text-transform:uppercase}.st.pass{color:#17612c}.st.warn{color:#a16207}
.muted{color:#6b7280}img{max-width:100%;margin:.5rem 0}.wide{overflow-x:auto}
"""


def fit_figure(calibration: Calibration, simulated: LogStats, block: str) -> Any:
    """The plot of one block (a matplotlib Figure; a notebook shows it inline), or None when the log has no rows
    for it: the log's statistics (``calibration.stats``) beside ``simulated``'s."""
    if block not in DRAW:
        raise PayrouteError(f"fit report block = {block!r}: allowed: {', '.join(DRAW)}")
    return DRAW[block](calibration.stats, simulated, calibration)


def render_fit_report(calibration: Calibration, report: dict[str, Any], simulated: LogStats) -> str:
    """The fit report as one HTML string: ``report`` and ``simulated`` from ``calibration.compare()``."""
    p = calibration.provenance
    blocks = report["blocks"]
    verdict = report["verdict"]
    warned = [b for b, v in blocks.items() if v["verdict"] != "pass"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>payroute fit report: {esc(calibration.scenario.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Fit report: {esc(calibration.scenario.name)}</h1>",
        f"<p class='muted'>log {esc(p['log'])} ({esc(p['date_from'])} to {esc(p['date_to'])}, "
        f"{p['rows_used']:,} of {p['rows_read']:,} rows used) on the base scenario {esc(p['base'])} · "
        f"{esc(report['simulated_days'])} simulated day(s), seed {esc(report['seed'])}, routed in the log's "
        "shares, risk by the threshold baseline</p>",
        f"<div class='verdict {esc(verdict)}' id='verdict'>{esc(verdict.upper())}"
        + (f": {len(warned)} block(s) warn: {esc(', '.join(warned))}" if warned else ": every block fits")
        + "</div>",
        "<h2 id='summary'>Verdict per block</h2>",
        _summary(blocks),
        "<p class='muted'>A block warns when a difference is both material and beyond what sampling explains "
        "(two-sided p &lt; 0.001); the thresholds are in envs/calibration/report.py and "
        "docs/calibration_inputs.md.</p>",
        "<h2 id='flagged'>Not identified by the log: kept from the base (flagged)</h2>",
        _flagged(calibration),
    ]
    for name, block in blocks.items():
        title = BLOCK_TITLES.get(name, name)
        parts.append(
            f"<h2 id='block-{esc(name)}'>{esc(title)} <span class='st {esc(block['verdict'])}'>"
            f"{esc(block['verdict'])}</span></h2>"
        )
        fig = fit_figure(calibration, simulated, name)
        empty = EMPTY.get(name, EMPTY[""])
        parts.append(img(fig, ALT[name]) if fig is not None else f"<p class='muted'>{esc(empty)}</p>")
        if name in NOTES:
            parts.append(f"<p class='muted'>{esc(NOTES[name])}</p>")
        parts.append(_distances(block))
    parts.append("</body></html>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------- tables


def _summary(blocks: dict[str, Any]) -> str:
    rows = []
    for name, block in blocks.items():
        items = _items(block)
        rows.append(
            f"<tr><td><a href='#block-{esc(name)}'>{esc(name)}</a></td>"
            f"<td class='st {esc(block['verdict'])}'>{esc(block['verdict'])}</td>"
            f"<td class='num'>{len(items)}</td><td>{esc(_worst(items))}</td></tr>"
        )
    head = "<tr><th>block</th><th>verdict</th><th>quantities compared</th><th>largest distance</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _items(block: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A block's compared quantities, by name (arrivals: its two sub-blocks)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in block.items():
        if key == "verdict" or not isinstance(value, dict):
            continue
        if all(isinstance(v, dict) for v in value.values()):
            out.update(value)
        else:
            out[key] = value
    return out


def _worst(items: dict[str, dict[str, Any]]) -> str:
    best: tuple[float, str] | None = None
    for name, item in items.items():
        for key in ("z", "ks", "total_variation", "relative_error"):
            if key in item and (best is None or abs(item[key]) > best[0]):
                best = (abs(item[key]), f"{name}: {key} {item[key]:.4g}")
                break
    return "" if best is None else best[1]


def _distances(block: dict[str, Any]) -> str:
    items = _items(block)
    if not items:
        return (
            "<p class='muted'>no quantity had enough rows in both the log and the simulation to compare</p>"
        )
    cols = list(dict.fromkeys(k for item in items.values() for k in item))
    rows = [[name, *(_fmt(item.get(c)) for c in cols)] for name, item in items.items()]
    return f"<div class='wide'>{table(['quantity', *cols], rows)}</div>"


def _fmt(v: Any) -> Any:
    if isinstance(v, list):
        return " / ".join(f"{x:,}" if isinstance(x, int) else str(x) for x in v)
    return "" if v is None else v


def _flagged(calibration: Calibration) -> str:
    values = calibration.provenance["values"]
    rows = [
        [path, values[path]["status"], str(values[path].get("value")), values[path].get("note", "")]
        for path in calibration.flagged
    ]
    not_identified = calibration.provenance.get("not_identified", {})
    out = (
        table(["value", "status", "value used", "why"], rows)
        if rows
        else "<p>every value the log could identify was fitted</p>"
    )
    if not_identified:
        out += (
            "<p class='muted'>Never identified by a log, the base's: "
            + esc(", ".join(not_identified))
            + "</p>"
        )
    return out


# -------------------------------------------------------------------------------------------- plots


def _bars(ax: Any, labels: list[str], a: np.ndarray, b: np.ndarray, err=None, legend: bool = True) -> None:
    x = np.arange(len(labels))
    for i, ((label, color), values) in enumerate(((LOGGED, a), (SIMULATED, b))):
        yerr = None if err is None else err[i]
        ax.bar(x + (i - 0.5) * 0.4, values, 0.4, label=label, color=color, yerr=yerr, capsize=2)
    ax.set_xticks(x, labels, rotation=35, ha="right")
    if legend:
        ax.legend(fontsize=7)


def _share(counter: dict[str, float], keys: list[str]) -> np.ndarray:
    total = sum(counter.values()) or 1.0
    return np.array([counter.get(k, 0) / total for k in keys])


def _grid(n: int, cols: int, w: float = 3.6, h: float = 2.6) -> tuple[Any, list[Any]]:
    rows = max(1, math.ceil(n / cols))
    fig = figure(w * cols, h * rows)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return fig, axes


def _arrivals(log: LogStats, sim: LogStats, cal: Calibration) -> Any:
    fig = figure(11, 3.2)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    hours = [f"{h:02d}" for h in range(24)]
    _bars(
        ax1,
        hours,
        log.hour_counts / max(log.hour_counts.sum(), 1),
        sim.hour_counts / max(sim.hour_counts.sum(), 1),
    )
    ax1.set_title("intraday profile: share of genuine arrivals by local hour", fontsize=9)
    ax1.tick_params(axis="x", rotation=0, labelsize=7)
    for (label, color), s in ((LOGGED, log), (SIMULATED, sim)):
        days = sorted(s.day_counts)
        ax2.plot(
            [str(s.date(d)) for d in days], [s.day_counts[d] for d in days], "o-", color=color, label=label
        )
    ax2.set_title("genuine arrivals per day", fontsize=9)
    ax2.tick_params(axis="x", rotation=35, labelsize=7)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _mixes(log: LogStats, sim: LogStats, cal: Calibration) -> Any:
    names = [n for n, c in log.mixes.items() if sum(c.values())]
    if not names:
        return None
    fig, axes = _grid(len(names), 3)
    for i, (ax, name) in enumerate(zip(axes, names, strict=True)):
        other = sim.mixes.get(name, {})
        keys = sorted(set(log.mixes[name]) | set(other))
        _bars(ax, keys, _share(log.mixes[name], keys), _share(other, keys), legend=i == 0)
        ax.set_title(name, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return fig


def _rebinned(hist: np.ndarray, factor: int) -> np.ndarray:
    return hist[: len(hist) // factor * factor].reshape(-1, factor).sum(axis=1)


def _hist_panel(ax: Any, a: np.ndarray, b: np.ndarray | None, lo: float, width: float, scale: float) -> None:
    both = a + (b if b is not None else 0)
    nz = np.nonzero(both)[0]
    if not len(nz):
        return
    first, last = max(nz[0] - 1, 0), min(nz[-1] + 2, len(a))
    edges = np.exp(lo + width * np.arange(first, last + 1)) * scale
    for (label, color), h in ((LOGGED, a), (SIMULATED, b)):
        if h is not None and h.sum():
            ax.stairs(h[first:last] / h.sum(), edges, label=label, color=color, linewidth=1.5)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7)


def _amounts(log: LogStats, sim: LogStats, cal: Calibration) -> Any:
    names = [n for n, h in log.amount_hist.items() if h.sum()]
    if not names:
        return None
    factor, width = 10, LOG_AMOUNT_HI / AMOUNT_BINS * 10
    fig, axes = _grid(len(names), 3)
    for ax, name in zip(axes, names, strict=True):
        other = sim.amount_hist.get(name)
        _hist_panel(ax, _rebinned(log.amount_hist[name], factor),
                    None if other is None else _rebinned(other, factor), 0.0, width, 0.01)  # fmt: skip
        ax.set_title(f"{name} (share per bin)", fontsize=9)
        ax.set_xlabel("amount ($, log scale)", fontsize=8)
    fig.tight_layout()
    return fig


def _wilson(k: int, n: int) -> tuple[float, float, float]:
    if n == 0:
        return math.nan, math.nan, math.nan
    z, p = 1.96, k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, c - h, c + h


def _approval(log: LogStats, sim: LogStats, cal: Calibration) -> Any:
    cells = sorted({(r, s) for r, s, _ in log.approval})
    if not cells:
        return None
    fig = figure(9, 0.28 * len(cells) + 1.2)
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(cells))
    for i, ((label, color), s) in enumerate(((LOGGED, log), (SIMULATED, sim))):
        stats = []
        for route, seg in cells:
            k = s.approval.get((route, seg, "approved"), 0)
            stats.append(_wilson(k, k + s.approval.get((route, seg, "declined"), 0)))
        p, lo, hi = (np.array(v) for v in zip(*stats, strict=True))
        ax.errorbar(
            p,
            y + (i - 0.5) * 0.3,
            xerr=[np.maximum(p - lo, 0), np.maximum(hi - p, 0)],
            fmt="o",
            ms=3,
            color=color,
            label=label,
        )
    ax.set_yticks(y, [f"{r} / {s}" for r, s in cells], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("approval rate (home cards, 95% Wilson interval)", fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _latency(log: LogStats, sim: LogStats, cal: Calibration) -> Any:
    names = [n for n, h in log.latency.items() if h.sum()]
    if not names:
        return None
    factor = 100
    width = (LOG_LAT_HI - LOG_LAT_LO) / LOG_LAT_BINS * factor
    fig, axes = _grid(len(names), 4, 2.8, 2.3)
    for ax, name in zip(axes, sorted(names), strict=True):
        other = sim.latency.get(name)
        _hist_panel(ax, _rebinned(log.latency[name], factor),
                    None if other is None else _rebinned(other, factor), LOG_LAT_LO, width, 1.0)  # fmt: skip
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("seconds (log scale)", fontsize=7)
    fig.tight_layout()
    return fig


def _fees(log: LogStats, sim: LogStats, cal: Calibration) -> Any:
    names = sorted(n for n, m in log.fees.items() if m.n)
    if not names:
        return None
    means, errs = [], []
    for s in (log, sim):
        ms = [s.fees.get(n) for n in names]
        means.append(np.array([m.my if m is not None and m.n else np.nan for m in ms]))
        errs.append(np.array([1.96 * math.sqrt(m.syy / (m.n - 1) / m.n) if m is not None and m.n > 1 else 0.0
                              for m in ms]))  # fmt: skip
    fig = figure(10, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    _bars(ax, names, means[0], means[1], err=errs)
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylabel("cents per approved attempt (symlog)", fontsize=8)
    ax.set_title("mean fee per approved attempt (card routes net of interchange and network fees), 95% interval",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    return fig


def _fraud(log: LogStats, sim: LogStats, cal: Calibration) -> Any:
    names = sorted(log.fraud)
    if not names:
        return None
    rates, errs = [], []
    for s in (log, sim):
        days = s.last_day - s.first_day + 1
        counts = np.array([s.fraud.get(n, 0) for n in names], dtype=float)
        lo = np.where(counts > 0, chi2.ppf(0.025, 2 * counts) / 2, 0.0)  # exact Poisson interval (Garwood)
        hi = chi2.ppf(0.975, 2 * counts + 2) / 2
        rates.append(counts / days)
        errs.append(np.array([counts - lo, hi - counts]) / days)
    fig = figure(8, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    _bars(ax, [n or "all" for n in names], rates[0], rates[1], err=errs)
    ax.set_ylabel("fraud attempts per day (95% Poisson interval)", fontsize=8)
    fig.tight_layout()
    return fig


def _discovery(log: LogStats, sim: LogStats, cal: Calibration) -> Any:
    patterns = cal.scenario.fraud.patterns
    names = sorted(n for n, m in log.delays.items() if m.n and n in patterns)
    if not names:
        return None
    fig, axes = _grid(len(names), 3)
    x = np.geomspace(0.1, 400, 300)
    for ax, name in zip(axes, names, strict=True):
        m, spec = log.delays[name], patterns[name]
        for (label, color), mu, sd in (
            (("logged (lognormal of its delays)", LOGGED[1]), m.mean, m.sd),
            (("fitted scenario", SIMULATED[1]), math.log(spec.discovery_median_days), spec.discovery_sigma),
        ):
            if sd > 0:
                dens = np.exp(-((np.log(x) - mu) ** 2) / (2 * sd * sd)) / (sd * math.sqrt(2 * math.pi))
                ax.plot(x, dens, color=color, label=label)
            else:
                ax.axvline(math.exp(mu), color=color, label=label)
        ax.set_xscale("log")
        ax.set_title(f"{name}: {m.n} delays", fontsize=9)
        ax.set_xlabel("days from settlement to chargeback / return", fontsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


DRAW = {
    "arrivals": _arrivals, "mixes": _mixes, "amounts": _amounts, "approval": _approval, "latency": _latency,
    "fees": _fees, "fraud": _fraud, "discovery": _discovery,
}  # fmt: skip
ALT = {
    "arrivals": "arrivals: intraday profile and arrivals per day, logged and simulated",
    "mixes": "mixes: shares logged and simulated",
    "amounts": "amount histograms logged and simulated",
    "approval": "approval by route and segment with intervals, logged and simulated",
    "latency": "latency histograms by route, logged and simulated",
    "fees": "fee per route, logged and simulated",
    "fraud": "fraud attempts per day by pattern, logged and simulated",
    "discovery": "discovery delays, logged and in the fitted scenario",
}
EMPTY = {
    "": "nothing to plot: the log has no rows for this block",
    "discovery": "the log has no chargebacks or returns of frauds: the discovery delays are the base's (flagged "
    "above)",
}
NOTES = {
    "discovery": "The simulated days end before their frauds come to light (weeks later), so the log's delays are "
    "compared with the fitted scenario's discovery model (density of log days).",
}

__all__ = ["fit_figure", "render_fit_report"]
