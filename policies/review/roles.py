"""Every role in the stress worlds: price, treasury and fraud-side bundles against their references, paired.

Route and risk bundles go through :mod:`payroute.policies.review.stress`. The per-period roles run here, on the
same paired-comparison engine (:func:`payroute.policies.compare.run_all`: common random numbers, the same seeds
for every arm, worker processes with the same numbers as one), bound into the world by
:func:`payroute.policies.bundle.binding.bound_bundle`, each with the gates that role answers for:

=========  ======================================  =============================================================
role       references (``roles.<kind>.baselines``)  gates, per stress scenario, on paired intervals of (bundle -
                                                    best reference)
=========  ======================================  =============================================================
price      ``static_pricing`` (list prices),        profit (margin per transaction, USD): lower bound >=
           ``cost_plus``; best = highest margin     ``min_profit_diff_vs_best_usd``; approval rate: lower bound
                                                    >= ``min_approval_diff_vs_best``; abandonment rate (quoted
                                                    payers who walked away): upper bound <=
                                                    ``max_abandon_diff_vs_best``
treasury   ``target_balance``, ``hold``; best =     liquidity cost (intraday credit, opportunity cost, transfer
           lowest treasury cost per transaction     fees; USD per transaction), failed payouts (per 1,000
           (liquidity + delay + failed payouts'     transactions) and payout delay (the accounts' queue delay
           service-level cost)                      cost, USD per transaction): each upper bound <= its
                                                    ``max_..._diff``
fraud      ``scripted_fraud``; best = the           per stress scenario *and shipped defense*
           strongest adversary (highest fraud       (``roles.fraud.defenses``: the risk baselines bound against
           loss it inflicts)                        it): the fraud loss the PSP bears per genuine payment (USD):
                                                    lower bound >= ``min_loss_diff_vs_strongest_usd``
=========  ======================================  =============================================================

A champion bundle (``--champion``) of the same kind joins the references, so the best reference may be the
champion: the challenger has to match it. Why these gates (docs/review.md, "Every role"): a pricer is paid in
profit and must not buy it with approvals or customers walking away; a treasurer's job is to keep payouts
flowing (no failures, no waiting) at the least liquidity cost, and one good number cannot hide a bad other;
a fraud-side bundle is an adversary for red-teaming and for training risk desks, so the question is whether it
is at least as dangerous as the adversary it replaces, against the defenses that ship.

Every gate is a non-inferiority test on a Student-t paired interval (:func:`payroute.stats.paired_interval`): a
wide interval fails, and the check says whether the mean itself is within the allowed margin (run more seeds)
or not (a real failure).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from payroute.config_model import ConfigModel
from payroute.envs.baselines import policy_names
from payroute.errors import PayrouteError
from payroute.policies.bundle.binding import check_bundle_fits_scenario
from payroute.policies.bundle.loading import load_bundle
from payroute.policies.bundle.runtime import BundlePolicy
from payroute.policies.compare import Executor, Run, bundle_policy, remember_bundle, run_all
from payroute.policies.review.checks import FAIL, Check, status
from payroute.policies.review.gates import Comparison, GateResult, family_gates
from payroute.policies.review.stress import BASELINE, CANDIDATE, CHAMPION, StressConfig, _scenario
from payroute.stats import paired_interval

ROLE_KINDS = ("price", "treasury", "fraud")


# ---------------------------------------------------------------------- config
class PriceGates(ConfigModel):
    """A price bundle's references and gates."""

    baselines: list[str] = Field(default_factory=lambda: ["static_pricing", "cost_plus"], min_length=1)
    other_policies: dict[str, str] = Field(
        default_factory=lambda: {"route": "cheapest", "risk": "threshold"},
        description="baselines bound for the other decision kinds (as Pricing-v0 binds them)",
    )
    min_profit_diff_vs_best_usd: float = -0.05
    min_approval_diff_vs_best: float | None = Field(default=-0.02, ge=-1, le=1)
    max_abandon_diff_vs_best: float | None = Field(default=0.02, ge=-1, le=1)


