"""Training wrappers and trained policies bound into the world: what evaluation numbers rest on."""

from __future__ import annotations

import copy
import functools
import pickle

import numpy as np
import pytest
import torch

from payroute.agents.learned import LearnedRoutePolicy, rollout_kpis
from payroute.agents.networks import (
    PolicyNet,
    PolicySpec,
    linear_stack,
    load_policy,
    policy_from_linears,
    save_policy,
)
from payroute.agents.training_env import TrainingEnv, make_env
from payroute.envs.baselines.routers import route_values
from payroute.envs.scenarios import load_scenario
from payroute.policies.compare import NamedPolicy, run_paired
from payroute.vocabulary import HELD_OUT_SEED_START

SMALL = {"volume_scale": 0.02}


def _routing_env(**kwargs):
    # the trainers' decision credit replaces the step rewards of an environment that pays what resolves
    kw = {
        "scenario": "default",
        "scenario_overrides": SMALL,
        "credit": "resolved",
        "baseline": "none",
        **kwargs,
    }
    return make_env("payroute/Routing-v0", kw)


def _random_net(env, seed=0) -> PolicyNet:
    torch.manual_seed(seed)
    spec = PolicySpec(
        obs_dim=env.observation_space.shape[0], n_actions=env.action_space.n, hidden=(16,), activation="tanh",
        feature_names=tuple(env.feature_names), action_names=tuple(env.route_names),
    )  # fmt: skip
    net = PolicyNet(spec)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(5.0)  # a decisive random policy: it uses many different routes
    return net.eval()


def _play(env, policy, seed):
    obs, info = env.reset(seed=seed)
    rewards = []
    while True:
        obs, r, term, trunc, info = env.step(policy(obs, info))
        rewards.append(r)
        if term or trunc:
            return np.array(rewards), info


def _random_valid(rng):
    return lambda obs, info: int(rng.choice(np.flatnonzero(info["action_mask"])))


def test_decision_credit_pays_each_step_its_own_payment_and_adds_up_to_the_return():
    env = TrainingEnv(_routing_env(), seed=1, credit="decision")
    rewards, info = _play(env, _random_valid(np.random.default_rng(0)), seed=4)
    credit = info["decision_rewards"]
    assert len(credit) == len(rewards)
    assert credit.sum() == pytest.approx(rewards.sum(), abs=0.05)
    # per step the timing differs: the episode's own last reward carries the drained world, credit does not
    assert abs(rewards[-1]) > 10 * np.abs(credit[-20:]).max()


def _credit_on_the_same_day(credit, baseline="none"):
    """A random valid router's day under ``credit``: the same world and the same choices for every credit."""
    env = TrainingEnv(_routing_env(), seed=1, credit=credit, baseline=baseline)
    _, info = _play(env, _random_valid(np.random.default_rng(0)), seed=4)
    return env, info["decision_rewards"].astype(np.float64)


def test_expected_fraud_credit_swaps_realised_fraud_losses_for_their_expectation_only():
    env, expected = _credit_on_the_same_day("expected")
    _, realised = _credit_on_the_same_day("decision")  # the same world, the same choices
    txs = env._decided
    sent = np.array([tx.state == "settled" for tx in txs])
    fraud_loss = np.array([tx.fraud_loss_cents for tx in txs]) / 100.0
    amount = np.array([tx.amount_cents for tx in txs]) / 100.0
    score = np.array([tx.risk_score for tx in txs])
    charge = expected - realised - fraud_loss  # minus the expected loss of each sent payment
    # payments that were never sent owe no fraud, realised or expected
    assert not sent.all() and np.allclose(charge[~sent], 0.0, atol=1e-3)
    # every sent payment pays its expected loss, the riskier the dearer per dollar
    assert (charge[sent] < 0).all()
    per_dollar = -charge[sent] / amount[sent]
    assert np.corrcoef(score[sent], np.log(per_dollar))[0, 1] > 0.5
    # never more than fraud could cost (the amount and a chargeback fee), and far less on all but the riskiest
    assert (-charge[sent] <= amount[sent] + 15.0 + 1e-3).all()
    assert np.median(per_dollar) < 0.01
    # the base rates behind the posterior are the environment's whole history, not one day's
    history = env._posterior
    env.reset(seed=5)
    assert env._posterior is history


