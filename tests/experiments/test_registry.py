"""``--mlflow URI``: the reviewed bundle's ONNX model registered with its card, ML-BOM and review."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from payroute.experiments.cli import app

mlflow = pytest.importorskip("mlflow", reason="the 'mlflow' extra (mlflow-skinny) registers models")

ROUTER = Path(__file__).resolve().parents[2] / "policies" / "zoo" / "router"
QUICK = {
    "stress": {"enabled": False},
    "constraints": {"random_contexts": 200, "latency_decisions": 200, "latency_p99_ms": 60_000.0,
                    "simulated": {"volume_multiplier": 0.02}},
}  # fmt: skip


def test_review_with_mlflow_registers_the_onnx_model_with_card_bom_and_review(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3's local folder store, for the test
    uri = (tmp_path / "mlruns").as_uri()
    cfg = tmp_path / "review.yaml"
    cfg.write_text(yaml.safe_dump(QUICK))
    js, html = tmp_path / "review.json", tmp_path / "report.html"
    args = [
        "review",
        str(ROUTER),
        "--config",
        str(cfg),
        "--json",
        str(js),
        "--report",
        str(html),
        "--mlflow",
        uri,
    ]
    res = CliRunner().invoke(app, args)
    summary = json.loads(js.read_text())
    assert res.exit_code == summary["exit_code"], res.output
    assert "MLflow: router version 1" in " ".join(res.output.split())

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (version,) = client.search_model_versions("name='router'")
    run = client.get_run(version.run_id)
    assert run.data.tags["payroute.review_verdict"] == summary["verdict"]
    assert run.data.tags["payroute.bundle_sha256"] == summary["governance"]["bundle"]["sha256"]
    listed = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"bundle", "ml-bom.json", "review"} <= listed
    inside = {a.path for d in ("bundle", "review") for a in client.list_artifacts(run.info.run_id, d)}
    assert {
        "bundle/card.json",
        "bundle/checksums.sha256",
        "review/summary.json",
        "review/report.html",
    } <= inside
    logged = json.loads(Path(client.download_artifacts(run.info.run_id, "review/summary.json")).read_text())
    assert logged["governance"] == summary["governance"]

    import mlflow.onnx
    import onnx

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the review put MLflow's own setting back
    model = mlflow.onnx.load_model(f"models:/router/{version.version}")
    assert model.graph == onnx.load_model_from_string((ROUTER / "policy.onnx").read_bytes()).graph


def test_an_unreachable_tracking_store_is_a_one_line_error_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    from payroute.errors import PayrouteError
    from payroute.experiments.registry import register_bundle

    with pytest.raises(PayrouteError, match="MLFLOW_ALLOW_FILE_STORE=true"):
        register_bundle(ROUTER, (tmp_path / "mlruns").as_uri())