class TreasuryGates(ConfigModel):
    """A treasury bundle's references and gates."""

    baselines: list[str] = Field(default_factory=lambda: ["target_balance", "hold"], min_length=1)
    other_policies: dict[str, str] = Field(
        default_factory=lambda: {"route": "fastest", "risk": "threshold"},
        description="baselines bound for the other decision kinds (as Treasury-v0 binds them: instant "
        "payouts draw on the prefunded accounts)",
    )
    max_liquidity_cost_diff_usd: float | None = Field(default=0.01, description="USD per transaction")
    max_failed_payouts_diff_per_1k: float | None = Field(default=0.5, description="per 1,000 transactions")
    max_delay_cost_diff_usd: float | None = Field(default=0.005, description="USD per transaction")


class FraudGates(ConfigModel):
    """A fraud-side bundle's references, the defenses it faces, and its gate."""

    baselines: list[str] = Field(default_factory=lambda: ["scripted_fraud"], min_length=1)
    defenses: list[str] = Field(
        default_factory=lambda: ["threshold", "card_blocker"],
        min_length=1,
        description="risk baselines the adversary faces, each in every stress scenario",
    )
    route: str = "cheapest"
    min_loss_diff_vs_strongest_usd: float | None = Field(
        default=-0.05, description="USD of fraud loss per genuine payment; null: reported, not gated"
    )


class RoleReviewConfig(ConfigModel):
    """The gates of price, treasury and fraud-side bundles in the stress worlds (``roles:`` in review.yaml).
    Scenarios, seeds, days, volume, confidence and workers come from ``stress:``."""

    price: PriceGates = PriceGates()
    treasury: TreasuryGates = TreasuryGates()
    fraud: FraudGates = FraudGates()
    max_clipped_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="continuous (treasury, fraud) bundles: the share of decisions whose raw action may leave "
        "the card's limits (clipped); null: reported, a warning when not zero",
    )


# ---------------------------------------------------------------------- what each role is measured on
def role_measures(world: Any) -> dict[str, float]:
    """The numbers the role gates read from a finished world (money per transaction in USD)."""
    t = world.totals
    arrivals = max(world.arrivals, 1)
    quotes = world.quote_stats.snapshot()
    quoted = int(quotes["quoted"].sum())
    attempts = int(world.fraudster.counts[0].sum())
    genuine = max(world.arrivals - attempts, 1)
    liquidity = t["liquidity_cost_cents"] + t["liquidity_cost"] + t["treasury_cost"]
    return {
        "abandon_rate": int(quotes["abandoned"].sum()) / quoted if quoted else 0.0,
        "liquidity_cost_per_tx_usd": liquidity / arrivals / 100.0,
        "failed_payouts_per_1k": t["liquidity_failures"] / arrivals * 1000.0,
        "delay_cost_per_tx_usd": t["delay_cost"] / arrivals / 100.0,
        "treasury_cost_per_tx_usd": (liquidity + t["delay_cost"] + t["liquidity_failure_cost_cents"])
        / arrivals
        / 100.0,
        "fraud_loss_per_tx_usd": t["fraud_loss_cents"] / genuine / 100.0,
        "fraud_loss_usd": t["fraud_loss_cents"] / 100.0,
        "fraudster_net_usd": world.fraudster.net_cents / 100.0,
        "fraud_attempts": float(attempts),
    }


@dataclass(frozen=True)
class Gate:
    metric: str
    label: str
    sign: int  # +1: higher is better for the PSP's side of the gate (lower bound gated); -1: lower is better
    threshold_field: str
    unit: str


