"""Scale-out: a Ray head on loopback, an experiment run against it with --ray-address and two env runners."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from payroute.experiments.rundir import read_run
from tests.helpers.experiments import tiny_experiment, write_experiment
from tests.helpers.ray_head import ray_head

pytestmark = pytest.mark.slow


def test_an_experiment_runs_on_a_ray_cluster_given_its_address(tmp_path):
    with ray_head(tmp_path / "head.log") as address:
        data = tiny_experiment("on_cluster", stopping={"iterations": 1})
        data["resources"] = {"num_env_runners": 2, "num_envs_per_env_runner": 1}
        path = write_experiment(tmp_path, data)
        cmd = [sys.executable, "-m", "payroute.experiments.cli", "train", str(path), "--ray-address", address,
               "--runs", str(tmp_path / "runs"), "--quiet"]  # fmt: skip
        deadline = time.time() + 60
        while True:  # the head takes a few seconds to accept clients
            result = subprocess.run(cmd, env=dict(os.environ), capture_output=True, text=True, timeout=300)
            if (
                result.returncode == 0
                or time.time() > deadline
                or "Could not" not in result.stderr + result.stdout
            ):
                break
            time.sleep(2)
        assert result.returncode == 0, result.stderr[-3000:]
        run_dir = next((tmp_path / "runs" / "on_cluster").iterdir())
        exp, record = read_run(run_dir)
        assert record["status"] == "finished" and record["iterations"] == 1 and record["env_steps"] > 0
        assert exp.resources.num_env_runners == 2
        assert "--ray-address" in record["command"]
        assert (run_dir / "policy" / "router" / "policy.pt").is_file()
        # the local run of the same experiment has the same hash: where it runs is not part of the result
        assert exp.config_hash() == write_and_hash(data)


def write_and_hash(data) -> str:
    from payroute.experiments.schema import experiment_from_dict

    return experiment_from_dict(
        {**data, "resources": {**data["resources"], "ray_address": "elsewhere:6379"}}
    ).config_hash()
