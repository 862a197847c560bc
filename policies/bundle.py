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
=====================  ==========================================================================================

:func:`export_torch_policy` writes a bundle from a torch module (torch is imported inside it only, so this
module loads without torch). :func:`load_bundle` reads one on onnxruntime alone. Before anything runs it checks,
in order: that no zip entry escapes the bundle folder and every file is a plain file; that every file is listed
in ``checksums.sha256`` and matches its hash; the card's bundle schema version and fields; the network's opset,
inputs and outputs against the card; that the golden vectors reproduce; and, when the caller gives one, the
observation schema against the expected one. Any failure raises :class:`~payroute.errors.PayrouteError`
naming the file and the problem.

A loaded :class:`BundlePolicy` answers batched ``act`` and ``action_probs`` calls, and binds into the payment
world as the in-process policy for its decision kind via :meth:`BundlePolicy.bound` with an
:class:`ObservationBuilder` that turns ``(world, payload)`` into the observation the policy was trained on.

Invalid inputs are refused, never guessed at: an observation with the wrong number of features, a NaN or an
infinity, or an action mask row with no allowed action raises :class:`~payroute.errors.PayrouteError`
naming the row and feature. A finite value outside its feature's declared ``[low, high]`` is passed to the
network unchanged (neither clipped nor refused: a payment larger than any seen in training is still a payment);
the network must still give finite logits and an allowed action, which ``payroute review`` checks
(:mod:`payroute.policies.constraints`).
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import shutil
import stat
import subprocess
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import to_jsonable_python

from payroute.envs.world.decisions import RISK_ACTIONS
from payroute.errors import PayrouteError, format_validation_error

BUNDLE_SCHEMA_VERSION = "1"
ONNX_OPSET = 17
MASKED_LOGIT = -1.0e9
"""Logit given to masked actions. Finite, so an all-masked row cannot produce NaN; far below any trained logit."""

POLICY_FILE = "policy.onnx"
CARD_FILE = "card.json"
GOLDEN_FILE = "golden.json"
CHECKSUM_FILE = "checksums.sha256"
BUNDLE_FILES = (POLICY_FILE, CARD_FILE, GOLDEN_FILE)
OBS_INPUT, MASK_INPUT, LOGITS_OUTPUT = "obs", "action_mask", "logits"
# the graph's interface: (name, dtype, width as a PolicyIO field); every tensor is (batch, width)
ONNX_INPUTS = ((OBS_INPUT, "float32", "obs_dim"), (MASK_INPUT, "bool", "n_actions"))
ONNX_OUTPUTS = ((LOGITS_OUTPUT, "float32", "n_actions"),)

GOLDEN_ROWS = 64
GOLDEN_ATOL = 1e-5
GOLDEN_RTOL = 1e-5
MAX_BUNDLE_BYTES = 1 << 30  # a zip that inflates past this is refused (zip bombs)

# Decision kinds whose action is one discrete choice, so a bundle's argmax is the world's action.
BINDABLE_KINDS = ("route", "risk")


# ====================================================================== the card
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
        for field in ("scenario", "experiment"):
            rec = getattr(self, field)
            if rec is not None and rec.config is not None and config_sha256(rec.config) != rec.sha256:
                raise ValueError(f"{field}.sha256 does not match the sha256 of {field}.config")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.observation]


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


