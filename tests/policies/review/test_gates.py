"""Family-wise stress gates: Holm keeps the chance of any false pass at the nominal level, the one-at-a-time gate
does not; with one comparison both are the old gate to the bit; a failed check says whether more seeds help."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from payroute.policies.review.config import StressReviewConfig
from payroute.policies.review.gates import (
    Comparison,
    family_alpha,
    family_gates,
    p_value,
    seeds_needed,
    stress_gates,
)
from payroute.policies.review.pipeline import stress_checks
from payroute.policies.review.stress import StressResult, _compare
from payroute.stats import paired_interval

CONFIDENCE = 0.95


def _comparison(diffs: np.ndarray, threshold: float, name: str, metric: str = "margin") -> Comparison:
    iv = paired_interval(diffs, np.zeros_like(diffs), CONFIDENCE)
    return Comparison(name, metric, diffs, threshold, iv.low, iv.high)


def test_an_equal_bundle_passes_some_check_at_the_nominal_rate_under_holm_and_far_more_often_without():
    """The simulation study of issue 24: 4,000 simulated reviews of a bundle exactly as good as its reference.

    Setting: ten comparisons (five stress scenarios x margin and approval, as the shipped config), eight seeds
    each, independent standard-normal paired differences (mean 0), every threshold 0. A check passes when its
    lower bound clears 0, i.e. it claims "the bundle is no worse than the reference, and better by the bound";
    for a bundle that is exactly equal, any passed check is a false claim (its bound exceeds the true difference,
    0). Threshold 0 puts every comparison on the boundary of its null hypothesis, the least favourable point,
    where the family-wise error is largest; at a negative threshold an equal bundle *should* pass, so the
    statement would be about power, not error. The event counted is "at least one of the ten checks passes",
    the error the report's claims can make: the whole review passing needs all ten, which an equal bundle
    does with probability about 0.025^10 with or without a correction, so it would not tell the two apart.

    Nominal: alpha = (1 - 0.95) / 2 = 2.5%. Without a correction: 1 - 0.975^10 = 22.4%. Holm: at most 2.5%
    (here 1 - (1 - 0.0025)^10 = 2.47%, its first step being Bonferroni). Binomial sd at 4,000 reviews: 0.25
    points at 2.5%, 0.66 at 22%."""
    rng = np.random.default_rng(np.random.SeedSequence(20240))
    n_reviews, m, seeds = 4000, 10, 8
    any_pass = {"holm": 0, "none": 0}
    for _ in range(n_reviews):
        diffs = rng.standard_normal((m, seeds))
        family = [_comparison(diffs[k], 0.0, f"s{k // 2}", ("margin", "approval")[k % 2]) for k in range(m)]
        for method in any_pass:
            gates = family_gates(family, method, CONFIDENCE, power=False)
            any_pass[method] += any(g.passed for g in gates.values())
    alpha = family_alpha(CONFIDENCE)
    holm, none = any_pass["holm"] / n_reviews, any_pass["none"] / n_reviews
    assert abs(holm - (1 - (1 - alpha / m) ** m)) < 4 * 0.0025, holm  # nominal: 2.47%
    assert holm <= alpha + 4 * 0.0025
    assert abs(none - (1 - (1 - alpha) ** m)) < 4 * 0.0066, none  # unadjusted: 22.4%


def test_a_better_bundle_still_passes_every_check_under_holm():
    """Holm costs power, not everything: a bundle clearly better on all ten comparisons passes them all."""
    rng = np.random.default_rng(3)
    family = [_comparison(2.0 + rng.standard_normal(10), 0.0, f"s{k}") for k in range(10)]
    gates = family_gates(family, "holm", CONFIDENCE)
    assert all(g.passed for g in gates.values())
    assert all(g.adjusted_low <= g.unadjusted_low for g in gates.values())  # a stricter level, a lower bound


def test_with_one_comparison_holm_and_none_are_the_one_at_a_time_gate_to_the_bit():
    diffs = np.array([0.02, -0.01, 0.04, 0.00, 0.03])
    c = _comparison(diffs, -0.05, "fee_hike")
    for method in ("holm", "none"):
        g = family_gates([c], method, CONFIDENCE)[c.key]
        assert g.adjusted_low == c.low and g.unadjusted_low == c.low and g.passed == (c.low >= -0.05)
        assert g.level == pytest.approx(0.025)


def test_holm_steps_down_from_the_smallest_p_value_and_stops_at_the_first_failure():
    rng = np.random.default_rng(11)
    z = rng.standard_normal(6)
    z = (z - z.mean()) / z.std(ddof=1)  # mean 0, sd 1 exactly: the mean decides the p-value
    means = {"a": 3.0, "b": 1.2, "c": 0.9, "d": 0.05}
    family = [_comparison(mu + z, 0.0, name) for name, mu in means.items()]
    gates = family_gates(family, "holm", CONFIDENCE)
    ranks = {k[0]: g.rank for k, g in gates.items()}
    assert ranks == {"a": 1, "b": 2, "c": 3, "d": 4}
    p = {k[0]: p_value(means[k[0]], 1.0, 6, 0.0) for k in gates}
    for name, g in gates.items():
        assert g.p_value == pytest.approx(p[name[0]])
    # each step's level is alpha / (m - k + 1); "b" fails its alpha/3 though it would pass alone
    assert [gates[(n, "margin")].passed for n in "abcd"] == [True, False, False, False]
    assert gates[("b", "margin")].unadjusted_low > 0 > gates[("b", "margin")].adjusted_low
    # after the first failure the rest are held to the failing step's level: pass iff the bound clears
    assert gates[("c", "margin")].level == gates[("b", "margin")].level == pytest.approx(0.025 / 3)
    for g in gates.values():
        assert g.passed == (g.adjusted_low >= g.threshold)
    # Holm's adjusted p-values: monotone, and a check passes iff its adjusted p-value is at most alpha
    adj = [gates[(n, "margin")].adjusted_p_value for n in "abcd"]
    assert adj == sorted(adj)
    assert [a <= 0.025 for a in adj] == [gates[(n, "margin")].passed for n in "abcd"]


def test_a_failed_check_says_how_many_seeds_would_clear_it_or_that_none_would():
    z = np.array([-1.2, -0.4, 0.1, 0.5, 1.0])
    z = (z - z.mean()) / z.std(ddof=1)
    wide = _comparison(0.01 + 0.05 * z, -0.05, "fraud_surge")  # mean above the threshold, too few seeds
    worse = _comparison(-0.08 + 0.01 * z, -0.05, "fee_hike")  # the mean itself is below it
    gates = family_gates([wide, worse], "none", CONFIDENCE)
    g = gates[wide.key]
    assert not g.passed and g.more_seeds_help
    # the bound at the check's level clears the threshold first at seeds_needed, if the mean and sd held
    n = g.seeds_needed
    from scipy import stats

    def bound(k: int) -> float:
        return 0.01 - stats.t.ppf(1 - g.level, k - 1) * 0.05 / np.sqrt(k)

    assert bound(n) >= -0.05 > bound(n - 1)
    assert g.seeds_for_80pct_power > n
    assert f"at {n:,} seeds" in g.more_seeds_words() and "fraud_surge" in g.more_seeds_words()
    b = gates[worse.key]
    assert not b.passed and b.more_seeds_help is False and b.seeds_needed is None
    assert "would not change this" in b.more_seeds_words()
    assert seeds_needed(0.0, 1.0, 0.0, 0.025) == (None, None)


def _stress(cand: dict[str, np.ndarray], ref: dict[str, np.ndarray], cfg: StressReviewConfig) -> StressResult:
    rows = []
    for scenario in cand:
        for policy, values in (("candidate", cand[scenario]), ("cheapest", ref[scenario])):
            for seed, v in enumerate(values):
                rows.append(
                    {"scenario": scenario, "policy": policy, "role": "candidate" if policy == "candidate" else "baseline",
                     "seed": seed, "margin_per_tx_usd": v, "approval_rate": 0.9, "route_cost_bps": 10.0,
                     "fraud_loss_bps": 1.0, "sla_misses": 0.0, "error": ""}
                )  # fmt: skip
    return _compare(pd.DataFrame(rows), "b.zip", cfg)


def test_the_review_gates_family_wise_and_shows_the_unadjusted_interval_beside_the_adjusted_bound():
    """Through the review's own stress_checks: two margin checks that pass alone (one-sided p about 0.015 and
    0.02, below 0.025) fail under Holm, whose fifth step of six asks for 0.0125; each check carries both numbers
    (the JSON's details) and says in words why and what more seeds would do."""
    rng = np.random.default_rng(5)
    z = rng.standard_normal(6)
    z = (z - z.mean()) / z.std(ddof=1)
    scenarios = ("processor_outage", "fee_hike", "holiday_peak")
    ref = {s: np.full(6, 0.30) for s in scenarios}
    cand = {
        "processor_outage": 0.3245 + 0.02 * z,
        "fee_hike": 0.33 + 0.01 * z,
        "holiday_peak": 0.3225 + 0.02 * z,
    }
    base = {"scenarios": list(scenarios), "min_margin_diff_vs_best_usd": 0.0}
    none_cfg = StressReviewConfig(**base, multiplicity="none")
    holm_cfg = StressReviewConfig(**base)
    assert holm_cfg.multiplicity == "holm"  # the default
    stress = _stress(cand, ref, none_cfg)
    one = {c.name: c for c in stress_checks(stress, none_cfg)}
    fam = {c.name: c for c in stress_checks(stress, holm_cfg)}
    name = "margin vs best: processor_outage"
    assert one[name].status == "pass" and fam[name].status == "fail"
    assert (
        one["margin vs best: holiday_peak"].status == "pass"
        and fam["margin vs best: holiday_peak"].status == "fail"
    )
    d = fam[name].details
    assert d["low"] == one[name].details["low"] == d["unadjusted_low"] > 0
    assert d["adjusted_low"] == fam[name].value < 0
    assert d["multiplicity"] == "holm" and d["family_size"] == 6 and d["level"] == pytest.approx(0.025 / 2)
    assert (
        "Holm-adjusted lower bound" in fam[name].summary
        and "more seeds could change this" in fam[name].summary
    )
    assert d["seeds_needed"] > 6 and d["more_seeds_help"] is True
    assert fam["margin vs best: fee_hike"].status == one["margin vs best: fee_hike"].status == "pass"
    assert all(fam[f"approval vs best: {s}"].status == "pass" for s in scenarios)  # equal approval: sd 0
    assert stress_gates(stress, holm_cfg)[("processor_outage", "margin")].rank == 5


def test_an_unknown_multiplicity_is_refused_naming_the_field_and_the_choices(tmp_path):
    from payroute.errors import ConfigError
    from payroute.policies.review import load_review_config

    bad = tmp_path / "review.yaml"
    bad.write_text("stress:\n  multiplicity: bonferroni\n")
    with pytest.raises(ConfigError) as err:
        load_review_config(bad)
    message = str(err.value)
    assert "review.yaml" in message and "stress.multiplicity" in message and "bonferroni" in message
    assert "'holm'" in message and "'none'" in message
