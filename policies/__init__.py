"""payroute.policies: policy bundles (export and verified loading), logged decisions and off-policy evaluation.

Nothing here imports Ray, Stable-Baselines3 or torch at import time: a reviewer's machine with the core
install (onnxruntime, numpy, pyarrow) loads and checks bundles and evaluates them on logs. Only
:func:`export_torch_policy` needs torch, and imports it when called.
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
    check_observation_schema,
    config_sha256,
    export_torch_policy,
    load_bundle,
)

ZOO_BUNDLES = ("router", "risk", "pricing")
"""The reference bundles shipped in ``policies/zoo`` (policies/zoo/README.md)."""


def zoo(name: str) -> str:
    """The path of a reference bundle: ``zoo("router")`` can go wherever a bundle path goes.

    >>> from payroute.experiments import whatif
    >>> whatif.run(zoo("router"), "processor_outage")  # doctest: +SKIP
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
    "ZOO_BUNDLES",
    "check_observation_schema",
    "config_sha256",
    "export_torch_policy",
    "load_bundle",
    "zoo",
]
