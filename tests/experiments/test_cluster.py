"""The paired-comparison engine on a Ray head on loopback: the same seeds give the same numbers as local workers."""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from payroute.envs.scenarios import load_scenario
from payroute.errors import PayrouteError
from payroute.experiments import whatif
from payroute.experiments.cli import app
from payroute.experiments.cluster import ray_executor
from payroute.policies.compare import Run, bundle_policy, run_all, run_one, ship_bundles
from payroute.policies.review.stress import StressConfig, run_stress_suite

pytestmark = pytest.mark.slow

ROUTER = Path(__file__).resolve().parents[2] / "policies" / "zoo" / "router"
TINY = {
    "scenarios": ["processor_outage"],
    "seeds": 2,
    "volume_multiplier": 0.02,
    "baselines": ["cheapest", "ucb"],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop the head we started, and only it: its own process group (gcs, raylet, workers)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=20)
            break
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def head():
    """A Ray head on 127.0.0.1 with two CPUs and a fresh token, stopped at the end; yields its address."""
    port, client_port = _free_port(), _free_port()
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    ray_tmp = tempfile.mkdtemp(prefix="pr-ray-", dir="/tmp")  # Ray's socket paths must stay short
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={port}",
         f"--ray-client-server-port={client_port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={ray_tmp}", "--block"],
        env={**os.environ, **token}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    saved = {k: os.environ.get(k) for k in token}
    os.environ.update(token)  # the driver (this process) connects with the same token
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:  # the head takes a few seconds to accept drivers
            try:
                with ray_executor(address):
                    break
            except PayrouteError:
                if time.time() > deadline:
                    raise
                time.sleep(1)
        yield address
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _stop(proc)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _small(name: str):
    return load_scenario(name, {"volume_scale": 0.02})


def _numbers(result) -> tuple[pd.DataFrame, pd.DataFrame]:
    return result.runs.drop(columns="wall_s"), result.comparisons


def test_the_stress_suite_on_a_ray_cluster_gives_the_numbers_of_local_workers(head, tmp_path):
    zipped = Path(shutil.make_archive(str(tmp_path / "router"), "zip", ROUTER))  # a zip bundle ships too
    config = StressConfig(**TINY, workers=1)
    local = run_stress_suite(zipped, config)
    with ray_executor(head) as executor:
        on_ray = run_stress_suite(zipped, config, executor=executor)
    for a, b in zip(_numbers(local), _numbers(on_ray), strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert set(local.runs.policy) == {"candidate", "cheapest", "ucb", "oracle"}
    assert (local.runs.error == "").all() and local.runs.arrivals.gt(0).all()


def test_a_worker_verifies_the_shipped_bundle_again_and_refuses_one_changed_in_transit(head):
    (job,) = ship_bundles([Run(_small("default"), bundle_policy(ROUTER, "candidate"), 0, 1.0)])
    make = job.policy.make
    (shipped,) = make.args
    onnx = bytearray(shipped.files["policy.onnx"])
    onnx[-1] ^= 1
    tampered = replace(shipped, files={**shipped.files, "policy.onnx": bytes(onnx)}, digest="0" * 64)
    job = replace(job, policy=replace(job.policy, make=functools.partial(make.func, tampered)))
    with ray_executor(head) as executor:
        with pytest.raises(PayrouteError, match="policy.onnx does not match its checksum"):
            list(executor.map(run_one, [job]))


def test_payroute_review_and_baselines_take_a_ray_address_and_report_the_local_numbers(head, tmp_path):
    cfg = tmp_path / "review.yaml"
    cfg.write_text(json.dumps({"stress": {**TINY, "workers": 1}}))
    runner = CliRunner()
    reports = {}
    for where, extra in (("local", []), ("ray", ["--ray-address", head])):
        out = tmp_path / f"{where}.json"
        res = runner.invoke(app, ["review", str(ROUTER), "--config", str(cfg), "--json", str(out), *extra])
        assert res.exit_code in (0, 1), res.output
        reports[where] = json.loads(out.read_text())
    assert reports["ray"]["stress"]["comparisons"] == reports["local"]["stress"]["comparisons"]
    assert reports["ray"]["verdict"] == reports["local"]["verdict"]

    args = [
        "baselines",
        "default",
        "--seeds",
        "2",
        "--policies",
        "cheapest,ucb",
        "--volume-scale",
        "0.02",
        "--json",
    ]
    local = runner.invoke(app, args)
    on_ray = runner.invoke(app, [*args, "--ray-address", head])
    assert local.exit_code == 0 and on_ray.exit_code == 0, on_ray.output
    assert json.loads(on_ray.stdout) == json.loads(local.stdout)


def test_whatif_compare_with_a_ray_address_gives_the_local_table(head):
    kwargs = dict(
        scenario="default",
        changes={"incidents": [{"route": "card_alpha", "at": "10:00", "duration_min": 120, "state": "down"}]},
        base_changes={"volume_scale": 0.02},
        seeds=2,
    )
    local = whatif.compare([str(ROUTER), "cheapest"], **kwargs)
    on_ray = whatif.compare([str(ROUTER), "cheapest"], ray_address=head, **kwargs)
    pd.testing.assert_frame_equal(local, on_ray)


def test_run_all_through_an_executor_runs_every_job_in_order(head):
    runs = [Run(_small("default"), p, s, 1.0) for s in (3, 4) for p in ("cheapest", "fastest")]
    with ray_executor(head) as executor:
        remote = run_all(runs, executor=executor)
    here = run_all(runs)
    assert [o.kpis for o in remote] == [o.kpis for o in here]
