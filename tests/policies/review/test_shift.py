"""The covariate-shift check: quiet on the same traffic, a WARN naming the feature when the log's traffic is not
the review scenario's; its distances and AUC are the textbook ones."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from payroute.policies.review.shift import (
    ShiftReviewConfig,
    auc,
    ks_statistic,
    shift_check,
    total_variation,
    wasserstein_1,
)

NAMES = ["amount", "hour", "segment=retail"]


def _contexts(rng: np.random.Generator, n: int, amount_shift: float = 0.0, retail: float = 0.6) -> np.ndarray:
    return np.column_stack(
        [rng.lognormal(4 + amount_shift, 1, n), rng.uniform(0, 24, n), (rng.random(n) < retail).astype(float)]
    )


def test_the_same_traffic_passes_and_a_shifted_amount_warns_naming_it():
    rng = np.random.default_rng(0)
    cfg = ShiftReviewConfig()
    check, res = shift_check(_contexts(rng, 4000), _contexts(rng, 4000), NAMES, cfg, "default")
    assert check.status == "pass" and res.domain_auc < 0.56 and not res.material
    check, res = shift_check(
        _contexts(rng, 4000, amount_shift=1.0), _contexts(rng, 4000), NAMES, cfg, "default"
    )
    assert check.status == "warn" and res.domain_auc > 0.7
    shifted = [f.name for f in res.features if f.shifted]
    assert (
        shifted == ["amount"]
        and "amount (KS" in check.summary
        and "not the review scenario's" in check.summary
    )
    # a categorical shift is measured by total variation
    check, res = shift_check(_contexts(rng, 4000, retail=0.2), _contexts(rng, 4000), NAMES, cfg, "default")
    seg = res.features[2]
    assert (
        seg.kind == "categorical" and seg.distance == pytest.approx(0.4, abs=0.03) and check.status == "warn"
    )


def test_routing_state_features_are_shown_but_do_not_warn():
    """A route's recent approvals depend on who routed the earlier payments (the logger or the bundle), not on the
    customers: a difference there alone is no covariate shift."""
    rng = np.random.default_rng(1)
    names = [*NAMES, "card_alpha.recent_count"]
    log = np.column_stack([_contexts(rng, 3000), rng.uniform(0.1, 0.3, 3000)])
    sim = np.column_stack([_contexts(rng, 3000), np.zeros(3000)])  # the bundle never sends to card_alpha
    check, res = shift_check(log, sim, names, ShiftReviewConfig(), "default")
    state = res.features[-1]
    assert state.routing_state and state.distance == 1.0 and not state.shifted
    assert check.status == "pass" and res.domain_auc < 0.56
    assert "1 of 1 routing-state features differ too" in check.summary


def test_without_a_log_or_when_disabled_it_does_not_run():
    rng = np.random.default_rng(0)
    assert shift_check(None, _contexts(rng, 10), NAMES, ShiftReviewConfig(), "default")[0].status == "not run"
    disabled = ShiftReviewConfig(enabled=False)
    assert shift_check(_contexts(rng, 10), _contexts(rng, 10), NAMES, disabled, "d")[0].status == "not run"


def test_the_distances_and_the_auc_are_the_textbook_ones():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 500), rng.normal(0.3, 1.5, 700)
    assert ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic)
    assert wasserstein_1(a, b) == pytest.approx(stats.wasserstein_distance(a, b))
    assert total_variation(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])) == pytest.approx(0.25)
    scores, labels = rng.normal(size=300), rng.random(300) < 0.4
    pos, neg = scores[labels], scores[~labels]
    direct = np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :])
    assert auc(scores, labels) == pytest.approx(direct)
