"""Training throughput: env steps into the learner per CPU-second and per wall-second, old and new samplers.

Scenario: the quickstart (``experiments/quickstart.yaml``, what ``payroute run`` / ``make run`` trains): RLlib PPO on
Routing-v0 at a tenth of the default scenario's volume, expected-outcome credit with the route baseline (complete
simulated days), 2 remote env runners x 8 environments, the learner in the driver. Each variant trains
``--iterations`` iterations in a fresh process (its own Ray instance):

* ``rllib``: RLlib's ``SingleAgentEnvRunner`` (the shipped config, the old path);
* ``batched``: the batched sampler (``trainer.sampler.env_runner: batched``, :mod:`payroute.agents.rllib.batched`);
* ``batched_async``: the batched sampler sampling the next batch while the learner updates
  (``trainer.sampler.async_sampling: true``).

Per iteration it records the env steps handed to the learner, the wall time and the CPU time of the driver and
every process under it (Ray's raylet and workers, the env runners included), so a machine shared with other work
shows in the wall figures but not in the CPU ones; the load average is printed beside them. The first iteration
(module warm-up, and for ``batched_async`` the one batch sampled before any overlap) is reported but left out of
the steady-state rates. The algorithm's build time (Ray start, env runners, learner) is reported apart.

The ceiling beside them: the world deciding the same scenario's payments itself with bound policies (the
cheapest route and the threshold risk desk), payments per CPU-second of one process.

Run ``python -m payroute.benchmarks.train_throughput`` (default 2 iterations a variant, about 4 minutes on 2 idle
cores); ``--iterations 4`` for steadier figures, ``--variants rllib batched`` for a subset. The last line is a
JSON record.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
import warnings
from typing import Any

VARIANTS = {
    "rllib": {"trainer.sampler.env_runner": "rllib"},
    "batched": {"trainer.sampler.env_runner": "batched"},
    "batched_async": {"trainer.sampler.env_runner": "batched", "trainer.sampler.async_sampling": True},
}
TARGET_WALL = 5_000  # env steps a wall-second into the learner on 2 cores (issue 23)
TARGET_SHARE = 0.35  # of the bound-policy world rate, per CPU-second


def _tree_cpu() -> float:
    """CPU seconds (user + system) of this process and every live process under it (Linux ``/proc``)."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])  # after the name: state, ppid, ..., utime (12th), stime (13th)
        ticks[int(entry)] = int(fields[11]) + int(fields[12])
    mine, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        pid = frontier.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in mine:
                mine.add(child)
                frontier.append(child)
    return sum(ticks.get(pid, 0) for pid in mine) / os.sysconf("SC_CLK_TCK")


def _child(variant: str, iterations: int, overrides: dict[str, Any]) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from payroute.agents.rllib.trainer import RLlibTrainer
    from payroute.experiments.schema import load_experiment

    exp = load_experiment("quickstart", {**overrides, **VARIANTS[variant]})
    cpu0, wall0 = _tree_cpu(), time.perf_counter()
    trainer = RLlibTrainer(exp)
    build = {"wall_s": time.perf_counter() - wall0, "cpu_s": _tree_cpu() - cpu0}
    rows = []
    try:
        steps = 0
        for _ in range(iterations):
            cpu, wall, own = _tree_cpu(), time.perf_counter(), time.process_time()
            report = trainer.train_iteration()
            wall, cpu, own = time.perf_counter() - wall, _tree_cpu() - cpu, time.process_time() - own
            rows.append(
                {
                    "iteration": report.iteration,
                    "env_steps": report.env_steps - steps,
                    "wall_s": round(wall, 3),
                    "cpu_s": round(cpu, 3),
                    # the driver: the learner update, receiving the episodes, RLlib's bookkeeping
                    "driver_cpu_s": round(own, 3),
                    "loadavg_1m": round(os.getloadavg()[0], 2),
                    "episode_return": report.scalars.get("agent/router/episode_return"),
                }
            )
            steps = report.env_steps
    finally:
        trainer.close()
    steady = rows[1:] or rows
    n = sum(r["env_steps"] for r in steady)
    wall = sum(r["wall_s"] for r in steady)
    cpu = sum(r["cpu_s"] for r in steady)
    return {
        "variant": variant,
        "overrides": {**overrides, **VARIANTS[variant]},
        "build_wall_s": round(build["wall_s"], 1),
        "build_cpu_s": round(build["cpu_s"], 1),
        "iterations": rows,
        "steady_env_steps": n,
        "steps_per_wall_s": round(n / wall) if wall else None,
        "steps_per_cpu_s": round(n / cpu) if cpu else None,
    }


def sampling_cost(volume_scale: float, envs: int) -> dict[str, Any]:
    """CPU microseconds a step, in this process: the training environment alone (random allowed routes), RLlib's
    runner and the batched sampler (``sample()`` only, no learner), on the same days, taken in turns."""
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import numpy as np

    from payroute.agents.rllib.trainer import RLlibTrainer
    from payroute.experiments.schema import load_experiment

    out: dict[str, Any] = {"volume_scale": volume_scale, "envs": envs}
    for runner in ("rllib", "batched"):
        exp = load_experiment(
            "quickstart",
            {
                "resources.num_env_runners": 0,
                "resources.num_envs_per_env_runner": envs,
                "scenario_overrides.volume_scale": volume_scale,
                "trainer.sampler.env_runner": runner,
            },
        )
        trainer = RLlibTrainer(exp)
        try:
            sampler = trainer.algo.env_runner
            sampler.sample()  # warm-up
            cpu = time.process_time()
            steps = sum(len(e) for e in sampler.sample())
            out[f"{runner}_us_per_step"] = round((time.process_time() - cpu) / steps * 1e6, 1)
            if runner == "batched":  # the environments alone: the same wrappers, random allowed routes
                rng = np.random.default_rng(0)
                bare = sampler._envs
                cpu, n = time.process_time(), 0
                for env in bare:
                    obs, _ = env.reset(seed=None)
                    done = False
                    while not done:
                        allowed = np.flatnonzero(obs["action_mask"])
                        obs, _, term, trunc, _ = env.step(int(allowed[rng.integers(len(allowed))]))
                        done, n = term or trunc, n + 1
                out["env_us_per_step"] = round((time.process_time() - cpu) / n * 1e6, 1)
        finally:
            trainer.close()
    return out


