"""The training wrapper's step: CPU time per Routing-v0 step under ``TrainingEnv`` with the quickstart's credit.

Scenario: ``TrainingEnv`` (``payroute.agents.training_env``) around Routing-v0 on ``default`` at ``--volume-scale``
(default 0.1, the quickstart's training volume) with ``credit="expected_outcome"``, ``baseline="route_mean"`` and
``reward_clip_usd=1000`` (the quickstart's), a client choosing uniformly among the valid routes (plain Python on
pre-drawn uniforms, so the client costs every variant the same little); one simulated day per run, world seed 5.

Variants, run alternately in one process (each run of ``--runs`` goes through every variant, in a rotated order,
so that a machine's load falls on all of them alike):

* ``numpy``: the step as it was before issue 23 (``np.clip`` on the step's reward, ``np.asarray(action).item()``,
  ``np.mean`` of the route values, every route asked again for the route baseline);
* ``start``: the step before the feature pass's by-products were shared (plain Python on single numbers, every
  route asked again for its cost and done time, the score's likelihood ratio computed again);
* ``lean``: the step today (the route baseline from the feature pass's eligible routes, costs and done times, the
  expected fraud loss once per kind of route, the likelihood ratio once per payment);
* ``env``: Routing-v0 without the wrapper, on the same day with the same choices: the floor (world, features,
  info).

Reported: CPU microseconds per step of each variant (median over runs; the client's choice included), the
wrapper's own share (a variant minus ``env``), and whether every variant gave the same step rewards and the same
decision credit to the bit (``identical``), which the step may never change.

Run ``python benchmarks/training_env_step.py``; the last line is a JSON record.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

import payroute  # noqa: F401 - registers the environments
from payroute.agents.training_env import TrainingEnv
from payroute.envs.world import fraud as fraud_module
from payroute.envs.world.fraud import expected_fraud_loss_cents
from payroute.vocabulary import HELD_OUT_SEED_START as HELD_OUT

CONFIG = {"credit": "expected_outcome", "baseline": "route_mean", "reward_clip_usd": 1000.0}


def _route_values_before(world, tx, eligible, p_fraud, recovery, decline_charge=None) -> list[float]:
    """``route_values`` as it was before it took the feature pass's costs and done times (every route asked)."""
    now = world.now
    penalty = world.scenario.service_level.penalty_cents.get(tx.family, 0)
    card = tx.family == "card"
    out = []
    for r in eligible:
        cost = r.cost_cents(tx)
        if not card and r.next_open_time(now) > tx.deadline_t:
            out.append(float(-penalty))
            continue
        p = r.success_probability(tx)
        value = p * (tx.price_cents - cost - expected_fraud_loss_cents(world, tx, r, p_fraud, recovery))
        if not card:
            if r.expected_done_time(now) > tx.deadline_t:
                value -= p * penalty
        elif r.latency_s(tx.z_latency) > tx.deadline_t - now:
            value -= penalty
        if decline_charge is not None:
            value -= (1.0 - p) * decline_charge(tx, r)
        out.append(float(value))
    return out


class _StartStep(TrainingEnv):
    """The step at the start of this change: its own look at every route, its own likelihood ratio."""

    def _note_decision(self, action: Any) -> None:
        env = self.env.unwrapped
        tx = env.world.live[self._pending]
        a = action if type(action) is int else int(np.asarray(action).item())  # noqa: E721 - not bool
        valid = 0 <= a < env.action_space.n and (env.decision_kind != "route" or (tx.eligible_mask >> a) & 1)
        self._decided.append(tx)
        self._penalty.append(0 if valid else env.invalid_penalty_cents)
        if self._expected_fraud:
            fraud_module._LAST_LR[0] = (math.nan, math.nan, 0.0)  # as before: no likelihood ratio to share
            self._p_fraud.append(self._posterior(env.world, tx))
        if self.baseline == "route_mean":
            eligible = [r for r in env.world.routes if (tx.eligible_mask >> r.index) & 1]
            values = _route_values_before(
                env.world, tx, eligible, *self._p_fraud[-1], env.decline_charge_cents
            )
            n = len(values)
            self._reference.append(sum(values) / n if n < 8 else float(np.mean(values)))


