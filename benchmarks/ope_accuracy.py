"""How right is off-policy evaluation here? DR's estimate of a route bundle's value against the truth.

The reviewer's question: "this bundle has never routed a real payment; what would it earn?" answered from decisions
another policy logged. Here the answer can be checked, because the simulator can also run the bundle itself.

1. **Logged decisions**: ``payroute simulate SCENARIO --policy success_rate --explore 0.1 --log`` on seeds
   ``seed .. seed+days-1`` (one day each; about 100,000 routed decisions a day on ``default``).
2. **OPE**: every estimator of :mod:`payroute.policies.review.ope` for the bundle on that log, with bootstrap intervals
   (what ``payroute review BUNDLE --logs`` reports).
3. **Truth**: the bundle routes the same seeds itself (common random numbers: the same payments arrive) and its
   on-policy value per decision is the mean reward of its own logged decisions (same reward definition: the
   margin of the routed payment in cents, later losses included).

The target policy is the bundle's stochastic policy (softmax of its masked logits), and the truth samples from
it too (``--greedy`` evaluates the argmax policy instead). Writes a JSON record with ``--json``.

    python benchmarks/ope_accuracy.py policies/zoo/router --days 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from payroute.files import atomic_write_text


def _log(scenario, route, seed, path, explore=None, overrides=None):
    """Simulate one day and log it with the routing observations; ``route`` is a baseline name or a bound policy."""
    from payroute.experiments.simulate import run_simulation

    run_simulation(scenario, route=route, seed=seed, log_path=path, overrides=overrides, explore=explore)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", help="a route bundle (directory or .zip)")
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--behaviour", default="success_rate")
    ap.add_argument("--epsilon", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=3_000_000_000)
    ap.add_argument("--days", type=int, default=1, help="seeds (one simulated day each)")
    ap.add_argument("--volume-scale", type=float, default=None)
    ap.add_argument(
        "--overrides",
        type=json.loads,
        default=None,
        help="scenario overrides as JSON (a what-if for diagnosis)",
    )
    ap.add_argument("--greedy", action="store_true", help="evaluate the argmax policy, not the softmax")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument(
        "--no-fraud-model",
        action="store_true",
        help="ridge reward model alone (not fraud-aware), to see what the fraud model contributes",
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from payroute.envs.scenarios import load_scenario
    from payroute.policies import load_bundle
    from payroute.policies.bundle.binding import bound_bundle
    from payroute.policies.logs import FraudLabels, read_logged_decisions, route_loss_classes
    from payroute.policies.review.ope import evaluate_policy

    overrides = dict(args.overrides or {})
    if args.volume_scale is not None:
        overrides["volume_scale"] = args.volume_scale
    overrides = overrides or None
    policy = load_bundle(args.bundle)
    start = time.perf_counter()
    behaviour, truth = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.days):
            seed = args.seed + k
            b, t = Path(tmp) / f"b{k}.parquet", Path(tmp) / f"t{k}.parquet"
            _log(args.scenario, args.behaviour, seed, b, explore=args.epsilon, overrides=overrides)
            _log(args.scenario, bound_bundle(policy, sample=not args.greedy), seed, t, overrides=overrides)
            behaviour.append(read_logged_decisions(b, observation_names=policy.feature_names))
            truth.append(read_logged_decisions(t, observation_names=policy.feature_names))
    cat = lambda attr, logs: np.concatenate([getattr(x, attr) for x in logs])  # noqa: E731
    obs, masks = cat("observations", behaviour), cat("masks", behaviour)
    rewards, actions, props = (
        cat("rewards", behaviour),
        cat("actions", behaviour),
        cat("propensities", behaviour),
    )
    features = (
        cat("model_features", behaviour) if len({x.features.shape[1] for x in behaviour}) == 1 else None
    )
    fraud = None
    if not args.no_fraud_model and all(x.is_fraud is not None and x.sent is not None for x in behaviour):
        classes = route_loss_classes(load_scenario(args.scenario, overrides).routes.values())
        labels = [x.fraud_labels(classes) for x in behaviour]
        columns = (cat(name, labels) for name in ("is_fraud", "sent", "amounts", "losses"))
        fraud = FraudLabels(*columns, labels[0].action_groups)
    if args.greedy:
        logits = np.concatenate(
            [policy.logits(obs[i : i + 8192], masks[i : i + 8192]) for i in range(0, len(obs), 8192)]
        )
        target = np.zeros_like(logits, dtype=np.float64)
        target[np.arange(len(logits)), np.argmax(logits, axis=1)] = 1.0
    else:
        target = np.concatenate(
            [policy.action_probs(obs[i : i + 8192], masks[i : i + 8192]) for i in range(0, len(obs), 8192)]
        ).astype(np.float64)
    result = evaluate_policy(
        rewards,
        actions,
        props,
        target,
        features=features,
        masks=masks,
        n_bootstrap=args.bootstrap,
        seed=0,
        fraud=fraud,
    )
    true_value = float(cat("rewards", truth).mean())
    rows = {}
    for name in ("ips", "snips", "dm", "dr", "sndr", "switch_dr"):
        est = result[name]
        rows[name] = {
            "value": est.value,
            "ci": [est.ci_low, est.ci_high],
            "rel_error": (est.value - true_value) / abs(true_value),
            "covers": est.covers(true_value),
        }
    record = {
        "bundle": str(args.bundle),
        "scenario": args.scenario,
        "overrides": overrides,
        "behaviour": f"{args.behaviour} epsilon-greedy {args.epsilon}",
        "seeds": [args.seed, args.seed + args.days - 1],
        "logged_decisions": int(len(rewards)),
        "target": "argmax" if args.greedy else "softmax",
        "reward_model": result.reward_model,
        "logged_mean_cents": float(rewards.mean()),
        "true_value_cents": true_value,
        "true_decisions": int(sum(x.n for x in truth)),
        "effective_sample_size": result.diagnostics.effective_sample_size,
        "estimates_cents": rows,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    print(
        f"{record['logged_decisions']:,} logged decisions ({record['behaviour']}), truth {true_value:.2f} c/decision "
        f"on {record['true_decisions']:,} of the bundle's own; ESS {record['effective_sample_size']:,.0f}"
    )
    for name, r in rows.items():
        print(
            f"  {name:9s} {r['value']:8.2f} [{r['ci'][0]:8.2f}, {r['ci'][1]:8.2f}]  "
            f"error {r['rel_error']:+.1%}  covers truth: {'yes' if r['covers'] else 'NO'}"
        )
    if args.json:
        atomic_write_text(args.json, json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main(sys.argv[1:])