GATES: dict[str, tuple[Gate, ...]] = {
    "price": (
        Gate("margin_per_tx_usd", "profit", +1, "min_profit_diff_vs_best_usd", "usd"),
        Gate("approval_rate", "approval", +1, "min_approval_diff_vs_best", "points"),
        Gate("abandon_rate", "abandonment", -1, "max_abandon_diff_vs_best", "points"),
    ),
    "treasury": (
        Gate("liquidity_cost_per_tx_usd", "liquidity cost", -1, "max_liquidity_cost_diff_usd", "usd"),
        Gate("failed_payouts_per_1k", "failed payouts", -1, "max_failed_payouts_diff_per_1k", "per1k"),
        Gate("delay_cost_per_tx_usd", "payout delay", -1, "max_delay_cost_diff_usd", "usd"),
    ),
    "fraud": (Gate("fraud_loss_per_tx_usd", "loss inflicted", +1, "min_loss_diff_vs_strongest_usd", "usd"),),
}
BEST_BY: dict[str, tuple[str, int]] = {
    "price": ("margin_per_tx_usd", +1),
    "treasury": ("treasury_cost_per_tx_usd", -1),
    "fraud": ("fraud_loss_per_tx_usd", +1),
}
REPORTED: dict[str, tuple[str, ...]] = {
    "price": ("margin_per_tx_usd", "approval_rate", "abandon_rate", "revenue_usd"),
    "treasury": (
        "treasury_cost_per_tx_usd",
        "liquidity_cost_per_tx_usd",
        "failed_payouts_per_1k",
        "delay_cost_per_tx_usd",
        "margin_per_tx_usd",
    ),
    "fraud": (
        "fraud_loss_per_tx_usd",
        "fraud_loss_usd",
        "fraudster_net_usd",
        "fraud_attempts",
        "approval_rate",
    ),
}


# ---------------------------------------------------------------------- running
@dataclass
class RoleStressResult:
    """Per-run numbers and paired comparisons of a price, treasury or fraud bundle; ``group`` is the stress
    scenario (and for fraud, ``scenario / defense``)."""

    kind: str
    config: StressConfig
    gates: PriceGates | TreasuryGates | FraudGates
    candidate: str
    runs: pd.DataFrame  # group, scenario, defense, policy, role, seed, metrics, error
    comparisons: (
        pd.DataFrame
    )  # group, reference, role, is_best, per metric: candidate, reference, diff, low, high
    best: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def comparison(self, group: str, reference: str) -> pd.Series:
        rows = self.comparisons
        return rows[(rows.group == group) & (rows.reference == reference)].iloc[0]

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(self.runs.group))

    def to_dict(self) -> dict[str, Any]:
        metrics = [m for m in REPORTED[self.kind] if m in self.runs]
        means = self.runs.groupby(["group", "policy", "role"], sort=False)[metrics].mean().reset_index()
        return {
            "kind": self.kind,
            "config": self.config.model_dump(mode="json"),
            "gates": self.gates.model_dump(mode="json"),
            "candidate": self.candidate,
            "best_reference": self.best,
            "errors": self.errors,
            "comparisons": _records(self.comparisons),
            "means": _records(means),
        }


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
        for row in df.to_dict(orient="records")
    ]


def _load(bundle: BundlePolicy | Any) -> BundlePolicy:
    return bundle if isinstance(bundle, BundlePolicy) else load_bundle(bundle)


def _references(kind: str, names: list[str]) -> list[str]:
    known = policy_names(kind)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise PayrouteError(
            f"roles.{kind}.baselines {unknown} are not {kind} baselines; available: {', '.join(known)}"
        )
    return list(names)


