"""The experiment schema: one YAML file says what to train, on what, how long, and how to judge it.

An experiment names the scenario (and overrides), the environment, which agents learn and which baseline
answers every other decision, the trainer (RLlib: PPO, APPO, DQN; Stable-Baselines3: PPO, MaskablePPO,
DQN, A2C) with its hyperparameters and network, the seed, when to stop, how often to checkpoint, how to
evaluate (scenarios, held-out seeds, baselines, the oracle), where to run (env runners, a Ray cluster's
address) and, optionally, a search space for ``payroute sweep``. It is a frozen pydantic model with
``extra="forbid"``: a misspelt key or a bad value fails at load with the field's path, the bad value and
what is allowed (:func:`load_experiment`).

Units are in the names (``wall_time_s``, ``reward_clip_usd``). Hyperparameters use one vocabulary across
libraries (``lr``, ``gamma``, ``gae_lambda``, ``batch_size``...); each algorithm accepts only the ones it
uses, and ``library_options`` passes anything else verbatim to the library.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from payroute.config_io import read_yaml_mapping
from payroute.config_model import ConfigModel, FiniteAny
from payroute.envs.scenarios.timings import DayTimings
from payroute.errors import ConfigError, PayrouteError, format_validation_error
from payroute.experiments.sampling import SamplerSection, check_sampler, drop_default_sampler
from payroute.experiments.sweep_space import SweepSection
from payroute.vocabulary import HELD_OUT_SEED_START, KPI_NAMES, ROLE_KIND

EXPERIMENT_DIR = Path(__file__).parent

ALGORITHMS = {"rllib": ("PPO", "APPO", "DQN"), "sb3": ("PPO", "MaskablePPO", "DQN", "A2C")}
HP_FAMILY = {"PPO": "PPO", "MaskablePPO": "PPO", "APPO": "APPO", "A2C": "A2C", "DQN": "DQN"}

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Days = Annotated[float, Field(gt=0.0, le=366.0)]
Steps = Annotated[int, Field(gt=0, le=10**9)]
"""Env steps, transitions, sizes of batches and buffers: at most 10^9."""
Coefficient = Annotated[float, Field(ge=0.0, le=100.0)]
LearningRate = Annotated[float, Field(gt=0.0, le=1.0)]
Clip = Annotated[float, Field(gt=0.0, le=10.0)]
Epochs = Annotated[int, Field(gt=0, le=1000)]
Workers = Annotated[int, Field(gt=0, le=4096)]
FreeForm = dict[str, FiniteAny]
"""Values passed on verbatim (env kwargs, library options, scenario overrides): every number finite."""


class _Strict(ConfigModel):
    """An experiment section: unknown fields refused, frozen, every number finite."""


# ---------------------------------------------------------------------------- environment and agents
class EnvSection(_Strict):
    """The environment: a ``payroute/`` Gymnasium id, or ``module:Class`` for a multi-agent environment."""

    id: str = "payroute/Routing-v0"
    days: Days = 1.0
    kwargs: FreeForm = Field(default_factory=dict)
    reward_clip_usd: Annotated[float, Field(gt=0.0, le=1e9)] | None = None
    kpi_every_steps: Annotated[int, Field(ge=0, le=10**9)] = 2000
    credit: Literal["resolved", "decision", "expected", "expected_outcome"] = Field(
        "resolved",
        description="resolved: the env's own reward (money as it resolves); decision: each step is paid the final "
        "margin of its own payment (Routing-v0 and Risk-v0; RLlib and SB3 train on complete episodes); expected: decision "
        "credit with each sent payment's fraud loss replaced by its expectation under the risk-score posterior "
        "(Routing-v0 and Risk-v0, where a challenged payment keeps its realised loss; lower variance, same mean); "
        "expected_outcome: expected credit where the route's approve-or-decline is also taken at its expectation "
        "(the true P(success) when the route answered; same mean, far less noise)",
    )
    baseline: Literal["none", "route_mean"] = Field(
        "none",
        description="none: each step is paid its credit; route_mean (Routing-v0 with credit expected or "
        "expected_outcome): each step's credit minus the mean expected margin of the payment's eligible routes, "
        "valued knowing the routes' hidden state as the oracle does (a baseline that does not depend on the "
        "action: the same policy gradient in expectation, without the part of each payment's margin that no "
        "route choice changes)",
    )

    @field_validator("id")
    @classmethod
    def _id_form(cls, v: str) -> str:
        if not (v.startswith("payroute/") or ":" in v):
            raise ValueError("must be a 'payroute/<Name>-v<N>' id or a 'module:Class' path")
        return v

    @field_validator("kwargs")
    @classmethod
    def _kwargs_owned_elsewhere(cls, v: dict[str, Any]) -> dict[str, Any]:
        owned = {
            "scenario": "the top-level 'scenario'",
            "scenario_overrides": "the top-level 'scenario_overrides'",
            "overrides": "the top-level 'scenario_overrides'",
            "days": "env.days",
            "seed": "the top-level 'seed'",
            "baselines": "agents.baselines",
            "dict_observation": "the trainer (set from trainer.algorithm)",
        }
        bad = [f"{k} (set by {owned[k]})" for k in v if k in owned]
        if bad:
            raise ValueError(f"these are set elsewhere in the experiment: {', '.join(bad)}")
        return v


class BaselinesSection(_Strict):
    """The baseline bound to each agent that does not learn (unset: the world's default for that kind)."""

    router: str | None = None
    risk: str | None = None
    pricer: str | None = None
    treasury: str | None = None
    fraudster: str | None = None

    @field_validator("router", "risk", "pricer", "treasury", "fraudster")
    @classmethod
    def _known(cls, v: str | None, info) -> str | None:
        from payroute.envs.baselines import policy_names

        allowed = policy_names(ROLE_KIND[info.field_name])
        if v is not None and v not in allowed:
            raise ValueError(f"unknown {info.field_name} baseline; allowed: {', '.join(allowed)}")
        return v

    def named(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class AgentsSection(_Strict):
    """Which agents learn; every other decision is answered by the named baseline (or the default one)."""

    learn: list[str] = Field(default_factory=lambda: ["router"], min_length=1)
    baselines: BaselinesSection = Field(default_factory=BaselinesSection)

    @field_validator("learn")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("each agent may be listed once")
        return v

    @model_validator(mode="after")
    def _disjoint(self) -> AgentsSection:
        both = sorted(set(self.learn) & set(self.baselines.named()))
        if both:
            raise ValueError(f"agents {both} are both learning and bound to a baseline; pick one")
        return self


# ---------------------------------------------------------------------------- trainer
class _Hyper(_Strict):
    # which hyperparameter set this is: filled in from trainer.algorithm, never written by hand or dumped
    family: str = Field("", alias="_family", exclude=True)
    lr: LearningRate = 3e-4
    gamma: Fraction = 0.99


class PolicyGradientHyper(_Hyper):
    gae_lambda: Fraction = 0.95
    entropy_coeff: Coefficient = 0.0
    vf_coeff: Annotated[float, Field(gt=0.0, le=100.0)] = 0.5
    grad_clip: Annotated[float, Field(gt=0.0, le=1e9)] | None = 0.5
    batch_size: Steps = Field(4000, description="env steps collected per update")


class PPOHyper(PolicyGradientHyper):
    """PPO (RLlib), PPO and MaskablePPO (Stable-Baselines3)."""

    clip: Clip = 0.2
    minibatch_size: Steps = 256
    epochs: Epochs = 4

    @model_validator(mode="after")
    def _minibatch(self) -> PPOHyper:
        if self.minibatch_size > self.batch_size:
            raise ValueError(
                f"minibatch_size ({self.minibatch_size}) must not exceed batch_size ({self.batch_size})"
            )
        return self


class APPOHyper(PolicyGradientHyper):
    """APPO (RLlib): asynchronous PPO with V-trace."""

    clip: Clip = 0.4
    minibatch_size: Steps | None = None
    epochs: Epochs = 1


class A2CHyper(PolicyGradientHyper):
    """A2C (Stable-Baselines3); ``batch_size`` is the rollout length per update."""

    batch_size: Steps = 64


class DQNHyper(_Hyper):
    """DQN (RLlib, Stable-Baselines3): Q-learning from a replay buffer, epsilon-greedy exploration."""

    lr: LearningRate = 1e-4
    batch_size: Steps = Field(64, description="replayed transitions per gradient step")
    buffer_size: Annotated[int, Field(gt=0, le=10**8)] = 50_000
    learning_starts: Annotated[int, Field(ge=0, le=10**9)] = 1_000
    target_update_steps: Steps = 1_000
    exploration_steps: Steps = 10_000
    exploration_final_eps: Fraction = 0.05
    steps_per_iteration: Steps = Field(2000, description="env steps between progress reports and checkpoints")


_HYPER_MODELS = {"PPO": PPOHyper, "APPO": APPOHyper, "A2C": A2CHyper, "DQN": DQNHyper}


def _hyper_tag(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return next(k for k, m in _HYPER_MODELS.items() if type(value) is m)
    if isinstance(value, dict):
        return value.get("_family")
    return None


Hyperparameters = Annotated[
    Annotated[PPOHyper, Tag("PPO")]
    | Annotated[APPOHyper, Tag("APPO")]
    | Annotated[A2CHyper, Tag("A2C")]
    | Annotated[DQNHyper, Tag("DQN")],
    Discriminator(_hyper_tag),
]


class NetworkSection(_Strict):
    """The policy (and value) network: a multilayer perceptron."""

    hidden: list[Annotated[int, Field(gt=0, le=4096)]] = Field(default_factory=lambda: [64, 64], max_length=8)
    activation: Literal["tanh", "relu", "silu", "elu"] = "tanh"


class TrainerSection(_Strict):
    library: Literal["rllib", "sb3"] = "rllib"
    algorithm: Literal["PPO", "APPO", "DQN", "MaskablePPO", "A2C"] = "PPO"
    hyperparameters: Hyperparameters = Field(default_factory=PPOHyper)
    network: NetworkSection = Field(default_factory=NetworkSection)
    library_options: FreeForm = Field(
        default_factory=dict,
        description="passed verbatim to the library (RLlib: .training() keywords; SB3: the model constructor)",
    )
    sampler: SamplerSection = Field(default_factory=SamplerSection)

    @model_validator(mode="before")
    @classmethod
    def _tag_hyperparameters(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        algorithm = data.get("algorithm", "PPO")
        hp = data.get("hyperparameters")
        if hp is None or isinstance(hp, dict):
            family = HP_FAMILY.get(algorithm, "PPO")  # a bad algorithm is reported on its own field
            data = {**data, "hyperparameters": {**(hp or {}), "_family": family}}
        return data

    @model_validator(mode="after")
    def _algorithm_for_library(self) -> TrainerSection:
        allowed = ALGORITHMS[self.library]
        if self.algorithm not in allowed:
            raise ValueError(
                f"algorithm {self.algorithm!r} is not available with {self.library}; allowed: {', '.join(allowed)}"
            )
        return self


# ---------------------------------------------------------------------------- run control
class TargetKPI(_Strict):
    kpi: Literal[KPI_NAMES] = "margin_per_tx_usd"  # type: ignore[valid-type]
    value: float
    mode: Literal["max", "min"] = "max"


class StoppingSection(_Strict):
    """Stop at the first limit reached; at least one of iterations, env_steps, wall_time_s."""

    iterations: Annotated[int, Field(gt=0, le=10**9)] | None = None
    env_steps: Annotated[int, Field(gt=0, le=10**15)] | None = None
    wall_time_s: Annotated[float, Field(gt=0.0, le=366 * 86_400.0)] | None = None
    target: TargetKPI | None = None

    @model_validator(mode="after")
    def _bounded(self) -> StoppingSection:
        if self.iterations is None and self.env_steps is None and self.wall_time_s is None:
            raise ValueError("set at least one of iterations, env_steps, wall_time_s")
        return self


class CheckpointSection(_Strict):
    every_iterations: Annotated[int, Field(gt=0, le=10**9)] = 5
    keep_last: Annotated[int, Field(gt=0, le=1000)] = 3


class SeedRange(_Strict):
    """Evaluation seeds ``start .. start + count - 1``; held out from training (start >= 1e9)."""

    start: Annotated[int, Field(ge=HELD_OUT_SEED_START)] = HELD_OUT_SEED_START
    count: Annotated[int, Field(ge=2, le=10_000)] = 10


class EvaluationSection(_Strict):
    scenarios: list[str] = Field(default_factory=lambda: ["default"], min_length=1)
    scenario_overrides: FreeForm = Field(default_factory=dict)
    seeds: SeedRange = Field(default_factory=SeedRange)
    days: Days = 1.0
    baselines: list[str] = Field(default_factory=lambda: ["cheapest", "fastest", "cost_aware"])
    oracle: bool = True
    workers: Workers = 2

    @field_validator("scenarios")
    @classmethod
    def _known_scenarios(cls, v: list[str]) -> list[str]:
        for name in v:
            _check_scenario_name(name)
        return v


class ResourcesSection(_Strict):
    num_env_runners: Annotated[int, Field(ge=0, le=4096)] = 0
    num_envs_per_env_runner: Annotated[int, Field(gt=0, le=4096)] = 4
    num_cpus: Workers | None = Field(None, description="CPUs for a local Ray instance (default: all)")
    ray_address: str | None = None


# ---------------------------------------------------------------------------- the experiment
def _check_scenario_name(name: str) -> None:
    from payroute.envs.scenarios import available_scenarios

    if name not in available_scenarios() and not name.endswith((".yaml", ".yml")):
        raise ValueError(
            f"unknown scenario {name!r}; allowed: {', '.join(available_scenarios())} or a .yaml path"
        )


class Experiment(_Strict):
    name: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
            max_length=80,
            description="the folder of its runs under `--runs`: letters, digits, `_`, `.`, `-`, not starting "
            "with `.` or `-` (no `..`, no slashes)",
        ),
    ]
    description: str = ""
    scenario: str = "default"
    scenario_overrides: FreeForm = Field(default_factory=dict)
    train_scenarios: dict[str, Annotated[float, Field(gt=0.0, le=1e6)]] = Field(
        default_factory=dict,
        description="each training day's scenario drawn from these by weight (scenario_overrides apply to "
        "each; single-agent environments; every one must give the same observation and actions as "
        "`scenario`); empty: every training day is `scenario`. Evaluation stays on evaluation.scenarios",
    )
    train_timings: DayTimings | None = Field(
        default=None,
        description="each training day's date and incident start drawn from the day's own seed stream (the "
        "review's stress.timings fields: weekdays, weeks, incident_hours, ...), so a learner never sees an "
        "incident on one weekday and hour only; single-agent environments. null: every day keeps its "
        "scenario's calendar",
    )
    env: EnvSection = Field(default_factory=EnvSection)
    agents: AgentsSection = Field(default_factory=AgentsSection)
    trainer: TrainerSection = Field(default_factory=TrainerSection)
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    stopping: StoppingSection
    checkpoint: CheckpointSection = Field(default_factory=CheckpointSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    sweep: SweepSection | None = None
    _sampler_fits = model_validator(mode="after")(check_sampler)  # docs/experiments.md, Samplers

    @field_validator("scenario")
    @classmethod
    def _scenario_exists(cls, v: str) -> str:
        _check_scenario_name(v)
        return v

    @field_validator("train_scenarios")
    @classmethod
    def _train_scenarios_exist(cls, v: dict[str, float]) -> dict[str, float]:
        for name in v:
            _check_scenario_name(name)
        return v

    @model_validator(mode="after")
    def _mix_single_agent(self) -> Experiment:
        for field in ("train_scenarios", "train_timings"):
            if getattr(self, field) and not self.env.id.startswith("payroute/"):
                raise ValueError(f"{field} needs a single-agent payroute/ environment, not {self.env.id!r}")
        return self

    @model_validator(mode="after")
    def _library_resources(self) -> Experiment:
        if self.env.credit != "resolved" and self.trainer.algorithm == "DQN":
            # the credit is known when a day has drained: on-policy learners update on complete days (RLlib's
            # PPO and APPO sample them; SB3's PPO, MaskablePPO and A2C, payroute.agents.sb3.days); DQN learns
            # from each step as it comes
            allowed = "PPO or APPO" if self.trainer.library == "rllib" else "PPO, MaskablePPO or A2C"
            raise ValueError(
                f"env.credit {self.env.credit!r} needs an algorithm that updates on complete days: with "
                f"trainer.library {self.trainer.library!r}, {allowed} (got DQN)"
            )
        own = self.env.kwargs.get("credit", "resolved")
        if self.env.credit != "resolved" and own != "resolved":
            raise ValueError(
                f"env.credit {self.env.credit!r} replaces the step rewards the environment pays by env.kwargs.credit "
                f"{own!r}: choose one (env.credit 'resolved' trains on the environment's own credit)"
            )
        if self.env.baseline != "none" and (
            self.env.credit not in ("expected", "expected_outcome") or self.env.id != "payroute/Routing-v0"
        ):
            raise ValueError(
                f"env.baseline {self.env.baseline!r} needs env.id 'payroute/Routing-v0' and env.credit "
                f"'expected' or 'expected_outcome' (got {self.env.id!r}, {self.env.credit!r})"
            )
        if self.trainer.library == "sb3" and self.resources.num_env_runners:
            raise ValueError(
                "resources.num_env_runners must be 0 with sb3 (Stable-Baselines3 trains in one process; "
                "use num_envs_per_env_runner for parallel environments)"
            )
        if self.trainer.library == "sb3" and self.resources.ray_address:
            raise ValueError("resources.ray_address needs trainer.library 'rllib'")
        return self

    # ------------------------------------------------------------------ derived
    def resolved(self) -> dict[str, Any]:
        """The full config with every default filled in (what a run folder records).

        An empty ``train_scenarios`` (every training day is ``scenario``), no ``train_timings`` and
        ``env.baseline: none`` are left out, so configs written before those fields existed keep their hash.
        """
        data = self.model_dump(mode="json")
        if not data["train_scenarios"]:
            del data["train_scenarios"]
        if data["train_timings"] is None:
            del data["train_timings"]
        if data["env"]["baseline"] == "none":
            del data["env"]["baseline"]
        drop_default_sampler(data)
        return data

    def config_hash(self) -> str:
        """sha256 of what determines the result: the resolved config, without where it ran (ray_address)."""
        data = self.resolved()
        data["resources"] = {k: v for k, v in data["resources"].items() if k != "ray_address"}
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def with_changes(self, changes: dict[str, Any]) -> Experiment:
        """A copy with dotted-path changes (``{"trainer.hyperparameters.lr": 1e-3}``), validated again."""
        data = self.resolved()
        data["trainer"].setdefault("sampler", {})  # left out of resolved() when it is the default
        for dotted, value in changes.items():
            node = data
            *parents, leaf = dotted.split(".")
            for p in parents:
                if not isinstance(node.get(p), dict):
                    raise ConfigError(f"{dotted}: no such config path ({p!r} is not a section)")
                node = node[p]
            node[leaf] = value
        return experiment_from_dict(data, source=f"{self.name} (changed: {', '.join(changes)})")


def experiment_from_dict(data: dict[str, Any], source: str = "experiment") -> Experiment:
    try:
        return Experiment.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format(source, err)) from None


def _allowed_fields(loc: tuple) -> list[str]:
    """The field names a model at ``loc`` (the path of an unknown-field error) accepts."""
    model: Any = Experiment
    for part in loc[:-1]:
        if isinstance(part, str) and part in _HYPER_MODELS and model is TrainerSection:
            model = _HYPER_MODELS[part]
            continue
        field = model.model_fields.get(part) if isinstance(model, type) else None
        if field is None:
            return []
        ann = field.annotation
        candidates = [
            a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            candidates = [ann]
        if part == "hyperparameters":
            model = TrainerSection
            continue
        if not candidates:
            return []
        model = candidates[0]
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [name for name, f in model.model_fields.items() if not f.exclude]


def _format(source: str, err: ValidationError) -> str:
    lines = format_validation_error(source, err).splitlines()
    unknown = [e for e in err.errors() if e["type"] == "extra_forbidden"]
    for e in unknown:
        allowed = _allowed_fields(tuple(e["loc"]))
        path = ".".join(str(p) for p in e["loc"])
        for i, line in enumerate(lines):
            if line.startswith(f"  {path} = ") and line.endswith("unknown field") and allowed:
                lines[i] = f"{line}; allowed: {', '.join(allowed)}"
    text = "\n".join(lines).replace(": Value error, ", ": ")
    # the hyperparameter union's tag is an implementation detail: "trainer.hyperparameters.PPO.clip" -> "...clip"
    for tag in _HYPER_MODELS:
        text = text.replace(f"hyperparameters.{tag}.", "hyperparameters.")
        text = text.replace(f"hyperparameters.{tag} = ", "hyperparameters = ")
    return text.replace("hyperparameters._family", "hyperparameters")


def available_experiments() -> list[str]:
    """Names of the shipped experiment files (``experiments/*.yaml``), quickstart first."""
    names = sorted(p.stem for p in EXPERIMENT_DIR.glob("*.yaml"))
    return sorted(names, key=lambda n: (n != "quickstart", n))


def experiment_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise PayrouteError(f"experiment file not found: {path}")
        return path
    shipped = EXPERIMENT_DIR / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    raise PayrouteError(
        f"unknown experiment {str(name_or_path)!r}; shipped: {', '.join(available_experiments())} "
        "(or pass a path to a .yaml file)"
    )


def load_experiment(name_or_path: str | Path, changes: dict[str, Any] | None = None) -> Experiment:
    """Read and validate an experiment YAML (a path, or the name of a shipped one)."""
    path = experiment_path(name_or_path)
    data = read_yaml_mapping(path)
    exp = experiment_from_dict(data, source=str(path))
    exp = exp.with_changes(changes) if changes else exp
    check_scenario_overrides(exp, str(path))
    return exp


def check_scenario_overrides(exp: Experiment, source: str) -> None:
    """Each scenario the experiment trains or evaluates on, with the overrides the experiment gives it, must be
    a valid scenario (bounds included): a :class:`ConfigError` naming ``source``, the overrides' field and the
    scenario's field path, before anything runs."""
    from payroute.envs.scenarios import load_scenario

    jobs = [("scenario_overrides", n, exp.scenario_overrides) for n in (exp.scenario, *exp.train_scenarios)]
    jobs += [
        ("evaluation.scenario_overrides", n, exp.evaluation.scenario_overrides)
        for n in exp.evaluation.scenarios
    ]
    for field, name, overrides in jobs:
        if overrides:
            try:
                load_scenario(name, dict(overrides))
            except ConfigError as err:
                raise ConfigError(f"{source}: {field} applied to {err}") from None