def test_expected_outcome_credit_takes_the_routes_answer_at_its_expectation_keeping_the_mean():
    env, outcome = _credit_on_the_same_day("expected_outcome")
    _, expected = _credit_on_the_same_day("expected")  # the same world, the same choices
    txs = env._decided
    answered = np.array([tx.id in env._answers for tx in txs])
    yes = np.array([tx.state == "settled" for tx in txs])
    card = np.array([tx.family == "card" for tx in txs])
    shift = outcome - expected
    # a payment no route answered (expired, closed, short of funds) keeps its credit
    assert not answered.all() and np.allclose(shift[~answered], 0.0, atol=1e-3)
    # an approval gives back what it was lucky to get, a decline is paid what it was unlucky to lose (the
    # other way round only where a success is worth less than nothing: a fee above the price)
    assert (shift[answered & yes] < 0).mean() > 0.9 and (shift[answered & ~yes] > 0.01).mean() > 0.9
    # the added term has mean zero: within three standard errors over this day's answers
    s = shift[answered]
    assert abs(s.mean()) < 3 * s.std() / np.sqrt(len(s))
    # and it takes out the coin: card payments' credits spread less around their mean per dollar (by a third on
    # this day; what remains is the expected fraud charge, which varies with the score and the amount's cell)
    per_dollar = lambda c: c[card] / np.array([tx.amount_cents for tx in txs])[card]  # noqa: E731
    assert per_dollar(outcome).std() < 0.75 * per_dollar(expected).std()


def test_the_route_baseline_takes_out_what_no_route_choice_changes():
    env, based = _credit_on_the_same_day("expected_outcome", baseline="route_mean")
    _, credit = _credit_on_the_same_day("expected_outcome")  # the same world, the same choices
    reference = np.array(env._reference) / 100.0
    # each step is paid its credit minus its payment's reference, nothing else
    assert np.allclose(credit - based, reference, rtol=1e-5, atol=1e-3)
    # the reference values the eligible routes as the credit does: under a router that picks among them at
    # random, credit and reference agree on average, to a tenth of the credit's own mean
    assert abs(based.mean()) < 0.1 * abs(credit.mean())
    # what remains is the difference between routes: on card payments a small share of the spread the
    # payment's own margin gave (price and amount differ from payment to payment; the routes' costs barely)
    card = np.array([tx.family == "card" for tx in env._decided])
    assert based[card].var() < 0.05 * credit[card].var()


def test_the_route_baseline_does_not_depend_on_the_action_it_is_paid_for():
    """What makes it a baseline: the policy gradient keeps its mean only if the reference ignores the action."""

    def day(last: int, pick_last: bool) -> TrainingEnv:
        # the first eligible route at every step up to `last`; at `last`, the first or the last eligible one
        env = TrainingEnv(_routing_env(), seed=1, credit="expected_outcome", baseline="route_mean")
        _, info = env.reset(seed=4)
        for i in range(last + 1):
            eligible = np.flatnonzero(info["action_mask"])
            _, _, _, _, info = env.step(int(eligible[-1] if pick_last and i == last else eligible[0]))
        return env

    env = TrainingEnv(_routing_env(), seed=1, credit="expected_outcome", baseline="route_mean")
    _, info = env.reset(seed=4)
    step = 0
    while np.count_nonzero(info["action_mask"]) < 2:  # the first payment with more than one route
        _, _, _, _, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
        step += 1
    one, other = day(step, pick_last=False), day(step, pick_last=True)
    assert one._decided[step].route != other._decided[step].route
    assert one._reference == other._reference  # every step's reference so far, the differing one's included


@pytest.mark.parametrize("decline_cost", [False, True])
def test_the_route_baseline_from_the_feature_pass_is_the_one_asking_every_route_gives(decline_cost):
    """The step reuses what the observation's feature pass found on every route (eligible routes, costs, done
    times) and adds the values without numpy: each step's reference is the mean of the route values computed
    from scratch at the same instant, to the bit."""
    env = TrainingEnv(
        _routing_env(decline_cost=decline_cost), seed=1, credit="expected_outcome", baseline="route_mean"
    )
    _, info = env.reset(seed=4)
    rng = np.random.default_rng(0)
    inner = env.unwrapped
    done = False
    steps = 0
    while not done:
        world = inner.world
        tx = world.live[info["transaction"]["id"]]
        eligible = [r for r in world.routes if (tx.eligible_mask >> r.index) & 1]
        p_fraud = env._posterior(world, tx, join=False)  # what the step's own call will give
        values = route_values(world, tx, eligible, *p_fraud, inner.decline_charge_cents)
        _, _, done, _, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
        assert env._reference[-1] == float(np.mean(values))
        steps += 1
    assert steps > 500


