"""Scale-out: a Ray head on loopback, an experiment run against it with --ray-address and two env runners."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from payroute.experiments.rundir import read_run
from tests.helpers.experiments import tiny_experiment, write_experiment

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop the head we started, and only it: its own process group (gcs, raylet, workers)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=20)


def test_an_experiment_runs_on_a_ray_cluster_given_its_address(tmp_path):
    port, client_port = _free_port(), _free_port()
    env = {
        **os.environ,
        # Ray >= 2.59 authenticates local clusters by token: a fresh one for this head and its client
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
    }
    ray_bin = str(Path(sys.executable).with_name("ray"))
    # Ray's unix socket paths live under its temp dir and must stay short (pytest's tmp_path is too long)
    ray_tmp = tempfile.mkdtemp(prefix="pr-ray-", dir="/tmp")
    head = subprocess.Popen(
        [ray_bin, "start", "--head", f"--port={port}", f"--ray-client-server-port={client_port}",
         "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={ray_tmp}", "--block"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        data = tiny_experiment("on_cluster", stopping={"iterations": 1})
        data["resources"] = {"num_env_runners": 2, "num_envs_per_env_runner": 1}
        path = write_experiment(tmp_path, data)
        cmd = [sys.executable, "-m", "payroute.experiments.cli", "train", str(path), "--ray-address", f"127.0.0.1:{port}",
               "--runs", str(tmp_path / "runs"), "--quiet"]  # fmt: skip
        deadline = time.time() + 60
        while True:  # the head takes a few seconds to accept clients
            result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
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
    finally:
        _stop(head)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert head.poll() is not None


def write_and_hash(data) -> str:
    from payroute.experiments.schema import experiment_from_dict

    return experiment_from_dict(
        {**data, "resources": {**data["resources"], "ray_address": "elsewhere:6379"}}
    ).config_hash()
