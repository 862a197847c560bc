"""Constraint checks: what a policy bundle must never do, whatever it earns.

=====================  ===================================================================================
check                  what it asserts
=====================  ===================================================================================
``masked_actions``     The network itself never prefers a masked action: on every context, the argmax of the
                       graph's raw output (before the loader re-applies the mask) is an allowed action and
                       the softmax puts at most 1e-6 on masked actions. Contexts: the logged decisions
                       (observation and eligible-route mask of each, from ``--logs``), decisions simulated
                       with the bundle bound as the policy, and random observations inside the declared
                       feature ranges with random masks. The share of violating contexts must not exceed
                       ``max_masked_action_rate`` (0 by default).
``malformed_inputs``   The documented behaviour of :mod:`payroute.policies.bundle` on bad input: a NaN or an
                       infinity, too few or too many features, a mask of the wrong length or allowing nothing
                       each raise :class:`~payroute.errors.PayrouteError` (a clear error, never a silent
                       action); finite values far outside the declared ranges (and all zeros) are accepted
                       and must give finite logits and an allowed action. Any other outcome fails.
``action_caps``        For bundles whose actions are levels (a price bundle's fee multipliers, declared as
                       ``action_values`` on the card): every chosen action's value lies within the caps
                       (``action_value_low`` / ``action_value_high``, or for a price bundle the scenario's
                       ``prices.min_multiplier`` / ``max_multiplier``), with every level allowed: the caps must
                       hold without an environment masking levels. The check reads only the card and the
                       network, so it holds for any level-setting decision kind; the pricing environment
                       that binds price bundles into the world is built elsewhere, so price contexts are
                       random observations inside the declared ranges. Not applicable to route and risk
                       bundles (their actions are choices).
``latency``            One decision (one observation, one mask, input checks included, one onnxruntime
                       thread) at p99 within ``latency_p99_ms``, over ``latency_decisions`` timed decisions
                       on simulated (or random) contexts after a warm-up.
=====================  ===================================================================================
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from payroute.config_model import ConfigModel
from payroute.envs.baselines import bound_policies
from payroute.envs.scenarios import Scenario
from payroute.envs.world import PaymentWorld
from payroute.errors import PayrouteError
from payroute.policies.bundle.binding import OBSERVATIONS
from payroute.policies.bundle.runtime import DEFAULT_MASKS, BundlePolicy
from payroute.policies.review.checks import FAIL, NOT_RUN, Check, status

MASKED_PROB_TOL = 1e-6
_CHUNK = 8192


class _Strict(ConfigModel):
    """A constraints section: unknown fields refused, frozen, every number finite."""


class SimulatedContexts(_Strict):
    """Where simulated contexts come from: the bundle bound as the policy in a scenario for a few seeds."""

    scenario: str | None = Field(
        default=None, description="null: the scenario named on the card, else default"
    )
    seeds: int = Field(default=1, ge=1, le=10_000)
    days: float = Field(default=1.0, gt=0, le=30)
    volume_multiplier: float = Field(default=0.05, gt=0, le=10)


class ConstraintConfig(_Strict):
    """Thresholds and context sources of the constraint checks."""

    max_masked_action_rate: float = Field(default=0.0, ge=0, le=1)
    random_contexts: int = Field(default=2000, ge=0, le=1_000_000)
    simulated: SimulatedContexts = SimulatedContexts()
    latency_p99_ms: float = Field(default=2.0, gt=0)
    latency_decisions: int = Field(default=2000, ge=100, le=1_000_000)
    action_value_low: float | None = None
    action_value_high: float | None = None
    seed: int = Field(default=0, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _caps_ordered(self) -> ConstraintConfig:
        lo, hi = self.action_value_low, self.action_value_high
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"action_value_low ({lo}) must be <= action_value_high ({hi})")
        return self


@dataclass(frozen=True)
class Contexts:
    """Observations and allowed-action masks the policy is checked on, and where they came from."""

    source: str
    obs: np.ndarray  # float32 (n, obs_dim)
    masks: np.ndarray  # bool (n, n_actions)

    @property
    def n(self) -> int:
        return int(self.obs.shape[0])


@dataclass
class ConstraintResult:
    checks: list[Check]
    latency_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    contexts: dict[str, int] = field(default_factory=dict)
    simulated: Contexts | None = None  # the bundle's own contexts in the review scenario (the shift check's)

    def to_dict(self) -> dict[str, Any]:
        return {"checks": [c.to_dict() for c in self.checks], "contexts": self.contexts}


# ---------------------------------------------------------------------- contexts
def random_contexts(policy: BundlePolicy, n: int, seed: int) -> Contexts:
    """Observations uniform within each feature's declared range (standard normal where none is declared),
    masks allowing each action with probability one half (at least one per row)."""
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((n, policy.obs_dim))
    for j, f in enumerate(policy.card.observation):
        if f.low is not None and f.high is not None:
            obs[:, j] = rng.uniform(f.low, f.high, n)
    masks = rng.random((n, policy.n_actions)) < 0.5
    empty = ~masks.any(axis=1)
    masks[empty, rng.integers(0, policy.n_actions, int(empty.sum()))] = True
    return Contexts("random", obs.astype(np.float32), masks)


class ContextRecorder:
    """The world's policy for decision ``kind``: ``choose(observation, mask) -> action`` decides, and every
    observation and mask it decided on is kept (up to ``limit``)."""

    def __init__(self, kind: str, choose: Callable[[np.ndarray, np.ndarray], int], limit: int | None = None):
        self.kind = kind
        self.choose = choose
        self.limit = limit
        self.observe = OBSERVATIONS[kind]()
        self.mask = DEFAULT_MASKS[kind]
        self.obs: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []

    def bind(self, world: Any) -> None:
        self.observe.bind(world)

    def decide(self, world: Any, payload: Any) -> tuple[Any, float]:
        obs = np.asarray(self.observe(world, payload), dtype=np.float32)
        mask = np.asarray(self.mask(world, payload), dtype=bool)
        if self.limit is None or len(self.obs) < self.limit:
            self.obs.append(obs.copy())
            self.masks.append(mask)
        return int(self.choose(obs, mask)), 1.0


def record_contexts(
    kind: str,
    choose: Callable[[np.ndarray, np.ndarray], int],
    scenario: Scenario,
    seeds: Iterable[int],
    days: float,
    limit: int | None = None,
    source: str = "simulated",
) -> Contexts:
    """The contexts a policy (``choose``) meets as the world's ``kind`` policy on ``seeds``, the others bound to
    their baselines; stops after the world that reaches ``limit`` contexts."""

    recorder = ContextRecorder(kind, choose, limit)
    for seed in seeds:
        policies = bound_policies()
        policies[kind] = recorder
        before = len(recorder.obs)
        PaymentWorld(scenario, seed=seed, policies=policies, days=days).run()
        if limit is not None and (len(recorder.obs) >= limit or len(recorder.obs) == before):
            break  # enough, or this scenario gives no such decisions (an endless supply of seeds would not help)
    if not recorder.obs:
        raise PayrouteError(f"scenario {scenario.name!r} gave the policy no {kind} decisions")
    return Contexts(source, np.stack(recorder.obs), np.stack(recorder.masks))


def simulated_contexts(policy: BundlePolicy, scenario: Scenario, seeds: list[int], days: float) -> Contexts:
    """The contexts the bundle meets when it is the world's policy for its decision kind."""
    return record_contexts(
        policy.decision_kind, lambda obs, mask: policy.act(obs, mask), scenario, seeds, days
    )


