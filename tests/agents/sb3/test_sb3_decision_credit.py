"""Stable-Baselines3 trains on the trainers' decision credit exactly as RLlib does: complete days, each step paid
its own payment's credit (``env.credit``, with the route baseline), so the two libraries' routers are comparable."""

from __future__ import annotations

import numpy as np
import torch

from payroute.agents.sb3.days import fill_buffer, sample_days
from payroute.agents.sb3.trainer import SB3Trainer
from payroute.agents.training_env import ExperimentEnv, experiment_env_config
from tests.helpers.experiments import tiny

CREDIT = {
    "credit": "expected_outcome",
    "baseline": "route_mean",
    "reward_clip_usd": 1000.0,
    "kpi_every_steps": 0,
}


def _sb3(**hyper) -> SB3Trainer:
    exp = tiny(
        "sb3_credit",
        env={"id": "payroute/Routing-v0", **CREDIT},
        trainer={"library": "sb3", "algorithm": "MaskablePPO",
                 "hyperparameters": {"batch_size": 256, "minibatch_size": 128, "epochs": 1, "gamma": 0.0, **hyper},
                 "network": {"hidden": [16], "activation": "tanh"}},
        resources={"num_env_runners": 0, "num_envs_per_env_runner": 2},
    )  # fmt: skip
    return SB3Trainer(exp)


def _choose(seed: int):
    """A fixed chooser among the masked routes (no network): the same actions wherever it is asked."""
    rng = np.random.default_rng(seed)

    def act(observations, masks):
        actions = [int(rng.choice(np.flatnonzero(m))) for m in masks]
        return np.array(actions), np.zeros(len(actions)), np.zeros(len(actions))

    return act


def test_an_sb3_experiment_with_expected_outcome_credit_pays_the_rllib_paths_rewards():
    trainer = _sb3()
    env = trainer.venv.envs[0]
    env.reset(seed=11)  # the next day drawn from seed 11's stream, as on the RLlib side below
    (day,) = sample_days([env], _choose(0), min_steps=1, masked=True)

    # RLlib's path: the same experiment's environment as RLlib's env runners build it (the mask in the
    # observation), the same day and the same actions; its callback replaces the day's rewards by the credit
    rllib_exp = trainer.exp.model_copy(
        update={"trainer": trainer.exp.trainer.model_copy(update={"library": "rllib", "algorithm": "PPO"})}
    )
    rllib_env = ExperimentEnv(experiment_env_config(rllib_exp, dict_observation=True))
    rllib_env.reset(seed=11)
    rllib_env.reset()
    resolved = []
    for a in day.actions:
        _, reward, done, _, info = rllib_env.step(a)
        resolved.append(reward)
    assert done
    rllib_rewards = np.array([float(x) for x in info["decision_rewards"]], dtype=np.float32)
    assert len(day.rewards) == len(rllib_rewards) > 500
    assert np.array_equal(day.rewards, rllib_rewards)  # to the bit
    # and what the learner is given: the buffer holds those rewards, the day one episode ending in a terminal step
    buffer = fill_buffer(trainer.model, [day], masked=True)
    assert np.array_equal(buffer.rewards[:, 0], rllib_rewards)
    assert buffer.episode_starts[:, 0].sum() == 1.0 and buffer.episode_starts[0, 0] == 1.0
    # the credit is not the environment's own step reward (money as it resolves, the drain in the last step)
    assert abs(resolved[-1]) > 10 * np.abs(rllib_rewards[-50:]).max()
    trainer.close()


def test_an_sb3_iteration_with_decision_credit_updates_once_on_complete_days_and_repeats_with_its_seed():
    def one_iteration():
        trainer = _sb3()
        before = [p.detach().clone() for p in trainer.model.policy.parameters()]
        report = trainer.train_iteration()
        after = [p.detach().clone() for p in trainer.model.policy.parameters()]
        buffer = trainer.model.rollout_buffer
        trainer.close()
        return report, before, after, buffer

    report, before, after, buffer = one_iteration()
    # one day per environment at least (a day of this volume is longer than the batch): every day complete
    days = int(buffer.episode_starts.sum())
    assert days == report.episodes == 2 and report.env_steps == buffer.buffer_size >= 256
    assert not np.isnan(report.scalars["kpi/margin_per_tx_usd"])
    assert "sb3/train/policy_gradient_loss" in report.scalars
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    # with gamma 0 each step's return is its own credit
    assert np.allclose(buffer.returns, buffer.rewards, atol=1e-6)
    again, _, after_again, _ = one_iteration()
    assert again.env_steps == report.env_steps
    assert all(torch.equal(a, b) for a, b in zip(after, after_again, strict=True))


def test_an_sb3_run_with_decision_credit_restored_from_a_checkpoint_continues_as_the_uninterrupted_run(
    tmp_path,
):
    """Between iterations no day is under way; the checkpoint keeps each environment's seed cursor and fraud
    history (the last day's record, replayed), so the restored run draws the same next days and credits."""
    whole = _sb3()
    uninterrupted = [whole.train_iteration() for _ in range(2)]
    final = [p.detach().clone() for p in whole.model.policy.parameters()]
    whole.close()

    first = _sb3()
    first.train_iteration()
    first.save(tmp_path)
    first.close()
    resumed = _sb3()
    resumed.restore(tmp_path)
    after = resumed.train_iteration()
    assert (after.iteration, after.env_steps) == (2, uninterrupted[1].env_steps)
    keep = ("kpi/", "agent/", "sb3/train/")
    numbers = lambda r: {k: v for k, v in r.scalars.items() if k.startswith(keep) and v == v}  # noqa: E731
    assert numbers(after) == numbers(uninterrupted[1])
    assert all(torch.equal(p, q) for p, q in zip(resumed.model.policy.parameters(), final, strict=True))
    resumed.close()
