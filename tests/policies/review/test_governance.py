"""What a committee files: the review JSON's verdict, each gate, and the sha256 of the bundle and review config."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from payroute.experiments.cli import app
from payroute.policies.review import default_config_path

ZOO = Path(__file__).resolve().parents[3] / "policies" / "zoo"
QUICK = {
    "stress": {"enabled": False},
    "constraints": {
        "random_contexts": 200,
        "latency_decisions": 200,
        "latency_p99_ms": 60_000.0,  # a budget no loaded machine misses
        "simulated": {"volume_multiplier": 0.02},
    },
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _review(tmp_path: Path, bundle: Path, *extra: str) -> dict:
    out = tmp_path / f"{bundle.name}.json"
    res = CliRunner().invoke(app, ["review", str(bundle), "--json", str(out), *extra])
    assert res.exit_code in (0, 1), res.output
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def quick_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "committee.yaml"
    path.write_text("# the committee's thresholds\n" + yaml.safe_dump(QUICK))
    return path


def test_the_review_json_states_the_verdict_each_gate_and_the_digests_of_a_directory_bundle(
    tmp_path, quick_config
):
    summary = _review(
        tmp_path, ZOO / "router", "--config", str(quick_config), "--champion", str(ZOO / "router")
    )
    gov = summary["governance"]
    assert gov["verdict"] == summary["verdict"] and gov["exit_code"] == summary["exit_code"]
    assert [g["gate"] for g in gov["gates"]] == [f"{c['section']}/{c['name']}" for c in summary["checks"]]
    assert [g["status"] for g in gov["gates"]] == [c["status"] for c in summary["checks"]]
    assert sum(gov["counts"].values()) == len(summary["checks"])
    assert gov["counts"].get("fail", 0) == len(summary["failed"])
    # a directory bundle is pinned by its checksums.sha256, which lists every file's sha256
    assert gov["bundle"] == {
        "name": "router",
        "sha256": _sha(ZOO / "router" / "checksums.sha256"),
        "of": "checksums.sha256",
    }
    assert gov["champion"]["sha256"] == gov["bundle"]["sha256"]
    assert gov["review_config"] == {
        "name": "committee.yaml",
        "sha256": _sha(quick_config),
        "of": "the YAML file as read",
    }
    assert gov["logs"] is None and gov["payroute_version"]


def test_a_zip_bundle_is_pinned_by_the_zip_and_a_changed_bundle_by_another_digest(tmp_path, quick_config):
    zipped = Path(shutil.make_archive(str(tmp_path / "router"), "zip", ZOO / "router"))
    gov = _review(tmp_path, zipped, "--config", str(quick_config))["governance"]
    assert gov["bundle"] == {"name": "router.zip", "sha256": _sha(zipped), "of": "the zip file"}
    other = _review(tmp_path, ZOO / "risk", "--config", str(quick_config))["governance"]
    assert other["bundle"]["sha256"] != gov["bundle"]["sha256"]


def test_the_config_digest_follows_the_file_and_a_review_without_config_pins_the_default_file(
    tmp_path, quick_config, monkeypatch
):
    import payroute.policies.review as review_pkg
    import payroute.policies.review.config as review_config
    from payroute.policies.review.governance import config_digest

    edited = tmp_path / "committee.yaml"
    edited.write_text(quick_config.read_text().replace("200", "201"))
    assert config_digest(None, edited)["sha256"] != config_digest(None, quick_config)["sha256"]
    assert config_digest(None, default_config_path())["name"] == "review_default.yaml"
    # without --config the review reads the default file, and pins that file (a quick one stands in for it)
    for module in (review_pkg, review_config):
        monkeypatch.setattr(module, "default_config_path", lambda: quick_config)
    gov = _review(tmp_path, ZOO / "router")["governance"]
    assert gov["review_config"] == {
        "name": "committee.yaml",
        "sha256": _sha(quick_config),
        "of": "the YAML file as read",
    }


def test_a_config_built_in_code_is_pinned_by_its_canonical_json():
    from payroute.policies.review import ReviewConfig
    from payroute.policies.review.governance import config_digest

    a = config_digest(ReviewConfig())
    assert a["of"] == "canonical JSON of the resolved config" and a["name"] is None
    assert a == config_digest(ReviewConfig.model_validate({}))
    assert a["sha256"] != config_digest(ReviewConfig.model_validate({"scenario": "fee_hike"}))["sha256"]


def test_a_missing_bundle_is_still_a_one_line_error_with_an_error_summary(tmp_path):
    out = tmp_path / "summary.json"
    res = CliRunner().invoke(app, ["review", str(tmp_path / "nowhere.zip"), "--json", str(out)])
    assert res.exit_code == 2 and "bundle not found" in res.output and "Traceback" not in res.output
    assert json.loads(out.read_text())["verdict"] == "error"
