"""Off-policy evaluation: exact cases, recovery of known values on synthetic logs, double robustness, input checks."""

from __future__ import annotations

import numpy as np
import pytest

from payroute.errors import PayrouteError
from payroute.policies.logs import FraudLabels
from payroute.policies.review.ope import evaluate_policy
from payroute.policies.review.ope_estimators import (
    ESTIMATORS,
    dm,
    dr,
    fit_reward_model,
    fit_ridge,
    fraud_loss_shares,
    ips,
    sndr,
    snips,
    switch_dr,
)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def draw(probs, rng):
    u = rng.random((probs.shape[0], 1))
    return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), probs.shape[1] - 1)


class LinearWorld:
    """Contexts x ~ N(0, I_d); mean reward of action a is theta_a . x + b_a; Gaussian noise."""

    def __init__(self, n_actions=4, d=3, seed=0):
        rng = np.random.default_rng(seed)
        self.theta = rng.normal(0, 1, (n_actions, d))
        self.bias = rng.normal(0, 0.5, n_actions)
        self.n_actions, self.d = n_actions, d

    def contexts(self, n, rng):
        return rng.standard_normal((n, self.d))

    def mean_reward(self, x):
        return x @ self.theta.T + self.bias

    def log(self, n, behaviour, rng, noise=0.5):
        x = self.contexts(n, rng)
        mu = behaviour(x)
        a = draw(mu, rng)
        r = self.mean_reward(x)[np.arange(n), a] + noise * rng.standard_normal(n)
        return x, a, mu[np.arange(n), a], r

    def true_value(self, target, n=400_000, seed=99):
        x = self.contexts(n, np.random.default_rng(seed))
        return float(np.mean(np.sum(target(x) * self.mean_reward(x), axis=1)))


# ---------------------------------------------------------------------- exact cases
R = np.array([1.0, 0.0, 2.0, 1.0])
A = np.array([0, 1, 0, 1])
P = np.array([0.5, 0.25, 0.5, 0.75])
PI = np.array([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8], [0.0, 1.0]])
Q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
# by hand: w = [2, 2, 0.4, 4/3]; v_hat = [1, 0.5, 1, 0]; residual r - q(a) = [0, -1, 1, 1]
W_SUM = 2 + 2 + 0.4 + 4 / 3
WR_SUM = 2 * 1 + 2 * 0 + 0.4 * 2 + 4 / 3 * 1
V_SUM = 1 + 0.5 + 1 + 0
WRES_SUM = 2 * 0 + 2 * -1 + 0.4 * 1 + 4 / 3 * 1
HAND = {
    "ips": WR_SUM / 4,
    "snips": WR_SUM / W_SUM,
    "dm": V_SUM / 4,
    "dr": (V_SUM + WRES_SUM) / 4,
    "sndr": V_SUM / 4 + WRES_SUM / W_SUM,
    "switch_dr": (V_SUM + 0.4 * 1 + 4 / 3 * 1) / 4,  # tau = 1.5 keeps only the corrections with w <= 1.5
}


def test_every_estimator_matches_its_formula_on_a_hand_computed_log():
    result = evaluate_policy(R, A, P, PI, reward_estimates=Q, switch_tau=1.5, n_bootstrap=50)
    for name, value in HAND.items():
        assert result[name].value == pytest.approx(value, rel=1e-12), name
    assert ips(R, A, P, PI) == pytest.approx(HAND["ips"], rel=1e-12)
    assert snips(R, A, P, PI) == pytest.approx(HAND["snips"], rel=1e-12)
    assert dm(PI, Q) == pytest.approx(HAND["dm"], rel=1e-12)
    assert dr(R, A, P, PI, Q) == pytest.approx(HAND["dr"], rel=1e-12)
    assert sndr(R, A, P, PI, Q) == pytest.approx(HAND["sndr"], rel=1e-12)
    assert switch_dr(R, A, P, PI, Q, tau=1.5) == pytest.approx(HAND["switch_dr"], rel=1e-12)
    d = result.diagnostics
    assert d.min_propensity == 0.25
    assert d.max_weight == 2.0
    assert d.mean_weight == pytest.approx(W_SUM / 4)
    assert d.effective_sample_size == pytest.approx(W_SUM**2 / (4 + 4 + 0.16 + 16 / 9))
    assert d.switch_model_share == 0.5
    assert result.logged_mean.value == 1.0


