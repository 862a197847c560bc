"""Every ``info`` key an environment returns is declared (name, type, shape, when), and vector envs stack the
numbers into numeric arrays.

Each environment's keys are declared next to the code that builds them (``INFO_KEYS``,
:mod:`payroute.envs.info`); the docstring tables and docs/environments.md are generated from them. These tests
play whole small episodes (reset, every step, the last step), with the optional arguments and without, and
compare every info with the declaration: an undeclared key, a missing one, or one of another type fails.
"""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest

import payroute  # noqa: F401 - registers the environments
from payroute.envs.info import InfoKey, info_problems, info_table, keys_for
from payroute.envs.multi_agent.ecosystem import PaymentEcosystemEnv
from payroute.envs.roles import ROLE_CLASSES, RouterRole
from payroute.envs.rtgs import RTGSLiquidityGame
from payroute.envs.single_agent.pricing import PricingEnv
from payroute.envs.single_agent.risk import RiskEnv
from payroute.envs.single_agent.routing import RoutingEnv
from payroute.envs.single_agent.treasury import TreasuryEnv
from payroute.vocabulary import ROLES

TINY = {"volume_scale": 0.01}

# (id, arguments): every environment with its defaults, and with each optional argument that changes what a
# step does or returns
CASES = [
    ("payroute/Routing-v0", {}),
    ("payroute/Routing-v0", {"dict_observation": True, "decline_cost": False}),
    ("payroute/Routing-v0", {"invalid_action": "raise", "baselines": {"risk": "allow_all"}}),
    ("payroute/Risk-v0", {}),
    ("payroute/Pricing-v0", {"days": 2.0}),
    (
        "payroute/Pricing-v0",
        {"days": 1.0, "price_levels": [0.9, 1.0, 1.1], "scenario_overrides": {"prices": {"period_s": 21600}}},
    ),
    ("payroute/Treasury-v0", {}),
    ("payroute/Treasury-v0", {"forecast_hours": 2, "min_transfer_fraction": 0.2}),
]


def _sizes(env) -> dict[str, int]:
    sizes = {"n_routes": len(env.scenario.routes)}
    if hasattr(env, "segments"):
        sizes["n_segments"] = len(env.segments)
    return sizes


def _valid_action(env, info, rng):
    mask = info.get("action_mask")
    if mask is not None:
        return int(rng.choice(np.flatnonzero(mask)))
    return env.action_space.sample()


def _episode_infos(env_id: str, kwargs: dict, seed: int = 3) -> tuple[gym.Env, list[tuple[str, dict]]]:
    """(phase, info) of a whole episode: reset, every step, the last step."""
    overrides = {**TINY, **kwargs.get("scenario_overrides", {})}
    env = gym.make(env_id, **{**kwargs, "scenario_overrides": overrides}).unwrapped
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    _obs, info = env.reset(seed=seed)
    out = [("reset", info)]
    terminated = False
    while not terminated:
        _obs, _r, terminated, truncated, info = env.step(_valid_action(env, info, rng))
        assert not truncated
        out.append(("terminal" if terminated else "step", info))
    return env, out


@pytest.mark.parametrize(("env_id", "kwargs"), CASES, ids=[f"{i}-{sorted(k)}" for i, k in CASES])
def test_every_info_key_an_environment_returns_is_declared_with_its_type(env_id, kwargs):
    env, infos = _episode_infos(env_id, kwargs)
    arguments = {**kwargs, **vars(env)}
    sizes = _sizes(env)
    problems = []
    for n, (phase, info) in enumerate(infos):
        keys = keys_for(type(env).INFO_KEYS, phase, arguments)
        problems += info_problems(info, keys, sizes, where=f"{env_id} {phase} {n}")
    assert problems[:10] == []
    assert [p for p, _ in infos].count("terminal") == 1 and len(infos) > 2
    if env_id == "payroute/Routing-v0":  # the records of outcomes were checked too, not only empty lists
        assert sum(len(i.get("outcomes", ())) for _, i in infos) > 10


def test_ecosystem_agents_infos_are_their_roles_declared_keys_and_the_final_accounts():
    env = PaymentEcosystemEnv(scenario_overrides=TINY, learning=ROLES, seed=2)
    rng = np.random.default_rng(2)
    for role in ROLES:
        env.action_spaces[role].seed(2)
    sizes = {"n_routes": len(env.scenario.routes)}
    obs, infos = env.reset(seed=2)
    problems, seen = [], set()
    while True:
        (agent,) = obs
        seen.add(agent)
        problems += info_problems(
            infos[agent], keys_for(env.roles[agent].INFO_KEYS, "decision"), sizes, agent
        )
        info = infos[agent]
        action = (
            int(rng.choice(np.flatnonzero(info["action_mask"])))
            if "action_mask" in info
            else env.action_spaces[agent].sample()
        )
        obs, _rewards, terminateds, _truncateds, infos = env.step({agent: action})
        if terminateds["__all__"]:
            break
    assert seen == set(ROLES)
    final = keys_for(env.FINAL_INFO_KEYS, "terminal")
    for agent, info in infos.items():
        problems += info_problems(info, final, sizes, f"{agent} terminal")
    assert set(infos) == set(ROLES)
    assert set(infos["router"]["agent_money_usd"]) == set(ROLES)
    assert set(infos["router"]["fraudster"]) == set(env.fraudster_role.pattern_names)
    assert problems[:10] == []


