"""RLlib as an outside client: a plain ``PPOConfig`` (new API stack) built here, not by payroute's helpers.

The payment ecosystem through its RLlib ``MultiAgentEnv`` class with 0 and 1 remote env runners, and
Routing-v0 by its plain id ``"payroute/Routing-v0"`` on a remote env runner: a process that has not imported
payroute finds the id in Ray's env registry (:mod:`payroute.registration`). One tiny training iteration each.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from ray.rllib.algorithms.ppo import PPOConfig  # noqa: E402
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig  # noqa: E402

import payroute  # noqa: E402, F401 - registers the ids
from payroute.agents.rllib.env import RLlibPaymentEcosystem  # noqa: E402

pytestmark = pytest.mark.slow(minutes=2)

TINY = {"volume_scale": 0.002}  # a few dozen payments in a quarter of a day
LEARNING = ["router", "risk", "fraudster"]


@pytest.fixture(scope="module")
def ray_session():
    _local_cluster()
    yield
    ray.shutdown()


def _tiny(config: PPOConfig, runners: int) -> PPOConfig:
    return (
        config.env_runners(num_env_runners=runners, num_envs_per_env_runner=1, rollout_fragment_length=100)
        .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[16]))
        .debugging(seed=0)
    )


def _weights(algo, module_id: str) -> np.ndarray:
    state = algo.learner_group.get_weights([module_id])[module_id]
    return np.concatenate([np.asarray(state[k]).ravel() for k in sorted(state)])


def _train_once(config: PPOConfig, modules: list[str]) -> dict:
    algo = config.build_algo()
    try:
        before = {m: _weights(algo, m) for m in modules}
        result = algo.train()
        for m in modules:  # every learning module took a gradient step on what the runners sampled
            assert not np.array_equal(before[m], _weights(algo, m)), m
    finally:
        algo.stop()
    return result


@pytest.mark.parametrize("runners", [0, 1])
def test_the_ecosystem_trains_under_a_plain_multi_agent_ppo_config(ray_session, runners):
    config = _tiny(
        PPOConfig()
        .environment(
            RLlibPaymentEcosystem, env_config={"scenario_overrides": TINY, "days": 0.25, "learning": LEARNING}
        )
        .multi_agent(policies=set(LEARNING), policy_mapping_fn=lambda agent_id, episode, **kw: agent_id),
        runners,
    )
    result = _train_once(config, LEARNING)
    assert result["env_runners"]["num_env_steps_sampled"] >= 200


def _local_cluster() -> None:
    # a new local cluster even if a `ray start` cluster is around (tests must not join a shared one)
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True
    )


def test_routing_by_its_plain_id_trains_on_a_remote_env_runner(ray_session):
    # on a cluster started after another one was shut down (each new cluster's env registry starts empty)
    ray.shutdown()
    _local_cluster()
    config = _tiny(
        PPOConfig().environment("payroute/Routing-v0", env_config={"scenario_overrides": TINY, "days": 0.25}),
        runners=1,
    )
    result = _train_once(config, ["default_policy"])
    assert result["env_runners"]["num_env_steps_sampled"] >= 200
    assert result["env_runners"]["num_episodes"] >= 1


def test_the_module_qualified_id_works_in_a_process_that_never_imported_payroute():
    code = (
        "import gymnasium as gym, sys\n"
        "env = gym.make('payroute:payroute/Routing-v0', scenario_overrides={'volume_scale': 0.002}, days=0.25)\n"
        "env.reset(seed=0)\n"
        "try:\n"
        "    gym.make('payroute/Risk-v0')\n"  # now registered in this process too
        "except Exception as exc:\n"
        "    sys.exit(f'plain id after the qualified one: {exc!r}')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
