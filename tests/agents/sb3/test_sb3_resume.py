"""A Stable-Baselines3 run restored from a checkpoint continues as the uninterrupted run would have.

Two environments of a 2% volume day, 256 steps an iteration: the checkpoint after iteration 2 falls in the
middle of both days. A fresh trainer restored from it must produce iterations 3 and 4 and final weights equal,
bit for bit, to those of a trainer that never stopped (same machine, single-threaded torch: any difference is
state the checkpoint left out).
"""

from __future__ import annotations

import math

import pytest
import torch

from payroute.agents.sb3.trainer import SB3Trainer, _training_env
from tests.helpers.experiments import tiny

ITERATIONS, SAVED_AT = 4, 2


def _numbers(report) -> dict[str, float]:
    keep = ("kpi/", "kpi_running/", "agent/", "sb3/train/")
    return {k: v for k, v in report.scalars.items() if k.startswith(keep) and not math.isnan(v)}


def _run(trainer: SB3Trainer, n: int) -> list:
    return [trainer.train_iteration() for _ in range(n)]


@pytest.mark.parametrize("algorithm", ["MaskablePPO", "A2C"])
def test_an_sb3_run_restored_from_a_checkpoint_continues_as_the_uninterrupted_run(tmp_path, algorithm):
    hyper = (
        {"batch_size": 256, "minibatch_size": 64, "epochs": 1} if algorithm != "A2C" else {"batch_size": 16}
    )
    exp = tiny(
        "sb3_resume",
        trainer={"library": "sb3", "algorithm": algorithm, "hyperparameters": hyper,
                 "network": {"hidden": [16], "activation": "tanh"}},
        resources={"num_env_runners": 0, "num_envs_per_env_runner": 2},
    )  # fmt: skip
    whole = SB3Trainer(exp)
    uninterrupted = _run(whole, ITERATIONS)
    final = [p.detach().clone() for p in whole.model.policy.parameters()]
    whole.close()

    first = SB3Trainer(exp)
    before = _run(first, SAVED_AT)
    first.save(tmp_path)
    first.close()
    resumed = SB3Trainer(exp)
    resumed.restore(tmp_path)
    # the checkpoint fell in the middle of both days, which the restore rebuilt
    assert all(_training_env(env).episode_record()["actions"] for env in resumed.venv.envs)
    after = _run(resumed, ITERATIONS - SAVED_AT)

    for mine, theirs in zip(before + after, uninterrupted, strict=True):
        assert (mine.iteration, mine.env_steps) == (theirs.iteration, theirs.env_steps)
        assert _numbers(mine) == _numbers(theirs), f"iteration {theirs.iteration} differs"
    weights = list(resumed.model.policy.parameters())
    assert all(torch.equal(p, q) for p, q in zip(weights, final, strict=True))
    resumed.close()
