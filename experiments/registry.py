"""``--ml-bom`` and ``--mlflow URI``: a bundle's ONNX model registered in an MLflow model registry, with its card and review.

:func:`register_bundle` opens an MLflow run in the experiment ``payroute`` at the tracking URI, logs the bundle's
``policy.onnx`` as an MLflow ONNX model registered under the bundle's name (a new version each time), and logs
as artefacts of the same run: ``bundle/card.json`` and ``bundle/checksums.sha256`` (the card as the bundle holds
it), ``ml-bom.json`` (the CycloneDX ML-BOM, :mod:`payroute.policies.bundle.mlbom`) and, from ``payroute
review``, ``review/summary.json`` and ``review/report.html``. The run's tags say the bundle's sha256 and the
review's verdict. The bundle is verified (:func:`~payroute.policies.bundle.load_bundle`) before anything is
logged.

MLflow is optional: ``pip install -c constraints.txt 'payroute[mlflow]'`` (``mlflow-skinny``). A tracking
server (``http://host:5000``) works as it is; a local folder (``file:///path/mlruns``) needs
``MLFLOW_ALLOW_FILE_STORE=true`` with MLflow 3 (its file store is in maintenance mode), and a ``sqlite:///``
store needs the full ``mlflow`` package (SQLAlchemy).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from payroute.errors import PayrouteError
from payroute.files import check_output_file
from payroute.policies.bundle.mlbom import write_ml_bom

EXPERIMENT = "payroute"


def require_mlflow() -> None:
    """Fail before any work when ``--mlflow`` is asked for and MLflow is not installed."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise PayrouteError(
            "--mlflow needs MLflow: pip install -c constraints.txt 'payroute[mlflow]' (mlflow-skinny)"
        ) from None


def register_bundle(
    bundle: str | Path,
    tracking_uri: str,
    *,
    name: str | None = None,
    review: dict[str, Any] | None = None,
    report: str | Path | None = None,
) -> dict[str, Any]:
    """Register ``bundle``'s ONNX model at ``tracking_uri``; returns the run id, model name, version and the
    artefacts logged. ``review`` (the review JSON's dict) and ``report`` (its HTML file) are logged with it."""
    require_mlflow()
    import mlflow
    import mlflow.onnx
    import onnx

    from payroute.policies.bundle.digest import bundle_digest
    from payroute.policies.bundle.loading import load_bundle, read_bundle_files
    from payroute.policies.bundle.mlbom import ml_bom as bom_of

    bundle = Path(bundle)
    policy = load_bundle(bundle)
    files = read_bundle_files(bundle)
    digest = bundle_digest(bundle)
    model_name = name or bundle.name.removesuffix(".zip")
    previous = os.environ.get("MLFLOW_TRACKING_URI")  # this process's own setting, put back after
    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow.set_experiment(EXPERIMENT)
        tags = {
            "payroute.bundle": digest["name"],
            "payroute.bundle_sha256": digest["sha256"],
            "payroute.bundle_sha256_of": digest["of"],
            "payroute.decision_kind": policy.decision_kind,
            "payroute.signature": policy.signature.describe(),
        }
        if review is not None:
            tags["payroute.review_verdict"] = str(review.get("verdict"))
        with mlflow.start_run(run_name=f"{model_name} {digest['sha256'][:12]}", tags=tags) as run:
            info = mlflow.onnx.log_model(
                onnx.load_model_from_string(files["policy.onnx"]),
                name="policy",
                registered_model_name=model_name,
                save_as_external_data=False,  # one self-contained file, as in the bundle
            )
            logged = ["policy (ONNX model)"]
            for fname in ("card.json", "checksums.sha256"):
                mlflow.log_text(files[fname].decode("utf-8"), f"bundle/{fname}")
                logged.append(f"bundle/{fname}")
            mlflow.log_text(json.dumps(bom_of([bundle]), indent=2), "ml-bom.json")
            logged.append("ml-bom.json")
            if review is not None:
                mlflow.log_text(json.dumps(review, indent=2), "review/summary.json")
                logged.append("review/summary.json")
            if report is not None:
                mlflow.log_artifact(str(report), "review")
                logged.append(f"review/{Path(report).name}")
        version = getattr(info, "registered_model_version", None)
    except PayrouteError:
        raise
    except Exception as err:  # MLflow's own errors: an unreachable server, a refused store
        msg = " ".join(str(err).split())
        hint = ""
        if "MLFLOW_ALLOW_FILE_STORE" in msg:
            hint = " (a local folder needs MLFLOW_ALLOW_FILE_STORE=true with MLflow 3)"
        raise PayrouteError(f"--mlflow {tracking_uri}: {type(err).__name__}: {msg[:300]}{hint}") from None
    finally:
        mlflow.set_tracking_uri(previous)  # None: MLflow's default again
    return {
        "tracking_uri": tracking_uri,
        "run_id": run.info.run_id,
        "model": model_name,
        "version": None if version is None else str(version),
        "artifacts": logged,
    }


def check_records(ml_bom: Path | None, tracking_uri: str | None) -> None:
    """Before any work: the ``--ml-bom`` path can be written, and MLflow is there when ``--mlflow`` is given."""
    check_output_file(ml_bom, "--ml-bom")
    if tracking_uri is not None:
        require_mlflow()


def write_records(
    bundles: list[Path],
    ml_bom: Path | None,
    tracking_uri: str | None,
    review: dict[str, Any] | None = None,
    report: str | Path | None = None,
    say: Any = print,
) -> list[dict[str, Any]]:
    """The ML-BOM of ``bundles`` at ``ml_bom`` and each bundle registered at ``tracking_uri`` (each when given),
    saying in a line where each went."""
    if ml_bom is not None:
        write_ml_bom(bundles, ml_bom)
        say(f"ML-BOM (CycloneDX 1.6): {ml_bom}")
    out = []
    for bundle in bundles if tracking_uri is not None else []:
        done = register_bundle(bundle, tracking_uri, review=review, report=report)
        say(
            f"MLflow: {done['model']} version {done['version']} at {tracking_uri} (run {done['run_id']}: "
            f"{', '.join(done['artifacts'])})"
        )
        out.append(done)
    return out


__all__ = ["check_records", "register_bundle", "require_mlflow", "write_records"]
