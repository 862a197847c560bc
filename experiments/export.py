"""``payroute export RUN_DIR``: a trained run's policies as bundles a reviewer can check without Ray.

A run folder (:mod:`payroute.experiments.rundir`) keeps each learning agent's network as a plain
:class:`~payroute.agents.networks.PolicyNet` (``policy/<role>/`` when the run finished, ``checkpoints/iter_N/
policy/<role>/`` in every checkpoint), whichever library trained it (RLlib or Stable-Baselines3). Export turns
each one into a bundle (:func:`payroute.experiments.onnx_export.export_torch_policy`: ``policy.onnx`` with the mask applied,
``card.json``, golden vectors, ``checksums.sha256``, and with ``--sign-key`` a ``signature.json`` over the
checksums), one bundle per learning agent, named by role.

The card records what a reviewer needs to trust the bundle without the run folder: the observation schema of
the scenario the policy was trained on (names, units, scaling, bounds), the action names (and the numeric
setting of each where it has one), the reward definition, the scenario and the experiment config with their
sha256, the seeds, the package versions and git commit of the training run, a training summary (iterations,
env steps, stop reason, final KPIs) and, when ``payroute evaluate`` has run, the evaluation against the
baselines with paired intervals.

Before anything is written the ONNX graph is compared with the torch network on ``parity_observations``
(10,000 by default) observations the policy meets when it acts in the training scenario, with their masks:
the largest absolute difference of the masked logits must be at most 1e-5 (``card.parity`` records it).

Only discrete-action policies become bundles (route, risk, price levels): a Gaussian policy (``Box`` actions)
is refused with a message saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from payroute.agents.networks import PolicyNet, load_policy
from payroute.agents.training_env import env_kwargs, make_env
from payroute.config_io import read_json
from payroute.envs.world.decisions import RISK_ACTIONS
from payroute.errors import PayrouteError
from payroute.experiments.rundir import (
    EVAL_DIR,
    METRICS_FILE,
    policy_folder,
    read_metrics,
    read_run,
)
from payroute.experiments.schema import ROLE_KIND, Experiment
from payroute.files import check_output_file, check_output_folder

PARITY_ATOL = 1e-5
PARITY_OBSERVATIONS = 10_000
PARITY_SEED = 2_000_000_000  # a held-out world, beyond the evaluation seeds

REWARDS = {
    "route": "dollars of margin of each routed payment: fee revenue - route cost - fraud loss (chargebacks, "
    "unrecovered returns, APP reimbursements) - SLA penalty - intraday credit cost",
    "risk": "dollars of margin of each payment the risk desk decided (fraud losses included), minus "
    "challenge friction",
    "price": "dollars of profit of each pricing period: fee revenue - route costs - fraud losses - penalties",
}


def export_run(
    run_dir: str | Path,
    out: str | Path,
    checkpoint: int | None = None,
    parity_observations: int = PARITY_OBSERVATIONS,
    sign_key: str | Path | None = None,
) -> tuple[dict[str, Path], dict[str, str]]:
    """Export every learning agent of ``run_dir`` that can be a bundle.

    Returns ``({role: bundle path}, {role: why it was not exported})``. One learning agent: the bundle is
    written at ``out`` (a directory, or a zip if ``out`` ends in ``.zip``). Several: ``out`` is a directory
    holding one bundle per role (``out/risk/``, or ``out/risk.zip`` when ``out`` ends in ``.zip``, the suffix
    dropped from the directory). An agent with continuous actions (a fraudster, a Gaussian pricer) cannot be a
    bundle: it is listed with the reason; if no agent can be exported, that is an error. ``sign_key`` (an
    Ed25519 private key file, ``payroute keygen``) signs every bundle (``signature.json``).
    """
    from payroute.experiments.onnx_export import export_torch_policy
    from payroute.policies.bundle.signing import load_private_key

    run_dir = Path(run_dir)
    out = Path(out)
    key = load_private_key(sign_key) if sign_key is not None else None  # a bad key fails before any work
    if out.suffix == ".zip":
        check_output_file(out, "--out")
    else:
        check_output_folder(out, "--out")
    exp, record = read_run(run_dir)
    folder, label = policy_folder(run_dir, checkpoint)
    nets = {p.name: load_policy(p) for p in sorted(folder.iterdir()) if (p / "policy.json").is_file()}
    if not nets:
        raise PayrouteError(f"no policy networks in {folder}")
    cards: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for role, net in nets.items():
        why = not_exportable(role, net)
        if why:
            skipped[role] = why
        else:
            cards[role] = bundle_card(exp, record, run_dir, role, net, label)
    if not cards:
        raise PayrouteError(f"nothing in {run_dir} can be exported: " + "; ".join(skipped.values()))
    zipped = out.suffix == ".zip"
    if len(nets) == 1:
        targets = {next(iter(cards)): out}
    else:
        base = out.with_suffix("") if zipped else out
        targets = {role: base / (f"{role}.zip" if zipped else role) for role in cards}
    for target in targets.values():
        if target.exists():
            raise PayrouteError(f"{target} already exists; choose a new path for the bundle")
    written: dict[str, Path] = {}
    for role, card in cards.items():
        net = nets[role]
        module, width = net, net.spec.n_actions
        if card.get("action_low") is not None:  # a Gaussian policy: the bundle holds its mean
            module, width = _mean_head(net, len(card["actions"])), len(card["actions"])
        obs, masks = parity_contexts(exp, net, card["decision_kind"], parity_observations)
        source = "observations the policy met acting in its training scenario"
        if card["decision_kind"] in CONTINUOUS_KINDS and ":" in exp.env.id:
            source = "observations drawn uniformly within the declared bounds of the role's features"
        written[role] = export_torch_policy(
            module, net.spec.obs_dim, width, card, targets[role], parity=(obs, masks[:, :width]),
            parity_source=source, sign_key=key,
        )  # fmt: skip
    return written, skipped


CONTINUOUS_KINDS = ("treasury", "fraud")
"""Kinds whose Gaussian policies become continuous bundles: the graph outputs the mean (the greedy action)."""


def not_exportable(role: str, net: PolicyNet) -> str | None:
    """Why ``role``'s network cannot be a bundle, or ``None``."""
    spec = net.spec
    kind = spec.decision_kind or ROLE_KIND.get(role, "")
    if kind in CONTINUOUS_KINDS:
        if spec.n_actions % 2 or (spec.action_names and spec.n_actions != 2 * len(spec.action_names)):
            return (
                f"{role}: its network outputs {spec.n_actions} numbers, not a mean and a log-std for each of "
                f"{len(spec.action_names) or 'its'} action entries"
            )
        return None
    if kind == "risk" and not spec.action_names and spec.n_actions == len(RISK_ACTIONS):
        return None  # a multi-agent run's risk desk: the names are the role's
    if not spec.action_names or spec.n_actions != len(spec.action_names):
        return (
            f"{role}: its network outputs {spec.n_actions} numbers for {len(spec.action_names)} named actions, "
            "a policy over continuous (Box) actions (a mean and a log-std per dimension); bundles hold "
            "discrete-action policies (route, risk, price levels) and the means of treasury and fraud policies"
        )
    return None


