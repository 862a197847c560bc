"""A bundle's model card as a CycloneDX 1.6 ML-BOM (``payroute export ... --ml-bom bom.json``).

One component of type ``machine-learning-model`` per bundle, named by the bundle, pinned by the bundle's digest
(:mod:`payroute.policies.bundle.digest`) and holding its files (``policy.onnx``, ``card.json``, ...) as
``file`` components with the sha256 each has in ``checksums.sha256``. Its ``modelCard`` carries what the
card says: the approach (reinforcement learning), the task (the decision kind and its actions), the network's
interface (inputs and outputs), the simulated scenario it was trained on (a dataset entry with the scenario's
sha256), the evaluation against the baselines on held-out seeds (performance metrics with their paired 95%
intervals, one slice per scenario and reference), and the limits of all of it. The card's records are claims
of whoever exported (and signed) the bundle; the BOM repeats them, it does not check them: ``payroute review``
does. Written with the standard library only (no CycloneDX package needed to write it).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from payroute.errors import PayrouteError
from payroute.files import atomic_write_text
from payroute.policies.bundle.card import CHECKSUM_FILE, PolicyCard
from payroute.policies.bundle.digest import bundle_digest
from payroute.policies.bundle.loading import load_bundle, read_bundle_files

SPEC_VERSION = "1.6"
_METRICS = (("margin_per_tx_usd", "margin per transaction (USD)"), ("approval_rate", "approval rate"))


def _prop(name: str, value: Any) -> dict[str, str]:
    return {"name": f"payroute:{name}", "value": str(value)}


def _checksums(raw: bytes) -> dict[str, str]:
    out = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        digest, sep, name = line.partition("  ")
        if sep:
            out[name] = digest
    return out


def _metrics(card: PolicyCard) -> list[dict[str, Any]]:
    """The trained policy's evaluation rows (``card.evaluation.summary``) as performance metrics."""
    out: list[dict[str, Any]] = []
    for row in card.evaluation.get("summary", []) or []:
        if not isinstance(row, dict) or row.get("policy") != "trained":
            continue
        where = f"scenario {row.get('scenario', '?')}, {row.get('seeds', '?')} held-out seeds"
        for key, label in _METRICS:
            if row.get(key) is not None:
                out.append({"type": label, "value": f"{row[key]:.6g}", "slice": where})
        diff, low, high = row.get("margin_diff"), row.get("margin_diff_low"), row.get("margin_diff_high")
        if None not in (diff, low, high):
            out.append(
                {
                    "type": "margin per transaction minus the reference baseline's (USD, paired)",
                    "value": f"{diff:+.6g}",
                    "slice": where,
                    "confidenceInterval": {"lowerBound": f"{low:+.6g}", "upperBound": f"{high:+.6g}"},
                }
            )
    return out


def model_component(path: str | Path, card: PolicyCard, files: dict[str, bytes]) -> dict[str, Any]:
    """The ``machine-learning-model`` component of the bundle at ``path`` (card and files already read)."""
    digest = bundle_digest(path)
    ref = f"payroute-bundle-{digest['sha256'][:16]}"
    io = card.io
    scenario = card.scenario
    features = ", ".join(f.name for f in card.observation[:8]) + (", ..." if io.obs_dim > 8 else "")
    training = card.training or {}
    datasets = []
    if scenario is not None:
        datasets.append(
            {
                "type": "dataset",
                "name": f"simulated worlds of payroute scenario {scenario.name}",
                "description": f"synthetic payments drawn by the simulator (scenario sha256 {scenario.sha256}; "
                f"training seeds: {card.seeds.get('training_worlds', card.seeds.get('training', 'see card'))})",
            }
        )
    model_card = {
        "bom-ref": f"{ref}-card",
        "modelParameters": {
            "approach": {"type": "reinforcement-learning"},
            "task": f"{card.decision_kind} decisions: choose one of {io.n_actions} actions ({', '.join(card.actions)})",
            "architectureFamily": "neural network policy (ONNX)",
            "modelArchitecture": str(training.get("method") or training.get("algorithm") or "policy network"),
            "datasets": datasets,
            "inputs": [
                {"format": f"float32 tensor '{io.obs_input}' of shape (batch, {io.obs_dim}): {features}"},
                {
                    "format": f"bool tensor '{io.mask_input}' of shape (batch, {io.n_actions}): allowed actions"
                },
            ],
            "outputs": [
                {
                    "format": f"float32 tensor '{io.output}' of shape (batch, {io.n_actions}): one logit per action"
                }
            ],
        },
        "quantitativeAnalysis": {"performanceMetrics": _metrics(card)},
        "considerations": {
            "useCases": [f"{card.decision_kind} decisions of a payment business, as in payroute's worlds"],
            "technicalLimitations": [
                "trained and evaluated in simulation only; real traffic may differ from the scenario",
                "the card's records are claims of whoever exported the bundle; payroute review checks them",
                "the observation must be built exactly as the card's observation schema says",
            ],
        },
        "properties": [
            _prop("decision_kind", card.decision_kind),
            _prop("bundle_schema_version", card.bundle_schema_version),
            _prop("onnx_opset", io.opset),
            _prop("reward", card.reward.get("definition", "")),
        ],
    }
    props = [_prop("digest_of", digest["of"])]
    if scenario is not None:
        props.append(_prop("scenario", f"{scenario.name} sha256:{scenario.sha256}"))
    if card.experiment is not None:
        props.append(_prop("experiment", f"{card.experiment.name} sha256:{card.experiment.sha256}"))
    if card.git_commit:
        props.append(_prop("git_commit", card.git_commit))
    listed = _checksums(files[CHECKSUM_FILE])
    return {
        "type": "machine-learning-model",
        "bom-ref": ref,
        "name": digest["name"],
        "version": digest["sha256"][:12],
        "description": f"payroute {card.decision_kind} policy bundle",
        "hashes": [{"alg": "SHA-256", "content": digest["sha256"]}],
        "components": [
            {
                "type": "file",
                "bom-ref": f"{ref}-{name}",
                "name": name,
                "hashes": [{"alg": "SHA-256", "content": h}],
            }
            for name, h in sorted(listed.items())
        ],
        "modelCard": model_card,
        "properties": props,
    }


def ml_bom(bundles: Sequence[str | Path], *, timestamp: dt.datetime | None = None) -> dict[str, Any]:
    """A CycloneDX 1.6 BOM with one model component per bundle, each verified (:func:`load_bundle`) first."""
    from payroute import __version__

    components = []
    for path in bundles:
        policy = load_bundle(path)
        components.append(model_component(path, policy.card, read_bundle_files(path)))
    if not components:
        raise PayrouteError("an ML-BOM needs at least one bundle")
    digests = ",".join(c["hashes"][0]["content"] for c in components)
    when = (timestamp or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'payroute-bundles:' + digests)}",
        "version": 1,
        "metadata": {
            "timestamp": when,
            "tools": {"components": [{"type": "application", "name": "payroute", "version": __version__}]},
        },
        "components": components,
    }


def write_ml_bom(bundles: Sequence[str | Path], out: str | Path) -> Path:
    """Write :func:`ml_bom` of ``bundles`` to ``out`` (JSON, written whole or not at all)."""
    atomic_write_text(out, json.dumps(ml_bom(bundles), indent=2) + "\n")
    return Path(out)


__all__ = ["SPEC_VERSION", "ml_bom", "model_component", "write_ml_bom"]