# ====================================================================== exporting (needs torch)
def export_torch_policy(
    module: Any,
    obs_dim: int,
    n_actions: int,
    card: Mapping[str, Any],
    out: str | Path,
    *,
    golden_seed: int = 0,
    parity: tuple[np.ndarray, np.ndarray] | None = None,
    parity_source: str = "observations the policy met acting in its training scenario",
) -> Path:
    """Export a torch module (``obs -> logits``) as a bundle at ``out`` (a directory; a ``.zip`` if it ends so).

    ``card`` holds the model card fields of :class:`PolicyCard` except ``io`` and ``bundle_schema_version``, which
    the exporter writes; a ``scenario``/``experiment`` entry may give ``config`` without ``sha256`` (it is computed)
    and ``versions``/``git_commit`` are filled in when absent. The exported graph applies the mask itself, is
    checked with ``onnx.checker`` and compared with the torch module on the golden inputs before anything is
    written. ``parity`` (observations, masks) is a larger set the graph must also reproduce within
    ``GOLDEN_ATOL``; the result goes into the card's ``parity`` field. Returns the bundle path. Requires torch
    (the ``[train]`` install).
    """
    import torch  # the only torch import in payroute.policies: exporting runs where training ran

    out = Path(out)
    if out.exists():
        raise PayrouteError(f"{out} already exists; choose a new path for the bundle")
    policy_card = _complete_card(card, obs_dim, n_actions)

    class _MaskedPolicy(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner
            self.register_buffer("masked_logit", torch.tensor(MASKED_LOGIT, dtype=torch.float32))

        def forward(self, obs: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
            return torch.where(action_mask, self.inner(obs), self.masked_logit)

    was_training = bool(getattr(module, "training", False))
    try:
        onnx_bytes, obs, mask, logits, checked = _export_and_compare(
            torch, _MaskedPolicy(module).eval(), policy_card, golden_seed, parity
        )
    finally:
        module.train(was_training)
    if checked is not None:
        policy_card = policy_card.model_copy(update={"parity": {**checked, "source": parity_source}})
    golden = {
        "seed": golden_seed,
        "atol": GOLDEN_ATOL,
        "rtol": GOLDEN_RTOL,
        OBS_INPUT: obs.tolist(),
        MASK_INPUT: mask.astype(int).tolist(),
        LOGITS_OUTPUT: logits.tolist(),
        "actions": np.argmax(logits, axis=1).tolist(),
    }
    files = {
        POLICY_FILE: onnx_bytes,
        CARD_FILE: (
            json.dumps(policy_card.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
        ).encode(),
        GOLDEN_FILE: (json.dumps(golden, indent=1) + "\n").encode(),
    }
    files[CHECKSUM_FILE] = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
    ).encode()
    _write(files, out)
    return out


def _export_and_compare(
    torch: Any,
    wrapped: Any,
    card: PolicyCard,
    golden_seed: int,
    parity: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple:
    """Trace the masked policy to ONNX and check the graph reproduces torch on the golden inputs and, when given,
    on the ``parity`` observations and masks (the largest absolute difference at most ``GOLDEN_ATOL``)."""
    param = next(iter(wrapped.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    obs_dim, n_actions = card.io.obs_dim, card.io.n_actions
    example = (
        torch.zeros(2, obs_dim, device=device),
        torch.ones(2, n_actions, dtype=torch.bool, device=device),
    )
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export's, which needs onnxscript (not a
        # dependency); the TorchScript path gives a fixed opset and a plain graph for these small networks.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped, example, buf, dynamo=False, opset_version=ONNX_OPSET,
            input_names=[OBS_INPUT, MASK_INPUT], output_names=[LOGITS_OUTPUT],
            dynamic_axes={OBS_INPUT: {0: "batch"}, MASK_INPUT: {0: "batch"}, LOGITS_OUTPUT: {0: "batch"}},
        )  # fmt: skip
    onnx_bytes = buf.getvalue()
    _check_onnx(onnx_bytes, card)
    session = _session(onnx_bytes, threads=1)

    def both(o: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            want = wrapped(torch.from_numpy(o).to(device), torch.from_numpy(m).to(device)).cpu().numpy()
        return _run_session(session, o, m), want

    obs, mask = _golden_inputs(card, golden_seed)
    logits, expected = both(obs, mask)
    if not np.allclose(logits, expected, atol=GOLDEN_ATOL, rtol=GOLDEN_RTOL):
        worst = float(np.max(np.abs(logits - expected)))
        raise PayrouteError(
            f"the exported ONNX graph disagrees with the torch module by up to {worst:.3g} on the golden inputs "
            f"(tolerance {GOLDEN_ATOL}); the module may use an operation the exporter does not translate exactly"
        )
    if parity is None:
        return onnx_bytes, obs, mask, logits, None
    p_obs = np.ascontiguousarray(parity[0], dtype=np.float32)
    p_mask = np.ascontiguousarray(parity[1], dtype=bool)
    if p_obs.ndim != 2 or p_mask.ndim != 2 or len(p_mask) != len(p_obs):
        raise PayrouteError(
            f"parity inputs must be (n, obs_dim) observations and (n, n_actions) masks; got {p_obs.shape}, "
            f"{p_mask.shape}"
        )
    worst = 0.0
    for start in range(0, len(p_obs), 4096):
        got, want = both(p_obs[start : start + 4096], p_mask[start : start + 4096])
        worst = max(worst, float(np.max(np.abs(got - want))))
    if not worst <= GOLDEN_ATOL:
        raise PayrouteError(
            f"the exported ONNX graph disagrees with the torch network by up to {worst:.3g} on {len(p_obs):,} "
            f"parity observations (tolerance {GOLDEN_ATOL})"
        )
    checked = {"observations": len(p_obs), "max_abs_diff": worst, "atol": GOLDEN_ATOL}
    return onnx_bytes, obs, mask, logits, checked


def _complete_card(card: Mapping[str, Any], obs_dim: int, n_actions: int) -> PolicyCard:
    data = dict(card)
    for owned in ("io", "bundle_schema_version"):
        if owned in data:
            raise PayrouteError(f"card field {owned!r} is written by the exporter; leave it out")
    for field in ("scenario", "experiment"):
        rec = data.get(field)
        if isinstance(rec, Mapping) and rec.get("config") is not None and "sha256" not in rec:
            data[field] = {**rec, "sha256": config_sha256(rec["config"])}
    data["versions"] = {**_package_versions(), **dict(data.get("versions") or {})}
    if "git_commit" not in data:
        data["git_commit"] = _git_commit()
    data["io"] = {"opset": ONNX_OPSET, "obs_dim": int(obs_dim), "n_actions": int(n_actions)}
    try:
        return PolicyCard.model_validate(data)
    except ValidationError as err:
        raise PayrouteError(format_validation_error("card", err)) from None


def _package_versions() -> dict[str, str]:
    out = {}
    for pkg in ("payroute", "numpy", "onnx", "onnxruntime", "torch", "ray", "stable-baselines3", "gymnasium"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def _git_commit() -> str | None:
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    return res.stdout.strip() or None


def _golden_inputs(card: PolicyCard, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Observations inside each feature's declared range (standard normal where none is declared) and masks
    with at least one allowed action; the first row allows every action."""
    rng = np.random.default_rng(seed)
    n, d, a = GOLDEN_ROWS, card.io.obs_dim, card.io.n_actions
    obs = rng.standard_normal((n, d))
    for j, f in enumerate(card.observation):
        if f.low is not None and f.high is not None:
            obs[:, j] = rng.uniform(f.low, f.high, n)
    mask = rng.random((n, a)) < 0.7
    mask[0] = True
    empty = ~mask.any(axis=1)
    mask[empty, rng.integers(0, a, int(empty.sum()))] = True
    return obs.astype(np.float32), mask


def _write(files: dict[str, bytes], out: Path) -> None:
    """Write next to ``out`` and rename into place, so a failed export leaves no half-written bundle."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
    try:
        if out.suffix == ".zip":
            with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for name, data in files.items():
                    zf.writestr(name, data)
        else:
            partial.mkdir()
            for name, data in files.items():
                (partial / name).write_bytes(data)
        partial.rename(out)
    except BaseException:
        if partial.exists():
            shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
        raise


# ====================================================================== loading (onnxruntime only)
@runtime_checkable
class ObservationBuilder(Protocol):
    """Turns a decision's ``(world, payload)`` into the policy's observation vector (float, one row).

    A builder may carry ``feature_names`` (a list of str); :meth:`BundlePolicy.bound` then checks it against the
    card's observation schema when the policy is bound into a world.
    """

    def __call__(self, world: Any, payload: Any) -> np.ndarray: ...


class ActionMaskBuilder(Protocol):
    """Turns a decision's ``(world, payload)`` into the boolean mask of allowed actions (one row)."""

    def __call__(self, world: Any, payload: Any) -> np.ndarray: ...


def route_action_mask(world: Any, payload: Any) -> np.ndarray:
    """The eligible routes of a ``route`` decision (payload ``(transaction, eligible routes)``)."""
    _tx, eligible = payload
    mask = np.zeros(len(world.routes), dtype=bool)
    mask[[r.index for r in eligible]] = True
    return mask


def risk_action_mask(world: Any, payload: Any) -> np.ndarray:
    """Every risk action (allow, challenge, block) is always allowed."""
    return np.ones(len(RISK_ACTIONS), dtype=bool)


DEFAULT_MASKS: dict[str, ActionMaskBuilder] = {"route": route_action_mask, "risk": risk_action_mask}


class BundlePolicy:
    """A verified bundle, ready to act: batched ``logits``, ``action_probs`` and ``act`` on onnxruntime.

    Observations are ``(n, obs_dim)`` float arrays (or one ``(obs_dim,)`` row, answered unbatched); masks are
    ``(n, n_actions)`` booleans (or 0/1), ``None`` allowing every action. Masked actions get probability 0 and are
    never chosen.
    """

    def __init__(self, card: PolicyCard, onnx_bytes: bytes, source: Path, threads: int = 1) -> None:
        self.card = card
        self.source = source
        self.decision_kind = card.decision_kind
        self.obs_dim = card.io.obs_dim
        self.n_actions = card.io.n_actions
        self.action_names = list(card.actions)
        self.feature_names = card.feature_names
        self._session = _session(onnx_bytes, threads)

    def __repr__(self) -> str:
        return (
            f"BundlePolicy({self.source.name}: {self.decision_kind}, {self.obs_dim} features, "
            f"{self.n_actions} actions)"
        )

    # ---------------------------------------------------------------- acting
    def logits(self, obs: Any, mask: Any = None) -> np.ndarray:
        """Masked logits, float32 ``(n, n_actions)``; masked actions hold :data:`MASKED_LOGIT`."""
        obs2, mask2, single = self._inputs(obs, mask)
        out = _run_session(self._session, obs2, mask2)
        return out[0] if single else out

    def action_probs(self, obs: Any, mask: Any = None) -> np.ndarray:
        """The policy's action probabilities (softmax of the masked logits), float64 ``(n, n_actions)``."""
        obs2, mask2, single = self._inputs(obs, mask)
        probs = _softmax(_run_session(self._session, obs2, mask2), mask2)
        return probs[0] if single else probs

    def act(self, obs: Any, mask: Any = None, rng: np.random.Generator | None = None) -> np.ndarray:
        """Greedy actions (highest logit among allowed actions; ties go to the lowest index), or actions sampled
        from :meth:`action_probs` with ``rng`` when one is given. int64 ``(n,)``."""
        obs2, mask2, single = self._inputs(obs, mask)
        logits = _run_session(self._session, obs2, mask2)
        if rng is None:
            actions = np.argmax(np.where(mask2, logits, -np.inf), axis=1)
        else:
            actions = _sample(_softmax(logits, mask2), rng)
        return actions[0] if single else actions

    # ---------------------------------------------------------------- in the world
    def bound(
        self,
        observation_builder: ObservationBuilder,
        *,
        mask_builder: ActionMaskBuilder | None = None,
        sample: bool = False,
    ) -> BoundBundlePolicy:
        """This policy as the world's in-process policy for its decision kind (``route`` or ``risk``).

        ``observation_builder(world, payload)`` gives the observation row; ``mask_builder`` the allowed actions
        (default: the eligible routes for ``route``, every action for ``risk``). ``sample=True`` draws actions
        from the policy's probabilities with the world's policy generator (and reports that probability as the
        propensity); otherwise the greedy action is taken with propensity 1.
        """
        if self.decision_kind not in BINDABLE_KINDS:
            raise PayrouteError(
                f"a {self.decision_kind!r} bundle cannot be bound into the world directly: its action is not one "
                f"discrete choice; bindable kinds: {list(BINDABLE_KINDS)}"
            )
        if not callable(observation_builder):
            raise PayrouteError(
                "observation_builder must be callable as builder(world, payload) -> np.ndarray"
            )
        return BoundBundlePolicy(
            self, observation_builder, mask_builder or DEFAULT_MASKS[self.decision_kind], sample
        )

    # ---------------------------------------------------------------- input checks
    def _inputs(self, obs: Any, mask: Any) -> tuple[np.ndarray, np.ndarray, bool]:
        obs = np.asarray(obs, dtype=np.float32)
        single = obs.ndim == 1
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise PayrouteError(
                f"observation has shape {obs.shape}; this bundle expects (n, {self.obs_dim}) or "
                f"({self.obs_dim},): one value per feature ({', '.join(self.feature_names)})"
            )
        if single:
            obs = obs[None, :]
        finite = np.isfinite(obs)
        if not finite.all():
            row, col = np.argwhere(~finite)[0]
            raise PayrouteError(
                f"observation row {row} feature {self.feature_names[col]!r} is {obs[row, col]}; "
                "observations must be finite"
            )
        if mask is None:
            mask = np.ones((obs.shape[0], self.n_actions), dtype=bool)
        else:
            mask = np.asarray(mask)
            if single and mask.ndim == 1:
                mask = mask[None, :]
            if mask.shape != (obs.shape[0], self.n_actions):
                raise PayrouteError(
                    f"action mask has shape {mask.shape}; expected {(obs.shape[0], self.n_actions)} "
                    f"(one row per observation, one column per action: {', '.join(self.action_names)})"
                )
            if mask.dtype != np.bool_:
                if not np.isin(mask, (0, 1)).all():
                    raise PayrouteError("action mask must hold booleans or 0/1")
                mask = mask.astype(bool)
        empty = ~mask.any(axis=1)
        if empty.any():
            raise PayrouteError(f"action mask row {int(np.argmax(empty))} allows no action")
        return obs, mask, single


class BoundBundlePolicy:
    """A bundle answering one decision kind inside the payment world: ``decide(world, payload)``."""

    def __init__(
        self,
        policy: BundlePolicy,
        observation_builder: ObservationBuilder,
        mask_builder: ActionMaskBuilder,
        sample: bool,
    ) -> None:
        self.policy = policy
        self.kind = policy.decision_kind
        self.observation_builder = observation_builder
        self.mask_builder = mask_builder
        self.sample = sample
        self._rng: np.random.Generator | None = None

    def bind(self, world: Any) -> None:
        """Check the bundle against the world it joins: action names, and the builder's feature names.

        A builder (or mask builder) with a ``bind(world)`` method is bound first, so it can set up its
        per-world state (and its ``feature_names``) before the check."""
        for builder in (self.observation_builder, self.mask_builder):
            builder_bind = getattr(builder, "bind", None)
            if callable(builder_bind):
                builder_bind(world)
        expected = [r.name for r in world.routes] if self.kind == "route" else list(RISK_ACTIONS)
        if self.policy.action_names != expected:
            raise PayrouteError(
                f"bundle {self.policy.source.name} actions {self.policy.action_names} do not match this "
                f"world's {self.kind} actions {expected}"
            )
        names = getattr(self.observation_builder, "feature_names", None)
        if names is not None:
            check_observation_schema(self.policy.card, list(names), self.policy.source.name)
        self._rng = world.policy_rng(self.kind) if self.sample else None

    def decide(self, world: Any, payload: Any) -> tuple[int, float]:
        obs = self.observation_builder(world, payload)
        mask = self.mask_builder(world, payload)
        if self._rng is None:
            return int(self.policy.act(obs, mask)), 1.0
        probs = self.policy.action_probs(obs, mask)
        action = int(_sample(probs[None, :], self._rng)[0])
        return action, float(probs[action])


def load_bundle(
    path: str | Path,
    *,
    expected_observation: Sequence[FeatureSpec | Mapping[str, Any] | str] | None = None,
    threads: int = 1,
) -> BundlePolicy:
    """Verify and load a bundle (directory or ``.zip``). Never unpickles; needs onnxruntime only.

    ``expected_observation`` (feature names, or feature specs compared field by field) is checked against the
    card's observation schema. ``threads`` is onnxruntime's intra-op thread count. Raises
    :class:`~payroute.errors.PayrouteError` naming the file and the problem when the bundle is incomplete,
    tampered with, unsafe, of another schema version or inconsistent.
    """
    path = Path(path)
    name = path.name
    files = _read_bundle_files(path)
    _check_checksums(files, name)
    card = _parse_card(files[CARD_FILE], name)
    onnx_bytes = files[POLICY_FILE]
    _check_onnx(onnx_bytes, card, name)
    policy = BundlePolicy(card, onnx_bytes, path, threads)
    _check_golden(policy, files[GOLDEN_FILE], name)
    if expected_observation is not None:
        check_observation_schema(card, expected_observation, name)
    return policy


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


# ---------------------------------------------------------------------- reading files safely
def _read_bundle_files(path: Path) -> dict[str, bytes]:
    if not path.exists():
        raise PayrouteError(f"bundle not found: {path}")
    if path.is_dir():
        return _read_directory(path)
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    raise PayrouteError(f"{path} is neither a bundle directory nor a .zip of one")


def _read_directory(path: Path) -> dict[str, bytes]:
    files = {}
    for entry in sorted(path.iterdir()):
        mode = entry.lstat().st_mode
        if not stat.S_ISREG(mode):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a plain file"
            raise PayrouteError(
                f"bundle {path.name}: {entry.name} is {kind}; a bundle holds plain files only"
            )
        files[entry.name] = entry.read_bytes()
    return files


def _safe_member_name(raw: str) -> str | None:
    """The normalised name of a zip entry, or None when it could land outside the bundle folder."""
    if not raw or "\\" in raw or raw.startswith("/") or (len(raw) > 1 and raw[1] == ":") or "\x00" in raw:
        return None
    parts = raw.rstrip("/").split("/")
    if any(p in ("..", "") for p in parts):
        return None
    return posixpath.normpath(raw)


def _read_zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        names = []
        for info in infos:
            safe = _safe_member_name(info.filename)
            if safe is None:
                raise PayrouteError(
                    f"bundle {path.name}: zip entry {info.filename!r} escapes the bundle folder; refusing to load"
                )
            if stat.S_ISLNK(info.external_attr >> 16):
                raise PayrouteError(
                    f"bundle {path.name}: zip entry {info.filename!r} is a symbolic link; refusing"
                )
            names.append(safe)
        if sum(i.file_size for i in infos) > MAX_BUNDLE_BYTES:
            raise PayrouteError(
                f"bundle {path.name}: inflates to more than {MAX_BUNDLE_BYTES} bytes; refusing"
            )
        file_infos = [(info, n) for info, n in zip(infos, names, strict=True) if not info.is_dir()]
        # files at the archive root, or all under one folder (``zip -r bundle.zip bundle/``)
        tops = {n.split("/")[0] for _, n in file_infos}
        prefix = ""
        if len(tops) == 1 and all("/" in n for _, n in file_infos):
            prefix = next(iter(tops)) + "/"
        files: dict[str, bytes] = {}
        for info, n in file_infos:
            rel = n[len(prefix) :]
            if "/" in rel:
                raise PayrouteError(f"bundle {path.name}: unexpected nested entry {info.filename!r}")
            if rel in files:
                raise PayrouteError(f"bundle {path.name}: zip entry {info.filename!r} appears twice")
            files[rel] = zf.read(info)
        return files


def _check_checksums(files: dict[str, bytes], name: str) -> None:
    if CHECKSUM_FILE not in files:
        raise PayrouteError(f"bundle {name}: {CHECKSUM_FILE} is missing")
    listed: dict[str, str] = {}
    for lineno, line in enumerate(files[CHECKSUM_FILE].decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, fname = line.partition("  ")
        if not sep:
            digest, sep, fname = line.partition(" *")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or "/" in fname:
            raise PayrouteError(
                f"bundle {name}: {CHECKSUM_FILE} line {lineno} is not '<sha256>  <file name>'"
            )
        listed[fname] = digest
    for required in BUNDLE_FILES:
        if required not in files:
            raise PayrouteError(f"bundle {name}: {required} is missing")
        if required not in listed:
            raise PayrouteError(f"bundle {name}: {required} is not listed in {CHECKSUM_FILE}")
    for fname, digest in listed.items():
        if fname not in files:
            raise PayrouteError(f"bundle {name}: {fname} is listed in {CHECKSUM_FILE} but missing")
        if hashlib.sha256(files[fname]).hexdigest() != digest:
            raise PayrouteError(
                f"bundle {name}: {fname} does not match its checksum (changed after export); refusing to load"
            )
    for fname in files:
        if fname != CHECKSUM_FILE and fname not in listed:
            raise PayrouteError(f"bundle {name}: {fname} is not listed in {CHECKSUM_FILE}; refusing to load")


def _parse_card(raw: bytes, name: str) -> PolicyCard:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PayrouteError(f"bundle {name}: {CARD_FILE} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise PayrouteError(f"bundle {name}: {CARD_FILE} must hold a JSON object")
    version = data.get("bundle_schema_version")
    if version != BUNDLE_SCHEMA_VERSION:
        raise PayrouteError(
            f"bundle {name}: {CARD_FILE} bundle_schema_version is {version!r}; this payroute reads "
            f"{BUNDLE_SCHEMA_VERSION!r}"
        )
    try:
        return PolicyCard.model_validate(data)
    except ValidationError as err:
        raise PayrouteError(format_validation_error(f"bundle {name}: {CARD_FILE}", err)) from None


def _check_onnx(onnx_bytes: bytes, card: PolicyCard, name: str = "export") -> None:
    import onnx

    def fail(problem: str) -> PayrouteError:
        return PayrouteError(f"bundle {name}: {POLICY_FILE} {problem}")

    try:
        model = onnx.load_model_from_string(onnx_bytes)
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:  # onnx raises several unrelated types for a bad file
        raise fail(f"is not a valid ONNX model ({type(err).__name__}: {str(err)[:200]})") from None
    domains = {op.domain: op.version for op in model.opset_import}
    if set(domains) - {"", "ai.onnx"} or domains.get("", domains.get("ai.onnx")) != card.io.opset:
        raise fail(f"uses opsets {domains}; the card says ai.onnx opset {card.io.opset}")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise fail("refers to external data files; a bundle's network must be self-contained")
    dtypes = {"float32": onnx.TensorProto.FLOAT, "bool": onnx.TensorProto.BOOL}
    want_inputs = [(n, dtypes[d], getattr(card.io, width)) for n, d, width in ONNX_INPUTS]
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if [i.name for i in inputs] != [w[0] for w in want_inputs]:
        raise fail(f"has inputs {[i.name for i in inputs]}; expected {[w[0] for w in want_inputs]}")
    for vi, (iname, dtype, width) in zip(inputs, want_inputs, strict=True):
        _check_value_info(vi, dtype, width, iname, fail)
    outputs = list(model.graph.output)
    if len(outputs) != 1 or outputs[0].name != LOGITS_OUTPUT:
        raise fail(f"has outputs {[o.name for o in outputs]}; expected ['{LOGITS_OUTPUT}']")
    ((_, out_dtype, out_width),) = ONNX_OUTPUTS
    _check_value_info(outputs[0], dtypes[out_dtype], getattr(card.io, out_width), LOGITS_OUTPUT, fail)


def _check_value_info(vi: Any, dtype: int, width: int, what: str, fail: Any) -> None:
    tt = vi.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    if tt.elem_type != dtype or len(dims) != 2 or dims[1] != width or dims[0] is not None:
        raise fail(f"{what} is not a (batch, {width}) tensor of the expected type (found dims {dims})")


def _check_golden(policy: BundlePolicy, raw: bytes, name: str) -> None:
    try:
        golden = json.loads(raw)
        obs = np.asarray(golden[OBS_INPUT], dtype=np.float32)
        mask = np.asarray(golden[MASK_INPUT], dtype=bool)
        want = np.asarray(golden[LOGITS_OUTPUT], dtype=np.float32)
        actions = np.asarray(golden["actions"], dtype=np.int64)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
        raise PayrouteError(
            f"bundle {name}: {GOLDEN_FILE} is malformed ({type(err).__name__}: {err})"
        ) from None
    n = obs.shape[0] if obs.ndim == 2 else 0
    shape = (n, policy.n_actions)
    if (
        n == 0
        or obs.shape[1] != policy.obs_dim
        or mask.shape != shape
        or want.shape != shape
        or actions.shape != (n,)
    ):
        raise PayrouteError(
            f"bundle {name}: {GOLDEN_FILE} vectors do not fit the card's observation and actions"
        )
    got = _run_session(policy._session, obs, mask)
    if not np.allclose(got, want, atol=GOLDEN_ATOL, rtol=GOLDEN_RTOL):
        worst = float(np.max(np.abs(got - want)))
        raise PayrouteError(
            f"bundle {name}: {GOLDEN_FILE} vectors do not reproduce (logits differ by up to {worst:.3g}; "
            f"tolerance {GOLDEN_ATOL})"
        )
    if not np.array_equal(np.argmax(np.where(mask, got, -np.inf), axis=1), actions):
        raise PayrouteError(f"bundle {name}: {GOLDEN_FILE} golden actions do not reproduce")


# ---------------------------------------------------------------------- numerics
def _session(onnx_bytes: bytes, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


def _run_session(session: Any, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return session.run([LOGITS_OUTPUT], {OBS_INPUT: obs, MASK_INPUT: mask})[0]


def _softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    z = np.where(mask, logits.astype(np.float64), -np.inf)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sample(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row by inverse CDF; masked actions have probability 0 and so are never drawn."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random((probs.shape[0], 1)) * cdf[:, -1:]
    actions = (cdf <= u).sum(axis=1)
    # guard against rounding at the top of the CDF landing on a trailing masked action
    last_allowed = probs.shape[1] - 1 - np.argmax(probs[:, ::-1] > 0, axis=1)
    return np.minimum(actions, last_allowed).astype(np.int64)


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
    "check_observation_schema",
    "config_sha256",
    "export_torch_policy",
    "load_bundle",
    "risk_action_mask",
    "route_action_mask",
]