class _NumpyStep(_StartStep):
    """The step before issue 23: numpy called on single numbers (the clip, the action, the mean)."""

    def step(self, action):
        if self._episode is not None:
            self._episode["actions"].append(action.copy() if isinstance(action, np.ndarray) else action)
        if self._per_decision:
            self._note_decision(action)
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._steps += 1
        if self.reward_clip is not None:
            reward = float(np.clip(reward, -self.reward_clip, self.reward_clip))
        if self.kpi_every and self._steps % self.kpi_every == 0 and not terminated:
            world = getattr(self.env.unwrapped, "world", None)
            if world is not None:
                info = {**info, "kpis_running": world.kpis()}
        if self._per_decision:
            if terminated or truncated:
                info = {**info, "decision_rewards": self._decision_rewards()}
            else:
                self._pending = info["transaction"]["id"]
        return obs, reward, terminated, truncated, info

    def _note_decision(self, action: Any) -> None:
        env = self.env.unwrapped
        tx = env.world.live[self._pending]
        a = int(np.asarray(action).item())
        valid = 0 <= a < env.action_space.n and (env.decision_kind != "route" or (tx.eligible_mask >> a) & 1)
        self._decided.append(tx)
        self._penalty.append(0 if valid else env.invalid_penalty_cents)
        if self._expected_fraud:
            fraud_module._LAST_LR[0] = (math.nan, math.nan, 0.0)
            self._p_fraud.append(self._posterior(env.world, tx))
        if self.baseline == "route_mean":
            eligible = [r for r in env.world.routes if (tx.eligible_mask >> r.index) & 1]
            values = _route_values_before(
                env.world, tx, eligible, *self._p_fraud[-1], env.decline_charge_cents
            )
            self._reference.append(float(np.mean(values)))


VARIANTS: dict[str, type[TrainingEnv] | None] = {
    "numpy": _NumpyStep,
    "start": _StartStep,
    "lean": TrainingEnv,
    "env": None,
}


def _digest(values: Any) -> str:
    return hashlib.sha256(np.asarray(values, dtype=np.float64).tobytes()).hexdigest()[:16]


def one_day(variant: str, volume_scale: float, uniforms: np.ndarray) -> tuple[float, int, str, str]:
    """``(CPU us per step, steps, digest of the step rewards, digest of the decision credit)`` of one day."""
    inner = gym.make(
        "payroute/Routing-v0",
        scenario_overrides={"volume_scale": volume_scale},
        credit="resolved",
        baseline="none",
    ).unwrapped
    cls = VARIANTS[variant]
    env = inner if cls is None else cls(inner, seed=3, **CONFIG)
    step: Callable = env.step
    # the wrapper draws its day's world seed from its seed; the bare environment runs that world directly
    obs, info = env.reset(seed=5 if cls is not None else int(np.random.default_rng(5).integers(0, HELD_OUT)))
    rewards: list[float] = []
    done = False
    n = 0
    start = time.process_time()
    while not done:
        valid = [i for i, ok in enumerate(info["action_mask"].tolist()) if ok]
        obs, reward, done, _truncated, info = step(valid[int(uniforms[n % len(uniforms)] * len(valid))])
        rewards.append(reward)
        n += 1
    cpu = time.process_time() - start
    credit = info.get("decision_rewards")
    return cpu / n * 1e6, n, _digest(rewards), _digest(credit) if credit is not None else ""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--volume-scale", type=float, default=0.1)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    uniforms = np.random.default_rng(0).random(1 << 16)
    names = list(VARIANTS)
    times: dict[str, list[float]] = {v: [] for v in names}
    signals: dict[str, set[tuple[str, str]]] = {v: set() for v in names}
    steps = 0
    for run in range(args.runs):
        for v in names[run % len(names) :] + names[: run % len(names)]:  # rotated: load falls on each alike
            us, steps, rewards, credit = one_day(v, args.volume_scale, uniforms)
            times[v].append(us)
            signals[v].add((rewards, credit))
            print(
                f"run {run} {v:>6}: {us:6.1f} us/step over {steps:,} steps; rewards {rewards} credit {credit}"
            )
    wrapped = [v for v in names if VARIANTS[v] is not None]
    identical = len({s for v in wrapped for s in signals[v]}) == 1  # one (rewards, credit) pair across all
    median = {v: round(statistics.median(times[v]), 1) for v in names}
    own = {v: round(median[v] - median["env"], 1) for v in wrapped}
    print(f"median us/step {median}; the wrapper's own {own}; identical rewards and credit: {identical}")
    print(
        json.dumps(
            {
                "benchmark": "training_env_step",
                "volume_scale": args.volume_scale,
                "steps": steps,
                "runs": args.runs,
                "us_per_step": {v: [round(t, 1) for t in times[v]] for v in names},
                "median_us_per_step": median,
                "wrapper_own_us": own,
                "identical": identical,
            }
        )
    )


if __name__ == "__main__":
    main()
