"""What a model-risk committee files: the review's verdict, each gate, and the digests of what was reviewed.

The review JSON (``payroute review --json``) opens with a ``governance`` block (:func:`governance_record`):

- ``verdict`` (``pass`` / ``fail``) and ``exit_code``;
- ``gates``: every check as ``section/name``, its status (``pass``, ``fail``, ``warn``, ``not run``), the value
  it measured and the threshold it was held to; ``counts`` per status;
- ``bundle`` (and ``champion``): the file name and a sha256 that pins its content (:func:`bundle_digest`): of
  the ``.zip`` file itself (``sha256sum bundle.zip``), or, for a bundle directory, of its ``checksums.sha256``
  file (``sha256sum BUNDLE/checksums.sha256``), which lists the sha256 of every other file of the bundle
  (``signature.json`` excepted: it signs that very file) (:mod:`payroute.policies.bundle.digest`);
- ``review_config``: the sha256 of the review YAML the config was read from (``payroute review`` passes its
  ``--config``, or the shipped ``review_default.yaml``); a config given to :func:`review_bundle` without its
  file is pinned by the sha256 of its canonical JSON (sorted keys, no spaces), and ``of`` says which;
- ``logs``: the sha256 of the log file OPE read, when there was one;
- the payroute version and the time the review started.

Everything here reads files only; nothing runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from payroute.errors import PayrouteError
from payroute.policies.bundle.digest import bundle_digest, file_sha256

GOVERNANCE_SCHEMA = "payroute.review.governance/1"
CANONICAL_JSON, YAML_FILE = "canonical JSON of the resolved config", "the YAML file as read"


def config_digest(config: Any, config_file: str | Path | None = None) -> dict[str, str | None]:
    """The review config's sha256: of ``config_file`` (the YAML it was read from) when given, else of the
    config's canonical JSON."""
    if config_file is not None:
        return {"name": Path(config_file).name, "sha256": file_sha256(config_file), "of": YAML_FILE}
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return {"name": None, "sha256": hashlib.sha256(canonical.encode()).hexdigest(), "of": CANONICAL_JSON}


def review_digests(
    bundle: str | Path,
    champion: str | Path | None,
    logs: str | Path | None,
    config: Any,
    config_file: str | Path | None = None,
) -> dict[str, Any]:
    """The digests a review records: bundle, champion, review config, logs, a scenario file (files it has read
    and checked)."""
    try:
        return _digests(bundle, champion, logs, config, config_file)
    except OSError as err:
        raise PayrouteError(f"cannot read {err.filename} to record its sha256 ({err.strerror})") from None


def _digests(bundle, champion, logs, config, config_file) -> dict[str, Any]:
    return {
        "bundle": bundle_digest(bundle),
        "champion": None if champion is None else bundle_digest(champion),
        "review_config": config_digest(config, config_file),
        "logs": None if logs is None else {"name": Path(logs).name, "sha256": file_sha256(logs)},
        "scenario": _scenario_digest(getattr(config, "scenario", None)),
    }


def _scenario_digest(scenario: str | None) -> dict[str, str] | None:
    """A review scenario given as a file (``--scenario my_scenario.yaml``): its name and sha256."""
    if scenario is None or Path(scenario).suffix not in (".yaml", ".yml"):
        return None
    return {"name": Path(scenario).name, "sha256": file_sha256(scenario)}


def governance_record(result: Any) -> dict[str, Any]:
    """The block a committee files, from a :class:`~payroute.policies.review.pipeline.ReviewResult`."""
    gates = [
        {
            "gate": f"{c.section}/{c.name}",
            "status": c.status,
            "value": c.to_dict()["value"],
            "threshold": c.to_dict()["threshold"],
        }
        for c in result.checks
    ]
    counts: dict[str, int] = {}
    for g in gates:
        counts[g["status"]] = counts.get(g["status"], 0) + 1
    return {
        "schema": GOVERNANCE_SCHEMA,
        "verdict": result.verdict,
        "exit_code": result.exit_code,
        **result.digests,
        "payroute_version": result.versions.get("payroute"),
        "started": result.started,
        "counts": counts,
        "gates": gates,
    }


__all__ = ["config_digest", "governance_record", "review_digests"]
