"""The bundle format and ``card.json``: file names, the network's interface, and the model card's schema.

Everything a bundle's files must satisfy is declared here, once: the four file names, the ONNX inputs and output
(names, dtypes, widths), the golden-vector tolerances and the card's pydantic models (:class:`PolicyCard`,
:class:`FeatureSpec`, :class:`ConfigRecord`, :class:`PolicyIO`). The loader
(:mod:`payroute.policies.bundle.loading`) checks a bundle against them, the exporter
(``payroute export``, in the training stack) writes them, and ``docs/bundle_format.md`` is generated from them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import to_jsonable_python

from payroute.config_io import MAX_DEPTH
from payroute.errors import PayrouteError

BUNDLE_SCHEMA_VERSION = "1"
ONNX_OPSET = 17
MASKED_LOGIT = -1.0e9
"""Logit given to masked actions. Finite, so an all-masked row cannot produce NaN; far below any trained logit."""

POLICY_FILE = "policy.onnx"
CARD_FILE = "card.json"
GOLDEN_FILE = "golden.json"
CHECKSUM_FILE = "checksums.sha256"
SIGNATURE_FILE = "signature.json"
"""The Ed25519 signature over ``checksums.sha256`` (optional; outside the checksums it signs)."""
BUNDLE_FILES = (POLICY_FILE, CARD_FILE, GOLDEN_FILE)
OBS_INPUT, MASK_INPUT, LOGITS_OUTPUT = "obs", "action_mask", "logits"
# the graph's interface: (name, dtype, width as a PolicyIO field); every tensor is (batch, width)
ONNX_INPUTS = ((OBS_INPUT, "float32", "obs_dim"), (MASK_INPUT, "bool", "n_actions"))
ONNX_OUTPUTS = ((LOGITS_OUTPUT, "float32", "n_actions"),)

GOLDEN_ROWS = 64
GOLDEN_ATOL = 1e-5
GOLDEN_RTOL = 1e-5
MAX_BUNDLE_BYTES = 1 << 30  # a zip that inflates past this is refused (zip bombs)
# the most bytes each file may hold, checked on the declared (zip) or stat (directory) size before it is read,
# and again while reading; any other file listed in the checksums may hold MAX_OTHER_FILE_BYTES
MAX_FILE_BYTES = {
    POLICY_FILE: 256 << 20,
    CARD_FILE: 16 << 20,
    GOLDEN_FILE: 64 << 20,
    CHECKSUM_FILE: 64 << 10,
    SIGNATURE_FILE: 16 << 10,
}
MAX_OTHER_FILE_BYTES = 16 << 20
MAX_BUNDLE_ENTRIES = 32
MAX_JSON_DEPTH = MAX_DEPTH  # card.json and golden.json nest no deeper than this (the one JSON reader's bound)
SUPPORTED_OPSETS = range(11, ONNX_OPSET + 1)  # the ai.onnx opsets a bundle's card may declare

# Decision kinds whose action is one discrete choice, so a bundle's argmax is the world's action.
BINDABLE_KINDS = ("route", "risk")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    """One observation feature: its name, unit and how it was scaled into the network's input."""

    name: str = Field(
        min_length=1, description="feature name, unique in the observation (`segment=consumer`)"
    )
    unit: str = Field("", description="unit of the raw quantity (`log(1+cents)`, `share`, `flag`, `one-hot`)")
    scaling: str = Field("", description="how the raw quantity was scaled into the input (`/ log(1+1e10)`)")
    low: float | None = Field(None, description="declared lower bound of the input; null: unbounded")
    high: float | None = Field(None, description="declared upper bound of the input; null: unbounded")

    @model_validator(mode="after")
    def _range(self) -> FeatureSpec:
        if self.low is not None and self.high is not None and not self.low <= self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        return self


class ConfigRecord(_Strict):
    """A scenario or experiment config as trained on, with the sha256 of its canonical JSON (:func:`config_sha256`)."""

    name: str = Field(description="the scenario's or experiment's name")
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 of the config's canonical JSON (sorted keys, no whitespace); checked against config",
    )
    config: dict[str, Any] | None = Field(
        None, description="the resolved config as trained on, when recorded"
    )