def _mean_head(net: PolicyNet, size: int) -> Any:
    """The network's first ``size`` outputs: a diagonal Gaussian's means, the greedy action."""
    import torch

    class MeanHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return self.net(obs)[:, :size]

    return MeanHead()


def _period_role(exp: Experiment, kind: str) -> Any:
    """The treasury or fraudster role of the run's scenario, with the environment's settings."""
    from payroute.policies.bundle.binding import PERIOD_ROLES

    return PERIOD_ROLES[kind](_scenario(exp), dict(exp.env.kwargs))


# ---------------------------------------------------------------------- the card
def bundle_card(
    exp: Experiment, record: dict[str, Any], run_dir: Path, role: str, net: PolicyNet, label: str
) -> dict[str, Any]:
    """The model card of ``role``'s network (everything but what the exporter writes itself)."""
    spec = net.spec
    kind = spec.decision_kind or ROLE_KIND.get(role, "")
    scenario = _scenario(exp)
    continuous = kind in CONTINUOUS_KINDS
    env = None if kind in ("route", "risk") or continuous else _single_env(exp, kind)  # schema, action values
    actions = list(spec.action_names) or (list(RISK_ACTIONS) if kind == "risk" else [])
    if continuous:
        period = _period_role(exp, kind)
        if spec.n_actions != 2 * len(period.action_names) or (
            actions and actions != list(period.action_names)
        ):
            raise PayrouteError(
                f"{role}: the network outputs {spec.n_actions} numbers, the {kind} role of scenario "
                f"{exp.scenario!r} acts with {list(period.action_names)} (a mean and a log-std each)"
            )
        actions = list(period.action_names)
    card: dict[str, Any] = {
        "decision_kind": kind,
        "agent_id": role,
        "observation": observation_schema(exp, kind, spec, env),
        "actions": actions,
        "reward": {
            "definition": REWARDS.get(kind, f"the {exp.env.id} reward of the {role} agent"),
            "unit": "USD",
            "credit": exp.env.credit,
            "clip_usd": exp.env.reward_clip_usd,
            "env": exp.env.id,
            "env_kwargs": dict(exp.env.kwargs),
        },
        "scenario": {"name": exp.scenario, "config": scenario.model_dump(mode="json")},
        "experiment": {"name": exp.name, "config": exp.resolved()},
        "seeds": {
            "training": exp.seed,
            "training_worlds": "below 1,000,000,000 (held out from evaluation)",
            "evaluation": {"start": exp.evaluation.seeds.start, "count": exp.evaluation.seeds.count},
        },
        "versions": {k: str(v) for k, v in (record.get("packages") or {}).items() if v},
        "git_commit": (record.get("git") or {}).get("commit"),
        "training": training_summary(exp, record, run_dir, role, spec, label),
        "evaluation": evaluation_summary(run_dir, role),
    }
    values = getattr(env, "action_values", None)
    if values is not None:
        card["action_values"] = [float(v) for v in values]
    if continuous:
        card["action_low"] = [float(v) for v in period.action_space.low]
        card["action_high"] = [float(v) for v in period.action_space.high]
    return card


