"""PaymentEcosystemEnv and its PettingZoo form: turns, spaces, money that adds up, determinism."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from pettingzoo.test import api_test, seed_test

from payroute.envs.multi_agent.ecosystem import ROLES, PaymentEcosystemEnv
from payroute.envs.multi_agent.pettingzoo_env import env as pz_env
from payroute.envs.world.ledger import COST_ACCOUNTS

SMALL = {"volume_scale": 0.01}
ALL = list(ROLES)


def _random_episode(env, seed, act_seed=0):
    """Play one episode with random valid actions; returns summed rewards, rewards in order, and the steps."""
    rng = np.random.default_rng(act_seed)
    for i, space in enumerate(env.action_spaces.values()):
        space.seed(act_seed + i)
    obs, infos = env.reset(seed=seed)
    totals = dict.fromkeys(env.possible_agents, 0.0)
    trace, steps = [], 0
    while True:
        ((agent, _),) = obs.items()  # one decision at a time
        info = infos[agent]
        if "action_mask" in info:
            action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        else:
            action = env.action_spaces[agent].sample()
        obs, rewards, terminateds, truncateds, infos = env.step({agent: action})
        steps += 1
        for a, r in rewards.items():
            totals[a] += r
        trace.append((agent, {a: np.asarray(v).tobytes() for a, v in obs.items()}, rewards))
        if terminateds["__all__"]:
            return totals, trace, steps, (obs, rewards, terminateds, truncateds, infos)


def _ledger_profit_cents(world):
    b = world.ledger.balances
    return -b.get("fee_revenue", 0) - sum(b.get(k, 0) for k in COST_ACCOUNTS)


@pytest.mark.parametrize(
    "learning", [ALL, ["router", "risk", "fraudster"], ["fraudster"], ["router"], ["pricer", "treasury"]]
)
def test_rewards_add_up_to_the_ledger_and_the_fraudsters_books(learning):
    env = PaymentEcosystemEnv(scenario_overrides=SMALL, learning=learning)
    totals, _, _, (obs, rewards, terminateds, truncateds, infos) = _random_episode(env, seed=4)
    world = env.world
    assert world.done and world.in_flight == 0
    bound_share = sum(c for a, c in world.agent_margin.items() if a not in env.possible_agents)
    psp_rewards = sum(r for a, r in totals.items() if a != "fraudster")
    assert psp_rewards * 100 + bound_share == pytest.approx(_ledger_profit_cents(world), abs=1e-4)
    book = world.fraudster
    if "fraudster" in learning:
        assert totals["fraudster"] * 100 == pytest.approx(book.net_cents, abs=1e-4)
    assert book.net_cents == book.proceeds_cents - book.recovered_cents - book.cost_cents
    # every agent that acted gets a final observation inside its space, its last reward, and terminates
    final = infos[next(iter(infos))]
    assert set(obs) == set(rewards) == set(infos) == set(learning)
    for agent, o in obs.items():
        assert env.observation_spaces[agent].contains(o)
        assert terminateds[agent] and not truncateds[agent]
    assert terminateds["__all__"] and not truncateds["__all__"]
    assert env.agents == []
    assert final["agent_money_usd"]["fraudster"] == pytest.approx(book.net_cents / 100)
    assert sum(v for a, v in final["agent_money_usd"].items() if a != "fraudster") == pytest.approx(
        _ledger_profit_cents(world) / 100
    )


def test_only_the_agent_with_a_pending_decision_observes_and_acts():
    env = PaymentEcosystemEnv(scenario_overrides=SMALL, learning=["router", "risk", "fraudster"])
    assert env.possible_agents == ["router", "risk", "fraudster"]
    assert env.get_observation_space("router") is env.observation_spaces["router"]
    obs, infos = env.reset(seed=0)
    assert env.agents == ["router", "risk", "fraudster"]
    assert list(obs) == ["fraudster"]  # the fraudster decides at midnight, before the first payment
    with pytest.raises(ValueError, match="pending decision is 'fraudster'"):
        env.step({"router": 0})
    seen = set()
    kinds = {"risk": "risk", "router": "route", "fraudster": "fraud"}
    for _ in range(200):
        ((agent, o),) = obs.items()
        seen.add(agent)
        assert env.observation_spaces[agent].contains(o)
        assert env.pending_agent == agent and env.episode.point.kind == kinds[agent]
        if agent == "router":
            mask = infos[agent]["action_mask"]
            action = int(np.flatnonzero(mask)[0])
        else:
            action = env.action_spaces[agent].sample()
        obs, rewards, terminateds, _, infos = env.step({agent: action})
        assert set(rewards) == set(obs)
    assert seen == {"router", "risk", "fraudster"}


def test_a_masked_route_is_declined_by_default_and_raises_on_request():
    for mode in ("raise", "decline"):
        env = PaymentEcosystemEnv(scenario_overrides=SMALL, learning=["router"], router_invalid_action=mode)
        _, infos = env.reset(seed=1)
        masked = int(np.flatnonzero(infos["router"]["action_mask"] == 0)[0])
        tx = env.episode.point.payload
        if mode == "raise":
            with pytest.raises(ValueError, match="eligible routes"):
                env.step({"router": masked})
        else:
            env.step({"router": masked})
            assert tx.state == "declined" and tx.reason == "invalid_action"


def test_router_mask_can_travel_in_the_observation():
    env = PaymentEcosystemEnv(scenario_overrides=SMALL, learning=["router"], router_mask_in_observation=True)
    obs, infos = env.reset(seed=0)
    o = obs["router"]
    assert env.observation_spaces["router"].contains(o)
    np.testing.assert_array_equal(o["action_mask"], infos["router"]["action_mask"].astype(np.float32))


def test_same_seed_same_episode_for_the_same_actions():
    runs = [
        _random_episode(PaymentEcosystemEnv(scenario_overrides=SMALL, learning=ALL), seed=7)[1]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    other = _random_episode(PaymentEcosystemEnv(scenario_overrides=SMALL, learning=ALL), seed=8)[1]
    assert other != runs[0]


def test_constructor_seed_makes_unseeded_resets_reproducible():
    def first_obs_sequence():
        env = PaymentEcosystemEnv(scenario_overrides=SMALL, learning=["risk"], seed=11)
        return [env.reset()[0]["risk"].tobytes() for _ in range(3)]

    a, b = first_obs_sequence(), first_obs_sequence()
    assert a == b and len(set(a)) == 3


def test_a_restored_seed_cursor_draws_the_worlds_the_saved_environment_would_draw():
    """What exact resume of a multi-agent run restores: a fresh environment given the saved seed cursor (a
    pickled copy) resets into the same next worlds as the environment it was taken from."""
    env = PaymentEcosystemEnv(scenario_overrides=SMALL, learning=["risk"])
    env.reset(seed=5)
    saved = pickle.loads(pickle.dumps(env.seed_state()))
    ahead = [env.reset()[0]["risk"].tobytes() for _ in range(3)]
    fresh = PaymentEcosystemEnv(scenario_overrides=SMALL, learning=["risk"])
    fresh.set_seed_state(saved)
    assert [fresh.reset()[0]["risk"].tobytes() for _ in range(3)] == ahead
    assert len(set(ahead)) == 3


def _continue(env, obs, infos, steps: int, seed: int) -> list:
    """``steps`` random valid steps through the episode's end and the next unseeded reset."""
    rng = np.random.default_rng(seed)
    trail = []
    for _ in range(steps):
        ((agent, _),) = obs.items()
        mask = infos[agent].get("action_mask")
        action = (
            int(rng.choice(np.flatnonzero(mask))) if mask is not None else env.action_spaces[agent].sample()
        )
        obs, rewards, terminateds, _t, infos = env.step({agent: action})
        trail.append(({a: np.asarray(v).tobytes() for a, v in obs.items()}, rewards, terminateds["__all__"]))
        if terminateds["__all__"]:
            obs, infos = env.reset()
            trail.append(({a: np.asarray(v).tobytes() for a, v in obs.items()}, None, None))
    return trail


