"""The report's model-card section: what the bundle decides, what it was trained on, and the maker's own
evaluation, as tables and plots instead of dictionary dumps.

The card is what the bundle's maker wrote (signed or not, the page says which); the review's findings are the
checks. Known shapes get their own rendering: the training curve (``curve_*``: pairs of env steps and a value)
as a plot, ``final_scalars`` as a table, the evaluation's ``summary`` (one record per policy and scenario) as a
table of paired intervals against the cheapest route and a plot of them. Anything else is shown as a field/value
table, so a card of another shape still reads, and every value is escaped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from payroute.policies.review.card import trained_on
from payroute.policies.review.report_html import esc, evidence_id, figure, img, table

if TYPE_CHECKING:
    from payroute.policies.review import ReviewResult


def _short(v: Any) -> str:
    """A value in a table cell: lists of numbers summarised, small mappings inline."""
    if isinstance(v, list) and len(v) > 8 and all(isinstance(x, int | float) for x in v):
        return f"{len(v)} values, {v[0]} … {v[-1]}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_short(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_short(x) for x in v)
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _is_curve(v: Any) -> bool:
    return (
        isinstance(v, list)
        and len(v) >= 2
        and all(isinstance(p, list | tuple) and len(p) == 2 for p in v)
        and all(isinstance(x, int | float) for p in v for x in p)
    )


def _is_records(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(isinstance(r, dict) for r in v)


def _fields(d: dict[str, Any], skip: set[str]) -> str:
    rows = [[k, _short(v)] for k, v in d.items() if k not in skip]
    return table(["field", "value"], rows) if rows else ""


def _curves_plot(curves: dict[str, list]) -> str:
    fig = figure(8, 2.6)
    ax = fig.subplots()
    for name, pts in curves.items():
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, marker="o", ms=3, label=name.removeprefix("curve_"))
    ax.set_xlabel("env steps")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("training curve (the card's record)", fontsize=9)
    return img(fig, "training curve")


def _training(train: Any, claims: str) -> list[str]:
    out = [
        f"<h3 id='{evidence_id('integrity', 'training')}'>Training</h3>",
        f"<p class='muted'>training: {esc(claims)}</p>",
    ]
    if not isinstance(train, dict) or not train:
        return [*out, f"<p>{esc(train or 'not recorded')}</p>"]
    curves = {k: v for k, v in train.items() if _is_curve(v)}
    scalars = train.get("final_scalars")
    skip = set(curves) | ({"final_scalars"} if isinstance(scalars, dict) else set())
    out.append(_fields(train, skip))
    if curves:
        out.append(_curves_plot(curves))
    if isinstance(scalars, dict) and scalars:
        out += [
            "<h4>Last logged scalars</h4>",
            table(["scalar", "value"], [[k, v] for k, v in scalars.items()]),
        ]
    return out


_EVAL_COLUMNS = (
    ("policy", "policy"),
    ("scenario", "scenario"),
    ("margin_per_tx_usd", "margin/tx $"),
    ("margin_diff", "Δ margin/tx $ vs cheapest [CI]"),
    ("approval_rate", "approval"),
    ("approval_diff", "Δ approval pt [CI]"),
    ("fraud_loss_bps", "fraud bps"),
    ("route_cost_bps", "route cost bps"),
    ("oracle_share", "oracle share"),
    ("seeds", "seeds"),
)


def _eval_cell(r: dict[str, Any], key: str) -> Any:
    v = r.get(key)
    if key.endswith("_diff") and isinstance(v, int | float):
        lo, hi = r.get(f"{key}_low"), r.get(f"{key}_high")
        scale, f = (100, "{:+.2f}") if key == "approval_diff" else (1, "{:+.4f}")
        if isinstance(lo, int | float) and isinstance(hi, int | float):
            return f"{f.format(v * scale)} [{f.format(lo * scale)}, {f.format(hi * scale)}]"
        return f.format(v * scale)
    if key == "approval_rate" and isinstance(v, int | float):
        return f"{v:.2%}"
    if key == "oracle_share" and isinstance(v, int | float):
        return f"{v:.0%}"
    return "" if v is None else v


def _summary_plot(records: list[dict[str, Any]]) -> str | None:
    rows = [
        r
        for r in records
        if all(
            isinstance(r.get(k), int | float) for k in ("margin_diff", "margin_diff_low", "margin_diff_high")
        )
    ]
    if not rows:
        return None
    fig = figure(8, 0.6 + 0.32 * len(rows))
    ax = fig.subplots()
    for i, r in enumerate(rows):
        m, lo, hi = r["margin_diff"], r["margin_diff_low"], r["margin_diff_high"]
        color = "#1f5fbf" if r.get("policy") == "trained" else "#6b7280"
        ax.errorbar(m, -i, xerr=[[m - lo], [hi - m]], fmt="o", color=color, ms=4, capsize=2)
    labels = [f"{r.get('policy', '')} · {r.get('scenario', '')}" for r in rows]
    ax.set_yticks([-i for i in range(len(rows))], labels, fontsize=8, parse_math=False)
    ax.axvline(0, color="black", lw=0.8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("the card's evaluation: Δ margin per transaction vs cheapest, USD", fontsize=9)
    return img(fig, "card evaluation intervals")


def _evaluation(ev: Any, claims: str) -> list[str]:
    out = [
        f"<h3 id='{evidence_id('integrity', 'evaluation')}'>Evaluation on the card</h3>",
        f"<p class='muted'>evaluation on the card: {esc(claims)}</p>",
    ]
    if not isinstance(ev, dict) or not ev:
        return [*out, f"<p>{esc(ev or 'not recorded')}</p>"]
    records = {k: v for k, v in ev.items() if _is_records(v)}
    out.append(_fields(ev, set(records)))
    summary = records.pop("summary", None)
    if summary is not None:
        keys = [k for k, _ in _EVAL_COLUMNS if any(k in r for r in summary)]
        heads = [h for k, h in _EVAL_COLUMNS if k in keys]
        out.append(table(heads, [[_eval_cell(r, k) for k in keys] for r in summary]))
        plot = _summary_plot(summary)
        if plot:
            out.append(plot)
    for name, recs in records.items():
        cols = list(dict.fromkeys(k for r in recs for k in r))  # names first, then the numbers
        cols.sort(key=lambda c: any(isinstance(r.get(c), int | float) for r in recs))
        rows = [[v if isinstance(v := r.get(c, ""), int | float) else _short(v) for c in cols] for r in recs]
        out += [f"<h4>{esc(name)}</h4>", f"<div class='wide'>{table(cols, rows)}</div>"]
    return out


def card_section(result: ReviewResult) -> list[str]:
    """Integrity and the model card: who vouches, what the bundle sees and decides, its training and evaluation."""
    card = result.card
    scen = card.get("scenario") or {}
    exp = card.get("experiment") or {}
    sig = result.signature or {}
    claims = sig.get("claims", "unsigned claims (nobody vouches for them)")
    obs = card.get("observation") or []
    rows = [
        ["signature", sig.get("says", "unsigned")],
        ["decision kind", card.get("decision_kind", "")],
        ["agent id", card.get("agent_id") or ""],
        ["observation", f"{len(obs)} features"],
        ["actions", ", ".join(map(str, card.get("actions", [])))],
        ["trained", trained_on(card)],
        ["scenario", f"{scen.get('name', '')} (sha256 {str(scen.get('sha256', ''))[:12]})" if scen else "not recorded"],
        ["experiment", f"{exp.get('name', '')} (sha256 {str(exp.get('sha256', ''))[:12]})" if exp else "not recorded"],
        ["seeds", _short(card.get("seeds") or "not recorded")],
        ["git commit", card.get("git_commit") or "not recorded"],
        ["versions", ", ".join(f"{k} {v}" for k, v in (card.get("versions") or {}).items())],
    ]  # fmt: skip
    reward = card.get("reward")
    out = [
        f"<h2 id='{evidence_id('integrity')}'>Integrity and model card</h2>",
        "<p class='muted'>Everything the card records (training, evaluation, versions, configs) is what the "
        f"bundle's maker wrote: {esc(claims)}. The review's own findings are the checks above.</p>",
        table(["field", "value"], rows),
        "<h3>Reward</h3>",
        _fields(reward, set())
        if isinstance(reward, dict) and reward
        else f"<p>{esc(reward or 'not recorded')}</p>",
    ]
    out += _training(card.get("training"), claims)
    out += _evaluation(card.get("evaluation"), claims)
    if obs and isinstance(obs[0], dict):
        cols = [c for c in ("name", "unit", "low", "high", "description") if any(c in f for f in obs)]
        out += [
            f"<details><summary>Observation: {len(obs)} features</summary>",
            table(cols, [[f.get(c, "") for c in cols] for f in obs]),
            "</details>",
        ]
    return out


__all__ = ["card_section"]
