"""payroute.policies: trained policies as artefacts and their review, on the core install.

- ``bundle/``: the bundle format and card, verified loading, the onnxruntime runtime, binding into a world;
- ``logs/``: recording decisions in the world, reading logged decisions;
- ``review/``: ``payroute review`` (gates, stress suite, off-policy evaluation, constraints, report);
- ``compare.py``: the one paired-comparison engine (every policy on the same seeds, paired intervals).

Nothing here imports Ray, Stable-Baselines3, torch or the learners: a reviewer's machine with the core install
(onnxruntime, numpy, pyarrow) loads and checks bundles and evaluates them on logs. Bundles are written by
``payroute export``, with the training stack.
"""

from payroute.policies.bundle import (
    BUNDLE_SCHEMA_VERSION,
    MASKED_LOGIT,
    ONNX_OPSET,
    ActionMaskBuilder,
    BoundBundlePolicy,
    BundlePolicy,
    ConfigRecord,
    FeatureSpec,
    ObservationBuilder,
    PolicyCard,
    PolicyIO,
    check_observation_schema,
    config_sha256,
    load_bundle,
)

ZOO_BUNDLES = ("router", "risk", "pricing")
"""The reference bundles shipped in ``policies/zoo`` (policies/zoo/README.md)."""


def zoo(name: str) -> str:
    """The path of a reference bundle: ``zoo("router")`` can go wherever a bundle path goes.

    >>> load_bundle(zoo("router")).card.decision_kind  # doctest: +SKIP
    'route'
    """
    from pathlib import Path

    from payroute.errors import PayrouteError

    if name not in ZOO_BUNDLES:
        raise PayrouteError(f"no reference bundle {name!r}; the zoo has {', '.join(ZOO_BUNDLES)}")
    path = Path(__file__).resolve().parent / "zoo" / name
    if not (path / "card.json").is_file():
        raise PayrouteError(f"the reference bundle {name!r} is not installed at {path}")
    return str(path)


__all__ = [
    "BUNDLE_SCHEMA_VERSION",
    "MASKED_LOGIT",
    "ONNX_OPSET",
    "ActionMaskBuilder",
    "BoundBundlePolicy",
    "BundlePolicy",
    "ConfigRecord",
    "FeatureSpec",
    "ObservationBuilder",
    "PolicyCard",
    "PolicyIO",
    "ZOO_BUNDLES",
    "check_observation_schema",
    "config_sha256",
    "load_bundle",
    "zoo",
]