def test_pickle_and_deepcopy_mid_episode_continue_identically():
    env = PaymentEcosystemEnv(scenario_overrides=SMALL, learning=ALL, seed=2, days=0.25)
    for i, space in enumerate(env.action_spaces.values()):
        space.seed(i)  # the copies carry the spaces' generators: sample() continues identically
    obs, infos = env.reset()
    rng = np.random.default_rng(0)
    for _ in range(20):
        ((agent, _),) = obs.items()
        mask = infos[agent].get("action_mask")
        action = (
            int(rng.choice(np.flatnonzero(mask))) if mask is not None else env.action_spaces[agent].sample()
        )
        obs, _r, _te, _tr, infos = env.step({agent: action})
    env.take_reward("risk")  # paid out between steps (the PettingZoo wrapper does): the copies keep it
    pickled, deep = pickle.loads(pickle.dumps(env)), copy.deepcopy(env)
    original = _continue(env, obs, infos, 400, seed=1)
    assert any(done for _o, _r, done in original)
    assert _continue(pickled, obs, infos, 400, seed=1) == original
    assert _continue(deep, obs, infos, 400, seed=1) == original


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"learning": ["banker"]}, "learning must name"),
        ({"learning": []}, "learning must name"),
        ({"learning": ["router"], "baselines": {"router": "cheapest"}}, "both learn"),
        ({"learning": ["router"], "baselines": {"teller": "x"}}, "unknown agents"),
        ({"learning": ["router"], "volume": 1}, "unknown PaymentEcosystemEnv options"),
    ],
)
def test_bad_configuration_fails_with_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PaymentEcosystemEnv(**kwargs)