def test_clipping_caps_weights_and_reports_the_clipped_share():
    result = evaluate_policy(R, A, P, PI, reward_estimates=Q, max_weight=1.5, n_bootstrap=0)
    assert result["ips"].value == pytest.approx((1.5 * 1 + 0 + 0.4 * 2 + 4 / 3 * 1) / 4)
    assert ips(R, A, P, PI, max_weight=1.5) == pytest.approx(result["ips"].value)
    assert result.diagnostics.clipped_share == 0.5
    assert result.diagnostics.max_weight == 2.0  # the diagnostics describe the raw weights
    assert np.isnan(result["ips"].ci_low)  # no bootstrap, no interval


def test_behaviour_equal_to_target_gives_the_logged_mean():
    world = LinearWorld()
    rng = np.random.default_rng(1)
    behaviour = lambda x: softmax(x @ world.theta.T)  # noqa: E731
    x, a, p, r = world.log(5_000, behaviour, rng)
    result = evaluate_policy(r, a, p, behaviour(x), features=x, n_bootstrap=200, seed=3)
    assert result["ips"].value == pytest.approx(r.mean(), rel=1e-12)
    assert result["snips"].value == pytest.approx(r.mean(), rel=1e-12)
    assert (result["ips"].ci_low, result["ips"].ci_high) == (
        result.logged_mean.ci_low,
        result.logged_mean.ci_high,
    )
    assert result.diagnostics.effective_sample_size == pytest.approx(5_000)
    # the bootstrap standard error is the textbook one
    assert result["ips"].std_error == pytest.approx(r.std() / np.sqrt(r.size), rel=0.15)


def test_a_deterministic_target_on_a_uniform_log_recovers_its_true_value():
    world = LinearWorld(n_actions=4, d=3, seed=2)
    rng = np.random.default_rng(4)
    uniform = lambda x: np.full((x.shape[0], 4), 0.25)  # noqa: E731
    phi = np.random.default_rng(5).normal(0, 1, (4, 3))
    target = lambda x: np.eye(4)[np.argmax(x @ phi.T, axis=1)]  # noqa: E731
    truth = world.true_value(target)
    x, a, p, r = world.log(20_000, uniform, rng)
    result = evaluate_policy(r, a, p, target(x), features=x, n_bootstrap=300, confidence=0.99, seed=6)
    for name in ESTIMATORS:
        est = result[name]
        assert est.covers(truth), (name, est, truth)
        assert abs(est.value - truth) < 4 * est.std_error, name
    # on a uniform log the target agrees with a quarter of the decisions
    assert result.diagnostics.effective_sample_share == pytest.approx(0.25, abs=0.02)
    # the linear reward model is right here, so DM is the tightest
    assert result["dm"].std_error < result["ips"].std_error


def test_dr_is_unbiased_when_the_reward_model_is_wrong_but_propensities_are_right():
    world = LinearWorld(n_actions=3, d=2, seed=7)
    psi = np.random.default_rng(8).normal(0, 1, (3, 2))
    behaviour = lambda x: softmax(x @ psi.T)  # noqa: E731
    target = lambda x: softmax(2.0 * world.mean_reward(x))  # noqa: E731
    truth = world.true_value(target)
    wrong = lambda x: -2.0 * world.mean_reward(x) - 3.0  # noqa: E731  # nothing like the true rewards
    rng = np.random.default_rng(9)
    drs, dms = [], []
    for _ in range(300):
        x, a, p, r = world.log(1_000, behaviour, rng)
        drs.append(dr(r, a, p, target(x), wrong(x)))
        dms.append(dm(target(x), wrong(x)))
    drs = np.asarray(drs)
    assert abs(drs.mean() - truth) < 4 * drs.std(ddof=1) / np.sqrt(drs.size)
    assert abs(np.mean(dms) - truth) > 3.0  # the model alone is badly biased

    x, a, p, r = world.log(20_000, behaviour, rng)
    result = evaluate_policy(r, a, p, target(x), reward_estimates=wrong(x), switch_tau=np.inf, seed=1)
    assert result["dr"].covers(truth) and result["switch_dr"].covers(truth)
    assert not result["dm"].covers(truth)