def run_role_stress(
    candidate: BundlePolicy | Any,
    config: StressConfig | None = None,
    roles: RoleReviewConfig | None = None,
    *,
    champion: BundlePolicy | Any | None = None,
    progress: Callable[[int, int], None] | None = None,
    executor: Executor | None = None,
) -> RoleStressResult:
    """Run a price, treasury or fraud bundle, its references (and a champion) on every stress scenario and seed
    (fraud: against every defense too); compare paired. ``executor`` runs the worlds elsewhere (a Ray cluster)."""
    config = config or StressConfig()
    roles = roles or RoleReviewConfig()
    cand = _load(candidate)
    kind = cand.decision_kind
    if kind not in ROLE_KINDS:
        raise PayrouteError(
            f"the role stress suite runs {', '.join(ROLE_KINDS)} bundles; this one decides {kind!r}"
        )
    gates = getattr(roles, kind)
    remember_bundle(cand)
    champ = None
    if champion is not None:
        champ = _load(champion)
        if champ.decision_kind != kind:
            raise PayrouteError(
                f"champion {champ.source.name} decides {champ.decision_kind!r}; the candidate decides {kind!r}"
            )
        remember_bundle(champ)
    references = _references(kind, list(gates.baselines))
    if kind == "fraud":
        _references("risk", list(gates.defenses))
        settings = [(d, (("risk", d), ("route", gates.route))) for d in gates.defenses]
    else:
        others = tuple(sorted((k, v) for k, v in gates.other_policies.items() if k != kind))
        settings = [("", others)]

    runs: list[Run] = []
    tags: list[tuple[str, str, str, str]] = []
    for name in config.scenarios:
        sc = _scenario(name, config.volume_multiplier, config.base)
        for bundle in (cand, champ):
            if bundle is not None:
                check_bundle_fits_scenario(bundle, sc)
        entries: list[tuple[str, str, Any]] = [(CANDIDATE, CANDIDATE, bundle_policy(cand, CANDIDATE))]
        if champ is not None:
            entries.append((CHAMPION, CHAMPION, bundle_policy(champ, CHAMPION)))
        entries += [(r, BASELINE, r) for r in references]
        for defense, others in settings:
            group = f"{name} / {defense}" if defense else name
            for seed in config.seed_list(name):
                for label, role, pol in entries:
                    keep = role in (CANDIDATE, CHAMPION)
                    runs.append(
                        Run(sc, pol, seed, config.days, kind, others, keep_errors=keep, measure=role_measures)
                    )
                    tags.append((group, name, defense, f"{label}\t{role}"))
    workers = config.workers or os.cpu_count() or 1
    outcomes = run_all(
        runs, workers, progress, spawn=True, executor=executor
    )  # onnxruntime sessions must not cross a fork
    rows = []
    for run, (group, name, defense, lr), out in zip(runs, tags, outcomes, strict=True):
        label, role = lr.split("\t")
        row: dict[str, Any] = {"group": group, "scenario": name, "defense": defense, "policy": label, "role": role,
                               "seed": run.seed, "error": out.error, "wall_s": out.wall_s}  # fmt: skip
        if not out.error:
            row.update(out.kpis, **(out.extra or {}))
        rows.append(row)
    return _compare(kind, pd.DataFrame(rows), cand.source.name, config, gates)


def _compare(kind: str, runs: pd.DataFrame, name: str, config: StressConfig, gates: Any) -> RoleStressResult:
    comparisons: list[dict[str, Any]] = []
    best: dict[str, str] = {}
    errors: dict[str, str] = {}
    best_metric, best_sign = BEST_BY[kind]
    metrics = REPORTED[kind]
    for group, rows in runs.groupby("group", sort=False):
        failed = rows[(rows.policy == CANDIDATE) & (rows.error != "")]
        if len(failed):
            errors[group] = f"seed {int(failed.iloc[0].seed)}: {failed.iloc[0].error}"
            continue
        wide = {m: rows.pivot(index="seed", columns="policy", values=m) for m in metrics}
        roles = dict(zip(rows.policy, rows.role, strict=False))
        refs = [p for p, r in roles.items() if r in (BASELINE, CHAMPION)]
        ranked = wide[best_metric]
        best[group] = max(refs, key=lambda p: (best_sign * float(ranked[p].mean()), -refs.index(p)))
        for ref in refs:
            row: dict[str, Any] = {
                "group": group,
                "reference": ref,
                "role": roles[ref],
                "is_best": ref == best[group],
            }
            for m in metrics:
                d = paired_interval(wide[m][CANDIDATE].to_numpy(), wide[m][ref].to_numpy(), config.confidence)
                row.update({f"candidate_{m}": float(wide[m][CANDIDATE].mean()), f"reference_{m}": float(wide[m][ref].mean()),
                            f"{m}_diff": d.mean, f"{m}_low": d.low, f"{m}_high": d.high})  # fmt: skip
                row["seeds"] = d.n
            comparisons.append(row)
    return RoleStressResult(kind, config, gates, name, runs, pd.DataFrame(comparisons), best, errors)


# ---------------------------------------------------------------------- gates
def _fmt(x: float, unit: str, sign: bool = True) -> str:
    if unit == "usd":
        return f"{'-' if x < 0 else '+' if sign else ''}${abs(x):.4f}"
    if unit == "points":
        return f"{x * 100:+.2f} points" if sign else f"{x:.2%}"
    return f"{x:+.2f}" if sign else f"{x:.2f} per 1,000 payments"


def _whose(kind: str, ref: str) -> str:
    if ref == CHAMPION:
        return "the champion"
    return "the strongest reference" if kind == "fraud" else "the best reference"


