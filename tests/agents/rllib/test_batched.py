"""The batched sampler (``trainer.env_runner: batched``): what it hands the learner, and the same policy from
the same seed.

* its episodes are what RLlib's PPO learner needs, in one piece: one more observation than actions, each action
  allowed by the mask it was drawn under, its log-probability that of the module's masked logits, fragments that
  continue where the last one stopped, whole days whose rewards are the decision credit; every step's info only
  when asked for (``keep_infos``);
* every sub-environment continues its own stream of days from one ``sample()`` call to the next;
* training two iterations twice from the same seed gives the same weights: with fragments in the driver, and
  with complete days on a remote env runner sampling asynchronously (the learner one update behind); a run
  restored from a checkpoint trains the weights the uninterrupted run trains;
* the experiment schema refuses what the sampler cannot do, naming the field, and a config without the new
  fields hashes as before.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from payroute.agents.rllib.trainer import RLlibTrainer
from payroute.errors import ConfigError
from payroute.experiments.schema import experiment_from_dict
from tests.helpers.experiments import tiny_experiment

pytestmark = pytest.mark.slow(minutes=2)


def _batched(**changes) -> dict:
    data = tiny_experiment("batched", **changes)
    data["trainer"]["sampler"] = {"env_runner": "batched", **data["trainer"].get("sampler", {})}
    return data


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_fragments_and_whole_days_are_what_the_learner_needs():
    data = _batched(resources__num_envs_per_env_runner=2, trainer__sampler={"keep_infos": True})
    trainer = RLlibTrainer(experiment_from_dict(data))
    try:
        runner = trainer.algo.env_runner
        first = runner.sample(num_timesteps=300)
        second = runner.sample(num_timesteps=300)
        with pytest.raises(ValueError, match="exploring actions only"):  # not RLlib's loop on the same envs
            runner.sample(num_timesteps=10, explore=False)
    finally:
        trainer.close()
    assert sum(len(e) for e in first) >= 300 and len(first) == 2
    for a, b in zip(first, second, strict=True):
        assert b.id_ == a.id_ and b.t_started == a.t_started + len(a)  # the same day, continued
        np.testing.assert_array_equal(
            a.get_observations(-1)["observations"], b.get_observations(0)["observations"]
        )
    for episode in first + second:
        obs = episode.get_observations()
        actions = np.asarray(episode.get_actions())
        assert len(obs["observations"]) == len(actions) + 1 and not episode.is_done
        mask = obs["action_mask"][:-1]
        assert np.all(mask[np.arange(len(actions)), actions] == 1)  # never a masked route
        logits = np.asarray(episode.get_extra_model_outputs("action_dist_inputs"))
        logp = np.asarray(episode.get_extra_model_outputs("action_logp"))
        expected = _log_softmax(logits)[np.arange(len(actions)), actions]
        np.testing.assert_allclose(logp, expected, atol=1e-5)
        assert np.all(logits[mask == 0] < -1e30)  # masked as the module masks
        infos = episode.get_infos()  # asked for: every step's info (by default only the last step's)
        assert len(infos) == len(actions) + 1 and all("transaction" in i for i in infos[1:])


def test_whole_days_carry_the_decision_credit_and_each_call_draws_new_days():
    data = _batched(
        env__credit="expected_outcome", env__kpi_every_steps=0, resources__num_envs_per_env_runner=2
    )
    trainer = RLlibTrainer(experiment_from_dict(data))
    try:
        runner = trainer.algo.env_runner
        days = [runner.sample(), runner.sample()]
        metrics = runner.get_metrics()
    finally:
        trainer.close()
    for episodes in days:
        assert len(episodes) == 2 and all(e.is_terminated for e in episodes)
        for e in episodes:
            credit = e.get_infos(-1)["decision_rewards"]
            np.testing.assert_allclose(np.asarray(e.get_rewards()), credit)
    first = {round(float(e.get_return()), 6) for e in days[0]}
    second = {round(float(e.get_return()), 6) for e in days[1]}
    assert first.isdisjoint(second)  # new days, not the first call's seeds again
    assert metrics["num_episodes"] == 4 and "kpi" in metrics and "margin_usd" in str(metrics["kpi"])


def _weights_after_two_iterations(data: dict) -> list[torch.Tensor]:
    trainer = RLlibTrainer(experiment_from_dict(data))
    try:
        before = [p.detach().clone() for p in trainer._module("router").parameters()]
        trainer.train_iteration()
        report = trainer.train_iteration()
        after = [p.detach().clone() for p in trainer._module("router").parameters()]
    finally:
        trainer.close()
    assert report.env_steps >= 2 * data["trainer"]["hyperparameters"]["batch_size"]
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))  # it learned something
    return after


SETTINGS = pytest.mark.parametrize(
    "changes",
    [
        {},  # fragments, sampled in the driver
        {  # whole days on a remote env runner, sampling the next batch while the learner updates
            "env__credit": "expected_outcome",
            "env__kpi_every_steps": 0,
            "resources__num_env_runners": 1,
            "resources__num_envs_per_env_runner": 2,
            "trainer__sampler__async_sampling": True,
            "scenario_overrides": {"volume_scale": 0.005},  # days of about 500 steps
            "trainer__hyperparameters__batch_size": 600,
        },
    ],
    ids=["fragments-local", "days-remote-async"],
)


@SETTINGS
def test_the_same_seed_trains_the_same_policy(changes):
    data = _batched(**changes)
    first = _weights_after_two_iterations(data)
    second = _weights_after_two_iterations(data)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def _weights(trainer: RLlibTrainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer._module("router").parameters()]


@SETTINGS
def test_a_restored_run_continues_as_the_uninterrupted_one(changes, tmp_path):
    """Saved after iteration 2 (with the async runner, while it samples iteration 3's batch), restored in a new
    trainer: iterations 3 and 4 train the weights the uninterrupted run trains."""
    exp = experiment_from_dict(_batched(**changes))
    trainer = RLlibTrainer(exp)
    try:
        trainer.train_iteration()
        trainer.train_iteration()
        trainer.save(tmp_path / "ck")
        trainer.train_iteration()
        steps = trainer.train_iteration().env_steps
        whole = _weights(trainer)
    finally:
        trainer.close()
    resumed = RLlibTrainer(exp)
    try:
        resumed.restore(tmp_path / "ck")
        resumed.train_iteration()
        again = resumed.train_iteration()
        assert all(torch.equal(a, b) for a, b in zip(whole, _weights(resumed), strict=True))
    finally:
        resumed.close()
    assert again.env_steps > 0 and steps > 0


def test_the_schema_refuses_what_the_batched_sampler_cannot_do():
    def error(data: dict) -> str:
        with pytest.raises(ConfigError) as info:
            experiment_from_dict(data)
        return str(info.value)

    dqn = _batched()
    dqn["trainer"].update(algorithm="DQN", hyperparameters={})
    assert "trainer.sampler.env_runner 'batched' needs trainer.library 'rllib' with PPO or APPO" in error(dqn)
    sb3 = _batched()
    sb3["trainer"].update(library="sb3", algorithm="PPO", hyperparameters={})
    assert "(got 'sb3', 'PPO')" in error(sb3)
    eco = _batched(env__id="payroute.envs.multi_agent.ecosystem:PaymentEcosystemEnv")
    assert "is for the single-agent payroute environments" in error(eco)
    assert "async_sampling true needs trainer.sampler.env_runner 'batched'" in error(
        tiny_experiment(trainer__sampler={"async_sampling": True})
    )
    assert "async_sampling true needs resources.num_env_runners >= 1" in error(
        _batched(trainer__sampler__async_sampling=True)
    )
    bad = _batched(trainer__sampler={"env_runner": "fast"})
    assert "trainer.sampler.env_runner = 'fast'" in error(bad) and "'rllib' or 'batched'" in error(bad)
    # the defaults leave a config's hash as it was before the section existed
    plain = experiment_from_dict(tiny_experiment())
    assert "sampler" not in plain.resolved()["trainer"]
    assert experiment_from_dict(_batched()).config_hash() != plain.config_hash()
    assert (
        plain.with_changes({"trainer.sampler.env_runner": "batched"}).trainer.sampler.env_runner == "batched"
    )
