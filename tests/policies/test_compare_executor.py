"""The paired-comparison engine's executor seam: jobs shipped elsewhere carry their bundles as bytes, are verified
again where they run, and give the numbers of this process."""

from __future__ import annotations

import functools
import hashlib
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from payroute.envs.scenarios import load_scenario
from payroute.errors import PayrouteError
from payroute.policies.bundle.loading import load_bundle, load_bundle_files, read_bundle_files
from payroute.policies.compare import Run, ShippedBundle, bundle_policy, run_all, run_one, ship_bundles

ROUTER = Path(__file__).resolve().parents[2] / "policies" / "zoo" / "router"


class Elsewhere:
    """An executor that runs each job on a pickled copy (as a remote worker gets it), after the test's
    ``before_run`` hook (which may take the bundle files away, as a remote machine never had them)."""

    def __init__(self, before_run=None) -> None:
        self.before_run = before_run
        self.jobs_seen: list[Run] = []

    def map(self, fn, jobs):
        payload = pickle.dumps((fn, list(jobs)))
        if self.before_run:
            self.before_run()
        fn, copies = pickle.loads(payload)
        self.jobs_seen = copies
        for job in copies:
            yield fn(job)


def _runs(bundle: Path) -> list[Run]:
    sc = load_scenario("default", {"volume_scale": 0.02})
    arm = bundle_policy(bundle, "candidate")
    return [Run(sc, p, seed, 1.0) for seed in (0, 1) for p in (arm, "cheapest")]


def test_jobs_run_elsewhere_give_the_numbers_of_this_process_without_the_bundle_path(tmp_path):
    bundle = Path(shutil.copytree(ROUTER, tmp_path / "router"))
    here = run_all(_runs(bundle))
    away = Elsewhere(before_run=lambda: shutil.rmtree(bundle))  # the workers cannot read the path
    there = run_all(_runs(bundle), executor=away)
    assert not bundle.exists()
    assert [o.kpis for o in there] == [o.kpis for o in here]
    assert [o.arrivals for o in there] == [o.arrivals for o in here] and here[0].arrivals > 0
    shipped = {id(job.policy.make.args[0]) for job in away.jobs_seen if job.policy != "cheapest"}
    assert len(shipped) == 1  # the bundle's bytes travel once, shared by every job that uses it


def test_progress_is_reported_for_every_job_run_elsewhere():
    seen = []
    run_all(_runs(ROUTER)[:2], progress=lambda done, total: seen.append((done, total)), executor=Elsewhere())
    assert seen == [(1, 2), (2, 2)]


def _shipped_job() -> tuple[Run, ShippedBundle]:
    (job,) = ship_bundles(_runs(ROUTER)[:1])
    (shipped,) = job.policy.make.args
    return job, shipped


def test_a_shipped_bundle_changed_in_transit_is_refused_where_it_runs():
    job, shipped = _shipped_job()
    onnx = bytearray(shipped.files["policy.onnx"])
    onnx[len(onnx) // 2] ^= 0x01
    tampered = replace(shipped, files={**shipped.files, "policy.onnx": bytes(onnx)}, digest="f" * 64)
    bad = replace(job, policy=replace(job.policy, make=functools.partial(job.policy.make.func, tampered)))
    with pytest.raises(PayrouteError, match="policy.onnx does not match its checksum"):
        run_one(bad)


def test_a_shipped_bundle_with_a_file_not_in_its_checksums_is_refused():
    _job, shipped = _shipped_job()
    with pytest.raises(PayrouteError, match="extra.bin is not listed in checksums.sha256"):
        load_bundle_files({**shipped.files, "extra.bin": b"x"}, "router")


def test_shipped_bytes_load_as_the_bundle_on_disk_does():
    files = read_bundle_files(ROUTER)
    policy = load_bundle_files(files, ROUTER)
    assert policy.signature.trusted and policy.source.name == "router"
    assert policy.checksums_sha256 == hashlib.sha256(files["checksums.sha256"]).hexdigest()
    assert policy.checksums_sha256 == load_bundle(ROUTER).checksums_sha256


def test_a_bundle_changed_on_disk_after_it_was_verified_is_not_shipped(tmp_path):
    from payroute.policies.compare import remember_bundle

    bundle = Path(shutil.copytree(ROUTER, tmp_path / "router"))
    policy = load_bundle(bundle)
    remember_bundle(policy)
    other = Path(shutil.copytree(ROUTER.parent / "risk", tmp_path / "risk"))
    shutil.rmtree(bundle)
    shutil.copytree(other, bundle)  # another valid bundle under the same path
    sc = load_scenario("default", {"volume_scale": 0.02})
    with pytest.raises(PayrouteError, match="changed on disk after it was verified"):
        ship_bundles([Run(sc, bundle_policy(policy, "candidate"), 0, 1.0)])
