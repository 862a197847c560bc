"""Routing-v0 with the scenario's retries on: the router is asked again after a soft decline, sees the attempt, the
codes and routes so far and the budget left, and answers with the retry actions its mask allows."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from payroute.envs.single_agent.routing import RoutingEnv
from payroute.envs.world.decisions import RetryRequest

ON = {"volume_scale": 0.05, "retries": {"enabled": True}}


def _env(**kwargs) -> RoutingEnv:
    return RoutingEnv("default", seed=1, days=0.1, scenario_overrides=kwargs.pop("overrides", ON), **kwargs)


def _to_retry(env: RoutingEnv, rng: np.random.Generator, seed: int = 2):
    """Reset and take random masked actions until a retry decision waits; returns (obs, info)."""
    obs, info = env.reset(seed=seed)
    while not isinstance(env.episode.point.payload, RetryRequest):
        obs, _r, term, _t, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
        assert not term
    return obs, info


def test_the_gymnasium_checker_passes_with_retries_on():
    check_env(_env(), skip_render_check=True)
    check_env(_env(dict_observation=True), skip_render_check=True)


def test_sb3s_checker_passes_with_retries_on():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(_env(), warn=False)


def test_retries_add_actions_and_features_only_when_on():
    off = _env(overrides={"volume_scale": 0.05})
    on = _env()
    n, delays = len(off.route_names), len(on.scenario.retries.delays_s)
    assert off.action_space.n == n and on.action_space.n == n + 2 + delays
    assert on.feature_names[: len(off.feature_names)] == off.feature_names
    extra = on.feature_names[len(off.feature_names) :]
    assert {"retry.attempts_made", "retry.budget_left", "retry.last_code.do_not_honor"} <= set(extra)
    assert f"retry.{off.route_names[0]}.tried" in extra
    # a first attempt's mask allows its eligible routes only
    _obs, info = on.reset(seed=2)
    assert not info["action_mask"][n:].any() and info["action_mask"][:n].any()


def test_random_masked_steps_with_retries_keep_the_world_whole():
    env = _env()
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=3)
    names = env.feature_names
    n = len(env.route_names)
    retries = 0
    for _ in range(2000):
        assert env.observation_space.contains(obs)
        mask = info["action_mask"]
        point = env.episode.point
        if isinstance(point.payload, RetryRequest):
            retries += 1
            req = point.payload
            assert obs[names.index("retry.is_retry")] == 1.0
            assert obs[names.index("retry.attempts_made")] == pytest.approx(req.attempt / 3)
            assert obs[names.index(f"retry.last_code.{req.codes[-1]}")] == 1.0
            last = env.route_names[req.routes[-1]]
            assert obs[names.index(f"retry.{last}.declined_last")] == 1.0
            assert (
                mask[req.routes[-1]] == 0 and mask[n] == 1
            )  # no cascade to the route that declined; give up ok
        else:
            assert obs[names.index("retry.is_retry")] == 0.0 and not mask[n:].any()
        obs, _r, term, _t, info = env.step(int(rng.choice(np.flatnonzero(mask))))
        if term:
            break
    world = env.world
    assert term and retries > 10 and world.totals["retry_attempts"] > 0
    assert world.in_flight == 0 and world.arrivals == sum(world.terminal.values())
    assert world.ledger.total() == 0


def test_each_retry_action_does_what_the_encoding_says():
    env = _env()
    n = len(env.route_names)
    outcomes = {}
    for action, name in ((n, "give_up"), (n + 1 + len(env.scenario.retries.delays_s), "step_up")):
        rng = np.random.default_rng(5)
        _obs, info = _to_retry(env, rng)
        req = env.episode.point.payload
        tx = req.tx
        challenges = env.world.ledger.balance("challenge_cost")
        env.step(action)
        outcomes[name] = (tx, req, env.world.ledger.balance("challenge_cost") - challenges)
    tx, req, challenged = outcomes["give_up"]
    assert tx.state in ("declined", "failed") and tx.attempt == req.attempt and challenged == 0
    tx, req, challenged = outcomes["step_up"]
    assert challenged == env.scenario.risk.challenge_cost_cents
    # a cascade sends it to the route asked for
    rng = np.random.default_rng(5)
    _obs, info = _to_retry(env, rng)
    req = env.episode.point.payload
    target = int(np.flatnonzero(info["action_mask"][:n])[0])
    env.step(target)
    assert req.tx.attempt == req.attempt + 1 and req.tx.route == target


def test_a_masked_retry_action_declines_with_the_penalty_or_raises():
    n_delays = 3
    for invalid_action in ("penalize", "raise"):
        env = _env(invalid_action=invalid_action)
        rng = np.random.default_rng(5)
        _to_retry(env, rng)
        req = env.episode.point.payload
        masked = req.routes[-1]  # the route that just declined it
        if invalid_action == "raise":
            with pytest.raises(ValueError, match="masked for this decision"):
                env.step(masked)
            continue
        env.role.charges_cents = 0
        env.step(masked)
        assert req.tx.state == "declined" and req.tx.reason == "invalid_action"
        assert env.role.charges_cents == 100
    assert env.action_space.n == len(env.route_names) + 2 + n_delays


def test_the_same_seed_gives_the_same_steps_with_retries():
    runs = []
    for _ in range(2):
        env = _env()
        rng = np.random.default_rng(9)
        obs, info = env.reset(seed=4)
        trace = []
        for _ in range(300):
            obs, r, term, _t, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
            trace.append((obs.tobytes(), r))
            if term:
                break
        runs.append(trace)
    assert runs[0] == runs[1]


def test_the_ecosystem_router_takes_the_retry_steps_too():
    from payroute.envs.multi_agent.ecosystem import PaymentEcosystemEnv

    env = PaymentEcosystemEnv("default", seed=1, days=0.1, scenario_overrides=ON, learning=("router", "risk"))
    assert env.action_spaces["router"].n == len(env.scenario.routes) + 2 + len(env.scenario.retries.delays_s)
    obs, infos = env.reset(seed=2)
    rng = np.random.default_rng(0)
    env.action_spaces["risk"].seed(0)
    while True:
        actions = {}
        for agent in obs:
            if agent == "router":
                actions[agent] = int(rng.choice(np.flatnonzero(infos[agent]["action_mask"])))
            else:
                actions[agent] = env.action_spaces[agent].sample()
        obs, _rew, term, _trunc, infos = env.step(actions)
        if term["__all__"]:
            break
    world = env.episode.world
    assert world.totals["retry_attempts"] > 0
    assert (
        world.in_flight == 0 and world.arrivals == sum(world.terminal.values()) and world.ledger.total() == 0
    )


@pytest.mark.parametrize(
    ("name", "retries"),
    [("cheapest", False), ("success_rate", False), ("no_retry", False), ("static_cascade", True),
     ("sr_cascade", True), ("decision_engine", True)],
)  # fmt: skip
def test_baselines_as_plain_policies_give_up_or_cascade_at_retry_steps(name, retries):
    from payroute.envs.baselines import make_policy

    env = _env()
    policy = make_policy("route", name)
    obs, info = env.reset(seed=3)
    while True:
        action = policy.act(obs, info)
        assert info["action_mask"][action], (name, action)
        obs, _r, term, _t, info = env.step(action)
        if term:
            break
    assert (env.world.totals["retry_attempts"] > 0) == retries


def test_a_copy_taken_at_a_retry_step_continues_exactly_as_the_original():
    import copy

    env = _env()
    rng = np.random.default_rng(5)
    _to_retry(env, rng)
    twin = copy.deepcopy(env)
    assert isinstance(twin.episode.point.payload, RetryRequest)
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    for _ in range(100):
        mask_a, mask_b = env.action_masks(), twin.action_masks()
        assert (mask_a == mask_b).all()
        a, b = (
            env.step(int(rng_a.choice(np.flatnonzero(mask_a)))),
            twin.step(int(rng_b.choice(np.flatnonzero(mask_b)))),
        )
        assert a[0].tobytes() == b[0].tobytes() and a[1] == b[1]
        if a[2]:
            break
