"""RLlib sampling on Routing-v0: environment steps sampled per second by ``EnvRunner.sample()``.

Scenario: the RLlib PPO config the ``router_ppo`` experiment trains with (``RLlibTrainer``: ``ExperimentEnv``
around Routing-v0 on the default scenario, the masked actor-critic module, decision credit, so complete
episodes), at ``--volume-scale`` (default 0.1: about 10^4 routing decisions per simulated day), changed to
``num_env_runners=0`` and one environment per runner: sampling happens in this process, on the local
EnvRunner, with the module's forward pass for exploration and RLlib's connectors, the callbacks that log KPIs
and decision credit included. Learner updates are excluded: the benchmark calls ``sample()`` only, never
``train()``. One episode is sampled first as a warm-up; the rate is over the next ``--episodes`` episodes.

Rates are per wall-second and per CPU-second of this process (the EnvRunner is in this process).
Run ``python benchmarks/rllib_sampling.py``; the last line is a JSON record.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
import warnings


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="router_ppo")
    ap.add_argument("--episodes", type=int, default=2, help="complete episodes to time, after one warm-up")
    ap.add_argument("--envs", type=int, default=1, help="num_envs_per_env_runner (a vector of environments)")
    ap.add_argument(
        "--volume-scale", type=float, default=0.1, help="the scenario's volume_scale (episode length)"
    )
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from payroute.agents.rllib.trainer import RLlibTrainer
    from payroute.experiments.schema import load_experiment

    exp = load_experiment(
        args.experiment,
        {
            "resources.num_env_runners": 0,
            "resources.num_envs_per_env_runner": args.envs,
            "resources.num_cpus": 2,
            "scenario_overrides.volume_scale": args.volume_scale,
        },
    )
    t0 = time.perf_counter()
    trainer = RLlibTrainer(exp)
    build_s = time.perf_counter() - t0
    try:
        runner = trainer.algo.env_runner  # the local EnvRunner: with num_env_runners=0 it samples

        def sample_episodes(n: int) -> int:
            steps = 0
            for _ in range(n):
                episodes = runner.sample(num_episodes=args.envs, random_actions=False)
                steps += sum(len(e) for e in episodes)
            return steps

        sample_episodes(1)  # warm-up: first forward passes, connector set-up
        cpu, wall = time.process_time(), time.perf_counter()
        steps = sample_episodes(args.episodes)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        trainer.close()
    overrides = exp.scenario_overrides or {}
    print(
        f"RLlib PPO sampling ({exp.name}, {exp.env.id}, num_env_runners=0, {args.envs} env(s)): {steps:,} env "
        f"steps in {args.episodes * args.envs} episodes, {wall:.2f} s wall ({steps / wall:,.0f}/s), {cpu:.2f} CPU s "
        f"({steps / cpu:,.0f}/s); algorithm built in {build_s:.1f} s"
    )
    record = {
        "benchmark": "rllib_sampling",
        "experiment": exp.name,
        "env": exp.env.id,
        "scenario": exp.scenario,
        "volume_scale": overrides.get("volume_scale", 1.0),
        "algorithm": exp.trainer.algorithm,
        "num_env_runners": 0,
        "num_envs_per_env_runner": args.envs,
        "episodes": args.episodes,
        "env_steps": steps,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "env_steps_per_s": round(steps / wall),
        "env_steps_per_cpu_s": round(steps / cpu),
        "build_s": round(build_s, 1),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