def role_comparisons(result: RoleStressResult) -> tuple[list[Comparison], dict[tuple[str, str], Gate]]:
    """The family of a role review's gates, each as "bound >= threshold" (an upper-bound gate, whose difference
    must stay below its threshold, negated), with its per-seed paired differences; and the gate of each."""
    comparisons, gates = [], {}
    for group in result.groups:
        if group in result.errors:
            continue
        ref = result.best[group]
        row = result.comparison(group, ref)
        rows = result.runs[result.runs.group == group]
        for gate in GATES[result.kind]:
            thr = getattr(result.gates, gate.threshold_field)
            if thr is None:
                continue
            m, sign = gate.metric, gate.sign
            wide = rows.pivot(index="seed", columns="policy", values=m)
            diffs = sign * (wide[CANDIDATE] - wide[ref]).to_numpy(dtype=float)
            low, high = float(row[f"{m}_low"]), float(row[f"{m}_high"])
            low, high = (low, high) if sign > 0 else (-high, -low)
            comparisons.append(Comparison(group, m, diffs, sign * float(thr), low, high))
            gates[(group, m)] = gate
    return comparisons, gates


def role_checks(result: RoleStressResult, multiplicity: str = "holm") -> list[Check]:
    """One check per gate and stress group (scenario, or scenario / defense); the gates are one family under
    ``multiplicity`` (:func:`~payroute.policies.review.gates.family_gates`: Holm by default), as the route and
    risk bundles' stress gates are."""
    comparisons, gates = role_comparisons(result)
    verdicts = family_gates(comparisons, multiplicity, result.config.confidence)
    checks: list[Check] = []
    for group in result.groups:
        if group in result.errors:
            checks.append(
                Check(
                    "stress",
                    group,
                    FAIL,
                    f"on {group} the bundle could not finish a run: {result.errors[group]}",
                )
            )
            continue
        ref = result.best[group]
        row = result.comparison(group, ref)
        for gate in GATES[result.kind]:
            thr = getattr(result.gates, gate.threshold_field)
            if thr is not None:
                checks.append(_gate_check(result, gate, group, ref, row, thr, verdicts[(group, gate.metric)]))
    return checks


def _gate_check(
    result: RoleStressResult, gate: Gate, group: str, ref: str, row: Any, thr: float, verdict: GateResult
) -> Check:
    m, u, sign = gate.metric, gate.unit, gate.sign
    diff, low, high = float(row[f"{m}_diff"]), float(row[f"{m}_low"]), float(row[f"{m}_high"])
    bound = sign * verdict.adjusted_low  # the bound the gate is decided on (Holm-adjusted in a family)
    which = "lower" if sign > 0 else "upper"
    ok = verdict.passed
    said = (
        f"on {group} the bundle's {gate.label} was {_fmt(row[f'candidate_{m}'], u, False)} against "
        f"{_fmt(row[f'reference_{m}'], u, False)} for {ref} ({_whose(result.kind, ref)}): "
        f"{_fmt(diff, u)}, paired {result.config.confidence:.0%} interval [{_fmt(low, u)}, {_fmt(high, u)}] over "
        f"{int(row.seeds)} seeds"
    )
    if verdict.method != "none" and verdict.family_size > 1:
        said += (
            f"; the Holm-adjusted {which} bound is {_fmt(bound, u)} (one-sided {verdict.level:.3%}, rank "
            f"{verdict.rank} of {verdict.family_size} comparisons)"
        )
    allowed = _fmt(thr, u)
    if ok:
        summary = f"{said}; the {which} bound is within the allowed {allowed}"
    else:
        summary = f"{said}; the {which} bound is past the allowed {allowed}: {verdict.more_seeds_words()}"
    return Check(
        "stress",
        f"{gate.label} vs {'strongest' if result.kind == 'fraud' else 'best'}: {group}",
        status(ok),
        summary,
        bound,
        thr,
        {"reference": ref, "metric": m, "mean": diff, "low": low, "high": high, "gate": verdict.to_dict()},
    )


__all__ = [
    "GATES",
    "ROLE_KINDS",
    "FraudGates",
    "PriceGates",
    "RoleReviewConfig",
    "RoleStressResult",
    "TreasuryGates",
    "role_checks",
    "role_measures",
    "run_role_stress",
]