class PolicyIO(_Strict):
    """The network's interface, written by the exporter."""

    opset: int = Field(description="the ai.onnx opset of policy.onnx (the only opset domain allowed)")
    obs_input: Literal["obs"] = Field(OBS_INPUT, description="name of the observation input")
    mask_input: Literal["action_mask"] = Field(MASK_INPUT, description="name of the action-mask input")
    output: Literal["logits"] = Field(LOGITS_OUTPUT, description="name of the logits output")
    obs_dim: int = Field(gt=0, description="features per observation row; = the length of `observation`")
    n_actions: int = Field(gt=1, description="actions per row; = the length of `actions`")
    masked_logit: float = Field(MASKED_LOGIT, description="the logit the graph gives every masked action")


class PolicyCard(_Strict):
    """``card.json``: what the policy decides, what it sees, what it was trained for and how it did."""

    bundle_schema_version: Literal["1"] = Field(
        BUNDLE_SCHEMA_VERSION, description="version of this format; a loader refuses any other"
    )
    decision_kind: Literal["route", "risk", "price", "treasury", "fraud"] = Field(
        description="the world's decision the policy answers"
    )
    agent_id: str | None = Field(None, description="the agent that trained it, in multi-agent runs")
    observation: list[FeatureSpec] = Field(
        min_length=1, description="the observation schema, one entry per input column, in order"
    )
    actions: list[str] = Field(
        min_length=2, description="action names in logit order (route names; allow, challenge, block)"
    )
    action_values: list[float] | None = Field(
        default=None,
        description="the numeric setting each action stands for, where it has one (a price bundle's fee "
        "multiplier per action); review checks the chosen values against caps",
    )
    action_low: list[float] | None = Field(
        default=None,
        description="continuous (treasury, fraud) bundles: the lowest value of each action entry; with "
        "`action_high`, it makes the graph's output the action itself (the trained Gaussian's mean, one per "
        "entry of `actions`), clipped to [action_low, action_high], instead of logits; null: discrete",
    )
    action_high: list[float] | None = Field(
        default=None, description="continuous bundles: the highest value of each action entry"
    )
    reward: dict[str, Any] = Field(
        default_factory=dict,
        description="the reward definition it was trained on (environment, terms, scale)",
    )
    scenario: ConfigRecord | None = Field(None, description="the scenario trained on, with its hash")
    experiment: ConfigRecord | None = Field(None, description="the experiment config, with its hash")
    seeds: dict[str, Any] = Field(default_factory=dict, description="training and evaluation seeds")
    versions: dict[str, str] = Field(
        default_factory=dict, description="package versions at export (filled in by the exporter)"
    )
    git_commit: str | None = Field(None, description="the source commit at export, when in a git checkout")
    training: dict[str, Any] = Field(default_factory=dict, description="training summary (steps, time, ...)")
    evaluation: dict[str, Any] = Field(
        default_factory=dict, description="evaluation against the baselines, with intervals"
    )
    parity: dict[str, Any] = Field(
        default_factory=dict,
        description="the exporter's check that the ONNX graph reproduces the trained network: how many "
        "observations, where they came from, the largest absolute logit difference and the tolerance",
    )
    io: PolicyIO = Field(description="the network's interface; written by the exporter")

    @field_validator("observation")
    @classmethod
    def _unique_features(cls, v: list[FeatureSpec]) -> list[FeatureSpec]:
        _no_duplicates([f.name for f in v], "feature")
        return v

    @field_validator("actions")
    @classmethod
    def _unique_actions(cls, v: list[str]) -> list[str]:
        _no_duplicates(v, "action")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> PolicyCard:
        if self.io.obs_dim != len(self.observation):
            raise ValueError(
                f"io.obs_dim is {self.io.obs_dim} but observation lists {len(self.observation)} features"
            )
        if self.io.n_actions != len(self.actions):
            raise ValueError(
                f"io.n_actions is {self.io.n_actions} but actions lists {len(self.actions)} names"
            )
        if self.action_values is not None and len(self.action_values) != len(self.actions):
            raise ValueError(
                f"action_values lists {len(self.action_values)} values for {len(self.actions)} actions"
            )
        bounds = (self.action_low, self.action_high)
        if (bounds[0] is None) != (bounds[1] is None):
            raise ValueError("a continuous bundle declares both action_low and action_high, or neither")
        if bounds[0] is not None:
            if len(bounds[0]) != len(self.actions) or len(bounds[1]) != len(self.actions):
                raise ValueError(
                    f"action_low and action_high need one value per action ({len(self.actions)}), got "
                    f"{len(bounds[0])} and {len(bounds[1])}"
                )
            if any(lo > hi for lo, hi in zip(*bounds, strict=True)):
                raise ValueError("every action_low must be <= its action_high")
            if self.action_values is not None:
                raise ValueError("a continuous bundle (action_low/action_high) has no action_values")
        for field in ("scenario", "experiment"):
            rec = getattr(self, field)
            if rec is not None and rec.config is not None and config_sha256(rec.config) != rec.sha256:
                raise ValueError(f"{field}.sha256 does not match the sha256 of {field}.config")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.observation]

    @property
    def continuous(self) -> bool:
        """Whether the graph's output is the action itself (``action_low``/``action_high``), not logits."""
        return self.action_low is not None


