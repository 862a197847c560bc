"""The stress suite's gates as review checks: per stress scenario, margin per transaction and approval rate of the
bundle against the best reference, each decided family-wise (:mod:`payroute.policies.review.gates`) and said in
words, with why the bundle lost where it did."""

from __future__ import annotations

from typing import Any

from payroute.policies.review.checks import FAIL, Check, status
from payroute.policies.review.config import StressReviewConfig
from payroute.policies.review.gates import GateResult, stress_gates
from payroute.policies.review.stress import StressResult


def stress_checks(stress: StressResult, cfg: StressReviewConfig) -> list[Check]:
    checks = []
    gates = stress_gates(stress, cfg)  # family-wise over every comparison below (stress.multiplicity)
    for scenario in cfg.scenarios:
        if scenario in stress.errors:
            checks.append(
                Check(
                    "stress",
                    f"{scenario}",
                    FAIL,
                    f"on {scenario} the bundle could not finish a run: {stress.errors[scenario]}",
                )
            )
            continue
        ref = stress.best[scenario]
        row = stress.comparison(scenario, ref)
        checks.append(_margin_check(stress, scenario, ref, row, cfg, gates[(scenario, "margin")]))
        if cfg.min_approval_diff_vs_best is not None:
            checks.append(_approval_check(scenario, ref, row, cfg, gates[(scenario, "approval")]))
    return checks


def _means(stress: StressResult, scenario: str, policy: str) -> dict[str, float]:
    runs = stress.runs
    rows = runs[(runs.scenario == scenario) & (runs.policy == policy)]
    return {
        k: float(rows[k].mean()) for k in ("route_cost_bps", "fraud_loss_bps", "sla_misses", "approval_rate")
    }


def _margin_check(
    stress: StressResult, scenario: str, ref: str, row: Any, cfg: StressReviewConfig, gate: GateResult
) -> Check:
    thr = cfg.min_margin_diff_vs_best_usd
    conf = f"{cfg.confidence:.0%}"
    low, high, diff = row.margin_diff_low, row.margin_diff_high, row.margin_diff
    said = (
        f"on {scenario} the bundle earned {_usd(row.candidate_margin_per_tx_usd)} per transaction, "
        f"{_usd(diff, sign=True)} against {ref} (the best reference, "
        f"{_usd(row.reference_margin_per_tx_usd)}); paired {conf} interval [{low:+.4f}, {high:+.4f}] over "
        f"{int(row.seeds)} seeds" + gate.bound_words()
    )
    ok = gate.passed
    if ok:
        summary = f"{said}; the {gate.bound_name} is at least the allowed {thr:+.4f}"
    elif diff >= thr:
        summary = (
            f"{said}; the {gate.bound_name} is below the allowed {thr:+.4f}: the interval is too wide to show the "
            "bundle is no worse, so run more seeds or more volume (stress.seeds, stress.volume_multiplier); "
            + gate.more_seeds_words()
        )
    else:
        summary = f"{said}; it is worse than the allowed {thr:+.4f}" + _why(stress, scenario, ref)
        summary += "; " + gate.more_seeds_words()
    return Check(
        "stress",
        f"margin vs best: {scenario}",
        status(ok),
        summary,
        gate.adjusted_low,
        thr,
        {"reference": ref, "mean": float(diff), "low": float(low), "high": float(high), **gate.to_dict()},
    )


def _usd(x: float, sign: bool = False) -> str:
    return f"{'-' if x < 0 else '+' if sign else ''}${abs(x):.4f}"


def _why(stress: StressResult, scenario: str, ref: str) -> str:
    """The KPIs that moved most against the reference, in words."""
    cand, base = _means(stress, scenario, "candidate"), _means(stress, scenario, ref)
    reasons = []
    if cand["route_cost_bps"] > base["route_cost_bps"] * 1.05 + 0.5:
        reasons.append(
            f"route cost {cand['route_cost_bps']:.1f} bps of settled value against {base['route_cost_bps']:.1f} bps"
        )
    if cand["approval_rate"] < base["approval_rate"] - 0.005:
        reasons.append(f"approval {cand['approval_rate']:.2%} against {base['approval_rate']:.2%}")
    if cand["fraud_loss_bps"] > base["fraud_loss_bps"] * 1.05 + 0.5:
        reasons.append(
            f"fraud loss {cand['fraud_loss_bps']:.1f} bps against {base['fraud_loss_bps']:.1f} bps"
        )
    if cand["sla_misses"] > base["sla_misses"] * 1.1 + 1:
        reasons.append(f"{cand['sla_misses']:.0f} missed deadlines per run against {base['sla_misses']:.0f}")
    return ": " + "; ".join(reasons) if reasons else ""


def _approval_check(scenario: str, ref: str, row: Any, cfg: StressReviewConfig, gate: GateResult) -> Check:
    thr = cfg.min_approval_diff_vs_best
    low, high, diff = row.approval_diff_low, row.approval_diff_high, row.approval_diff
    said = (
        f"on {scenario} the bundle's approval rate was {row.candidate_approval_rate:.2%} against "
        f"{row.reference_approval_rate:.2%} for {ref}: {diff * 100:+.2f} points, paired {cfg.confidence:.0%} "
        f"interval [{low * 100:+.2f}, {high * 100:+.2f}]" + gate.bound_words(100.0, "{:+.2f} points")
    )
    ok = gate.passed
    verdict = "at least" if ok else "below"
    summary = f"{said}; the {gate.bound_name} is {verdict} the allowed {thr * 100:+.2f} points"
    if not ok and diff >= thr:
        summary += " (the interval is too wide: run more seeds or volume)"
    if not ok:
        summary += "; " + gate.more_seeds_words()
    return Check(
        "stress",
        f"approval vs best: {scenario}",
        status(ok),
        summary,
        gate.adjusted_low,
        thr,
        {"reference": ref, "mean": float(diff), "low": float(low), "high": float(high), **gate.to_dict()},
    )


# ---------------------------------------------------------------------- off-policy evaluation
