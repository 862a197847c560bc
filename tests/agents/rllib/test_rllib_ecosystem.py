"""RLlib (new API stack) on the payment ecosystem: episodes RLlib accepts, PPO for every learning combination,
adversarial training with a frozen fraudster."""

from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from ray.rllib.env.multi_agent_episode import MultiAgentEpisode  # noqa: E402

from payroute.agents.rllib.adversarial import FROZEN_FRAUDSTER, ecosystem_ppo_config  # noqa: E402
from payroute.agents.rllib.env import RLlibPaymentEcosystem  # noqa: E402

# a few hundred payments a day (a whole episode in one small batch); hourly pricing: the pricer decides often
TINY = {"volume_scale": 0.002, "prices": {"period_s": 3600}}
COMBINATIONS = [
    ("router", "risk", "fraudster"),
    ("risk", "fraudster"),  # experiments/risk_vs_fraudster.yaml
    ("router",),
    ("fraudster",),
    ("risk",),
    ("pricer", "treasury"),
    ("router", "risk", "pricer", "treasury", "fraudster"),
]


@pytest.fixture(scope="module")
def ray_session():
    # a new local cluster even if a `ray start` cluster is around (tests must not join a shared one)
    ray.init(
        address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True
    )
    yield
    ray.shutdown()


def _weights(module) -> np.ndarray:
    return np.concatenate([p.detach().cpu().numpy().ravel() for p in module.parameters()])


def _policy_weights(module) -> np.ndarray:
    """What acting uses (the value head is not synced to env runners)."""
    return np.concatenate(
        [
            p.detach().cpu().numpy().ravel()
            for name, p in module.named_parameters()
            if not name.startswith("vf")
        ]
    )


def _learner_weights(algo, module_id: str) -> np.ndarray:
    state = algo.learner_group.get_weights([module_id])[module_id]
    return np.concatenate([np.asarray(state[k]).ravel() for k in sorted(state)])


def test_rllib_multi_agent_episode_accepts_a_whole_ecosystem_episode():
    """Turn-taking agents, rewards paid with the next observation, and a final observation and reward for
    every agent at the end: the episode closes cleanly for each agent."""
    env = RLlibPaymentEcosystem({"scenario_overrides": TINY, "learning": ["router", "risk", "fraudster"]})
    obs, infos = env.reset(seed=0)
    assert env.agents == env.possible_agents == ["router", "risk", "fraudster"]
    episode = MultiAgentEpisode(
        observation_space=env.observation_spaces, action_space=env.action_spaces, agent_module_ids=None
    )
    episode.add_env_reset(observations=obs, infos=infos)
    rng = np.random.default_rng(0)
    totals = dict.fromkeys(env.possible_agents, 0.0)
    actions_taken = dict.fromkeys(env.possible_agents, 0)
    while True:
        ((agent, _),) = obs.items()
        info = infos[agent]
        if "action_mask" in info:
            action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        else:
            action = env.action_spaces[agent].sample()
        actions_taken[agent] += 1
        obs, rewards, terminateds, truncateds, infos = env.step({agent: action})
        for a, r in rewards.items():
            totals[a] += r
        episode.add_env_step(
            observations=obs,
            actions={agent: action},
            rewards=rewards,
            infos=infos,
            terminateds=terminateds,
            truncateds=truncateds,
        )
        if terminateds["__all__"]:
            break
    assert episode.is_done and env.agents == []
    for agent in env.possible_agents:
        sa = episode.agent_episodes[agent]
        assert sa.is_terminated
        assert len(sa) == actions_taken[agent]
        assert sum(sa.get_rewards()) == pytest.approx(totals[agent])


@pytest.mark.parametrize("learning", COMBINATIONS, ids="+".join)
def test_ppo_builds_and_trains_on_every_learning_combination(ray_session, learning):
    config = ecosystem_ppo_config(
        learning, scenario_overrides=TINY, train_batch_size=512, minibatch_size=256, num_epochs=1, seed=1
    )
    algo = config.build_algo()
    try:
        before = {role: _weights(algo.get_module(role)) for role in learning}
        result = algo.train()
        sampled = result["env_runners"]["num_agent_steps_sampled"]
        assert sum(sampled.values()) >= 512
        for role in learning:
            assert sampled.get(role, 0) > 0
            assert role in result["learners"]
            assert not np.allclose(before[role], _weights(algo.get_module(role))), f"{role} did not learn"
    finally:
        algo.stop()


def test_adversarial_training_freezes_the_fraudster_opponent_every_k_iterations(ray_session):
    config = ecosystem_ppo_config(
        ("router", "risk", "fraudster"),
        scenario_overrides=TINY,
        train_batch_size=512,
        minibatch_size=256,
        num_epochs=1,
        freeze_fraudster_every=2,
        seed=2,
    )
    algo = config.build_algo()
    try:
        start = _learner_weights(algo, "fraudster")
        np.testing.assert_array_equal(_learner_weights(algo, FROZEN_FRAUDSTER), start)
        # what the env runner plays with is the same snapshot
        np.testing.assert_array_equal(
            _policy_weights(algo.get_module(FROZEN_FRAUDSTER)), _policy_weights(algo.get_module("fraudster"))
        )
        sampled = {}
        for iteration in (1, 2, 3):
            result = algo.train()
            for module, n in result["env_runners"]["num_module_steps_sampled"].items():
                sampled[module] = sampled.get(module, 0) + n
            live = _learner_weights(algo, "fraudster")
            frozen = _learner_weights(algo, FROZEN_FRAUDSTER)
            if (
                iteration == 1
            ):  # not a snapshot iteration: the opponent stood still while the live one learned
                np.testing.assert_array_equal(frozen, start)
                assert not np.allclose(live, start)
            if iteration == 2:  # snapshot taken
                np.testing.assert_array_equal(frozen, live)
                assert result["fraudster_snapshot_iteration"] == 2
            if iteration == 3:
                assert result["fraudster_snapshot_iteration"] == 2
        # the frozen snapshot played some episodes, the live fraudster others, the defenders all of them
        assert sampled.get(FROZEN_FRAUDSTER, 0) > 0 and sampled.get("fraudster", 0) > 0
        assert sampled["router"] > 0 and sampled["risk"] > 0
    finally:
        algo.stop()
