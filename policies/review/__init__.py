"""``payroute review``: everything a reviewer checks before a policy bundle goes near real payments.

- :mod:`~payroute.policies.review.pipeline`: the review, in order (integrity, logs, stress, OPE, constraints) and
  its gates; the verdict as an exit code;
- :mod:`~payroute.policies.review.config`: thresholds and settings (``review_default.yaml`` ships the defaults);
- :mod:`~payroute.policies.review.stress`: the stress suite, on the paired-comparison engine
  (:mod:`payroute.policies.compare`);
- :mod:`~payroute.policies.review.roles`: price, treasury and fraud-side bundles in the stress worlds, with their
  role's gates (:mod:`~payroute.policies.review.role_limits`: a continuous bundle's limits);
- :mod:`~payroute.policies.review.ope_estimators` and :mod:`~payroute.policies.review.ope`: off-policy
  estimators, and the evaluation with bootstrap intervals and weight diagnostics;
- :mod:`~payroute.policies.review.constraints`: masked actions, malformed inputs, caps, latency;
- :mod:`~payroute.policies.review.shadow`: shadow replay of a route bundle on a log (``--shadow``), its report
  section in :mod:`~payroute.policies.review.report_shadow`;
- :mod:`~payroute.policies.review.checks`: one check's result; :mod:`~payroute.policies.review.report`: the HTML.
"""

from payroute.policies.review.config import (
    DEFAULT_CONFIG_FILE,
    IntegrityReviewConfig,
    OPEReviewConfig,
    ReviewConfig,
    StressReviewConfig,
    default_config_path,
    load_review_config,
)
from payroute.policies.review.pipeline import (
    EXIT_ERROR,
    EXIT_FAIL,
    EXIT_PASS,
    ReviewResult,
    error_summary,
    review_bundle,
)

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "EXIT_ERROR",
    "EXIT_FAIL",
    "EXIT_PASS",
    "IntegrityReviewConfig",
    "OPEReviewConfig",
    "ReviewConfig",
    "ReviewResult",
    "StressReviewConfig",
    "default_config_path",
    "error_summary",
    "load_review_config",
    "review_bundle",
]
