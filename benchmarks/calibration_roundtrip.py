"""The calibration round trip: do decisions made on a world fitted from a log transfer to the world that made it?

For each truth (``envs/calibration/truths/``: ``shifted`` differs from ``default`` in volume profile, segment mix,
approval by route and segment, fees and fraud rates; ``outage`` is ``shifted`` with card_alpha down four hours on
the log's first day), logs of ``--days`` days are made under the exploring behaviour policy (``payroute simulate
--explore 0.3``, cheapest route), each is calibrated on ``default`` from the log alone, and then:

* parameters recovered: per block, how many fitted values hold the truth inside their 95% interval and the median
  relative error, against the log's length; the arrival profiles' total-variation distance;
* decisions: every routing baseline and the zoo router on ``--seeds`` held-out seeds of the truth, of each fitted
  world (and, for a truth with an outage, of the fitted world with that outage stated as a what-if) and of
  ``default`` (what a fit that learned nothing says): the ranking by margin per transaction, Kendall's tau
  against the truth's, the pairs whose paired difference is clear in the truth (interval excludes zero) and how
  many of them keep their sign, and each KPI's paired difference from the truth against its tolerance.

It prints the tables, writes them as JSON (``--out``) and a plot of both against the log's length::

    python -m payroute.benchmarks.calibration_roundtrip --days 1 7 30 --seeds 10 --volume 0.1 --out roundtrip/
    python -m payroute.benchmarks.calibration_roundtrip --volume 1.0 ...   # full volume (about 10x the time)

docs/calibration_roundtrip.md has the numbers of the first command.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from payroute.experiments.studies import calibration_roundtrip as rt


def study(truth_name: str, days: list[int], seeds: int, volume: float, workers: int, zoo: bool) -> dict:
    truth = rt.truth_scenario(truth_name, volume)
    start = time.perf_counter()
    fits, recovery, profiles, flagged = {}, [], {}, {}
    for n in days:
        cal = rt.fit_truth(truth, n)
        fits[f"{n}d"] = cal.scenario
        rec = rt.recovery(cal, truth).assign(days=n)
        recovery.append(rec)
        profiles[f"{n}d"] = rt.profile_distances(cal.scenario, truth)
        flagged[f"{n}d"] = {"flagged": len(cal.flagged), "failure_hours": cal.provenance["failure_hours"]}
    fit_s = time.perf_counter() - start
    decisions = rt.decide(rt.worlds_for(truth, fits), rt.routers(zoo), seeds=seeds, workers=workers)
    rec = pd.concat(recovery)
    by_block = (rec.groupby(["block", "days"]).agg(values=("inside", "size"), inside=("inside", "mean"),
                median_rel_error=("rel_error", "median")).reset_index())  # fmt: skip
    worlds = [w for w in decisions.runs.world.unique() if w != "truth"]
    agreement = []
    for w in worlds:
        signs = rt.pair_signs(decisions, w)
        kpis = rt.kpi_agreement(decisions, w)
        for metric in rt.METRICS:
            clear = signs[(signs.metric == metric) & signs.clear]
            resolvable = clear[clear.resolvable]
            k = kpis[kpis.metric == metric]
            agreement.append({
                "world": w, "metric": metric, "kendall_tau": rt.kendall_tau(decisions, w, metric=metric),
                "clear_pairs": len(clear), "clear_pairs_agree": int(clear.agree.sum()),
                "resolvable_pairs": len(resolvable), "resolvable_pairs_agree": int(resolvable.agree.sum()),
                "disagree": [f"{r.a} vs {r.b}{'' if r.resolvable else ' (close)'}: truth {r.truth_diff:+.4f} [{r.truth_low:+.4f}, {r.truth_high:+.4f}], "
                             f"here {r.diff:+.4f} [{r.low:+.4f}, {r.high:+.4f}]" for r in clear[~clear.agree].itertuples()],
                "kpi_consistent": int(k.consistent.sum()), "kpi_within": int(k.within.sum()), "policies": len(k),
            })  # fmt: skip
    return {
        "truth": truth_name, "volume": volume, "seeds": seeds, "fit_s": fit_s,
        "wall_s": time.perf_counter() - start, "recovery": by_block.to_dict("records"),
        "missed": rec[~rec.inside][["days", "path", "truth", "fitted", "low", "high"]].to_dict("records"),
        "profiles": profiles, "flagged": flagged, "agreement": agreement,
        "rankings": rt.rankings(decisions).reset_index().to_dict("records"),
        "kpis": pd.concat([rt.kpi_agreement(decisions, w) for w in worlds]).to_dict("records"),
        "means": decisions.runs.groupby(["world", "policy"])[list(rt.TOLERANCE)].mean().reset_index()
        .to_dict("records"),
    }  # fmt: skip


def print_study(r: dict) -> None:
    print(f"\n== {r['truth']} (volume x{r['volume']}, {r['seeds']} held-out seeds, {r['wall_s']:.0f} s)")
    rec = pd.DataFrame(r["recovery"])
    table = rec.pivot(index="block", columns="days", values=["inside", "median_rel_error"])
    print("parameters: share of fitted values whose interval holds the truth, median relative error")
    print(table.to_string(float_format=lambda x: f"{x:.3f}"))
    for label, p in r["profiles"].items():
        print(
            f"  {label}: arrival profile TV distance intraday {p['intraday_tv']:.3f}, weekly {p['weekly_tv']:.3f}"
        )
    for m in r["missed"]:
        print(f"  outside ({m['days']}d): {m['path']}: truth {m['truth']:.6g}, fit {m['fitted']:.6g} "
              f"[{m['low']:.6g}, {m['high']:.6g}]")  # fmt: skip
    print("decisions: ranking by margin per transaction (1 = best)")
    print(pd.DataFrame(r["rankings"]).set_index("policy").to_string())
    for a in r["agreement"]:
        print(f"  {a['world']:<28} {a['metric']:<18} tau {a['kendall_tau']:+.2f}; pairs keeping their sign: clear "
              f"{a['clear_pairs_agree']}/{a['clear_pairs']}, resolvable {a['resolvable_pairs_agree']}/"
              f"{a['resolvable_pairs']}; KPI diff holds 0 for {a['kpi_consistent']}/"
              f"{a['policies']}, within tolerance for {a['kpi_within']}/{a['policies']}")  # fmt: skip
        for d in a["disagree"] if a["world"] != "base" else []:
            print(f"      sign flips: {d}")


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in results:
        rec = pd.DataFrame(r["recovery"])
        for block, g in rec.groupby("block"):
            axes[0].plot(g["days"], g["median_rel_error"], marker="o", label=f"{r['truth']}: {block}")
        agree = pd.DataFrame(r["agreement"])
        agree = agree[(agree.metric == "margin_per_tx_usd") & agree.world.str.startswith("fitted")]
        agree = agree[~agree.world.str.endswith("incidents")]
        days = [int(w.split()[1][:-1]) for w in agree.world]
        share = agree.resolvable_pairs_agree / agree.resolvable_pairs.clip(lower=1)
        axes[1].plot(days, share, marker="o", label=f"{r['truth']}: fitted")
        base = pd.DataFrame(r["agreement"])
        base = base[(base.world == "base") & (base.metric == "margin_per_tx_usd")]
        if len(base):
            b = float(base.resolvable_pairs_agree.iloc[0] / max(base.resolvable_pairs.iloc[0], 1))
            axes[1].axhline(b, linestyle="--", color="grey")
    axes[0].set(xscale="log", yscale="log", xlabel="log length (days)", ylabel="median relative error",
                title="parameters recovered")  # fmt: skip
    axes[0].legend(fontsize=6, ncol=2)
    axes[1].set(xscale="log", xlabel="log length (days)", ylabel="resolvable pairs keeping their sign",
                title="decisions transfer (margin/tx; dashed: default)", ylim=(0, 1.05))  # fmt: skip
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--truths", nargs="+", default=list(rt.TRUTHS), choices=[*rt.TRUTHS, "default"])
    ap.add_argument("--days", type=int, nargs="+", default=[1, 7, 30], help="log lengths to fit from")
    ap.add_argument("--seeds", type=int, default=10, help="held-out seeds per world for the decisions")
    ap.add_argument("--volume", type=float, default=0.1, help="volume_scale (1.0: full volume)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--no-zoo", action="store_true", help="leave the zoo router out")
    ap.add_argument("--out", type=Path, help="folder for roundtrip.json and roundtrip.png")
    args = ap.parse_args(argv)
    results = [
        study(t, args.days, args.seeds, args.volume, args.workers, not args.no_zoo) for t in args.truths
    ]
    for r in results:
        print_study(r)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "roundtrip.json").write_text(json.dumps(results, indent=1, default=float))
        plot(results, args.out / "roundtrip.png")
        print(f"\nwrote {args.out / 'roundtrip.json'} and {args.out / 'roundtrip.png'}")
    return results


if __name__ == "__main__":
    main()
