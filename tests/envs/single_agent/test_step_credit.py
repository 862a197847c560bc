"""Routing-v0's and Risk-v0's step credit: what ``gym.make`` gives a client by default, and what ``credit="resolved"`` keeps.

The default pays each step, at once, its own decision's expected margin over the mean of the payment's eligible
routes (payroute.envs.roles.credit); the realised world is the same whatever the credit, and so are its KPIs.
"""

from __future__ import annotations

import copy
import pickle

import gymnasium as gym
import numpy as np
import pytest

import payroute  # noqa: F401 - registers the environments
from payroute.envs.baselines.routers import OracleRouter, route_values
from payroute.envs.roles.credit import ExpectedMargin
from payroute.envs.world.decisions import ALLOW, BLOCK, CHALLENGE
from payroute.envs.world.fraud import FraudPosterior

SMALL = {"volume_scale": 0.02}


def _make(env_id: str = "payroute/Routing-v0", **kwargs):
    return gym.make(env_id, scenario_overrides=SMALL, **kwargs).unwrapped


def _routing_kwargs(env_id: str, **kwargs):
    return {**kwargs, "baseline": "none"} if env_id.endswith("Routing-v0") else kwargs


def _cheapest(info) -> int:
    if "route_costs_cents" not in info:  # the risk desk: allow, with a challenge or a block now and then
        return int(info["transaction"]["id"] % 7 == 0) + int(info["transaction"]["id"] % 11 == 0)
    costs = info["route_costs_cents"]
    return int(min(np.flatnonzero(info["action_mask"]), key=lambda i: (costs[i], i)))


BOTH = ["payroute/Routing-v0", "payroute/Risk-v0"]


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


@pytest.mark.parametrize("env_id", BOTH)
def test_the_world_and_its_kpis_are_the_same_whatever_the_credit(env_id):
    days = {
        credit: _day(_make(env_id, **_routing_kwargs(env_id, credit=credit)), 7, _cheapest)
        for credit in ("resolved", "expected_margin")
    }
    (r_res, obs_res, kpis_res), (r_exp, obs_exp, kpis_exp) = days["resolved"], days["expected_margin"]
    assert kpis_res == kpis_exp
    np.testing.assert_array_equal(np.stack(obs_res), np.stack(obs_exp))
    assert len(r_res) == len(r_exp) and r_res != r_exp


@pytest.mark.parametrize("env_id", BOTH)
def test_the_expected_margin_has_no_end_of_day_spike(env_id):
    resolved, _, _ = _day(_make(env_id, **_routing_kwargs(env_id, credit="resolved")), 3, _cheapest)
    expected, _, _ = _day(_make(env_id, **_routing_kwargs(env_id, credit="expected_margin")), 3, _cheapest)
    # resolved: the drain pays the day's open outcomes (settlements, chargebacks) in the last step
    assert abs(resolved[-1]) > 50 * np.median(np.abs(resolved[:-1]))
    # expected margin: the last step is one payment's, like every other step
    assert abs(expected[-1]) <= np.max(np.abs(expected[:-1]))


@pytest.mark.parametrize("env_id", BOTH)
def test_a_seeded_reset_repeats_the_credit_and_a_seedless_one_keeps_the_fraud_history(env_id):
    env = _make(env_id)
    first, _, _ = _day(env, 5, _cheapest)
    again, _, _ = _day(env, 5, _cheapest)
    assert first == again
    cells = len(env._expected.posterior._cells)
    env.reset()  # the next day: the history of the days before is kept
    assert len(env._expected.posterior._cells) >= cells > 0


def test_the_risk_desk_is_paid_at_once_what_it_settles_and_the_expected_margin_of_what_it_lets_through():
    env = _make("payroute/Risk-v0", scenario="fraud_surge")
    assert env.credit == "expected_margin"
    obs, info = env.reset(seed=2)
    challenge_cents = env.scenario.risk.challenge_cost_cents
    shadow = (
        FraudPosterior()
    )  # the same history as the env's credit: every payment the desk decides, in order
    routed: dict[int, float] = {}
    watch: dict[int, tuple[float, float]] = {}

    def on_route(
        payload, action
    ):  # what the bound router did with an allowed payment, valued at that instant
        tx, eligible = payload
        if tx.id in watch:
            route = next(r for r in eligible if r.index == int(action))
            routed[tx.id] = route_values(env.world, tx, [route], *watch.pop(tx.id))[0]

    env.world.hub.bound_listeners.setdefault("route", []).append(on_route)
    rng = np.random.default_rng(5)
    seen = set()
    done = False
    while not done:
        tx = env.episode.point.payload
        p_fraud, recovery = shadow(env.world, tx)
        action = int(rng.choice(3, p=[0.7, 0.15, 0.15]))
        if action == ALLOW:
            watch[tx.id] = (p_fraud, recovery)
        obs, reward, done, _, info = env.step(action)
        lost = env.lost_cents_by_tx.get(tx.id, 0)
        if action == BLOCK:  # a good customer blocked costs the margin lost; a fraud blocked costs nothing
            assert reward == pytest.approx(-lost / 100.0) and not (tx.is_fraud and lost)
            seen.add(("block", tx.is_fraud))
        elif action == CHALLENGE and tx.state in ("abandoned", "blocked"):
            assert reward == pytest.approx(-(challenge_cents + lost) / 100.0)
            seen.add(("challenge", tx.state))
        elif action == ALLOW and tx.id in routed:
            assert reward == pytest.approx(routed.pop(tx.id) / 100.0, rel=1e-9, abs=1e-9)
            seen.add(("allow", "routed"))
    assert {("block", False), ("challenge", "abandoned"), ("allow", "routed")} <= seen


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
    with pytest.raises(ValueError, match="credit must be one of"):
        gym.make("payroute/Risk-v0", credit="decision")


