"""The RTGS game through RLlib: the MultiAgentEnv adapter passes RLlib's checks and PPO trains on it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ray.rllib")

from payroute.agents.rllib.rtgs import RTGSMultiAgentEnv, ppo_config  # noqa: E402


def test_rllib_multi_agent_env_check_passes():
    from ray.rllib.utils.pre_checks.env import check_multiagent_environments

    check_multiagent_environments(RTGSMultiAgentEnv({"n_banks": 3, "n_periods": 4}))


def test_adapter_follows_the_game_and_ends_with_all():
    env = RTGSMultiAgentEnv({"n_periods": 3})
    obs, _ = env.reset(seed=1)
    assert set(obs) == set(env.possible_agents) == set(env.agents)
    steps = 0
    while True:
        obs, rew, term, trunc, _ = env.step(dict.fromkeys(env.agents, 10))
        steps += 1
        assert set(rew) == set(env.possible_agents)
        if term["__all__"]:
            break
        assert not trunc["__all__"]
    assert steps == 4 and env.agents == []
    assert all(env.observation_spaces[a].contains(o) for a, o in obs.items())


@pytest.mark.slow
def test_ppo_with_one_policy_per_bank_builds_and_trains():
    import ray

    # a new local cluster even if a `ray start` cluster is around (tests must not join a shared one)
    ray.init(
        address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True
    )
    try:
        config = ppo_config({"n_periods": 4}, seed=0).training(
            train_batch_size_per_learner=100, minibatch_size=50, num_epochs=1
        )
        algo = config.build_algo()
        try:
            result = algo.train()
            assert np.isfinite(result["env_runners"]["episode_return_mean"])
            assert set(algo.config.policies) == {"bank_0", "bank_1"}
        finally:
            algo.stop()
    finally:
        ray.shutdown()
