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
    "check_observation_schema",
    "config_sha256",
    "export_torch_policy",
    "load_bundle",
]