# ---------------------------------------------------------------------- checks
def check_masked_actions(policy: BundlePolicy, contexts: list[Contexts], max_rate: float) -> Check:
    per_source: dict[str, dict[str, Any]] = {}
    total = bad_total = 0
    for ctx in contexts:
        bad = argmax_masked = 0
        worst = 0.0
        example = None
        for start in range(0, ctx.n, _CHUNK):
            obs, masks = ctx.obs[start : start + _CHUNK], ctx.masks[start : start + _CHUNK]
            raw = policy.logits(obs, masks).astype(np.float64)
            chosen = np.argmax(raw, axis=1)  # the network's own choice, not re-masked
            z = raw - raw.max(axis=1, keepdims=True)
            probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
            masked_mass = np.where(masks, 0.0, probs).sum(axis=1)
            chose_masked = ~masks[np.arange(len(chosen)), chosen]
            violating = chose_masked | (masked_mass > MASKED_PROB_TOL)
            argmax_masked += int(chose_masked.sum())
            if violating.any() and example is None:
                i = int(np.argmax(violating))
                example = {
                    "row": start + i,
                    "chosen": policy.action_names[int(chosen[i])],
                    "allowed": [policy.action_names[k] for k in np.flatnonzero(masks[i])],
                    "masked_probability": float(masked_mass[i]),
                }
            bad += int(violating.sum())
            worst = max(worst, float(masked_mass.max(initial=0.0)))
        per_source[ctx.source] = {
            "contexts": ctx.n,
            "violations": bad,
            "rate": bad / ctx.n if ctx.n else 0.0,
            "masked_argmax": argmax_masked,
            "max_masked_probability": worst,
            "example": example,
        }
        total += ctx.n
        bad_total += bad
    if total == 0:
        return Check("constraints", "masked_actions", NOT_RUN, "no contexts to check")
    rate = bad_total / total
    ok = rate <= max_rate
    sources = ", ".join(f"{s} {d['contexts']:,}" for s, d in per_source.items())
    if ok:
        summary = f"the network never preferred a masked action on {total:,} contexts ({sources})"
        if bad_total:
            summary = f"{bad_total:,} of {total:,} contexts prefer a masked action ({rate:.2%}), within the allowed {max_rate:.2%}"
    else:
        first = next(d["example"] for d in per_source.values() if d["example"] is not None)
        summary = (
            f"the network prefers a masked action on {bad_total:,} of {total:,} contexts ({rate:.2%}; allowed "
            f"{max_rate:.2%}): for example it chose {first['chosen']!r} when only {first['allowed']} were "
            "allowed; the graph does not apply the action mask, so anything that skips the loader's re-masking "
            "would take forbidden actions"
        )
    return Check(
        "constraints", "masked_actions", status(ok), summary, rate, max_rate, {"sources": per_source}
    )