def test_only_the_router_role_has_decision_infos():
    assert [name for name, cls in ROLE_CLASSES.items() if cls.INFO_KEYS] == ["router"]
    assert RouterRole.INFO_KEYS[0].name == "action_mask"


def test_rtgs_bank_infos_are_the_declared_keys_at_every_step():
    env = RTGSLiquidityGame()
    rng = np.random.default_rng(0)
    _obs, infos = env.reset(seed=0)
    phases = [("reset", infos)]
    while env.agents:
        actions = {a: int(rng.integers(env.action_space(a).n)) for a in env.agents}
        step = 0 if len(phases) == 1 else len(phases) - 1
        _obs, _r, terms, _t, infos = env.step(actions)
        last = all(terms.values())
        phases.append(("terminal" if last else ("posting" if step == 0 else "period"), infos))
    assert [p for p, _ in phases] == [
        "reset",
        "posting",
        *["period"] * (env.config.n_periods - 1),
        "terminal",
    ]
    problems = []
    for phase, infos in phases:
        assert set(infos) == set(env.possible_agents)
        for agent, info in infos.items():
            problems += info_problems(info, keys_for(env.INFO_KEYS, phase), where=f"{agent} {phase}")
    assert problems == []


def test_an_undeclared_key_or_another_type_is_reported():
    keys = (
        InfoKey("t", "float", "s", "time"),
        InfoKey("mask", "np.int8", "", "mask", shape=("n",)),
        InfoKey("tx", "dict", "", "payment", fields=(InfoKey("id", "int", "", "id"),)),
        InfoKey("by_name", "dict[str, ...]", "", "m", fields=(InfoKey("name", "int", "", "v"),)),
        InfoKey("records", "list[dict]", "", "r", fields=(InfoKey("ok", "bool", "", "ok"),)),
    )
    good = {
        "t": 1.0,
        "mask": np.ones(3, np.int8),
        "tx": {"id": 4},
        "by_name": {"a": 1},
        "records": [{"ok": True}, {"ok": False}],
    }
    sizes = {"n": 3}
    assert info_problems(good, keys, sizes) == []
    assert info_problems({**good, "extra": 1}, keys, sizes) == ["info: undeclared keys ['extra']"]
    assert info_problems({**good, "t": 0}, keys, sizes) == ["info['t']: int, declared float"]
    assert info_problems({**good, "t": np.float64(1.0)}, keys, sizes) == [
        "info['t']: float64, declared float"
    ]
    assert len(info_problems({**good, "mask": [1, 1, 1]}, keys, sizes)) == 1
    assert len(info_problems({**good, "mask": np.ones(3, np.int64)}, keys, sizes)) == 1
    assert len(info_problems({**good, "mask": np.ones(4, np.int8)}, keys, sizes)) == 1
    assert info_problems({**good, "tx": {"id": np.int64(4)}}, keys, sizes) == [
        "info['tx']['id']: int64, declared int"
    ]
    assert len(info_problems({**good, "by_name": {"a": 1.5}}, keys, sizes)) == 1
    assert info_problems({**good, "records": [{"ok": 1}]}, keys, sizes) == [
        "info['records'][0]['ok']: int, declared bool"
    ]
    assert info_problems({"t": 1.0}, keys) == ["info: missing keys ['by_name', 'mask', 'records', 'tx']"]
    with pytest.raises(ValueError, match="numpy dtype and a shape"):
        InfoKey("t", "np.float64", "s", "a numpy scalar is not a declared type")


@pytest.mark.parametrize(
    "cls", [RoutingEnv, RiskEnv, PricingEnv, TreasuryEnv, RTGSLiquidityGame], ids=lambda c: c.__name__
)
def test_each_class_docstring_holds_its_generated_info_table(cls):
    assert info_table(cls.INFO_KEYS) in cls.__doc__


def test_the_ecosystem_docstring_holds_the_router_and_final_info_table():
    table = info_table(RouterRole.INFO_KEYS + PaymentEcosystemEnv.FINAL_INFO_KEYS)
    assert table in PaymentEcosystemEnv.__doc__


