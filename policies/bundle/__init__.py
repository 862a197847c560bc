"""Policy bundles: a trained policy as a self-contained, checkable artefact that needs no training code.

A bundle is a directory, or a ``.zip`` of one, holding four plain files and no pickle:

=====================  ==========================================================================================
file                   what it holds
=====================  ==========================================================================================
``policy.onnx``        the policy network: inputs ``obs`` (float32, batch x features) and ``action_mask`` (bool,
                       batch x actions), output ``logits`` (float32, batch x actions) with every masked action's
                       logit replaced by :data:`MASKED_LOGIT`. ONNX opset :data:`ONNX_OPSET`, ``onnx.checker`` clean.
``card.json``          the model card and reward report (:class:`PolicyCard`): decision kind, observation schema
                       (feature names, units, scaling), action names (and, for level-setting kinds such as
                       price, the numeric value of each action), reward definition, scenario and experiment
                       config with their sha256 hashes, seeds, package versions, git commit, training summary,
                       evaluation against baselines with intervals.
``golden.json``        golden vectors: observations and masks with the logits the exporter's runtime produced.
``checksums.sha256``   ``sha256sum``-format hashes of the three files above (``sha256sum -c`` verifies them).
``signature.json``     optional: an Ed25519 signature over ``checksums.sha256`` by the exporting team's key.
=====================  ==========================================================================================

The package, by job:

- :mod:`~payroute.policies.bundle.card`: the format (file names, the network's interface, tolerances) and the
  card's schema;
- :mod:`~payroute.policies.bundle.loading`: :func:`load_bundle`, which verifies every file before anything runs;
- :mod:`~payroute.policies.bundle.signing`: keys, signing, and verifying a signature against trusted keys;
- :mod:`~payroute.policies.bundle.sandbox`: an untrusted graph run first in a child process under limits;
- :mod:`~payroute.policies.bundle.runtime`: :class:`BundlePolicy` (batched ``act``/``action_probs`` on
  onnxruntime) and :class:`BoundBundlePolicy` (the policy answering its decision kind inside the world);
- :mod:`~payroute.policies.bundle.binding`: the observation a bound bundle sees, built from the world it joins,
  and whether a bundle's card fits a scenario (checked on the scenario alone).

Bundles are written by the torch exporter (``payroute export``), which lives with the training stack above:
nothing here imports torch.
"""

from payroute.policies.bundle.binding import bound_bundle, check_bundle_fits_scenario, feature_specs
from payroute.policies.bundle.card import (
    BUNDLE_SCHEMA_VERSION,
    MASKED_LOGIT,
    ONNX_OPSET,
    ConfigRecord,
    FeatureSpec,
    PolicyCard,
    PolicyIO,
    check_observation_schema,
    config_sha256,
)
from payroute.policies.bundle.loading import load_bundle
from payroute.policies.bundle.runtime import (
    ActionMaskBuilder,
    BoundBundlePolicy,
    BundlePolicy,
    ObservationBuilder,
    risk_action_mask,
    route_action_mask,
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
    "PolicyIO",
    "bound_bundle",
    "check_bundle_fits_scenario",
    "check_observation_schema",
    "config_sha256",
    "feature_specs",
    "load_bundle",
    "risk_action_mask",
    "route_action_mask",
]