def _valid_row(policy: BundlePolicy, contexts: list[Contexts]) -> tuple[np.ndarray, np.ndarray]:
    for ctx in contexts:
        if ctx.n:
            return ctx.obs[0].copy(), ctx.masks[0].copy()
    ctx = random_contexts(policy, 1, 0)
    return ctx.obs[0], ctx.masks[0]


def check_malformed_inputs(policy: BundlePolicy, contexts: list[Contexts]) -> Check:
    """Feed malformed observations and masks; each must get the documented behaviour."""
    obs, mask = _valid_row(policy, contexts)
    d, a = policy.obs_dim, policy.n_actions
    names = policy.feature_names
    mid = d // 2
    refused: list[tuple[str, Any, Any]] = []
    for j, label in ((0, names[0]), (mid, names[mid])):
        for bad, word in ((np.nan, "NaN"), (np.inf, "+inf"), (-np.inf, "-inf")):
            row = obs.copy()
            row[j] = bad
            refused.append((f"{word} in feature {label!r}", row, mask))
    refused += [
        (f"{d - 1} features instead of {d}", obs[:-1], mask),
        (f"{d + 1} features instead of {d}", np.append(obs, 0.0), mask),
        ("no features", np.zeros(0, dtype=np.float32), mask),
        (f"a batch of rows with {d + 3} features", np.zeros((4, d + 3), dtype=np.float32), None),
        ("a mask that allows no action", obs, np.zeros(a, dtype=bool)),
        (f"a mask of {a + 1} entries for {a} actions", obs, np.ones(a + 1, dtype=bool)),
    ]
    spans = []
    for f in policy.card.observation:
        lo = f.low if f.low is not None else -1.0
        hi = f.high if f.high is not None else 1.0
        spans.append((lo, hi, max(hi - lo, 1.0)))
    lo_arr = np.array([s[0] for s in spans], dtype=np.float32)
    hi_arr = np.array([s[1] for s in spans], dtype=np.float32)
    span = np.array([s[2] for s in spans], dtype=np.float32)
    accepted = [
        ("every feature 10 ranges above its declared high", hi_arr + 10 * span),
        ("every feature 10 ranges below its declared low", lo_arr - 10 * span),
        ("every feature 1e6", np.full(d, 1e6, dtype=np.float32)),
        ("every feature -1e6", np.full(d, -1e6, dtype=np.float32)),
        ("every feature 0", np.zeros(d, dtype=np.float32)),
    ]
    rng = np.random.default_rng(0)
    masks = rng.random((16, a)) < 0.5
    masks[np.arange(16), rng.integers(0, a, 16)] = True
    masks[0] = True

    cases = []
    for label, row, m in refused:
        got, ok = _expect_refusal(policy, row, m)
        cases.append({"case": label, "expected": "PayrouteError", "got": got, "ok": ok})
    for label, row in accepted:
        got, ok = _expect_valid_action(policy, np.tile(row, (16, 1)), masks)
        cases.append({"case": label, "expected": "an allowed action, finite logits", "got": got, "ok": ok})
    failed = [c for c in cases if not c["ok"]]
    if failed:
        summary = (
            f"{len(failed)} of {len(cases)} malformed inputs did not get the documented behaviour: "
            + "; ".join(f"{c['case']}: expected {c['expected']}, got {c['got']}" for c in failed[:3])
        )
    else:
        summary = (
            f"all {len(cases)} malformed inputs got the documented behaviour (NaN, infinities, wrong lengths and "
            "empty masks refused with a clear error; out-of-range values give an allowed action)"
        )
    return Check(
        "constraints",
        "malformed_inputs",
        status(not failed),
        summary,
        float(len(failed)),
        0.0,
        {"cases": cases},
    )


