"""Benchmark: off-policy evaluation of one target policy on a large log (target: 1,000,000 decisions with 200
bootstrap draws in under a minute).

Scenario: a synthetic routing log with 8 routes and 12 context features, logged by a softmax behaviour policy
with known propensities; the target is a different softmax policy. Every estimator (IPS, SNIPS, DM, DR, SNDR,
switch-DR) is computed, the reward model (ridge per action, 2-fold cross-fitted) is fitted inside the timed
region, and each estimator gets a bootstrap interval.

Run: ``python benchmarks/ope.py [--n 1000000] [--bootstrap 200] [--seed 0]``. Prints the timings and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from payroute.policies.review.ope import evaluate_policy


def synthetic_log(n: int, n_actions: int, n_features: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n_features))
    theta = rng.normal(0.0, 1.0, (n_actions, n_features))
    mean_reward = x @ theta.T / np.sqrt(n_features)

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    behaviour = softmax(0.5 * mean_reward)
    target = softmax(2.0 * mean_reward)
    u = rng.random((n, 1))
    actions = np.minimum((behaviour.cumsum(axis=1) < u).sum(axis=1), n_actions - 1)
    rewards = mean_reward[np.arange(n), actions] + rng.standard_normal(n)
    return {
        "rewards": rewards,
        "actions": actions,
        "propensities": behaviour[np.arange(n), actions],
        "target_probs": target,
        "features": x,
        "true_value": float(np.mean(np.sum(target * mean_reward, axis=1))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--actions", type=int, default=8)
    ap.add_argument("--features", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    log = synthetic_log(args.n, args.actions, args.features, args.seed)
    true_value = log.pop("true_value")
    t0 = time.perf_counter()
    result = evaluate_policy(**log, n_bootstrap=args.bootstrap, seed=args.seed)
    seconds = time.perf_counter() - t0

    print(f"OPE: {args.n:,} decisions, {args.bootstrap} bootstrap draws, 6 estimators: {seconds:.2f} s")
    for name, est in result.estimates.items():
        print(f"  {name:10s} {est.value:+.4f}  [{est.ci_low:+.4f}, {est.ci_high:+.4f}]")
    print(f"  true value {true_value:+.4f}; ESS share {result.diagnostics.effective_sample_share:.3f}")
    record = {
        "benchmark": "ope",
        "n": args.n,
        "n_bootstrap": args.bootstrap,
        "seconds": round(seconds, 3),
        "target_seconds": 60.0,
        "passed": seconds < 60.0,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