# ------------------------------------------------------------------ vector envs
_STACKED = {"int": np.dtype(np.int64), "float": np.dtype(np.float64), "bool": np.dtype(bool)}
"""What a vector env stacks a Python scalar into (NumPy 2)."""


def _numeric_problems(vinfo: dict, keys: tuple[InfoKey, ...], num_envs: int, where: str) -> list[str]:
    """Every declared number or flag present in a vector env's info is an array of its dtype, a row per env."""
    problems = []
    for k in keys:
        if k.name not in vinfo:
            continue
        value = vinfo[k.name]
        if k.dtype.startswith("np.") or k.dtype in _STACKED:
            want = _STACKED[k.dtype] if k.dtype in _STACKED else np.dtype(getattr(np, k.dtype[3:]))
            if not isinstance(value, np.ndarray) or value.dtype != want or value.shape[0] != num_envs:
                problems.append(
                    f"{where}[{k.name!r}]: {getattr(value, 'dtype', type(value))}, declared {want}"
                )
        elif k.dtype == "dict":
            problems += _numeric_problems(value, k.fields, num_envs, f"{where}[{k.name!r}]")
        elif k.dtype == "dict[str, ...]":  # the one field describes every value
            names = [name for name in value if not name.startswith("_")]
            fields = tuple(replace(k.fields[0], name=name) for name in names)
            problems += _numeric_problems(value, fields, num_envs, f"{where}[{k.name!r}]")
    return problems


@pytest.mark.parametrize(
    "env_id", ["payroute/Routing-v0", "payroute/Risk-v0", "payroute/Pricing-v0", "payroute/Treasury-v0"]
)
def test_a_sync_vector_env_stacks_every_numeric_info_into_a_numeric_array(env_id):
    kwargs = {"scenario_overrides": {**TINY, "prices": {"period_s": 3 * 3600}}, "days": 0.5}
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode="sync", **kwargs)
    keys = type(envs.envs[0].unwrapped).INFO_KEYS
    envs.action_space.seed(0)
    rng = np.random.default_rng(0)
    _obs, vinfo = envs.reset(seed=[5, 6])
    problems = _numeric_problems(vinfo, keys, 2, "reset")
    ends = 0
    for n in range(4000):
        if "action_mask" in vinfo:
            actions = np.array([int(rng.choice(np.flatnonzero(m))) for m in vinfo["action_mask"]])
        else:
            actions = envs.action_space.sample()
        _obs, _r, term, _trunc, vinfo = envs.step(actions)
        problems += _numeric_problems(vinfo, keys, 2, f"step {n}")
        ends += int(term.sum())
        if "kpis" in vinfo and vinfo["_kpis"].any() and ends >= 2:
            break
    envs.close()
    assert ends >= 2  # the terminal infos (the KPIs) were stacked too
    assert problems[:10] == []


def test_a_key_present_only_with_an_argument_is_expected_only_then_and_documented_so():
    keys = (
        InfoKey("t", "float", "s", "time", when=("reset", "step", "terminal")),
        InfoKey("credit_usd", "float", "$", "credit", when=("step",), only=("credit", "expected")),
    )
    assert [k.name for k in keys_for(keys, "step", {"credit": "expected"})] == ["t", "credit_usd"]
    assert [k.name for k in keys_for(keys, "step", {"credit": "realised"})] == ["t"]
    assert [k.name for k in keys_for(keys, "step", {})] == ["t"]
    assert [k.name for k in keys_for(keys, "reset", {"credit": "expected"})] == ["t"]
    assert "every step but the last; only with `credit='expected'`" in info_table(keys)


def test_a_client_that_keeps_routing_infos_finds_their_arrays_unchanged_later():
    env = gym.make("payroute/Routing-v0", scenario_overrides=TINY).unwrapped
    rng = np.random.default_rng(1)
    _obs, info = env.reset(seed=1)
    kept = []
    terminated = False
    while not terminated:
        arrays = {k: v for k, v in info.items() if isinstance(v, np.ndarray)}
        kept.append((arrays, {k: v.copy() for k, v in arrays.items()}))
        _obs, _r, terminated, _t, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
    assert len(kept) > 100
    changed = [
        (n, k)
        for n, (arrays, copies) in enumerate(kept)
        for k in arrays
        if not np.array_equal(arrays[k], copies[k])
    ]
    assert changed == []
    shared = kept[-1][
        0
    ]  # the arrays handed out at every step are read-only: a client cannot change the next infos
    for key in ("route_latency_s", "route_open"):
        with pytest.raises(ValueError, match="read-only"):
            shared[key][0] = 0
    assert kept[0][0]["route_latency_s"] is shared["route_latency_s"]
