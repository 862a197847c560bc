"""The training wrapper's step: CPU time per Routing-v0 step under ``TrainingEnv`` with the quickstart's credit.

Scenario: ``TrainingEnv`` (``payroute.agents.training_env``) around Routing-v0 on ``default`` at ``--volume-scale``
(default 0.1, the quickstart's training volume) with ``credit="expected_outcome"``, ``baseline="route_mean"`` and
``reward_clip_usd=1000`` (the quickstart's), a client choosing uniformly among the valid routes; one simulated day
per run, ``--runs`` runs (default 3), world seed 5. Reported: CPU microseconds per step of each run (the client's
choice included) and the sum of the day's decision credit, which must not change when the step gets faster.

Run ``python benchmarks/training_env_step.py``; the last line is a JSON record.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np

import payroute  # noqa: F401 - registers the environments
from payroute.agents.training_env import TrainingEnv


def one_day(volume_scale: float) -> tuple[float, float, int]:
    inner = gym.make(
        "payroute/Routing-v0",
        scenario_overrides={"volume_scale": volume_scale},
        credit="resolved",
        baseline="none",
    ).unwrapped
    env = TrainingEnv(inner, seed=3, credit="expected_outcome", baseline="route_mean", reward_clip_usd=1000)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=5)
    steps, done = 0, False
    start = time.process_time()
    while not done:
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        obs, _reward, done, _truncated, info = env.step(action)
        steps += 1
    cpu = time.process_time() - start
    return cpu / steps * 1e6, float(info["decision_rewards"].sum()), steps


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--volume-scale", type=float, default=0.1)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    runs = [one_day(args.volume_scale) for _ in range(args.runs)]
    for us, credit, steps in runs:
        print(f"{us:.1f} us/step over {steps:,} steps; decision credit {credit:.6f}")
    print(
        json.dumps(
            {
                "volume_scale": args.volume_scale,
                "steps": runs[0][2],
                "us_per_step": [round(r[0], 1) for r in runs],
                "decision_credit_sum": round(runs[0][1], 6),
            }
        )
    )


if __name__ == "__main__":
    main()