def _expect_refusal(policy: BundlePolicy, obs: np.ndarray, mask: Any) -> tuple[str, bool]:
    try:
        action = policy.act(obs, mask)
    except PayrouteError as err:
        return f"PayrouteError: {str(err)[:120]}", True
    except Exception as err:  # any other failure is a crash, not the documented behaviour
        return f"{type(err).__name__}: {str(err)[:120]}", False
    return f"action {np.asarray(action).tolist()} (accepted silently)", False


def _expect_valid_action(policy: BundlePolicy, obs: np.ndarray, masks: np.ndarray) -> tuple[str, bool]:
    try:
        logits = policy.logits(obs, masks)
        actions = policy.act(obs, masks)
    except Exception as err:  # the documented behaviour is an action, so every exception fails
        return f"{type(err).__name__}: {str(err)[:120]}", False
    if not np.isfinite(np.where(masks, logits, 0.0)).all():
        return "non-finite logits on allowed actions", False
    if not masks[np.arange(len(actions)), actions].all():
        return "a masked action", False
    return "allowed actions, finite logits", True


def check_action_caps(
    policy: BundlePolicy, contexts: list[Contexts], low: float | None, high: float | None, scenario: Scenario
) -> Check:
    values = policy.card.action_values
    kind = policy.decision_kind
    if values is None:
        if kind == "price":
            return Check(
                "constraints",
                "action_caps",
                FAIL,
                "this price bundle's card declares no action_values, so the fee levels it chooses cannot be "
                "checked against the caps",
            )
        if policy.card.continuous:
            why = f"not applicable: {kind} actions are continuous; their limits are checked by role_limits"
        else:
            why = f"not applicable: {kind} actions are choices, not levels"
        return Check("constraints", "action_caps", NOT_RUN, why)
    source = "review config"
    if low is None and high is None and kind == "price":
        low, high = scenario.prices.min_multiplier, scenario.prices.max_multiplier
        source = f"scenario {scenario.name!r} prices.min_multiplier/max_multiplier"
    if low is None and high is None:
        return Check("constraints", "action_caps", NOT_RUN, "no caps configured (action_value_low/high)")
    vals = np.asarray(values, dtype=np.float64)
    outside = ((vals < low) if low is not None else False) | ((vals > high) if high is not None else False)
    chosen_total = violations = 0
    hits: dict[str, int] = {}
    for ctx in contexts:
        for start in range(0, ctx.n, _CHUNK):
            obs = ctx.obs[start : start + _CHUNK]
            acts = policy.act(obs, np.ones((len(obs), policy.n_actions), dtype=bool))
            bad = outside[acts]
            chosen_total += len(acts)
            violations += int(bad.sum())
            for k in acts[bad]:
                name = policy.action_names[int(k)]
                hits[name] = hits.get(name, 0) + 1
    bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}] ({source})"
    if chosen_total == 0:
        return Check("constraints", "action_caps", NOT_RUN, "no contexts to check")
    rate = violations / chosen_total
    if violations:
        worst = ", ".join(
            f"{n} (value {values[policy.action_names.index(n)]:g}) {c:,} times" for n, c in hits.items()
        )
        summary = (
            f"{violations:,} of {chosen_total:,} decisions chose a level outside the caps {bounds}: {worst}"
        )
    else:
        summary = f"all {chosen_total:,} decisions chose levels within the caps {bounds}"
    return Check(
        "constraints",
        "action_caps",
        status(violations == 0),
        summary,
        rate,
        0.0,
        {"low": low, "high": high, "source": source, "outside_actions": hits},
    )