def world_rate(volume_scale: float, seed: int = 0, repeats: int = 3) -> dict[str, Any]:
    """The ceiling: payments a CPU-second with bound policies on the quickstart's scenario (best of ``repeats``)."""
    from payroute.envs.baselines import bound_policies
    from payroute.envs.scenarios import load_scenario
    from payroute.envs.world import PaymentWorld

    scenario = load_scenario("default", {"volume_scale": volume_scale})
    best = None
    for r in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        world = PaymentWorld(scenario, seed=seed + r, policies=bound_policies(route="cheapest"), days=1.0)
        world.run()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        rate = world.arrivals / cpu
        if best is None or rate > best["payments_per_cpu_s"]:
            best = {
                "payments": world.arrivals,
                "cpu_s": round(cpu, 3),
                "wall_s": round(wall, 3),
                "payments_per_cpu_s": round(rate),
            }
    return best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument(
        "--iterations", type=int, default=2, help="training iterations per variant (first = warm-up)"
    )
    ap.add_argument(
        "--env-runners", type=int, default=None, help="resources.num_env_runners (default: the config's)"
    )
    ap.add_argument("--envs", type=int, default=None, help="resources.num_envs_per_env_runner")
    ap.add_argument("--volume-scale", type=float, default=None, help="scenario_overrides.volume_scale")
    ap.add_argument("--batch-size", type=int, default=None, help="trainer.hyperparameters.batch_size")
    ap.add_argument(
        "--sampling-only",
        action="store_true",
        help="instead: CPU per step of the environment alone, RLlib's runner and the batched sampler, in this process",
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.sampling_only:
        cost = sampling_cost(args.volume_scale or 0.03, args.envs or 8)
        print(
            f"CPU a step (volume_scale {cost['volume_scale']:g}, {cost['envs']} environments, sample() only): "
            f"environment alone {cost['env_us_per_step']} us, batched sampler {cost['batched_us_per_step']} us, "
            f"RLlib's runner {cost['rllib_us_per_step']} us"
        )
        print(json.dumps({"benchmark": "train_throughput_sampling", **cost}))
        return
    if args.child:
        print(json.dumps(_child(args.child, args.iterations, json.loads(args.overrides))))
        return

    overrides: dict[str, Any] = {"resources.num_cpus": 2}
    for key, value in (
        ("resources.num_env_runners", args.env_runners),
        ("resources.num_envs_per_env_runner", args.envs),
        ("scenario_overrides.volume_scale", args.volume_scale),
        ("trainer.hyperparameters.batch_size", args.batch_size),
    ):
        if value is not None:
            overrides[key] = value
    from payroute.experiments.schema import load_experiment

    exp = load_experiment("quickstart", overrides)
    volume = float((exp.scenario_overrides or {}).get("volume_scale", 1.0))
    ceiling = world_rate(volume)
    print(
        f"ceiling: the world with bound policies, default at volume_scale {volume:g}: "
        f"{ceiling['payments_per_cpu_s']:,} payments per CPU-second ({ceiling['payments']:,} payments)"
    )
    results = []
    for variant in args.variants:
        cmd = [
            sys.executable, "-m", "payroute.benchmarks.train_throughput", "--child", variant,
            "--iterations", str(args.iterations), "--overrides", json.dumps(overrides),
        ]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if out.returncode != 0 or not lines:
            tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
            print(f"{variant}: failed: {' | '.join(tail)}")
            results.append({"variant": variant, "error": tail})
            continue
        r = json.loads(lines[-1])
        r["share_of_world_per_cpu_s"] = round(r["steps_per_cpu_s"] / ceiling["payments_per_cpu_s"], 3)
        results.append(r)
        its = ", ".join(
            f"{it['env_steps']:,} steps {it['wall_s']:.1f} s wall {it['cpu_s']:.1f} CPU s (load {it['loadavg_1m']})"
            for it in r["iterations"]
        )
        print(
            f"{variant:>14}: {r['steps_per_wall_s']:,} env steps/s wall, {r['steps_per_cpu_s']:,} per CPU-second "
            f"({r['share_of_world_per_cpu_s']:.2f} of the world's); build {r['build_wall_s']} s wall "
            f"{r['build_cpu_s']} CPU s; iterations: {its}"
        )
    record = {
        "benchmark": "train_throughput",
        "experiment": exp.name,
        "env": exp.env.id,
        "volume_scale": volume,
        "num_env_runners": exp.resources.num_env_runners,
        "num_envs_per_env_runner": exp.resources.num_envs_per_env_runner,
        "batch_size": exp.trainer.hyperparameters.batch_size,
        "iterations": args.iterations,
        "world_ceiling": ceiling,
        "variants": results,
        "target_steps_per_wall_s": TARGET_WALL,
        "target_share_of_world_per_cpu_s": TARGET_SHARE,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
