"""The paired-comparison engine on a Ray head on loopback: the same seeds give the same numbers as local workers
(``payroute review`` with a zip bundle, ``payroute baselines``, ``payroute evaluate``, ``whatif.compare``), bundles
shipped as bytes and verified again in the workers."""

from __future__ import annotations

import functools
import json
import shutil
import sys
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
from payroute.policies.compare import Run, bundle_policy, run_one, ship_bundles
from tests.helpers.ray_head import ray_head

pytestmark = pytest.mark.slow

ROUTER = Path(__file__).resolve().parents[2] / "policies" / "zoo" / "router"
QUICK_CONSTRAINTS = {"random_contexts": 200, "latency_decisions": 200, "latency_p99_ms": 60_000.0,
                     "simulated": {"volume_multiplier": 0.02}}  # fmt: skip
TINY = {
    "scenarios": ["processor_outage"],
    "seeds": 2,
    "volume_multiplier": 0.02,
    "baselines": ["cheapest", "ucb"],
}


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A Ray head on loopback with two CPUs and a fresh token, stopped at the end; yields its address."""
    with ray_head(tmp_path_factory.mktemp("ray") / "head.log") as address:
        yield address


@pytest.fixture(scope="module")
def connected(head):
    """This process connected to the head for the tests that follow (their workers then start once)."""
    import ray

    ray.init(address=head, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield head
    ray.shutdown()


def _small(name: str):
    return load_scenario(name, {"volume_scale": 0.02})


def test_a_worker_verifies_the_shipped_bundle_again_and_refuses_one_changed_in_transit(head):
    """(Connects to the head itself, as ``--ray-address`` does, and closes the connection after.)"""
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


def test_payroute_review_and_baselines_take_a_ray_address_and_report_the_local_numbers(connected, tmp_path):
    head = connected
    zipped = Path(shutil.make_archive(str(tmp_path / "router"), "zip", ROUTER))  # a zip bundle ships too
    cfg = tmp_path / "review.yaml"
    cfg.write_text(json.dumps({"stress": {**TINY, "workers": 1}, "constraints": QUICK_CONSTRAINTS}))
    runner = CliRunner()
    reports = {}
    for where, extra in (("local", []), ("ray", ["--ray-address", head])):
        out = tmp_path / f"{where}.json"
        res = runner.invoke(app, ["review", str(zipped), "--config", str(cfg), "--json", str(out), *extra])
        assert res.exit_code in (0, 1), res.output
        reports[where] = json.loads(out.read_text())
    local, on_ray = reports["local"]["stress"], reports["ray"]["stress"]
    assert on_ray["comparisons"] == local["comparisons"] and on_ray["means"] == local["means"]
    assert {m["policy"] for m in local["means"]} == {"candidate", "cheapest", "ucb", "oracle"}
    assert not local["errors"] and [c["status"] for c in reports["ray"]["checks"]] == [
        c["status"] for c in reports["local"]["checks"]
    ]

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
    local_table = runner.invoke(app, args)
    ray_table = runner.invoke(app, [*args, "--ray-address", head])
    assert local_table.exit_code == 0 and ray_table.exit_code == 0, ray_table.output
    assert json.loads(ray_table.stdout) == json.loads(local_table.stdout)


def test_whatif_compare_with_a_ray_address_gives_the_local_table(connected):
    head = connected
    kwargs = dict(
        scenario="default",
        changes={"incidents": [{"route": "card_alpha", "at": "10:00", "duration_min": 120, "state": "down"}]},
        base_changes={"volume_scale": 0.02},
        seeds=2,
    )
    local = whatif.compare([str(ROUTER)], **kwargs)
    on_ray = whatif.compare([str(ROUTER)], ray_address=head, **kwargs)
    pd.testing.assert_frame_equal(local, on_ray)


def test_a_ray_address_without_ray_installed_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as on a reviewer's core install: `import ray` fails
    with pytest.raises(PayrouteError, match=r"--ray-address needs Ray: .*payroute\[train\]"):
        with ray_executor("10.0.0.5:6379"):
            pass
    with ray_executor(None) as executor:  # no address: the engine's own worker processes, no Ray
        assert executor is None


def test_an_unsigned_bundle_verified_under_limits_where_it_runs_gives_the_local_numbers(connected, tmp_path):
    from payroute.experiments.cluster import RayExecutor
    from payroute.policies.compare import run_all
    from tests.helpers.route_bundles import fee_router_bundle

    unsigned = fee_router_bundle(-1.0, tmp_path / "cheap")  # not signed: its graph first runs in a child
    runs = [Run(_small("default"), bundle_policy(unsigned, "cheap"), seed, 1.0) for seed in (0, 1)]
    here = run_all(runs)
    there = run_all(runs, executor=RayExecutor())
    assert [o.kpis for o in there] == [o.kpis for o in here] and here[0].arrivals > 0


def test_payroute_evaluate_with_a_ray_address_gives_the_local_evaluation(connected, tmp_path):
    from payroute.experiments.runner import train
    from tests.helpers.experiments import tiny_experiment, write_experiment

    data = tiny_experiment("tiny_eval_on_ray", stopping={"env_steps": 300, "iterations": 40})
    data["trainer"] = {"library": "sb3", "algorithm": "MaskablePPO",
                       "hyperparameters": {"batch_size": 256, "minibatch_size": 64, "epochs": 1},
                       "network": {"hidden": [16], "activation": "tanh"}}  # fmt: skip
    data["resources"] = {"num_env_runners": 0, "num_envs_per_env_runner": 1}
    run_dir = train(write_experiment(tmp_path, data), runs_root=tmp_path / "runs", progress=False)
    runner = CliRunner()
    for where, extra in (("local", []), ("ray", ["--ray-address", connected])):
        res = runner.invoke(app, ["evaluate", str(run_dir), "--out", str(tmp_path / where), "--json", *extra])
        assert res.exit_code == 0, res.output[-2000:]
    local, on_ray = (pd.read_parquet(tmp_path / w / "runs.parquet") for w in ("local", "ray"))
    assert "trained" in set(local.policy)  # the trained network, shipped to the workers, is an arm
    keep = [c for c in local.columns if not c.startswith("wall")]
    pd.testing.assert_frame_equal(on_ray[keep], local[keep])


def test_the_cluster_and_this_driver_stay_on_loopback(connected):
    import ray

    from tests.helpers.ray_head import LOOPBACK

    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {LOOPBACK}
    assert ray.get_runtime_context().worker.node.node_ip_address == LOOPBACK
