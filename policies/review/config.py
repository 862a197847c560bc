"""The review's thresholds and settings: :class:`ReviewConfig`, read from a review YAML.

The shipped defaults are ``review_default.yaml`` next to this module (copy it, change what you need; fields left out
keep their defaults). A bad file fails at load with :class:`~payroute.errors.ConfigError` naming the field.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError

from payroute.config_io import read_yaml_mapping
from payroute.config_model import ConfigModel
from payroute.errors import ConfigError, format_validation_error
from payroute.policies.review.constraints import ConstraintConfig
from payroute.policies.review.roles import RoleReviewConfig
from payroute.policies.review.shadow import ShadowReviewConfig
from payroute.policies.review.shift import ShiftReviewConfig
from payroute.policies.review.stress import StressConfig

DEFAULT_CONFIG_FILE = "review_default.yaml"


class _Strict(ConfigModel):
    """A review config section: unknown fields refused, frozen, every number finite."""


class OPEReviewConfig(_Strict):
    """Off-policy evaluation on the logs: estimator settings and gates (rewards are cents per decision)."""

    estimator: Literal["ips", "snips", "dm", "dr", "sndr", "switch_dr"] = "dr"
    min_lower_bound_vs_logged_cents: float = -5.0
    min_effective_sample_size: float = Field(default=100.0, ge=0)
    max_mean_weight_deviation: float | None = Field(default=0.25, gt=0)
    required: bool = False
    n_bootstrap: int = Field(default=200, ge=20, le=100_000)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    max_weight: float | None = Field(default=None, gt=0)
    switch_tau: float = Field(default=10.0, gt=0)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    min_hcope_lower_bound_vs_logged_cents: float | None = Field(
        default=None,
        description="gate on the high-confidence (empirical Bernstein) lower bound minus the logged mean; "
        "null: reported only (policies/review/ope_bounds.py)",
    )
    hcope_reward_floor_cents: float | None = Field(
        default=None,
        description="no decision earns less (the bound's floor); null: the log's smallest reward",
    )
    tail_level: float = Field(default=0.95, gt=0, lt=1, description="VaR/CVaR level of a day's fraud loss")
    tail_days: int = Field(
        default=2000, ge=100, le=1_000_000, description="days drawn for the fraud-loss tail"
    )


class StressReviewConfig(StressConfig):
    """The stress suite's runs (:class:`~payroute.policies.review.stress.StressConfig`) and its gates."""

    min_margin_diff_vs_best_usd: float = -0.05
    min_approval_diff_vs_best: Annotated[float, Field(ge=-1.0, le=1.0)] | None = -0.02
    multiplicity: Literal["holm", "none"] = Field(
        default="holm",
        description="holm: the stress gates control the family-wise error over all their comparisons at "
        "(1 - confidence) / 2; none: each at that level alone (policies/review/gates.py)",
    )
    enabled: bool = True


class IntegrityReviewConfig(_Strict):
    """Who must vouch for the bundle, and the limits an unsigned graph is run under."""

    trusted_keys: list[str] = Field(
        default_factory=list,
        description="Ed25519 public keys (PEM, `payroute keygen`) whose signature makes a bundle trusted; a "
        "relative path is read from the config file's folder",
    )
    trust_zoo_key: bool = Field(default=True, description="also trust the key of the zoo's reference bundles")
    require_signature: bool = Field(
        default=False,
        description="true: an unsigned bundle, or one signed by a key not trusted, fails the review; false: "
        "reported only. An invalid signature is always refused",
    )
    time_limit_s: float = Field(
        default=20.0,
        gt=0,
        le=3600,
        description="CPU seconds an untrusted graph gets for its golden vectors (in a child process), and "
        "wall-clock seconds for each later call in the loading process",
    )
    memory_limit_mb: int = Field(
        default=2048,
        ge=64,
        le=1 << 20,
        description="MiB of memory an untrusted graph gets for them, and the cap of its onnxruntime arena "
        "for every later call in the loading process",
    )


class ReviewConfig(_Strict):
    """A review's thresholds and settings (``review.yaml``)."""

    scenario: str | None = Field(
        default=None,
        description="the scenario the bundle must fit; null: the card's scenario if shipped, else default",
    )
    integrity: IntegrityReviewConfig = IntegrityReviewConfig()
    stress: StressReviewConfig = StressReviewConfig()
    ope: OPEReviewConfig = OPEReviewConfig()
    constraints: ConstraintConfig = ConstraintConfig()
    shadow: ShadowReviewConfig = ShadowReviewConfig()
    roles: RoleReviewConfig = Field(
        default=RoleReviewConfig(),
        description="the stress gates of price, treasury and fraud-side bundles (runs as in stress:)",
    )
    shift: ShiftReviewConfig = ShiftReviewConfig()


def with_scenario(config: ReviewConfig, scenario: str | Path) -> ReviewConfig:
    """``config`` reviewing on ``scenario`` (``--scenario``): the review's world, and the base every stress variant
    (of the stress suite and of the role gates) is layered on; a bad name or path is a :class:`ConfigError`."""
    try:
        stress = StressReviewConfig.model_validate({**config.stress.model_dump(), "base": str(scenario)})
    except ValidationError as err:
        raise ConfigError(format_validation_error("--scenario", err)) from None
    return config.model_copy(update={"scenario": str(scenario), "stress": stress})


def default_config_path() -> Path:
    return Path(str(resources.files("payroute.policies.review") / DEFAULT_CONFIG_FILE))


def load_review_config(path: str | Path | None = None) -> ReviewConfig:
    """The review config in ``path`` (fields left out take the shipped defaults), or the shipped defaults."""
    source = Path(path) if path is not None else default_config_path()
    if not source.is_file():
        raise ConfigError(f"review config not found: {source}")
    data = read_yaml_mapping(source, empty={})
    try:
        config = ReviewConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(source.name, err)) from None
    keys = [str(source.parent / k) for k in config.integrity.trusted_keys]  # relative to the config file
    return config.model_copy(update={"integrity": config.integrity.model_copy(update={"trusted_keys": keys})})
