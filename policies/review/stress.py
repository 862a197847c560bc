"""The stress suite: a policy bundle against the baselines (and a champion bundle) on the stress scenarios.

Each stress scenario is a day the policy was probably not trained on: a processor outage in the afternoon peak
(``processor_outage``), five times the fraud (``fraud_surge``), prefunded accounts nearly empty
(``liquidity_crunch``), a processor raising its fees (``fee_hike``), Black Friday after Thanksgiving
(``holiday_peak``). On every scenario the candidate bundle, every reference policy (routing baselines, a
champion bundle when given) and the oracle run on the same seeds. The world's demand does not depend on the
policies, so runs on one seed see the same payments (common random numbers) and the comparison is paired: for
each reference, the mean over seeds of (candidate - reference) with a Student-t interval
(:func:`payroute.stats.paired_interval`), for margin per transaction (USD) and for the approval rate.

The *best reference* of a scenario is the reference with the highest mean margin per transaction there; the
review gates on the candidate's paired interval against it. Choosing the best on the same seeds favours the
reference slightly, which errs on the side of caution. The oracle (knows the hidden truth) is reported for
scale, as the share of the oracle's uplift over the cheapest route that the candidate captures; it is never a
reference.

Timing: each seed's day (and so the weekday the surge, the crunch or the fee hike falls on) and the start of
each incident (the outage's day and hour) are drawn from that seed (:mod:`payroute.envs.scenarios.timings`), so
every policy on one seed runs the same world, different seeds put the outage on different days and hours, and a
policy cannot pass by having memorised the shipped Friday afternoon; ``timings`` in the result says which ran.

On your own world: ``base`` (``payroute review --scenario my_scenario.yaml``, e.g. a calibrated scenario) layers
each stress variant on that scenario instead of on the variant's own base (``default``), by
:func:`layered_scenario`: the variant's ``overrides`` are merged in as the loader merges them (mappings key by
key; lists such as ``incidents`` and ``fee_changes``, dates and names replaced), except that a number the
variant changes is changed by the same factor (fraud attack rates x5, ``volume_scale`` x2.5, opening balances
x0.2, credit interchange +5%), so "five times the fraud" means five times *your* fraud. A stress scenario that
is a whole scenario file (no ``base:``) runs as it is.

Volume: ``volume_multiplier`` multiplies each scenario's own ``volume_scale`` (``holiday_peak`` stays 2.5
times the default). The runs go through the paired-comparison engine (:func:`payroute.policies.compare.run_all`):
``workers`` > 1 runs them in spawned processes (each process loads and verifies the bundles itself, against the
keys and under the limits they were verified with here) with the same numbers as one worker; an ``executor``
(a Ray cluster, ``--ray-address``) runs them there, each bundle shipped as bytes and verified again.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from payroute.config_io import read_yaml_mapping
from payroute.config_model import ConfigModel
from payroute.envs.baselines import policy_names
from payroute.envs.baselines.routers import ORACLES
from payroute.envs.scenarios import Scenario, available_scenarios, load_scenario
from payroute.envs.scenarios.loader import SCENARIO_DIR, resolve_scenario_dict
from payroute.envs.scenarios.timings import DayTimings, draw_timing
from payroute.errors import PayrouteError
from payroute.policies.bundle.binding import check_bundle_fits_scenario
from payroute.policies.bundle.loading import load_bundle
from payroute.policies.bundle.runtime import BundlePolicy
from payroute.policies.compare import Executor, Run, bundle_policy, remember_bundle, run_all
from payroute.stats import paired_interval
from payroute.vocabulary import HEADLINE_KPIS

STRESS_SCENARIOS = ("processor_outage", "fraud_surge", "liquidity_crunch", "fee_hike", "holiday_peak")
DEFAULT_REFERENCES = {
    "route": ("cheapest", "fastest", "priority", "success_rate", "cost_aware", "thompson", "ucb"),
    "risk": ("allow_all", "threshold"),
}
CANDIDATE, CHAMPION, BASELINE, ORACLE = "candidate", "champion", "baseline", "oracle"
KPIS = HEADLINE_KPIS


class StressConfig(ConfigModel):
    """Which scenarios, references, seeds and volume the stress suite runs."""

    scenarios: list[str] = Field(default=list(STRESS_SCENARIOS), min_length=1)
    baselines: list[str] | None = Field(
        default=None, description="reference baselines of the bundle's decision kind; null = every one"
    )
    include_oracle: bool = True
    seeds: int = Field(
        default=5, ge=2, le=10_000, description="seeds first_seed .. first_seed + seeds - 1, shared by all"
    )
    seeds_by_scenario: dict[str, Annotated[int, Field(ge=2, le=10_000)]] = Field(
        default_factory=dict,
        description="more (or fewer) seeds for the scenarios named here, e.g. {fraud_surge: 20}: a day of "
        "five times the fraud swings by a few large cash-outs, so its interval needs more days than the others",
    )
    first_seed: int = Field(default=0, ge=0, le=2**32 - 1)
    base: str | None = Field(
        default=None,
        description="the scenario (a shipped name or a YAML path, e.g. a calibrated one) each stress variant is "
        "layered on; null: each variant's own base (default)",
    )
    days: float = Field(default=1.0, gt=0, le=30)
    volume_multiplier: float = Field(default=0.1, gt=0, le=10)
    other_policies: dict[str, str] = Field(
        default_factory=lambda: {"risk": "threshold", "route": "cheapest"},
        description="baselines bound for the decision kinds the bundle does not make",
    )
    confidence: float = Field(default=0.95, gt=0, lt=1)
    workers: int = Field(default=0, ge=0, le=4096, description="processes; 0 = one per CPU")
    timings: DayTimings = Field(
        default_factory=DayTimings,
        description="each seed's day and incident times, drawn per seed (policies/review/timings.py)",
    )

    @field_validator("scenarios")
    @classmethod
    def _known_scenarios(cls, v: list[str]) -> list[str]:
        known = set(available_scenarios())
        for name in v:
            if name not in known and not Path(name).is_file():
                raise ValueError(
                    f"unknown scenario {name!r}; shipped: {', '.join(sorted(known))}, or a YAML path"
                )
        if len(set(v)) != len(v):
            raise ValueError("scenarios are listed twice")
        return v

    @field_validator("base")
    @classmethod
    def _known_base(cls, v: str | None) -> str | None:
        if v is not None and v not in available_scenarios() and not Path(v).is_file():
            raise ValueError(
                f"unknown scenario {v!r}; shipped: {', '.join(sorted(available_scenarios()))}, or a YAML path"
            )
        return v

    @model_validator(mode="after")
    def _seeds_for_listed_scenarios(self) -> StressConfig:
        for name in self.seeds_by_scenario:
            if name not in self.scenarios:
                raise ValueError(
                    f"stress.seeds_by_scenario names {name!r}, which is not among stress.scenarios "
                    f"{self.scenarios}"
                )
        return self

    def seed_list(self, scenario: str) -> list[int]:
        """The seeds ``scenario`` runs on: first_seed onwards, its own number of them or ``seeds``."""
        return list(
            range(self.first_seed, self.first_seed + self.seeds_by_scenario.get(scenario, self.seeds))
        )


@dataclass
class StressResult:
    """Per-run KPIs, the paired comparisons per scenario and reference, and the best reference per scenario."""

    config: StressConfig
    candidate: str  # the bundle's file name; its runs are labelled "candidate" (a champion's "champion")
    runs: pd.DataFrame  # scenario, policy, role, seed, KPIs, arrivals, wall_s, error
    comparisons: pd.DataFrame  # scenario, reference, role, diff mean/low/high of margin and approval, is_best
    best: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # scenario -> what went wrong with the candidate
    timings: list[dict[str, Any]] = field(default_factory=list)  # per scenario and seed: the timing that ran

    def comparison(self, scenario: str, reference: str) -> pd.Series:
        rows = self.comparisons
        return rows[(rows.scenario == scenario) & (rows.reference == reference)].iloc[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.model_dump(mode="json"),
            "candidate": self.candidate,
            "best_reference": self.best,
            "errors": self.errors,
            "timings": self.timings,
            "comparisons": _records(self.comparisons),
            "means": _records(
                self.runs.groupby(["scenario", "policy", "role"], sort=False)[list(KPIS)].mean().reset_index()
            ),
        }


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in df.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()})
    return out


# ---------------------------------------------------------------------- running
def _row(run: Run, label: str, role: str, outcome: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"scenario": run.scenario.name, "policy": label, "role": role, "seed": run.seed}
    if outcome.error:
        row.update({k: np.nan for k in KPIS}, arrivals=0, wall_s=outcome.wall_s)
        row["error"] = outcome.error
    else:
        row.update(outcome.kpis, arrivals=outcome.arrivals, wall_s=outcome.wall_s, error="")
    return row


def _scenario(name: str, multiplier: float, base: str | Scenario | None = None) -> Scenario:
    sc = load_scenario(name) if base is None else layered_scenario(name, base)
    return load_scenario(sc, {"volume_scale": sc.volume_scale * multiplier})


def layered_scenario(variant: str, base: str | Path | Scenario) -> Scenario:
    """The stress ``variant`` (a shipped name or a variant YAML) layered on ``base`` instead of its own base.

    The variant's overrides are merged into ``base`` as the loader merges them, except that a number the variant
    changes is changed by the same factor on ``base`` (integers stay integers); the result keeps the variant's
    name. A whole scenario file (no ``base:``) is returned as it is.
    """
    path = Path(variant) if Path(variant).suffix in (".yaml", ".yml") else SCENARIO_DIR / f"{variant}.yaml"
    data = read_yaml_mapping(path)
    if "base" not in data:
        return load_scenario(variant)
    own_ref = str(data["base"])
    beside = path.parent / own_ref
    if Path(own_ref).suffix in (".yaml", ".yml") and not Path(own_ref).is_absolute() and beside.exists():
        own_ref = str(beside)
    own = resolve_scenario_dict(own_ref)
    target = load_scenario(base).model_dump(mode="json")
    layered = _layer(target, own, data.get("overrides") or {})
    layered["name"] = data.get("name", path.stem)
    layered["description"] = f"{data.get('description', layered['name'])} (layered on {target['name']})"
    return load_scenario(load_scenario(base), layered)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _layer(target: dict[str, Any], own: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(target)
    own = own if isinstance(own, dict) else {}
    for key, value in overrides.items():
        have, was = out.get(key), own.get(key)
        if isinstance(value, dict) and isinstance(have, dict):
            out[key] = _layer(have, was, value)
        elif _is_number(value) and _is_number(have) and _is_number(was) and was != 0 and have != was:
            scaled = have * value / was
            out[key] = round(scaled) if isinstance(value, int) and isinstance(have, int) else scaled
        else:
            out[key] = copy.deepcopy(value)
    return out


def run_stress_suite(
    candidate: BundlePolicy | str | Path,
    config: StressConfig | None = None,
    *,
    champion: BundlePolicy | str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    executor: Executor | None = None,
) -> StressResult:
    """Run the candidate bundle, the references and the oracle on every stress scenario and seed; compare paired.

    ``executor`` runs the worlds elsewhere (a Ray cluster) instead of ``config.workers`` processes."""

    config = config or StressConfig()
    cand = candidate if isinstance(candidate, BundlePolicy) else load_bundle(candidate)
    kind = cand.decision_kind
    remember_bundle(cand)
    champ = None
    if champion is not None:
        champ = champion if isinstance(champion, BundlePolicy) else load_bundle(champion)
        if champ.decision_kind != kind:
            raise PayrouteError(
                f"champion {champ.source.name} decides {champ.decision_kind!r}; the candidate decides {kind!r}"
            )
        remember_bundle(champ)
    references = _references(kind, config)
    others = tuple(sorted((k, v) for k, v in config.other_policies.items() if k != kind))

    runs: list[Run] = []
    tags: list[tuple[str, str]] = []
    timings: list[dict[str, Any]] = []
    for name in config.scenarios:
        sc = _scenario(name, config.volume_multiplier, config.base)
        check_bundle_fits_scenario(cand, sc)
        if champ is not None:
            check_bundle_fits_scenario(champ, sc)
        entries: list[tuple[str, str, Any]] = [(CANDIDATE, CANDIDATE, bundle_policy(cand, CANDIDATE))]
        if champ is not None:
            entries.append((CHAMPION, CHAMPION, bundle_policy(champ, CHAMPION)))
        entries += [(r, BASELINE, r) for r in references]
        if config.include_oracle and kind == "route":
            entries.append(("oracle", ORACLE, "oracle"))
        for seed in config.seed_list(name):
            seed_sc, timing = draw_timing(sc, seed, config.days, config.timings)  # one world per seed
            timings.append(timing)
            for label, role, pol in entries:
                keep = role in (
                    CANDIDATE,
                    CHAMPION,
                )  # a failing bundle is a finding; a failing baseline a bug
                runs.append(Run(seed_sc, pol, seed, config.days, kind, others, keep_errors=keep))
                tags.append((label, role))

    workers = config.workers or os.cpu_count() or 1
    # onnxruntime sessions must not cross a fork
    outcomes = run_all(runs, workers, progress, spawn=True, executor=executor)
    rows = [_row(r, label, role, o) for r, (label, role), o in zip(runs, tags, outcomes, strict=True)]
    result = _compare(pd.DataFrame(rows), cand.source.name, config)
    result.timings = timings
    return result


def _references(kind: str, config: StressConfig) -> list[str]:

    if kind not in DEFAULT_REFERENCES:
        raise PayrouteError(f"the stress suite runs route and risk bundles; this bundle decides {kind!r}")
    names = list(config.baselines) if config.baselines is not None else list(DEFAULT_REFERENCES[kind])
    known = [n for n in policy_names(kind) if n not in ORACLES]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise PayrouteError(
            f"stress.baselines {unknown or names} are not {kind} baselines; available: {', '.join(known)}"
        )
    return names


def _compare(runs: pd.DataFrame, bundle_name: str, config: StressConfig) -> StressResult:
    candidate = CANDIDATE
    comparisons, best, errors = [], {}, {}
    for scenario, group in runs.groupby("scenario", sort=False):
        failed = group[(group.policy == candidate) & (group.error != "")]
        if len(failed):
            first = failed.iloc[0]
            errors[scenario] = f"seed {int(first.seed)}: {first.error}"
            continue
        margin = group.pivot(index="seed", columns="policy", values="margin_per_tx_usd")
        approval = group.pivot(index="seed", columns="policy", values="approval_rate")
        roles = dict(zip(group.policy, group.role, strict=False))
        refs = [p for p, r in roles.items() if r in (BASELINE, CHAMPION)]
        best[scenario] = max(refs, key=lambda p: (float(margin[p].mean()), -refs.index(p)))
        share = np.nan
        if "oracle" in margin and "cheapest" in margin:
            gap = float((margin["oracle"] - margin["cheapest"]).mean())
            if gap > 1e-12:  # a share of nothing (or of a loss) means nothing
                share = float((margin[candidate] - margin["cheapest"]).mean()) / gap
        for ref in refs:
            m = paired_interval(margin[candidate].to_numpy(), margin[ref].to_numpy(), config.confidence)
            a = paired_interval(approval[candidate].to_numpy(), approval[ref].to_numpy(), config.confidence)
            comparisons.append(
                {
                    "scenario": scenario,
                    "reference": ref,
                    "role": roles[ref],
                    "is_best": ref == best[scenario],
                    "candidate_margin_per_tx_usd": float(margin[candidate].mean()),
                    "reference_margin_per_tx_usd": float(margin[ref].mean()),
                    "margin_diff": m.mean,
                    "margin_diff_low": m.low,
                    "margin_diff_high": m.high,
                    "candidate_approval_rate": float(approval[candidate].mean()),
                    "reference_approval_rate": float(approval[ref].mean()),
                    "approval_diff": a.mean,
                    "approval_diff_low": a.low,
                    "approval_diff_high": a.high,
                    "oracle_share": share,
                    "seeds": m.n,
                }
            )
    return StressResult(config, bundle_name, runs, pd.DataFrame(comparisons), best, errors)


__all__ = ["STRESS_SCENARIOS", "StressConfig", "StressResult", "layered_scenario", "run_stress_suite"]
