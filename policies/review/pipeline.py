"""``payroute review``: everything a reviewer checks before a policy bundle goes near real payments.

The review runs on the core install (onnxruntime, numpy, pyarrow, matplotlib; no Ray, no torch) in this order:

1. **Integrity.** :func:`~payroute.policies.bundle.load_bundle` verifies the files against their checksums, the
   signature against the trusted keys (:mod:`payroute.policies.review.integrity`: an invalid one refuses the
   bundle; unsigned or an unknown key fails only when ``integrity.require_signature``), the card's schema
   version, the ONNX graph and the golden vectors (an untrusted graph first under ``integrity`` time and memory
   limits); the card's observation schema and action names must fit the review scenario and every stress
   scenario. A champion bundle, when given, is verified the same way. The card's records are shown as claims
   of the signer, never as facts.
2. **Logged decisions** (``--logs``): read and checked (:mod:`payroute.policies.logs`), with the observation of
   every decision (``obs.<feature>`` columns).
3. **Stress suite** (:mod:`payroute.policies.review.stress`): the bundle against the baselines (and the champion) on the
   stress scenarios with common random numbers. Gate, per scenario: the lower bound of the paired interval of
   (bundle - best reference) margin per transaction is at least ``stress.min_margin_diff_vs_best_usd``, and the
   same for the approval rate with ``stress.min_approval_diff_vs_best`` (a non-inferiority test: a wide
   interval fails, and the report says to run more seeds). The comparisons are one family: under
   ``stress.multiplicity: holm`` (the default) their bounds hold together (:mod:`payroute.policies.review.gates`).
   Price, treasury and fraud-side bundles run in the same stress worlds against their own references, with their
   role's gates (:mod:`payroute.policies.review.roles`).
4. **Off-policy evaluation** (:mod:`payroute.policies.review.ope`) on the log: every estimator with bootstrap intervals.
   Gates: the chosen estimator's lower bound minus the logged mean reward per decision is at least
   ``ope.min_lower_bound_vs_logged_cents``; the effective sample size is at least
   ``ope.min_effective_sample_size``; the mean importance weight is within ``ope.max_mean_weight_deviation``
   of 1 (it is 1 in expectation when the logged propensities are right).
5. **Constraint checks** (:mod:`payroute.policies.review.constraints`): masked actions, malformed inputs, caps, latency;
   for a continuous (treasury, fraud) bundle, its limits (:mod:`payroute.policies.review.role_limits`).
6. **Shadow replay** (``--shadow``, :mod:`payroute.policies.review.shadow`): the bundle on every logged decision.

Thresholds live in a review YAML (:class:`~payroute.policies.review.config.ReviewConfig`; the shipped defaults
are ``policies/review/review_default.yaml``). The verdict: exit code 0 when every check passed (checks that did not apply do not count), 1 when
any failed, 2 when the review could not be done (:class:`~payroute.errors.PayrouteError`: a tampered or
incomplete bundle, a malformed log, a bad config; the message names the file, column or field).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from payroute.envs.scenarios import Scenario, available_scenarios, load_scenario
from payroute.errors import PayrouteError
from payroute.files import atomic_write_text
from payroute.policies.bundle import BundlePolicy
from payroute.policies.bundle.binding import check_bundle_fits_scenario
from payroute.policies.compare import Executor
from payroute.policies.logs import LoggedDecisions, route_loss_classes
from payroute.policies.logs.sequences import continuation_weights, read_logged_sequences
from payroute.policies.review.card import card_record
from payroute.policies.review.checks import FAIL, NOT_RUN, PASS, Check, status
from payroute.policies.review.config import (
    OPEReviewConfig,
    ReviewConfig,
    StressReviewConfig,
    load_review_config,
)
from payroute.policies.review.constraints import (
    ConstraintResult,
    Contexts,
    run_constraint_checks,
)
from payroute.policies.review.governance import governance_record, review_digests
from payroute.policies.review.integrity import load_for_review, review_keys, signature_check
from payroute.policies.review.ope import ESTIMATORS, OPEResult, evaluate_policy
from payroute.policies.review.ope_bounds import fraud_loss_tail, hcope_check, hcope_lower_bound
from payroute.policies.review.role_limits import check_role_limits
from payroute.policies.review.roles import ROLE_KINDS, RoleStressResult, role_checks, run_role_stress
from payroute.policies.review.shadow import ShadowResult, read_shadow_log, run_shadow, shadow_checks
from payroute.policies.review.shift import shift_check
from payroute.policies.review.stress import StressResult, layered_scenario, run_stress_suite
from payroute.policies.review.stress_checks import stress_checks

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


# ====================================================================== result
@dataclass
class ReviewResult:
    """Everything the review found; :attr:`exit_code` is the verdict."""

    bundle: str
    bundle_path: str
    card: dict[str, Any]  # claims of the signer (``signature``), not facts
    scenario: str
    config: ReviewConfig
    checks: list[Check]
    champion: str | None = None
    logs: str | None = None
    ope: OPEResult | None = None
    ope_weights: np.ndarray | None = None
    stress: StressResult | None = None
    constraints: ConstraintResult | None = None
    shadow: ShadowResult | None = None
    roles: RoleStressResult | None = None  # the stress suite of a price, treasury or fraud bundle
    started: str = ""
    wall_s: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)
    signature: dict[str, Any] = field(default_factory=dict)
    digests: dict[str, Any] = field(default_factory=dict)  # what was reviewed, pinned (governance.py)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.failed]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_FAIL

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    def to_dict(self) -> dict[str, Any]:
        return {
            "governance": governance_record(self),
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "bundle": self.bundle,
            "bundle_path": self.bundle_path,
            "champion": self.champion,
            "logs": self.logs,
            "scenario": self.scenario,
            "started": self.started,
            "wall_s": self.wall_s,
            "versions": self.versions,
            "failed": [f"{c.section}/{c.name}: {c.summary}" for c in self.failed],
            "checks": [c.to_dict() for c in self.checks],
            "signature": self.signature,
            "card": self.card,
            "ope": None if self.ope is None else _clean(self.ope.to_dict()),
            "stress": None if self.stress is None else _clean(self.stress.to_dict()),
            "constraints": None if self.constraints is None else _clean(self.constraints.to_dict()),
            "shadow": None if self.shadow is None else _clean(self.shadow.to_dict()),
            "roles": None if self.roles is None else _clean(self.roles.to_dict()),
            "config": self.config.model_dump(mode="json"),
        }

    def write_json(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=False) + "\n")


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def error_summary(bundle: str | Path, message: str) -> dict[str, Any]:
    """The JSON summary of a review that could not be done (exit code 2)."""
    return {"verdict": "error", "exit_code": EXIT_ERROR, "bundle": Path(bundle).name, "error": message}


# ====================================================================== the review
def review_bundle(
    bundle: str | Path,
    *,
    logs: str | Path | None = None,
    champion: str | Path | None = None,
    config: ReviewConfig | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    trusted_keys: tuple[str | Path, ...] = (),
    shadow: str | Path | None = None,
    executor: Executor | None = None,
    config_file: str | Path | None = None,
) -> ReviewResult:
    """Review a bundle; raises :class:`~payroute.errors.PayrouteError` when it cannot be reviewed.

    ``trusted_keys`` (public key files) are trusted besides the config's ``integrity.trusted_keys``;
    ``executor`` runs the stress worlds elsewhere (a Ray cluster: ``--ray-address``); ``config_file``, the YAML
    ``config`` was read from, is what the review JSON's digest pins (else the config's canonical JSON)."""
    config = config or load_review_config()
    start = time.perf_counter()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    checks: list[Check] = []

    # 1. integrity: refuses (exit 2) a bundle that is tampered with (an invalid signature included), incomplete,
    # unsafe, or does not fit the world; says who signed it
    keys = review_keys(config.integrity, tuple(trusted_keys))
    policy = load_for_review(bundle, config.integrity, keys)
    checks.append(
        Check(
            "integrity",
            "bundle",
            PASS,
            f"{policy.source.name}: every file matches checksums.sha256; card schema version "
            f"{policy.card.bundle_schema_version}; ONNX opset {policy.card.io.opset} checker-clean, "
            "self-contained; golden vectors reproduce in any batch size",
        )
    )
    checks.append(signature_check(policy, config.integrity))
    champ = load_for_review(champion, config.integrity, keys) if champion is not None else None
    if champ is not None:
        checks.append(
            Check("integrity", "champion", PASS, f"champion {champ.source.name} verified the same way")
        )
        checks.append(signature_check(champ, config.integrity, "champion signature"))
    scenario_name = _scenario_name(policy, config)
    scenario = load_scenario(scenario_name)
    _check_fits(
        policy, champ, scenario, config
    )  # every kind: its role's observation, from the scenario alone
    checks.append(
        Check(
            "integrity",
            "observation_schema",
            PASS,
            f"the card's {policy.obs_dim} features and {policy.n_actions} actions match scenario "
            f"{scenario_name!r}" + (" and every stress scenario" if config.stress.enabled else ""),
        )
    )

    # 2. the log, read before anything long runs (a malformed log is exit 2)
    logged = continuation = None
    if logs is not None:
        if policy.decision_kind != "route":
            raise PayrouteError(
                f"--logs holds routing decisions; bundle {policy.source.name} decides {policy.decision_kind!r}"
            )
        sequences = read_logged_sequences(
            logs, route_names=list(scenario.routes), observation_names=policy.feature_names
        )
        logged = sequences.first
        # a bundle takes no retry decisions: the world gives up for it (docs/review.md, "Retries")
        continuation = continuation_weights(sequences) if sequences.m else None

    shadow_log = None if shadow is None else read_shadow_log(shadow, policy, list(scenario.routes))

    # 3. stress suite
    stress = roles = None
    if policy.decision_kind in ROLE_KINDS and config.stress.enabled:
        stress_progress = None if progress is None else (lambda d, t: progress("stress suite", d, t))
        roles = run_role_stress(
            policy, config.stress, config.roles, champion=champ, progress=stress_progress, executor=executor
        )
        checks += role_checks(roles, config.stress.multiplicity)
    elif config.stress.enabled:
        stress_progress = None if progress is None else (lambda d, t: progress("stress suite", d, t))
        stress = run_stress_suite(
            policy, config.stress, champion=champ, progress=stress_progress, executor=executor
        )
        checks += stress_checks(stress, config.stress)
    else:
        checks.append(Check("stress", "stress_suite", NOT_RUN, "disabled in the review config"))

    # 4. off-policy evaluation
    ope = weights = None
    if logged is not None:
        if progress is not None:
            progress("off-policy evaluation", 0, 1)
        ope, weights = _evaluate_on_log(
            policy, logged, config.ope, route_loss_classes(scenario.routes.values()), continuation
        )
        checks += ope_checks(ope, config.ope)
    elif config.ope.required:
        checks.append(
            Check(
                "ope",
                "logged_decisions",
                FAIL,
                "the review config requires off-policy evaluation; pass --logs",
            )
        )
    else:
        checks.append(Check("ope", "logged_decisions", NOT_RUN, "no logs given (--logs FILE.parquet)"))

    shadow_result = None
    if shadow_log is not None:  # 6. shadow replay: evidence, a gate only with shadow.max_disagreement
        classes = route_loss_classes(scenario.routes.values())
        shadow_result = run_shadow(policy, shadow_log, config.shadow, config.ope, classes, Path(shadow).name)
        checks += shadow_checks(shadow_result, config.shadow)

    # 5. constraints
    if progress is not None:
        progress("constraint checks", 0, 1)
    sim = config.constraints.simulated
    sim_scenario = _scaled(load_scenario(sim.scenario or scenario_name), sim.volume_multiplier)
    logged_ctx = None if logged is None else Contexts("logged", logged.observations, logged.masks)
    constraints = run_constraint_checks(policy, config.constraints, sim_scenario, logged_ctx)
    if policy.card.continuous:  # a treasury or fraud bundle: what its network asks for against its limits
        constraints.checks.append(
            check_role_limits(policy, load_scenario(sim.scenario or scenario_name), seeds=list(range(sim.seeds)),
                              days=sim.days, volume=sim.volume_multiplier, max_clipped_share=config.roles.max_clipped_share)
        )  # fmt: skip
    checks += constraints.checks
    sim_obs = None if constraints.simulated is None else constraints.simulated.obs
    logged_obs = None if logged is None else logged.observations
    checks.append(shift_check(logged_obs, sim_obs, policy.feature_names, config.shift, sim_scenario.name)[0])

    return ReviewResult(
        bundle=policy.source.name,
        bundle_path=str(policy.source),
        card=card_record(policy.card),
        signature={**policy.signature.to_dict(), "claims": policy.signature.claims()},
        scenario=scenario_name,
        config=config,
        checks=checks,
        champion=None if champ is None else champ.source.name,
        logs=None if logs is None else str(logs),
        ope=ope,
        ope_weights=weights,
        stress=stress,
        constraints=constraints,
        shadow=shadow_result,
        roles=roles,
        started=started,
        wall_s=time.perf_counter() - start,
        versions=_versions(),
        digests=review_digests(bundle, champion, logs, config, config_file),  # files read and checked above
    )


def _scenario_name(policy: BundlePolicy, config: ReviewConfig) -> str:
    if config.scenario is not None:
        return config.scenario
    rec = policy.card.scenario
    if rec is not None and rec.name in available_scenarios():
        return rec.name
    return "default"


def _scaled(scenario: Scenario, multiplier: float) -> Scenario:
    return load_scenario(scenario, {"volume_scale": scenario.volume_scale * multiplier})


def _check_fits(
    policy: BundlePolicy, champ: BundlePolicy | None, scenario: Scenario, config: ReviewConfig
) -> None:
    names = [scenario.name] + (list(config.stress.scenarios) if config.stress.enabled else [])
    for name in dict.fromkeys(names):
        if name == scenario.name:
            sc = scenario
        else:
            sc = (
                load_scenario(name)
                if config.stress.base is None
                else layered_scenario(name, config.stress.base)
            )
        check_bundle_fits_scenario(policy, sc)
        if champ is not None:
            check_bundle_fits_scenario(champ, sc)


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("payroute", "numpy", "onnxruntime", "onnx", "pyarrow", "matplotlib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


# ---------------------------------------------------------------------- stress gates
def _evaluate_on_log(
    policy: BundlePolicy,
    logged: LoggedDecisions,
    cfg: OPEReviewConfig,
    loss_classes: list[int],
    continuation: np.ndarray | None = None,
) -> tuple[OPEResult, np.ndarray]:
    chunks = [
        policy.action_probs(logged.observations[i : i + 8192], logged.masks[i : i + 8192])
        for i in range(0, logged.n, 8192)
    ]
    target = np.concatenate(chunks)
    result = evaluate_policy(
        logged.rewards,
        logged.actions,
        logged.propensities,
        target,
        features=logged.model_features,
        masks=logged.masks,
        estimators=ESTIMATORS,
        n_bootstrap=cfg.n_bootstrap,
        confidence=cfg.confidence,
        seed=cfg.seed,
        max_weight=cfg.max_weight,
        switch_tau=cfg.switch_tau,
        fraud=logged.fraud_labels(loss_classes),
        continuation=continuation,
    )
    weights = target[np.arange(logged.n), logged.actions] / logged.propensities
    if continuation is not None:  # a payment's whole sequence of decisions
        weights = weights * continuation
    hcope = hcope_lower_bound(logged.rewards, weights, cfg.confidence, cfg.seed, cfg.hcope_reward_floor_cents)
    arrival = logged.table.column("t_arrival").to_numpy()
    tail = fraud_loss_tail(logged.fraud_losses, weights, arrival, cfg.tail_level, cfg.tail_days, cfg.seed)
    return replace(result, hcope=hcope.to_dict(), tail=tail.to_dict()), weights


def ope_checks(result: OPEResult, cfg: OPEReviewConfig) -> list[Check]:
    est = result[cfg.estimator]
    logged = result.logged_mean.value
    diag = result.diagnostics
    conf = f"{result.confidence:.0%}"
    gap = est.ci_low - logged
    ok = bool(np.isfinite(gap) and gap >= cfg.min_lower_bound_vs_logged_cents)
    said = (
        f"{cfg.estimator.upper()} estimates the bundle at {est.value:.2f} cents per decision ({conf} interval "
        f"[{est.ci_low:.2f}, {est.ci_high:.2f}]) against {logged:.2f} cents logged, over {diag.n:,} decisions"
    )
    if ok:
        summary = f"{said}; the lower bound is {gap:+.2f} cents from the logged value, within the allowed {cfg.min_lower_bound_vs_logged_cents:+.2f}"
    elif not np.isfinite(gap):
        summary = f"{said}; the estimate has no interval (the target never agrees with the logged actions)"
    else:
        summary = (
            f"{said}; the lower bound is {gap:+.2f} cents from the logged value, below the allowed "
            f"{cfg.min_lower_bound_vs_logged_cents:+.2f}: the bundle may earn less than the logging policy"
            + (
                " (the estimate itself is above the logged value: more logged decisions would narrow the interval)"
                if est.value >= logged
                else ""
            )
        )
    checks = [
        Check("ope", f"{cfg.estimator} vs logged", status(ok), summary, float(gap), cfg.min_lower_bound_vs_logged_cents,
              {"estimate": est.value, "low": est.ci_low, "high": est.ci_high, "logged_mean": logged})
    ]  # fmt: skip
    if result.hcope is not None:
        checks += hcope_check(result.hcope, logged, cfg.min_hcope_lower_bound_vs_logged_cents)
    ess_ok = diag.effective_sample_size >= cfg.min_effective_sample_size
    checks.append(
        Check(
            "ope",
            "effective sample size",
            status(ess_ok),
            f"effective sample size {diag.effective_sample_size:,.0f} of {diag.n:,} decisions "
            f"({diag.effective_sample_share:.1%}); "
            + (
                f"at least the required {cfg.min_effective_sample_size:,.0f}"
                if ess_ok
                else f"below the required {cfg.min_effective_sample_size:,.0f}: the bundle disagrees with the "
                "logging policy so often that few logged decisions inform the estimate; log with more exploration"
            ),
            diag.effective_sample_size,
            cfg.min_effective_sample_size,
        )
    )
    if cfg.max_mean_weight_deviation is not None:
        dev = abs(diag.mean_weight - 1.0)
        w_ok = dev <= cfg.max_mean_weight_deviation
        checks.append(
            Check(
                "ope",
                "mean importance weight",
                status(w_ok),
                f"mean importance weight {diag.mean_weight:.3f} (1 in expectation when the logged propensities "
                f"are right and cover the bundle's actions); smallest propensity {diag.min_propensity:.4f}"
                + (
                    ""
                    if w_ok
                    else f"; more than {cfg.max_mean_weight_deviation:g} from 1: check the log's propensities"
                ),
                diag.mean_weight,
                cfg.max_mean_weight_deviation,
            )
        )
    return checks


__all__ = [
    "EXIT_ERROR",
    "EXIT_FAIL",
    "EXIT_PASS",
    "OPEReviewConfig",
    "ReviewConfig",
    "ReviewResult",
    "StressReviewConfig",
    "error_summary",
    "load_review_config",
    "ope_checks",
    "review_bundle",
    "stress_checks",
]
