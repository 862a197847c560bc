"""The evaluation plots (PNG, matplotlib): KPIs by policy, approval by hour, cumulative margin, route mix.

Each function takes the long-format frames of :class:`~payroute.policies.compare.PairedRuns` for one scenario
and writes one figure; nothing here computes a statistic the tables do not also report.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from payroute.envs.baselines.routers import ORACLES
from payroute.files import atomic_path

_PANELS = (
    ("margin_per_tx_usd", "margin per transaction ($)"),
    ("approval_rate", "approval rate"),
    ("fraud_loss_bps", "fraud loss (bps of settled value)"),
    ("sla_misses", "SLA misses"),
)


def _order(policies: list[str]) -> list[str]:
    return sorted(policies, key=lambda p: (p != "trained", p in ORACLES, p))


def _ci(values: np.ndarray) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    return float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n))


def kpi_bars(runs: pd.DataFrame, title: str, path: Path) -> Path:
    policies = _order(list(runs["policy"].unique()))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for ax, (col, label) in zip(axes.flat, _PANELS, strict=True):
        means = [runs.loc[runs.policy == p, col].mean() for p in policies]
        errs = [_ci(runs.loc[runs.policy == p, col].to_numpy()) for p in policies]
        colors = [
            "tab:red" if p == "trained" else "tab:gray" if p in ORACLES else "tab:blue" for p in policies
        ]
        ax.bar(policies, means, yerr=errs, color=colors, capsize=3)
        ax.set_title(label)
        ax.tick_params(axis="x", rotation=35)
        if col == "approval_rate":
            lo = min(means) - 0.02
            ax.set_ylim(max(lo, 0.0), min(max(means) + 0.01, 1.0))
    fig.suptitle(f"{title}: KPIs by policy (mean over seeds, 95% interval of the mean)")
    fig.tight_layout()
    return _save(fig, path)


def approval_by_hour(hourly: pd.DataFrame, title: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 5))
    for p in _order(list(hourly["policy"].unique())):
        h = hourly[hourly.policy == p].groupby("hour")[["attempts", "approved"]].sum()
        rate = h["approved"] / h["attempts"].where(h["attempts"] > 0)
        ax.plot(rate.index, rate.to_numpy(), marker="o", ms=3, lw=2.5 if p == "trained" else 1.2, label=p)
    ax.set_xlabel("hour of day (arrival)")
    ax.set_ylabel("approval rate (approved / submitted)")
    ax.set_xticks(range(0, 24, 2))
    ax.legend(ncol=3, fontsize=8)
    ax.set_title(f"{title}: approval by hour (all seeds pooled)")
    fig.tight_layout()
    return _save(fig, path)


def margin_curve_means(curve: pd.DataFrame) -> pd.DataFrame:
    """Mean cumulative margin over seeds: one row per point of the plot (``hours``, infinite for the drained point,
    when every outcome of the day, chargebacks and late settlements included, is booked), one column per policy.

    The drained point is what the evaluation table counts: its order of the policies is the table's order of
    total margin (every policy meets the same payments on a seed)."""
    points = curve.assign(hours=curve["hours"].fillna(np.inf))  # the drained point has no hour
    mean = points.groupby(["drained", "hours", "policy"])["margin_usd_cum"].mean().unstack("policy")
    return mean.sort_index(level=["drained", "hours"])


def cumulative_margin(curve: pd.DataFrame, title: str, path: Path, reference: str = "cheapest") -> Path:
    """Cumulative margin through the day, and a last point once the day has drained (what the table counts)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
    mean = margin_curve_means(curve)
    hourly = mean.xs(False, level="drained")
    hours = hourly.index.to_numpy(dtype=float)
    drained = mean.xs(True, level="drained").iloc[0] if True in mean.index.get_level_values(0) else None
    end_x = (hours.max() if len(hours) else 0.0) + 3.0
    for i, p in enumerate(_order(list(mean.columns))):
        lw = 2.5 if p == "trained" else 1.2
        color = plt.get_cmap("tab10")(i % 10)
        top.plot(hours, hourly[p], lw=lw, label=p, color=color)
        if reference in hourly:
            bottom.plot(hours, hourly[p] - hourly[reference], lw=lw, label=p, color=color)
        if drained is not None and len(hours):
            # the day's outcomes that resolve after its last hour (chargebacks, late settlements, returns)
            top.plot([hours[-1], end_x], [hourly[p].iloc[-1], drained[p]], ls=":", lw=lw, color=color)
            top.plot([end_x], [drained[p]], marker="o", color=color)
            if reference in drained:
                ref_last = hourly[p].iloc[-1] - hourly[reference].iloc[-1]
                bottom.plot([hours[-1], end_x], [ref_last, drained[p] - drained[reference]], ls=":", lw=lw,
                            color=color)  # fmt: skip
                bottom.plot([end_x], [drained[p] - drained[reference]], marker="o", color=color)
    top.set_ylabel("cumulative margin ($, mean over seeds)")
    top.legend(ncol=3, fontsize=8)
    bottom.axhline(0.0, color="black", lw=0.8)
    bottom.set_ylabel(f"minus {reference} ($)")
    if drained is not None and len(hours):
        ticks = [t for t in bottom.get_xticks() if hours.min() <= t <= hours.max()]
        bottom.set_xticks([*ticks, end_x], [*(f"{t:g}" for t in ticks), "all\nbooked"])
    bottom.set_xlabel(
        "simulated hours (outcomes booked so far); the dot: every outcome booked, as the table counts"
    )
    top.set_title(f"{title}: cumulative margin")
    fig.tight_layout()
    return _save(fig, path)


def route_mix(mix: pd.DataFrame, title: str, path: Path) -> Path:
    table = mix.groupby(["policy", "route"])["count"].sum().unstack(fill_value=0)
    share = table.div(table.sum(axis=1), axis=0)
    share = share.loc[_order(list(share.index))]
    fig, ax = plt.subplots(figsize=(10, 5))
    left = np.zeros(len(share))
    cmap = plt.get_cmap("tab20")
    for i, route in enumerate(share.columns):
        ax.barh(share.index, share[route], left=left, label=route, color=cmap(i % 20))
        left += share[route].to_numpy()
    ax.set_xlabel("share of routed payments")
    ax.invert_yaxis()
    ax.legend(ncol=5, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    ax.set_title(f"{title}: route mix")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    """Write the figure whole or not at all (:mod:`payroute.files`), in the format its suffix names."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path
