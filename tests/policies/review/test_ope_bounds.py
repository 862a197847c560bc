"""The OPE high-confidence lower bound holds where it claims to and is tight where the data allow; the fraud-loss
tail under the bundle is the tail of a world where the truth is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from payroute.policies.review.ope_bounds import (
    empirical_bernstein_lower,
    fraud_loss_tail,
    hcope_check,
    hcope_lower_bound,
)


def _bandit(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Three actions logged uniformly; the target always takes action 0, whose reward is 100 cents less a loss of
    5,000 cents with probability 0.01 (true value 50 cents); the others earn 20 cents."""
    actions = rng.integers(0, 3, n)
    loss = rng.random(n) < 0.01
    rewards = np.where(actions == 0, 100.0 - 5000.0 * loss, 20.0)
    weights = np.where(actions == 0, 3.0, 0.0)
    return rewards, weights, 50.0


def test_the_high_confidence_bound_is_below_the_true_value_at_least_as_often_as_it_claims():
    rng = np.random.default_rng(np.random.SeedSequence(2015))
    below = 0
    for rep in range(200):
        rewards, weights, truth = _bandit(rng, 3000)
        bound = hcope_lower_bound(rewards, weights, 0.95, seed=rep, floor=-4900.0)
        below += bound.lower_bound <= truth
        assert bound.lower_bound <= float(np.mean(weights * rewards)) + 1e-9 or bound.clipped_share == 0
    assert below / 200 >= 0.95


def test_the_bound_is_tight_where_rewards_are_bounded_and_on_policy():
    """On-policy (weights 1) rewards uniform in [0, 100] cents over 20,000 decisions: the bound is within 3 cents
    of the mean (the Bernstein width at n = 16,000 is about 2 cents), not a vacuous number."""
    rng = np.random.default_rng(1)
    rewards = rng.uniform(0, 100, 20_000)
    bound = hcope_lower_bound(rewards, np.ones_like(rewards), 0.95, seed=0, floor=0.0)
    assert rewards.mean() - 3.0 < bound.lower_bound < rewards.mean()
    assert bound.n_bound + bound.n_holdout == 20_000 and bound.floor_source == "config"


def test_empirical_bernstein_matches_maurer_and_pontil_and_a_floor_above_a_logged_reward_is_lowered():
    y = np.array([0.1, 0.5, 0.9, 0.3, 0.7])
    lt = np.log(2 / 0.05)
    expected = y.mean() - np.sqrt(2 * y.var(ddof=1) * lt / 5) - 7 * lt / (3 * 4)
    assert empirical_bernstein_lower(y, 1.0, 0.05) == pytest.approx(expected)
    bound = hcope_lower_bound(np.array([-30.0, 10.0, 20.0] * 50), np.ones(150), 0.95, seed=0, floor=-10.0)
    assert bound.reward_floor == -30.0  # a stated floor never sits above a logged reward


def test_the_hcope_gate_is_off_by_default_and_says_why_it_failed():
    bound = hcope_lower_bound(*_bandit(np.random.default_rng(0), 3000)[:2], 0.95, seed=0)
    assert hcope_check(bound.to_dict(), 40.0, None) == []
    (check,) = hcope_check(bound.to_dict(), 40.0, -5.0)
    assert check.status == "fail" and check.value == pytest.approx(bound.lower_bound - 40.0)
    assert "cannot guarantee" in check.summary and "ope.hcope_reward_floor_cents" in check.summary
    (ok,) = hcope_check(bound.to_dict(), 40.0, -1e9)
    assert ok.status == "pass"


def test_the_fraud_loss_tail_under_the_bundle_is_the_true_tail():
    """200 logged days of 1,000 payments; 1% are fraud. The logger routes half to a route where fraud costs
    $10 (1,000 cents), half where it costs nothing; the bundle sends everything to the costly route. Under the
    bundle a day's loss is 1,000 cents x Binomial(1000, 0.01); under the logger x Binomial(1000, 0.005)."""
    rng = np.random.default_rng(7)
    n = 200_000
    route = rng.integers(0, 2, n)
    fraud = rng.random(n) < 0.01
    losses = np.where(fraud & (route == 0), 1000.0, 0.0)
    weights = np.where(route == 0, 2.0, 0.0)
    arrival = np.sort(rng.uniform(0, 200 * 86_400.0, n))
    tail = fraud_loss_tail(losses, weights, arrival, 0.95, 4000, seed=0)
    assert tail.days_in_log == 200 and tail.decisions_per_day == 1000
    assert abs(tail.bundle_var - 1000 * stats.binom.ppf(0.95, 1000, 0.01)) <= 1000  # one payment of slack
    assert abs(tail.logged_var - 1000 * stats.binom.ppf(0.95, 1000, 0.005)) <= 1000
    assert tail.bundle_cvar >= tail.bundle_var and tail.bundle_mean == pytest.approx(10_000, rel=0.05)
    # a bundle that routes like the logger has the logger's tail, to the cent (the same draws)
    same = fraud_loss_tail(losses, np.ones(n), arrival, 0.95, 4000, seed=0)
    assert same.bundle_var == same.logged_var and same.bundle_cvar == same.logged_cvar