def test_the_route_baseline_is_for_routers_with_expected_credit():
    with pytest.raises(ValueError, match="baseline='route_mean' needs payroute/Routing-v0 with credit"):
        TrainingEnv(_routing_env(), credit="decision", baseline="route_mean")
    with pytest.raises(ValueError, match="baseline must be one of none, route_mean"):
        TrainingEnv(_routing_env(), credit="expected", baseline="mean")


def test_the_trainers_credit_is_not_stacked_on_the_environments_own():
    own = make_env("payroute/Routing-v0", {"scenario": "default", "scenario_overrides": SMALL})
    with pytest.raises(
        ValueError, match="replaces the environment's step rewards, which it pays by credit='expected_margin'"
    ):
        TrainingEnv(own, credit="expected_outcome", baseline="route_mean")
    assert TrainingEnv(own).credit == "resolved"  # the environment's own credit passes through


def test_experiments_build_the_router_with_resolved_steps_unless_they_choose_its_credit():
    from payroute.agents.training_env import experiment_env_config
    from payroute.experiments.schema import experiment_from_dict
    from tests.helpers.experiments import tiny_experiment

    data = tiny_experiment()
    assert experiment_env_config(experiment_from_dict(data))["kwargs"]["credit"] == "resolved"
    data["env"]["kwargs"] = {"credit": "expected_margin", "baseline": "route_mean"}
    config = experiment_env_config(experiment_from_dict(data))
    assert (config["kwargs"]["credit"], config["kwargs"]["baseline"]) == ("expected_margin", "route_mean")


def test_risk_decision_credit_pays_each_payment_its_margin_and_friction_and_adds_up_to_the_return():
    from payroute.envs.single_agent.risk import RiskEnv

    env = TrainingEnv(
        RiskEnv("fraud_surge", scenario_overrides={"volume_scale": 0.02}, credit="resolved"),
        seed=1,
        credit="decision",
    )
    rng = np.random.default_rng(3)
    rewards, info = _play(env, lambda obs, info: int(rng.choice(3, p=[0.6, 0.2, 0.2])), seed=5)
    credit = info["decision_rewards"]
    assert len(credit) == len(rewards)
    assert credit.sum() == pytest.approx(rewards.sum(), abs=0.05)
    assert (credit < 0).any() and (
        credit > 0
    ).any()  # friction / fraud losses and earned margins, step by step


def test_the_risk_desks_expected_credit_keeps_the_realised_loss_of_what_it_challenged():
    from payroute.envs.single_agent.risk import RiskEnv

    def play(credit):
        env = TrainingEnv(
            RiskEnv("fraud_surge", scenario_overrides={"volume_scale": 0.02}, credit="resolved"),
            seed=1,
            credit=credit,
        )
        rng = np.random.default_rng(3)
        _, info = _play(env, lambda obs, info: int(rng.choice(3, p=[0.6, 0.2, 0.2])), seed=5)
        return env, info["decision_rewards"].astype(np.float64)

    env, expected = play("expected")
    _, realised = play("decision")
    action = np.array([tx.risk_action for tx in env._decided])
    sent = np.array([tx.state == "settled" for tx in env._decided])
    changed = expected != realised
    # a payment it let through pays its expected fraud loss (a few are too small to show in float32)
    assert changed[(action == 0) & sent].mean() > 0.9
    assert not changed[action != 0].any()  # challenged (or blocked): what really happened


def test_decision_credit_counts_the_invalid_action_penalty():
    env = TrainingEnv(
        _routing_env(invalid_action="penalize", invalid_penalty_usd=2.0), seed=1, credit="decision"
    )
    rng = np.random.default_rng(1)

    def sometimes_invalid(obs, info):
        masked = np.flatnonzero(info["action_mask"] == 0)
        if len(masked) and rng.random() < 0.05:
            return int(masked[0])
        return int(rng.choice(np.flatnonzero(info["action_mask"])))

    rewards, info = _play(env, sometimes_invalid, seed=2)
    assert info["decision_rewards"].sum() == pytest.approx(rewards.sum(), abs=0.05)
    assert (info["decision_rewards"] <= -2.0).sum() > 0