def test_bound_defender_changes_what_the_fraudster_earns():
    """The ecosystem binds the named baselines: blocking risky card payments hurts card fraud."""
    nets = {}
    for defender in ("allow_all", "card_blocker"):
        env = PaymentEcosystemEnv(
            scenario_overrides={"demand": {"transactions_per_day": 500}},
            learning=["fraudster"],
            baselines={"risk": defender},
        )
        env.reset(seed=2)
        action = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0], dtype=np.float32)  # card patterns only
        while not env.step({"fraudster": action})[2]["__all__"]:
            pass
        nets[defender] = env.world.fraudster.summary()["card_testing"]["net_cents"]
    assert nets["card_blocker"] < 0 < nets["allow_all"]


@pytest.mark.parametrize("learning", [ALL, ["router", "risk", "fraudster"], ["fraudster"]])
def test_pettingzoo_api_and_seed_tests_pass(learning):
    kwargs = {"scenario_overrides": SMALL, "learning": learning}
    api_test(pz_env(**kwargs), num_cycles=1000)
    seed_test(lambda: pz_env(**kwargs), num_cycles=1000)


def test_pettingzoo_rewards_add_up_over_an_episode():
    env = pz_env(scenario_overrides=SMALL, learning=ALL)
    env.reset(seed=3)
    totals = dict.fromkeys(env.possible_agents, 0.0)
    for agent in env.agent_iter():
        obs, reward, termination, truncation, info = env.last()
        totals[agent] += reward
        if termination or truncation:
            action = None
        elif "action_mask" in info:
            action = env.action_space(agent).sample(info["action_mask"])
        else:
            action = env.action_space(agent).sample()
        env.step(action)
    world = env.core.world
    psp = sum(v for a, v in totals.items() if a != "fraudster")
    assert psp * 100 == pytest.approx(_ledger_profit_cents(world), abs=1e-4)
    assert totals["fraudster"] * 100 == pytest.approx(world.fraudster.net_cents, abs=1e-4)


def test_period_agents_actions_reach_the_world():
    env = PaymentEcosystemEnv(scenario_overrides=SMALL, learning=["pricer", "treasury"])
    obs, _ = env.reset(seed=0)
    credit = env.roles["treasury"].credit_accounts
    assert credit
    for _ in range(6):
        ((agent, _),) = obs.items()
        if agent == "pricer":
            action = np.full(env.action_spaces[agent].shape, 1.5, np.float32)
        else:  # no transfers, no intraday credit
            action = np.zeros(env.action_spaces[agent].shape, np.float32)
        obs, *_ = env.step({agent: action})
    np.testing.assert_allclose(env.world.price_multipliers, 1.5)
    assert all(env.world.accounts[a].credit_line == 0 for a in credit)


def test_full_split_credits_each_deciding_agent_the_whole_payment():
    envs = {
        split: PaymentEcosystemEnv(scenario_overrides=SMALL, learning=["risk"], reward_split=split)
        for split in ("shared", "full")
    }
    totals = {split: _random_episode(env, seed=5)[0]["risk"] for split, env in envs.items()}
    full = envs["full"].world
    # every payment with money passed the risk desk: credited in full, it holds all of the payments' money
    # (the ledger's profit less the treasury's period costs)
    assert totals["full"] * 100 == pytest.approx(
        _ledger_profit_cents(full) - full.agent_margin["treasury"], abs=1e-4
    )
    assert totals["full"] > 2 * totals["shared"] > 0


def test_the_fraudster_sees_its_own_attempts_and_money_per_pattern():
    env = PaymentEcosystemEnv(
        scenario_overrides={"demand": {"transactions_per_day": 300}}, learning=["fraudster"]
    )
    view = env.roles["fraudster"]
    names = view.pattern_names
    obs, _ = env.reset(seed=6)
    action = np.array([0.0, 0.0, 0.0, 5.0] + [1.0] * 4, dtype=np.float32)  # mule cash-outs only, 5x the rate
    totals = np.zeros(2)
    for _ in range(6):
        obs, rewards, *_ = env.step({"fraudster": action})
        o = dict(zip(view.feature_names, obs["fraudster"], strict=True))
        assert o["attempts[card_testing]"] == 0 and o["proceeds[card_testing]"] == 0
        assert o["intensity[mule_cashout]"] == pytest.approx(1.0) and o["intensity[app_scam]"] == 0
        totals += [o["attempts[mule_cashout]"], rewards["fraudster"]]
    assert totals[0] > 0  # about 5 per hour relative to the scenario's rate, clipped to 2 x max_intensity
    book = env.world.fraudster.summary()
    assert book["mule_cashout"]["attempts"] > 0 and all(book[n]["attempts"] == 0 for n in names[:3])
    assert totals[1] * 100 == pytest.approx(env.world.fraudster.net_cents, abs=1e-4)