@pytest.mark.parametrize("env_id", BOTH)
def test_a_copy_made_on_a_later_day_keeps_the_fraud_history_and_pays_the_same_credit(env_id):
    env = _make(env_id)
    _day(env, 5, _cheapest)  # a first day: the credit's fraud history has cells now
    obs, info = env.reset()  # the next day, seedless: the history is carried over
    for _ in range(40):
        obs, _r, _d, _t, info = env.step(_cheapest(info))
    for how in (lambda e: pickle.loads(pickle.dumps(e)), copy.deepcopy):
        copied = how(env)
        a_info = b_info = info
        for _ in range(200):
            a_obs, a_r, a_done, _, a_info = env.step(_cheapest(a_info))
            b_obs, b_r, b_done, _, b_info = copied.step(_cheapest(b_info))
            np.testing.assert_array_equal(a_obs, b_obs)
            assert a_r == b_r and a_done == b_done
            if a_done:
                break
        env, info = copied, b_info  # the copy goes on as the original would have


def test_a_trainer_that_seeds_every_day_keeps_the_fraud_history_and_bad_reset_options_are_refused():
    from payroute.agents.training_env import TrainingEnv

    env = _make()
    trainer = TrainingEnv(env, seed=3)
    trainer.reset()
    cells = len(env._expected.posterior._cells)
    while not trainer.step(_cheapest(env._info(env.episode.point)))[2]:
        pass
    trainer.reset()  # TrainingEnv seeds every day; the history of the day before is carried on
    assert len(env._expected.posterior._cells) > cells
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(seed=1, options={"credit": "keep"})
    with pytest.raises(ValueError, match="credit_history must be 'forget' or 'keep'"):
        env.reset(seed=1, options={"credit_history": "always"})


@pytest.mark.parametrize(
    "scenario, overrides, decline_cost",
    [
        ("default", {}, False),
        ("processor_outage", {}, True),  # routes down and degraded: P(success) from the hidden health
        ("default", {"retries": {"enabled": True}}, False),  # retry decisions observe the payment again
    ],
)
def test_route_values_from_the_feature_pass_are_the_ones_asking_every_route_gives(
    scenario, overrides, decline_cost
):
    """The observation's feature pass has visited every eligible route of the payment at the decision's instant;
    the credit values the routes with its costs and done times instead of asking again: the same numbers, to the
    bit, on card payments and payouts, at every hour of the day."""
    env = gym.make(
        "payroute/Routing-v0",
        scenario=scenario,
        scenario_overrides={**SMALL, **overrides},
        decline_cost=decline_cost,
    ).unwrapped
    obs, info = env.reset(seed=4)
    rng = np.random.default_rng(1)
    charge = env.decline_charge_cents if decline_cost else None
    compared = payouts = 0
    done = False
    while not done:
        point = env.episode.point
        tx = point.payload if not hasattr(point.payload, "tx") else point.payload.tx
        features = env.role.observer
        assert features.last_tx is tx and features.last_now == env.world.now
        eligible = [r for r in env.world.routes if (tx.eligible_mask >> r.index) & 1]
        assert features.last_routes == eligible
        p_fraud, recovery = env._expected.posterior(env.world, tx, join=False)
        asked = route_values(env.world, tx, eligible, p_fraud, recovery, charge)
        reused = route_values(
            env.world, tx, features.last_routes, p_fraud, recovery, charge,
            costs=features.last_costs, done_times=features.last_done_times,
        )  # fmt: skip
        assert reused == asked  # lists of floats: equal to the bit
        compared += 1
        payouts += tx.family != "card"
        mask = info["action_mask"]
        obs, _, done, _, info = env.step(int(rng.choice(np.flatnonzero(mask))))
    assert compared > 500 and payouts > 50