def _fraud_log(n=60_000, seed=11):
    """Four routes in three loss classes (0: cards, 1: irrevocable, 2: revocable); 1% of payments are fraud
    with heavy-tailed amounts; a fraud sent on a class loses ``SHARE[class]`` of its amount. Route 2 sends a
    payment with a probability that depends on the context (closed hours, say), the others always. The logger
    almost never uses route 2 (1%), the target always does: the log holds a handful of frauds on route 2."""
    rng = np.random.default_rng(seed)
    world = LinearWorld(n_actions=4, d=3, seed=seed)
    x = world.contexts(n, rng)
    fraud = rng.random(n) < 0.01
    amount = np.exp(rng.normal(5.0, 1.0, n))  # a median of about 150, the largest thousands
    mu = np.tile([0.45, 0.45, 0.01, 0.09], (n, 1))
    a = draw(mu, rng)
    groups = np.array([0, 1, 1, 2])
    sends_on_2 = rng.random(n) < np.clip(0.6 + 0.2 * x[:, 0], 0.0, 1.0)
    sent = np.where(a == 2, sends_on_2, True)
    loss = np.where(fraud & sent, amount * SHARE[groups[a]], 0.0)
    r = world.mean_reward(x)[np.arange(n), a] + 0.5 * rng.standard_normal(n) - loss
    target = np.tile([0.0, 0.0, 1.0, 0.0], (n, 1))
    truth = float(np.mean(world.mean_reward(x)[:, 2] - np.where(fraud & sends_on_2, amount * SHARE[1], 0.0)))
    return x, a, mu[np.arange(n), a], r, target, FraudLabels(fraud, sent, amount, loss, groups), truth


SHARE = np.array([0.2, 1.0, 0.5])


def test_the_fraud_aware_model_carries_what_fraud_costs_to_a_route_the_log_rarely_tried():
    x, a, p, r, target, labels, truth = _fraud_log()
    shares = fraud_loss_shares(labels, a)
    assert shares == pytest.approx(SHARE, abs=0.06)  # each class's share, learnt on its other routes too
    aware = evaluate_policy(r, a, p, target, features=x, fraud=labels, n_bootstrap=300, seed=1)
    plain = evaluate_policy(r, a, p, target, features=x, n_bootstrap=300, seed=1)
    assert (aware.reward_model, plain.reward_model) == ("fraud-aware ridge", "ridge")
    for name in ("dm", "switch_dr"):  # the model where the weights are 100
        assert aware[name].covers(truth) and abs(aware[name].value - truth) < 0.05 * abs(truth), name
    # DR still corrects with the few frauds route 2 got, weighted 100x: unbiased, noisier, but far less so
    assert aware["dr"].covers(truth) and aware["sndr"].covers(truth)
    assert plain["dr"].std_error > 2 * aware["dr"].std_error
    # the ridge model alone cannot see fraud at all
    assert not plain["dm"].covers(truth) and abs(plain["dm"].value - truth) > 20 * abs(
        aware["dm"].value - truth
    )


def test_fraud_labels_of_the_wrong_shape_are_refused():
    x, a, p, r, target, labels, _ = _fraud_log(n=2_000)
    bad = FraudLabels(labels.is_fraud[:-1], labels.sent, labels.amounts, labels.losses, labels.action_groups)
    with pytest.raises(PayrouteError, match=r"is_fraud must have shape \(2000,\)"):
        evaluate_policy(r, a, p, target, features=x, fraud=bad, n_bootstrap=0)
    bad = FraudLabels(labels.is_fraud, labels.sent, labels.amounts, labels.losses, np.array([0, 1]))
    with pytest.raises(PayrouteError, match="action_groups must be 4 non-negative integers"):
        evaluate_policy(r, a, p, target, features=x, fraud=bad, n_bootstrap=0)
    bad = FraudLabels(labels.is_fraud, labels.sent, labels.amounts, -labels.losses - 1, labels.action_groups)
    with pytest.raises(PayrouteError, match="losses"):
        evaluate_policy(r, a, p, target, features=x, fraud=bad, n_bootstrap=0)


def test_same_seed_same_intervals_and_another_seed_other_draws():
    world = LinearWorld()
    rng = np.random.default_rng(10)
    uniform = lambda x: np.full((x.shape[0], 4), 0.25)  # noqa: E731
    x, a, p, r = world.log(3_000, uniform, rng)
    target = softmax(world.mean_reward(x))
    one = evaluate_policy(r, a, p, target, features=x, seed=11)
    two = evaluate_policy(r, a, p, target, features=x, seed=11)
    other = evaluate_policy(r, a, p, target, features=x, seed=12)
    assert one.to_dict() == two.to_dict()
    assert one["ips"].ci_low != other["ips"].ci_low