@pytest.mark.parametrize("credit, baseline", [("expected_outcome", "route_mean"), ("resolved", "none")])
def test_a_training_env_copied_mid_episode_pays_the_same_credit(credit, baseline):
    env = TrainingEnv(_routing_env(days=0.25), seed=3, credit=credit, baseline=baseline)
    rng = np.random.default_rng(0)
    _obs, info = env.reset()
    for _ in range(10):
        _obs, _r, _t, _tr, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))

    def rest(e, info) -> list:
        rng = np.random.default_rng(1)
        out = []
        for _ in range(150):  # past the episode's end (its decision rewards) into the next world
            obs, r, done, _tr, info = e.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
            out.append((obs.tobytes(), r, done, np.asarray(info.get("decision_rewards", [])).tobytes()))
            if done:
                obs, info = e.reset()
                out.append(obs.tobytes())
        return out

    copies = [pickle.loads(pickle.dumps(env)), copy.deepcopy(env)]
    original = rest(env, info)
    assert any(isinstance(x, tuple) and x[2] for x in original)
    for twin in copies:
        assert rest(twin, info) == original


def test_training_worlds_use_seeds_below_the_held_out_range():
    env = TrainingEnv(_routing_env(), seed=3)
    seeds = []
    for _ in range(5):
        env.reset()
        seeds.append(env.unwrapped.world.seed)
    assert all(0 <= s < HELD_OUT_SEED_START for s in seeds)
    assert len(set(seeds)) == 5
    again = TrainingEnv(_routing_env(), seed=3)
    assert [(again.reset(), again.unwrapped.world.seed)[1] for _ in range(5)] == seeds


def test_running_kpis_and_clipping():
    env = TrainingEnv(_routing_env(), seed=0, reward_clip_usd=3.0, kpi_every_steps=100)
    rewards, info = _play(env, _random_valid(np.random.default_rng(0)), seed=1)
    assert np.abs(rewards).max() <= 3.0
    assert "kpis" in info and "margin_per_tx_usd" in info["kpis"]
    obs, info = env.reset(seed=1)
    for _ in range(100):
        obs, r, term, trunc, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
    assert set(info["kpis_running"]) >= {"approval_rate", "sla_misses", "fraud_loss_bps"}


def test_a_bound_network_routes_exactly_as_it_does_through_the_environment():
    """The evaluation binds the network into the world; it must see the observation Routing-v0 showed it."""
    env = _routing_env()
    net = _random_net(env)
    seed = 1_000_000_007
    via_env = rollout_kpis(env, net, seed)
    runs = run_paired(
        load_scenario("default", SMALL),
        (NamedPolicy("trained", functools.partial(LearnedRoutePolicy, net)),),
        [seed],
    )
    bound = runs.iloc[0].to_dict()
    for key, value in via_env.items():
        assert bound[key] == pytest.approx(value, rel=1e-12, abs=1e-9), key


def test_bound_networks_run_in_worker_processes_with_the_same_numbers():
    env = _routing_env()
    entry = NamedPolicy("trained", functools.partial(LearnedRoutePolicy, _random_net(env, seed=2)))
    sc = load_scenario("default", SMALL)
    seeds = [1_000_000_000, 1_000_000_001]
    serial = run_paired(sc, (entry, "cheapest"), seeds, workers=1)
    parallel = run_paired(sc, (entry, "cheapest"), seeds, workers=2)
    assert (
        serial.sort_values(["policy", "seed"])
        .reset_index(drop=True)
        .equals(parallel.sort_values(["policy", "seed"]).reset_index(drop=True))
    )


def test_a_network_for_other_routes_is_refused_when_bound():
    env = _routing_env()
    spec = PolicySpec(obs_dim=7, n_actions=3, hidden=(4,), activation="tanh")
    with pytest.raises(ValueError, match="expects 7 features"):
        run_paired(
            load_scenario("default", SMALL),
            (NamedPolicy("bad", functools.partial(LearnedRoutePolicy, PolicyNet(spec))),),
            [1],
        )
    assert env is not None


def test_policy_networks_save_load_and_extract_from_any_mlp(tmp_path):
    env = _routing_env()
    net = _random_net(env)
    save_policy(net, tmp_path / "router")
    back = load_policy(tmp_path / "router")
    x = torch.randn(32, net.spec.obs_dim)
    assert torch.equal(net(x), back(x))
    assert back.spec.feature_names == tuple(env.feature_names)
    # a library's MLP split into a body and a head becomes the same plain network
    body = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU())
    head = torch.nn.Linear(8, 3)
    linears, act = linear_stack(torch.nn.ModuleList([body, head]))
    plain = policy_from_linears(linears, act)
    y = torch.randn(10, 5)
    assert act == "relu" and plain.spec.hidden == (8, 8)
    assert torch.allclose(plain(y), head(body(y)))
    with pytest.raises(ValueError, match="mixed activations"):
        linear_stack(
            torch.nn.Sequential(
                torch.nn.Linear(2, 2), torch.nn.Tanh(), torch.nn.Linear(2, 2), torch.nn.ReLU()
            )
        )
