"""Golden outputs: the numbers payroute computes, recorded once and compared on every run.

A restructuring must not change one number. Each case below runs a small world or environment episode and
reduces it to its KPIs, terminal counts and a sha256 of its observations and rewards; the recorded values live
in ``tests/golden/house.json``. A case that differs fails with the first key that moved.

To record new values after a change that is *meant* to change numbers, run
``PAYROUTE_WRITE_GOLDEN=1 python -m pytest tests/test_golden.py`` and say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from payroute.envs.baselines import bound_policies
from payroute.envs.multi_agent.ecosystem import PaymentEcosystemEnv
from payroute.envs.rtgs import RTGSLiquidityGame
from payroute.envs.scenarios import load_scenario
from payroute.envs.world import EventLog, PaymentWorld
from payroute.policies import load_bundle, zoo
from payroute.policies.bundle.binding import bound_bundle

GOLDEN = Path(__file__).parent / "golden" / "house.json"
SMALL = {"volume_scale": 0.05}


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        arr = np.ascontiguousarray(np.asarray(part))
        h.update(str(arr.dtype).encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:24]


def _money(values: list[float]) -> np.ndarray:
    """Rewards as fixed-point micro-dollars: exact for money, blind to the last bit of a float sum."""
    return np.round(np.asarray(values, dtype=np.float64) * 1e6).astype(np.int64)


def _world_record(world: PaymentWorld) -> dict[str, Any]:
    s = world.summary()
    balances = sorted((str(k), int(v)) for k, v in world.ledger.balances.items())
    return {
        "arrivals": s["arrivals"],
        "in_flight": s["in_flight"],
        "terminal": s["terminal"],
        "post_settlement": s["post_settlement"],
        "kpis": s["kpis"],
        "route_mix": s["route_mix"],
        "ledger": _digest(np.array([v for _, v in balances], dtype=np.int64), json.dumps(balances)),
    }


# ----------------------------------------------------------------------------- worlds with bound policies
WORLD_CASES: dict[str, tuple[str, int, dict[str, str]]] = {
    **{
        f"default/route={name}": ("default", 0, {"route": name})
        for name in ("cheapest", "fastest", "priority", "success_rate", "ucb", "thompson", "oracle")
    },
    **{f"default/risk={name}": ("default", 1, {"risk": name}) for name in ("allow_all", "threshold")},
    **{
        f"{sc}/route=success_rate": (sc, 2, {"route": "success_rate"})
        for sc in (
            "processor_outage",
            "fraud_surge",
            "liquidity_crunch",
            "fee_hike",
            "holiday_peak",
            "cross_border",
        )
    },
}


def _world_case(name: str) -> dict[str, Any]:
    scenario, seed, names = WORLD_CASES[name]
    world = PaymentWorld(
        load_scenario(scenario, SMALL), seed=seed, policies=bound_policies(**names), days=1.0
    )
    world.run()
    return _world_record(world)


def _logged_case() -> dict[str, Any]:
    log = EventLog(None)
    world = PaymentWorld(
        load_scenario("default", SMALL), seed=4, policies=bound_policies(route="ucb"), days=1.0, log=log
    )
    world.run()
    log.close()
    frame = log.table().to_pandas()
    cols = sorted(c for c in frame.columns if c != "observation")
    return {
        **_world_record(world),
        "log_rows": len(frame),
        "log_columns": cols,
        "log": _digest(frame[cols].to_csv(index=False).encode()),
    }


def _zoo_case(kind: str) -> dict[str, Any]:
    bundle = load_bundle(zoo(kind))
    key = {"router": "route", "risk": "risk"}[kind]
    policies = {**bound_policies(), key: bound_bundle(bundle)}
    world = PaymentWorld(load_scenario("default", SMALL), seed=5, policies=policies, days=1.0)
    world.run()
    return _world_record(world)


# ----------------------------------------------------------------------------- outside agents
def _masked_choice(rng: np.random.Generator, mask: np.ndarray) -> int:
    return int(rng.choice(np.flatnonzero(mask)))


def _single_agent_case(env_id: str, steps: int, **kwargs: Any) -> dict[str, Any]:
    env = gym.make(env_id, scenario="default", scenario_overrides=SMALL, **kwargs)
    env.action_space.seed(11)
    rng = np.random.default_rng(11)
    obs, info = env.reset(seed=6)
    observations, rewards, masks = [obs], [], []
    term = trunc = False
    while not (term or trunc) and len(rewards) < steps:
        if "action_mask" in info:
            masks.append(np.asarray(info["action_mask"]))
            action = _masked_choice(rng, info["action_mask"])
        else:
            action = env.action_space.sample()
        obs, reward, term, trunc, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
    flat = [
        np.concatenate([np.ravel(v) for v in o.values()]) if isinstance(o, dict) else o for o in observations
    ]
    out = {
        "steps": len(rewards),
        "terminated": bool(term),
        "observations": _digest(np.stack(flat)),
        "rewards": _digest(_money(rewards)),
        "reward_total_usd": round(float(np.sum(rewards)), 6),
        "masks": _digest(np.stack(masks)) if masks else None,
    }
    world = env.unwrapped.world
    out["kpis"] = world.kpis()
    out["terminal"] = dict(world.terminal)
    env.close()
    return out


def _ecosystem_case(learning: tuple[str, ...], steps: int) -> dict[str, Any]:
    env = PaymentEcosystemEnv(
        scenario="default", scenario_overrides=SMALL, learning=learning, seed=7, days=1.0
    )
    rng = np.random.default_rng(12)
    for space in env.action_spaces.values():
        space.seed(12)
    obs, infos = env.reset(seed=7)
    trail: list[np.ndarray] = []
    rewards: dict[str, list[float]] = {a: [] for a in env.possible_agents}
    done = False
    n = 0
    while not done and n < steps:
        (agent,) = obs
        o = obs[agent]
        trail.append(
            np.concatenate([np.ravel(v) for v in o.values()]) if isinstance(o, dict) else np.ravel(o)
        )
        info = infos.get(agent, {})
        if "action_mask" in info:
            action = _masked_choice(rng, info["action_mask"])
        else:
            action = env.action_spaces[agent].sample()
        obs, rew, terms, _, infos = env.step({agent: action})
        for a, r in rew.items():
            rewards[a].append(r)
        done = terms.get("__all__", False)
        n += 1
        if done:
            break
    out = {
        "steps": n,
        "done": bool(done),
        "observations": _digest(np.concatenate(trail).astype(np.float64)),
        "rewards": {a: _digest(_money(r)) for a, r in rewards.items()},
        "kpis": env.world.kpis(),
        "terminal": dict(env.world.terminal),
    }
    env.close()
    return out


def _rtgs_case() -> dict[str, Any]:
    env = RTGSLiquidityGame()
    rng = np.random.default_rng(13)
    obs, _ = env.reset(seed=8)
    trail, rewards = [], []
    while env.agents:
        actions = {a: int(rng.integers(env.action_space(a).n)) for a in env.agents}
        obs, rew, _, _, _ = env.step(actions)
        trail.extend(np.ravel(obs[a]) for a in sorted(obs))
        rewards.extend(rew[a] for a in sorted(rew))
    return {"observations": _digest(np.concatenate(trail)), "rewards": _digest(_money(rewards))}


def _training_case(credit: str, baseline: str) -> dict[str, Any]:
    from payroute.agents.training_env import TrainingEnv

    inner = gym.make(
        "payroute/Routing-v0",
        scenario="default",
        scenario_overrides=SMALL,
        invalid_action="penalize",
        credit="resolved",
        baseline="none",
        decline_cost=True,
    ).unwrapped
    env = TrainingEnv(inner, seed=3, credit=credit, baseline=baseline)
    rng = np.random.default_rng(14)
    obs, info = env.reset(seed=9)
    rewards, term, trunc = [], False, False
    while not (term or trunc):
        obs, r, term, trunc, info = env.step(_masked_choice(rng, info["action_mask"]))
        rewards.append(r)
    return {"steps": len(rewards), "rewards": _digest(_money(rewards))}


CASES = {
    **{f"world/{name}": (lambda name=name: _world_case(name)) for name in WORLD_CASES},
    "world/event_log": _logged_case,
    **{f"zoo/{kind}": (lambda kind=kind: _zoo_case(kind)) for kind in ("router", "risk")},
    # recorded with the realised reward and the decline charge, Routing-v0's defaults before its expected-margin
    # credit
    "env/Routing-v0": lambda: _single_agent_case(
        "payroute/Routing-v0",
        10_000,
        invalid_action="penalize",
        credit="resolved",
        baseline="none",
        decline_cost=True,
    ),
    "env/Routing-v0-dict": lambda: _single_agent_case(
        "payroute/Routing-v0",
        300,
        invalid_action="penalize",
        dict_observation=True,
        credit="resolved",
        baseline="none",
        decline_cost=True,
    ),
    "env/Risk-v0": lambda: _single_agent_case("payroute/Risk-v0", 10_000, credit="resolved"),
    "env/Pricing-v0": lambda: _single_agent_case("payroute/Pricing-v0", 10_000),
    "env/Treasury-v0": lambda: _single_agent_case("payroute/Treasury-v0", 10_000),
    "ecosystem/router+risk+fraudster": lambda: _ecosystem_case(("router", "risk", "fraudster"), 100_000),
    "ecosystem/all": lambda: _ecosystem_case(("router", "risk", "pricer", "treasury", "fraudster"), 100_000),
    "rtgs/random": _rtgs_case,
    "training/expected_outcome+route_mean": lambda: _training_case("expected_outcome", "route_mean"),
    "training/resolved": lambda: _training_case("resolved", "none"),
}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def _first_difference(expected: Any, got: Any, path: str = "") -> str | None:
    if isinstance(expected, dict) and isinstance(got, dict):
        for key in sorted(set(expected) | set(got)):
            if key not in expected or key not in got:
                return f"{path}/{key}: only in {'recorded' if key in expected else 'this run'}"
            diff = _first_difference(expected[key], got[key], f"{path}/{key}")
            if diff:
                return diff
        return None
    if isinstance(expected, float) or isinstance(got, float):
        if isinstance(expected, int | float) and isinstance(got, int | float):
            if math.isclose(expected, got, rel_tol=1e-12, abs_tol=1e-12) or (
                math.isnan(expected) and math.isnan(got)
            ):
                return None
    elif expected == got:
        return None
    return f"{path}: recorded {expected!r}, now {got!r}"


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    if os.environ.get("PAYROUTE_WRITE_GOLDEN"):
        return {}
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("case", sorted(CASES))
def test_numbers_are_the_recorded_ones(case, recorded):
    got = _jsonable(CASES[case]())
    if os.environ.get("PAYROUTE_WRITE_GOLDEN"):
        data = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        data[case] = got
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(dict(sorted(data.items())), indent=1, sort_keys=True) + "\n")
        return
    assert case in recorded, f"no recorded values for {case}; record them (see the module docstring)"
    diff = _first_difference(recorded[case], got, case)
    assert diff is None, diff


def test_every_recorded_case_still_runs(recorded):
    assert set(recorded) == set(CASES)
