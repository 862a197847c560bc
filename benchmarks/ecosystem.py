"""Benchmark: the multi-agent payment ecosystem with every agent acting at random (target: 10,000 agent-steps
per second on one core).

Scenario: ``PaymentEcosystemEnv`` on the default scenario at ``--volume-scale`` (0.1: about 10,000 payments a
day), all five agents learning (router, risk, pricer, treasury, fraudster), each answered by a seeded random
policy: the router picks uniformly among the eligible routes (the action mask), the risk desk among allow /
challenge / block, the period agents uniformly inside their ``Box``. An agent-step is one decision answered
through ``step()`` (observation built, action turned into the world's, the world run to the next decision,
reward paid). The process is pinned to one CPU where the OS allows it. For scale, the same run times the bare
world with every decision bound in-process (no environment).

Run: ``python benchmarks/ecosystem.py [--volume-scale 0.1] [--episodes 3] [--seed 0]``. Prints the timings
and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from payroute.envs.baselines import bound_policies
from payroute.envs.multi_agent.ecosystem import ROLES, PaymentEcosystemEnv
from payroute.envs.world import PaymentWorld


def random_episode(env: PaymentEcosystemEnv, seed: int, rng: np.random.Generator) -> dict[str, int]:
    """One episode with every agent random; returns the decisions per agent."""
    low = {a: s.low for a, s in env.action_spaces.items() if hasattr(s, "low")}
    high = {a: s.high for a, s in env.action_spaces.items() if hasattr(s, "high")}
    counts = dict.fromkeys(env.possible_agents, 0)
    obs, infos = env.reset(seed=seed)
    while True:
        (agent,) = obs
        if agent == "router":
            eligible = np.flatnonzero(infos[agent]["action_mask"])
            action = eligible[rng.integers(len(eligible))]
        elif agent == "risk":
            action = rng.integers(3)
        else:
            action = rng.uniform(low[agent], high[agent])
        counts[agent] += 1
        obs, _, terminated, _, infos = env.step({agent: action})
        if terminated["__all__"]:
            return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--volume-scale", type=float, default=0.1)
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    overrides = {"volume_scale": args.volume_scale}
    env = PaymentEcosystemEnv(scenario_overrides=overrides, learning=list(ROLES))
    rng = np.random.default_rng(args.seed)
    random_episode(env, args.seed + 10_000, rng)  # warm-up
    steps = dict.fromkeys(ROLES, 0)
    t0 = time.perf_counter()
    for e in range(args.episodes):
        for agent, n in random_episode(env, args.seed + e, rng).items():
            steps[agent] += n
    seconds = time.perf_counter() - t0
    total = sum(steps.values())
    rate = total / seconds

    t0 = time.perf_counter()
    payments = 0
    for e in range(args.episodes):
        world = PaymentWorld(env.scenario, seed=args.seed + e, policies=bound_policies(), days=1)
        world.run()
        payments += world.arrivals
    bare = payments / (time.perf_counter() - t0)

    print(
        f"Ecosystem, 5 random agents, {args.episodes} days at volume {args.volume_scale}: "
        f"{total:,} agent-steps in {seconds:.2f} s = {rate:,.0f} agent-steps/s (target 10,000)"
    )
    print("  decisions: " + ", ".join(f"{a} {n:,}" for a, n in steps.items()))
    print(
        f"  bare world, every decision bound in-process: {bare:,.0f} payments/s "
        f"(agent-steps/s per bare payment/s: {rate / bare:.2f})"
    )
    record = {
        "benchmark": "ecosystem",
        "volume_scale": args.volume_scale,
        "episodes": args.episodes,
        "agent_steps": total,
        "seconds": round(seconds, 3),
        "agent_steps_per_s": round(rate),
        "target_agent_steps_per_s": 10_000,
        "passed": rate >= 10_000,
        "bare_world_payments_per_s": round(bare),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