def _no_duplicates(names: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    dup = sorted({n for n in names if n in seen or seen.add(n)})
    if dup:
        raise ValueError(f"duplicate {what} names {dup}")


def config_sha256(config: Mapping[str, Any]) -> str:
    """sha256 of a config's canonical JSON (sorted keys, no whitespace): the hash a card records."""
    # as pydantic writes it into card.json (dates as ISO strings), so the hash survives the round trip
    jsonable = to_jsonable_python(dict(config))
    text = json.dumps(jsonable, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_observation_schema(
    card: PolicyCard, expected: Sequence[FeatureSpec | Mapping[str, Any] | str], bundle_name: str = "bundle"
) -> None:
    """Raise unless the card's observation schema is ``expected`` (names in order; units and scaling too where
    ``expected`` gives feature specs)."""
    specs = [e if isinstance(e, str | FeatureSpec) else FeatureSpec.model_validate(e) for e in expected]
    have = card.observation
    problems = []
    if len(specs) != len(have):
        problems.append(f"{len(have)} features in the bundle, {len(specs)} expected")
    for i, (want, got) in enumerate(zip(specs, have, strict=False)):
        want_name = want if isinstance(want, str) else want.name
        if want_name != got.name:
            problems.append(f"feature {i} is {got.name!r}, expected {want_name!r}")
        elif isinstance(want, FeatureSpec):
            for attr in ("unit", "scaling", "low", "high"):
                if getattr(want, attr) != getattr(got, attr):
                    problems.append(
                        f"feature {got.name!r} {attr} is {getattr(got, attr)!r}, expected {getattr(want, attr)!r}"
                    )
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise PayrouteError(f"{bundle_name}: {CARD_FILE} observation schema does not match: {shown}")


__all__ = [
    "BINDABLE_KINDS",
    "BUNDLE_FILES",
    "BUNDLE_SCHEMA_VERSION",
    "CARD_FILE",
    "CHECKSUM_FILE",
    "GOLDEN_ATOL",
    "GOLDEN_FILE",
    "GOLDEN_ROWS",
    "GOLDEN_RTOL",
    "LOGITS_OUTPUT",
    "MASKED_LOGIT",
    "MASK_INPUT",
    "MAX_BUNDLE_BYTES",
    "MAX_BUNDLE_ENTRIES",
    "MAX_FILE_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_OTHER_FILE_BYTES",
    "OBS_INPUT",
    "ONNX_INPUTS",
    "ONNX_OPSET",
    "ONNX_OUTPUTS",
    "POLICY_FILE",
    "SIGNATURE_FILE",
    "SUPPORTED_OPSETS",
    "ConfigRecord",
    "FeatureSpec",
    "PolicyCard",
    "PolicyIO",
    "check_observation_schema",
    "config_sha256",
]
