"""Routing-v0's step credit: what ``gym.make`` gives a client by default, and what ``credit="resolved"`` keeps.

The default pays each step, at once, its own decision's expected margin over the mean of the payment's eligible
routes (payroute.envs.roles.credit); the realised world is the same whatever the credit, and so are its KPIs.
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest

import payroute  # noqa: F401 - registers the environments
from payroute.envs.baselines.routers import OracleRouter
from payroute.envs.roles.credit import ExpectedMargin

SMALL = {"volume_scale": 0.02}


def _make(**kwargs):
    return gym.make("payroute/Routing-v0", scenario_overrides=SMALL, **kwargs).unwrapped


def _cheapest(info) -> int:
    costs = info["route_costs_cents"]
    return int(min(np.flatnonzero(info["action_mask"]), key=lambda i: (costs[i], i)))


def _day(env, seed: int, choose) -> tuple[list[float], list[np.ndarray], dict]:
    obs, info = env.reset(seed=seed)
    rewards, observations, done = [], [obs], False
    while not done:
        obs, reward, done, _, info = env.step(choose(info))
        rewards.append(reward)
        observations.append(obs)
    return rewards, observations, info["kpis"]


def test_the_default_pays_each_decision_its_expected_margin_over_the_route_mean():
    env = _make(decline_cost=False)
    assert (env.credit, env.baseline) == ("expected_margin", "route_mean")
    obs, info = env.reset(seed=4)
    shadow = ExpectedMargin(env.role, baseline="route_mean")  # the same fraud history, kept beside the env's
    oracle = OracleRouter()
    oracle.bind(env.world)
    rng = np.random.default_rng(0)
    steps = matched = 0
    done = False
    while not done:
        point = env.episode.point
        credits, masked = shadow.route_credits_cents(point)
        best, _ = oracle.decide(env.world, (point.payload, point.info["eligible"]))
        # the route the oracle sends the payment to is the one the credit pays most for
        assert credits[best] == max(credits.values())
        assert abs(sum(credits.values())) < 1e-6 * max(1.0, max(abs(v) for v in credits.values()))
        action = best if rng.random() < 0.5 else int(rng.choice(np.flatnonzero(info["action_mask"])))
        obs, reward, done, _, info = env.step(action)
        assert reward == pytest.approx(credits[action] / 100.0, rel=1e-12, abs=1e-12)
        matched += action == best
        steps += 1
    assert steps > 500 and 0 < matched < steps


@pytest.mark.parametrize("baseline", ["none", "route_mean"])
def test_a_masked_route_is_declined_and_costs_the_penalty(baseline):
    env = _make(invalid_penalty_usd=2.5, baseline=baseline)
    obs, info = env.reset(seed=1)
    while info["action_mask"].all():
        obs, _, _, _, info = env.step(0)
    point, tx = env.episode.point, env.episode.point.payload
    shadow = ExpectedMargin(env.role, baseline="none")  # the routes' expected margins themselves
    shadow.posterior = copy.deepcopy(env._expected.posterior)  # the env's fraud history as of this decision
    values, _ = shadow.route_credits_cents(point)
    _, reward, _, _, _ = env.step(int(np.flatnonzero(info["action_mask"] == 0)[0]))
    assert tx.state == "declined" and tx.reason == "invalid_action"
    # nothing moves: the penalty, and with the route baseline measured against the routes it could have taken
    reference = np.mean(list(values.values())) if baseline == "route_mean" else 0.0
    assert reward == pytest.approx((-250.0 - reference) / 100.0, rel=1e-12)


def test_the_world_and_its_kpis_are_the_same_whatever_the_credit():
    days = {
        credit: _day(_make(credit=credit, baseline="none"), 7, _cheapest)
        for credit in ("resolved", "expected_margin")
    }
    (r_res, obs_res, kpis_res), (r_exp, obs_exp, kpis_exp) = days["resolved"], days["expected_margin"]
    assert kpis_res == kpis_exp
    np.testing.assert_array_equal(np.stack(obs_res), np.stack(obs_exp))
    assert len(r_res) == len(r_exp) and r_res != r_exp


def test_the_expected_margin_has_no_end_of_day_spike():
    resolved, _, _ = _day(_make(credit="resolved", baseline="none"), 3, _cheapest)
    expected, _, _ = _day(_make(credit="expected_margin", baseline="none"), 3, _cheapest)
    # resolved: the drain pays the day's open outcomes (settlements, chargebacks) in the last step
    assert abs(resolved[-1]) > 50 * np.median(np.abs(resolved[:-1]))
    # expected margin: the last step is one payment's, like every other step
    assert abs(expected[-1]) <= np.max(np.abs(expected[:-1]))


def test_a_seeded_reset_repeats_the_credit_and_a_seedless_one_keeps_the_fraud_history():
    env = _make()
    first, _, _ = _day(env, 5, _cheapest)
    again, _, _ = _day(env, 5, _cheapest)
    assert first == again
    cells = len(env._expected.posterior._cells)
    env.reset()  # the next day: the history of the days before is kept
    assert len(env._expected.posterior._cells) >= cells > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"credit": "expected_outcome"}, "credit must be one of 'resolved', 'expected_margin'"),
        ({"baseline": "mean"}, "baseline must be one of 'none', 'route_mean'"),
        ({"credit": "resolved", "baseline": "route_mean"}, "needs credit='expected_margin'"),
    ],
)
def test_bad_credit_arguments_are_refused_in_words(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make("payroute/Routing-v0", **kwargs)
