"""The report's "Statistics" section: the family-wise stress gates (adjusted bound beside the unadjusted interval,
what more seeds would do), the off-policy high-confidence bound and fraud-loss tail, and the covariate shift.

Everything comes from the review's checks and OPE result; names from files are HTML-escaped."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from payroute.policies.review import ReviewResult


def _e(x: Any) -> str:
    return html.escape(str(x))


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _seeds(d: dict[str, Any]) -> str:
    if d.get("more_seeds_help") is None:
        return ""
    if not d["more_seeds_help"]:
        return "no: the mean fails"
    if d.get("seeds_needed") is None:
        return "only past 10,000"
    return f"{d['seeds_needed']:,} (80%: {d['seeds_for_80pct_power'] or '>10,000'})"


def _gates(result: ReviewResult) -> list[str]:
    rows = []
    method = ""
    for c in result.checks:
        d = c.details
        if c.section != "stress" or "adjusted_low" not in d:
            continue
        method = d["multiplicity"]
        scale, unit = (100.0, " pt") if c.name.startswith("approval") else (1.0, " $")
        fmt = "{:+.2f}" if scale == 100.0 else "{:+.4f}"

        def f(x: float | None, fmt: str = fmt, scale: float = scale) -> str:
            return "" if x is None else fmt.format(x * scale)

        rows.append(
            [
                c.status.upper(),
                c.name,
                f(d["mean"]) + unit,
                f"[{f(d['unadjusted_low'])}, {f(d['unadjusted_high'])}]",
                f"{f(d['adjusted_low'])} at {d['level']:.3%}",
                f(c.threshold),
                f"{d['rank']}/{d['family_size']}",
                str(d["seeds"]),
                _seeds(d),
            ]
        )
    if not rows:
        return []
    conf = result.config.stress.confidence
    alpha = (1 - conf) / 2
    words = (
        f"Holm's step-down procedure over all {len(rows)} stress comparisons: the probability that any passed "
        f"check claims more than is true is at most {alpha:.1%}"
        if method == "holm"
        else f"each comparison alone at a one-sided {alpha:.1%} (stress.multiplicity: none): with {len(rows)} of "
        f"them the chance that some passed check claims more than is true is up to {min(1, len(rows) * alpha):.0%}"
    )
    return [
        "<h3>Stress gates, family-wise</h3>",
        f"<p>{_e(words)}. Each check shows the unadjusted {conf:.0%} interval of bundle minus the best reference "
        "and the lower bound it was gated on, at the one-sided level of its step; a failed check says how many "
        "seeds would clear it if the mean and the spread between seeds held (a run that size passes about half "
        "the time; the 80% figure with probability 0.8), or that none would.</p>",
        _table(
            [
                "result",
                "check",
                "mean",
                "unadjusted interval",
                "gated bound",
                "threshold",
                "rank",
                "seeds",
                "seeds to clear",
            ],
            rows,
        ),  # fmt: skip
    ]


def _ope(result: ReviewResult) -> list[str]:
    ope = result.ope
    if ope is None or ope.hcope is None:
        return []
    h, t = ope.hcope, ope.tail
    low = "-inf" if h["lower_bound"] is None else f"{h['lower_bound']:.2f}"
    out = [
        "<h3>Off-policy: high-confidence bound and fraud-loss tail</h3>",
        f"<p>With probability at least {h['confidence']:.0%} the bundle earns at least {_e(low)} cents per decision "
        f"(logged mean {ope.logged_mean.value:.2f}): empirical Bernstein on importance-weighted rewards above a "
        f"floor of {h['reward_floor']:.0f} cents ({_e(h['floor_source'])}), clipped at {h['clip']:.4g} "
        f"({h['clipped_share']:.2%} clipped), the clip chosen on {h['n_holdout']:,} held-out decisions and the "
        f"bound taken on {h['n_bound']:,}. It assumes nothing about the rewards but the floor, so the fraud losses' "
        "range makes it wide.</p>",
    ]
    if t is not None:
        q = f"{t['level']:.0%}"
        out += [
            _table(
                ["a day's fraud loss (USD)", "mean", f"VaR {q}", f"CVaR {q}"],
                [
                    [
                        "bundle (off-policy)",
                        f"{t['bundle_mean'] / 100:,.2f}",
                        f"{t['bundle_var'] / 100:,.2f}",
                        f"{t['bundle_cvar'] / 100:,.2f}",
                    ],
                    [
                        "logging policy",
                        f"{t['logged_mean'] / 100:,.2f}",
                        f"{t['logged_var'] / 100:,.2f}",
                        f"{t['logged_cvar'] / 100:,.2f}",
                    ],
                ],
            ),  # fmt: skip
            f"<p class='muted'>{t['simulated_days']:,} days of {t['decisions_per_day']:,} payments drawn from the "
            f"log ({t['days_in_log']} day(s)) with self-normalised importance weights; {t['lossy_decisions']:,} "
            f"logged fraud losses, effective number behind the bundle's tail "
            f"{t['lossy_effective_sample_size']:,.1f}. Payments are drawn independently: fraud waves and outages "
            "within a day fatten the real tail, and no loss larger than the log's largest can appear.</p>",
        ]
    return out


def _shift(result: ReviewResult) -> list[str]:
    check = next((c for c in result.checks if c.section == "shift"), None)
    if check is None or "features" not in check.details:
        return []
    d = check.details
    rows = [
        [
            f["feature"],
            f["kind"],
            f"{'TV' if f['kind'] == 'categorical' else 'KS'} {f['distance']:.3f}",
            "" if f["wasserstein_sd"] is None else f"{f['wasserstein_sd']:.3f}",
            "shifted" if f["shifted"] else "routing state (not counted)" if f.get("routing_state") else "",
        ]
        for f in sorted(d["features"], key=lambda f: -f["distance"])
    ]
    return [
        "<h3>Covariate shift: the log against the review scenario</h3>",
        f"<p>{_e(check.summary)}.</p>",
        "<details><summary>Per feature (largest first)</summary>",
        _table(["feature", "kind", "distance", "Wasserstein / sd", ""], rows),
        "</details>",
    ]


def statistics_section(result: ReviewResult) -> list[str]:
    """The "Statistics" section of the HTML report (empty when there is nothing to show)."""
    parts = _gates(result) + _ope(result) + _shift(result)
    return ["<h2>Statistics</h2>", *parts] if parts else []


__all__ = ["statistics_section"]