def _scenario(exp: Experiment) -> Any:
    from payroute.envs.scenarios import load_scenario

    return load_scenario(exp.scenario, dict(exp.scenario_overrides) or None)


def observation_schema(exp: Experiment, kind: str, spec: Any, env: Any = None) -> list[dict[str, Any]]:
    """The feature specs of the observation the network was trained on, checked against its recorded names."""
    if kind in ("route", "risk"):
        from payroute.policies.bundle.binding import feature_specs

        specs = [f.model_dump() for f in feature_specs(kind, _scenario(exp))]
    elif kind in CONTINUOUS_KINDS:
        specs = [_spec(f) for f in _period_role(exp, kind).features]
    else:
        env = env if env is not None else _single_env(exp, kind)
        names = list(getattr(env, "observation_names", None) or getattr(env, "feature_names", None) or [])
        space = env.observation_space
        specs = [
            {
                "name": n,
                "low": float(lo) if np.isfinite(lo) else None,
                "high": float(hi) if np.isfinite(hi) else None,
            }
            for n, lo, hi in zip(names, space.low, space.high, strict=False)
        ]
    names = [s["name"] for s in specs]
    if len(specs) != spec.obs_dim or (spec.feature_names and tuple(names) != tuple(spec.feature_names)):
        raise PayrouteError(
            f"the network takes {spec.obs_dim} features {list(spec.feature_names)[:3]}..., the {kind} observation "
            f"of scenario {exp.scenario!r} has {len(specs)} {names[:3]}...: the run and this payroute disagree"
        )
    return specs


def _spec(f: Any) -> dict[str, Any]:
    bound = lambda x: float(x) if np.isfinite(x) else None  # noqa: E731
    return {"name": f.name, "unit": f.unit, "scaling": f.scaling, "low": bound(f.low), "high": bound(f.high)}


def training_summary(
    exp: Experiment, record: dict[str, Any], run_dir: Path, role: str, spec: Any, label: str
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "run": run_dir.name,
        "policy": label,
        "trainer": spec.trainer or f"{exp.trainer.library}/{exp.trainer.algorithm}",
        "network": {"hidden": list(spec.hidden), "activation": spec.activation, "output": spec.output},
        "config_hash": record.get("config_hash"),
        "command": record.get("command"),
        "started_utc": record.get("started_utc"),
        "status": record.get("status"),
    }
    for key in ("iterations", "env_steps", "stop_reason", "train_wall_s", "final_scalars"):
        if key in record:
            out[key] = record[key]
    if (run_dir / METRICS_FILE).is_file():
        rows = read_metrics(run_dir)
        tag = "kpi/margin_per_tx_usd"
        curve = [(r["env_steps"], r[tag]) for r in rows if tag in r]
        out["iterations_logged"] = len(rows)
        if curve:
            # the learning curve in a few points: env steps and margin per transaction
            picks = sorted({round(i * (len(curve) - 1) / 9) for i in range(10)})
            out["curve_margin_per_tx_usd"] = [[int(curve[i][0]), float(curve[i][1])] for i in picks]
    return out


