"""A bundle's model card as a CycloneDX 1.6 ML-BOM: valid against the 1.6 JSON schema, and saying what the card says."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from payroute.policies.bundle.digest import bundle_digest
from payroute.policies.bundle.loading import load_bundle
from payroute.policies.bundle.mlbom import ml_bom, write_ml_bom

ZOO = Path(__file__).resolve().parents[2] / "policies" / "zoo"


def _schema_errors(bom: dict) -> object:
    validation = pytest.importorskip("cyclonedx.validation.json", reason="the 'bom' extra validates ML-BOMs")
    from cyclonedx.schema import SchemaVersion

    return validation.JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom))


@pytest.fixture(scope="module")
def bom() -> dict:
    return ml_bom([ZOO / "router", ZOO / "risk"])


def test_the_ml_bom_is_valid_cyclonedx_1_6_and_the_validator_catches_a_broken_one(bom):
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    assert _schema_errors(bom) is None
    broken = copy.deepcopy(bom)
    broken["components"][0]["modelCard"]["modelParameters"]["approach"]["type"] = "guesswork"
    assert _schema_errors(broken) is not None


def test_each_bundle_is_a_model_component_pinned_by_its_digest_with_its_files(bom):
    router, risk = bom["components"]
    assert [c["type"] for c in bom["components"]] == ["machine-learning-model"] * 2
    assert router["name"] == "router" and risk["name"] == "risk"
    assert router["hashes"] == [{"alg": "SHA-256", "content": bundle_digest(ZOO / "router")["sha256"]}]
    listed = dict(
        reversed(line.split("  ", 1))
        for line in (ZOO / "router" / "checksums.sha256").read_text().splitlines()
    )
    files = {f["name"]: f["hashes"][0]["content"] for f in router["components"]}
    assert files == listed and "policy.onnx" in files


def test_the_model_card_says_what_the_bundle_card_says(bom):
    card = load_bundle(ZOO / "router").card
    mc = bom["components"][0]["modelCard"]
    assert mc["modelParameters"]["approach"] == {"type": "reinforcement-learning"}
    assert f"{card.io.obs_dim})" in mc["modelParameters"]["inputs"][0]["format"]
    assert card.scenario.sha256 in mc["modelParameters"]["datasets"][0]["description"]
    trained = next(r for r in card.evaluation["summary"] if r["policy"] == "trained")
    metrics = mc["quantitativeAnalysis"]["performanceMetrics"]
    diff = next(m for m in metrics if "confidenceInterval" in m)
    assert float(diff["value"]) == pytest.approx(trained["margin_diff"], rel=1e-5)
    assert float(diff["confidenceInterval"]["lowerBound"]) == pytest.approx(
        trained["margin_diff_low"], rel=1e-5
    )


def test_the_bom_is_written_whole_and_its_serial_number_follows_the_bundles(tmp_path, bom):
    out = write_ml_bom([ZOO / "router", ZOO / "risk"], tmp_path / "bom.json")
    again = json.loads(out.read_text())
    assert again["serialNumber"] == bom["serialNumber"]
    assert ml_bom([ZOO / "router"])["serialNumber"] != bom["serialNumber"]