# ---------------------------------------------------------------------- the reward model
def test_ridge_recovers_a_linear_reward_and_predicts_the_mean_for_an_unlogged_action():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((4_000, 3))
    a = rng.integers(0, 2, 4_000)  # action 2 is never logged
    theta = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0], [9.0, 9.0, 9.0]])
    r = np.sum(x * theta[a], axis=1) + np.array([1.0, -1.0, 0.0])[a]
    model = fit_ridge(x, a, r, n_actions=3, alpha=1e-9)
    x_new = rng.standard_normal((10, 3))
    pred = model.predict(x_new)
    assert np.allclose(pred[:, :2], x_new @ theta[:2].T + [1.0, -1.0], atol=1e-6)
    assert np.allclose(pred[:, 2], r.mean())


def test_cross_fitting_keeps_a_decisions_own_reward_out_of_its_estimate():
    rng = np.random.default_rng(14)
    x = rng.standard_normal((1_000, 2))
    a = rng.integers(0, 3, 1_000)
    r = x[:, 0] + rng.standard_normal(1_000)
    q = fit_reward_model(x, a, r, 3, folds=2, seed=0)
    r2 = r.copy()
    r2[17] += 1_000.0
    q2 = fit_reward_model(x, a, r2, 3, folds=2, seed=0)
    assert np.array_equal(q[17], q2[17])
    assert not np.allclose(q, q2)  # the other fold's model did see it
    in_sample = fit_reward_model(x, a, r2, 3, folds=1)
    assert not np.allclose(in_sample[17], q[17])


def test_without_features_the_reward_model_is_the_per_action_mean():
    a = np.array([0, 0, 1, 1, 1, 0])
    r = np.array([1.0, 3.0, 10.0, 20.0, 30.0, 2.0])
    q = fit_reward_model(None, a, r, 2, folds=1)
    assert np.allclose(q, [[2.0, 20.0]] * 6)


# ---------------------------------------------------------------------- refusing bad inputs
def _valid():
    return {
        "rewards": R.copy(),
        "actions": A.copy(),
        "propensities": P.copy(),
        "target_probs": PI.copy(),
        "masks": np.array([[1, 0], [1, 1], [1, 1], [0, 1]], dtype=bool),
    }


@pytest.mark.parametrize(
    ("field", "row", "value", "message"),
    [
        (
            "propensities",
            1,
            0.0,
            r"propensities: 1 row\(s\) where the value is outside \[1e-09, 1\] \(first: row 1, 0.0\)",
        ),
        ("propensities", 2, 1.5, r"propensities: .*outside \[1e-09, 1\]"),
        ("propensities", 0, np.nan, r"propensities: .*outside \[1e-09, 1\]"),
        ("rewards", 3, np.inf, "rewards: .*is not finite"),
        ("actions", 0, 2, r"actions: .*outside 0..1"),
        ("target_probs", 1, [0.5, 0.6], "target_probs: .*does not sum to 1"),
        ("target_probs", 1, [1.5, -0.5], "target_probs: .*negative or NaN"),
        ("masks", 0, [False, True], "masks: .*does not allow the logged action"),
        ("masks", 2, [True, False], "target_probs: .*probability on a masked action"),
    ],
)
def test_bad_logged_arrays_are_refused_naming_the_argument(field, row, value, message):
    args = _valid()
    if field == "actions":
        args[field] = args[field].astype(np.int64)
    args[field][row] = value
    with pytest.raises(PayrouteError, match=message):
        evaluate_policy(**args, reward_estimates=Q)


def test_bad_shapes_and_options_are_refused():
    args = _valid()
    with pytest.raises(PayrouteError, match="rewards must have shape"):
        evaluate_policy(**{**args, "rewards": R[:3]})
    with pytest.raises(PayrouteError, match="actions must be integers"):
        evaluate_policy(**{**args, "actions": A.astype(float)})
    with pytest.raises(PayrouteError, match="reward_estimates must be a finite"):
        evaluate_policy(**args, reward_estimates=Q[:, :1])
    with pytest.raises(PayrouteError, match="unknown estimators"):
        evaluate_policy(**args, estimators=["ips", "magic"])
    with pytest.raises(PayrouteError, match="max_weight must be > 0"):
        evaluate_policy(**args, max_weight=0)


def test_a_target_that_never_agrees_with_the_log_has_no_self_normalised_estimate():
    pi = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    result = evaluate_policy(
        R, A, P, pi, reward_estimates=Q, estimators=["ips", "snips", "dr"], n_bootstrap=20
    )
    assert result["ips"].value == 0.0
    assert np.isnan(result["snips"].value)
    assert result.diagnostics.effective_sample_size == 0.0
    assert result["dr"].value == pytest.approx(np.mean(np.sum(pi * Q, axis=1)))