def evaluation_summary(run_dir: Path, role: str) -> dict[str, Any]:
    """What ``payroute evaluate`` found (``RUN_DIR/eval/summary.json``), or an empty record."""
    path = run_dir / EVAL_DIR / "summary.json"
    if not path.is_file():
        return {}
    meta = read_json(path)
    if meta.get("agent") not in (None, role):
        return {}
    keep = ("scenarios", "seeds", "days", "policies", "best_heuristic", "summary", "versus")
    return {k: meta[k] for k in keep if k in meta}


# ---------------------------------------------------------------------- parity contexts
def parity_contexts(exp: Experiment, net: PolicyNet, kind: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` observations (and masks) the policy meets acting in its training scenario, on held-out worlds."""
    if kind in ("route", "risk"):
        import itertools

        from payroute.agents.learned import NumpyForward
        from payroute.policies.review.constraints import record_contexts

        forward = NumpyForward(net)

        def greedy(obs: np.ndarray, mask: np.ndarray) -> int:
            return int(np.argmax(np.where(mask, forward(obs), -np.inf)))

        contexts = record_contexts(
            kind, greedy, _scenario(exp), itertools.count(PARITY_SEED), exp.env.days, limit=n
        )
        if contexts.n < n:
            raise PayrouteError(
                f"scenario {exp.scenario!r} gave only {contexts.n:,} {kind} decisions to check the export on"
            )
        return contexts.obs[:n], contexts.masks[:n]
    if kind in CONTINUOUS_KINDS and ":" in exp.env.id:
        return _random_contexts(exp, kind, net, n)
    return _env_contexts(exp, kind, net, n)


def _random_contexts(exp: Experiment, kind: str, net: PolicyNet, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A multi-agent role's observations uniform within its declared bounds (every fraudster feature has them)."""
    features = _period_role(exp, kind).features
    rng = np.random.default_rng(PARITY_SEED)
    low = np.array([f.low if np.isfinite(f.low) else -1.0 for f in features])
    high = np.array([f.high if np.isfinite(f.high) else 1.0 for f in features])
    obs = rng.uniform(low, high, (n, len(features))).astype(np.float32)
    return obs, np.ones((n, net.spec.n_actions), dtype=bool)


def _single_env(exp: Experiment, kind: str) -> Any:
    if ":" in exp.env.id:
        raise PayrouteError(
            f"exporting a {kind!r} agent of the multi-agent {exp.env.id} is not supported: only route and risk "
            "agents act in the world outside their training environment"
        )
    kwargs = env_kwargs(
        exp.env.id,
        exp.scenario,
        dict(exp.scenario_overrides),
        exp.env.days,
        exp.agents.baselines.named(),
        dict(exp.env.kwargs),
    )
    return make_env(exp.env.id, kwargs)


def _env_contexts(exp: Experiment, kind: str, net: PolicyNet, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Observations of whole episodes of the training environment with the policy acting (per-period
    decisions are few), topped up to ``n`` with convex mixtures of pairs of them (in the observed range)."""
    from payroute.agents.learned import greedy_action

    env = _single_env(exp, kind)
    seen: list[np.ndarray] = []
    seed = PARITY_SEED
    while len(seen) < min(n, 512):
        obs, info = env.reset(seed=seed)
        done = False
        while not done:
            seen.append(np.asarray(obs, dtype=np.float32))
            action = greedy_action(net, obs, info.get("action_mask"), env.action_space)
            obs, _r, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        seed += 1
    rng = np.random.default_rng(PARITY_SEED)
    base = np.stack(seen)
    extra = max(n - len(base), 0)
    i, j = rng.integers(0, len(base), extra), rng.integers(0, len(base), extra)
    w = rng.random((extra, 1)).astype(np.float32)
    obs = np.concatenate([base, w * base[i] + (1 - w) * base[j]])[:n]
    return obs.astype(np.float32), np.ones((len(obs), net.spec.n_actions), dtype=bool)