def measure_latency(policy: BundlePolicy, contexts: list[Contexts], n: int) -> np.ndarray:
    """Milliseconds per single decision (``act`` on one observation and mask), after 100 untimed ones."""
    pool = next((c for c in contexts if c.n and c.source == "simulated"), None) or next(
        (c for c in contexts if c.n), None
    )
    if pool is None:
        pool = random_contexts(policy, 256, 0)
    for i in range(100):
        policy.act(pool.obs[i % pool.n], pool.masks[i % pool.n])
    times = np.empty(n)
    for i in range(n):
        row, m = pool.obs[i % pool.n], pool.masks[i % pool.n]
        t = time.perf_counter()
        policy.act(row, m)
        times[i] = time.perf_counter() - t
    return times * 1e3


def check_latency(times_ms: np.ndarray, p99_budget_ms: float) -> Check:
    p50, p90, p99 = (float(x) for x in np.percentile(times_ms, [50, 90, 99]))
    ok = p99 <= p99_budget_ms
    summary = f"single-decision p99 {p99:.3f} ms (p50 {p50:.3f} ms) over {len(times_ms):,} decisions"
    summary += (
        f", within the {p99_budget_ms:g} ms budget" if ok else f", over the {p99_budget_ms:g} ms budget"
    )
    return Check(
        "constraints",
        "latency",
        status(ok),
        summary,
        p99,
        p99_budget_ms,
        {
            "p50_ms": p50,
            "p90_ms": p90,
            "p99_ms": p99,
            "max_ms": float(times_ms.max()),
            "decisions": len(times_ms),
        },
    )


def run_constraint_checks(
    policy: BundlePolicy,
    config: ConstraintConfig,
    scenario: Scenario,
    logged: Contexts | None = None,
) -> ConstraintResult:
    """Every constraint check on the logged, simulated and random contexts."""
    contexts: list[Contexts] = []
    if logged is not None:
        contexts.append(logged)
    if policy.decision_kind in OBSERVATIONS:
        seeds = list(range(config.simulated.seeds))
        contexts.append(simulated_contexts(policy, scenario, seeds, config.simulated.days))
    if config.random_contexts:
        contexts.append(random_contexts(policy, config.random_contexts, config.seed))
    times = measure_latency(policy, contexts, config.latency_decisions)
    checks = [
        check_masked_actions(policy, contexts, config.max_masked_action_rate),
        check_malformed_inputs(policy, contexts),
        check_action_caps(policy, contexts, config.action_value_low, config.action_value_high, scenario),
        check_latency(times, config.latency_p99_ms),
    ]
    simulated = next((c for c in contexts if c.source == "simulated"), None)
    return ConstraintResult(checks, times, {c.source: c.n for c in contexts}, simulated)


__all__ = [
    "ConstraintConfig",
    "ConstraintResult",
    "Contexts",
    "SimulatedContexts",
    "check_action_caps",
    "check_latency",
    "check_malformed_inputs",
    "check_masked_actions",
    "measure_latency",
    "random_contexts",
    "run_constraint_checks",
    "simulated_contexts",
]
