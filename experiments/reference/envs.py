"""The environment reference (``docs/environments.md``), generated from the environments themselves.

For every registered Gymnasium environment, the multi-agent payment ecosystem and the RTGS liquidity game:
the observation entry by entry (index, name, unit, scaling, low, high, read from the feature schemas:
``env.feature_schema()``, :mod:`payroute.envs.roles`, :data:`payroute.envs.rtgs.OBSERVATION_NAMES`), the
action space and the name of each action. Everything is built on the ``default`` scenario, whose routes,
accounts, segments and fraud patterns fix the sizes; another scenario can give other sizes. The class
docstrings stay the narrative manual (description, reward, episode end, arguments); this file is the
exhaustive per-feature list. ``python -m payroute.experiments.reference`` writes it with the other references.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

SCENARIO = "default"


def _num(x: float) -> str:
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:g}"


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _space(space: Any) -> str:
    """A short description of a Gymnasium space (no per-element bound arrays)."""
    name = type(space).__name__
    if name == "Discrete":
        return f"`Discrete({space.n})`"
    if name == "Box":
        lo, hi = np.unique(space.low), np.unique(space.high)
        bounds = (
            f"{_num(lo[0])}, {_num(hi[0])}, " if len(lo) == 1 and len(hi) == 1 else "low, high (per entry), "
        )
        return f"`Box({bounds}{tuple(space.shape)}, {space.dtype})`"
    if name == "Dict":
        return "`Dict(" + ", ".join(f"{k}: {_space(v).strip('`')}" for k, v in space.spaces.items()) + ")`"
    return f"`{space}`"


def _summary(cls: type) -> str:
    doc = inspect.cleandoc(cls.__doc__ or "")
    return doc.split("\n\n")[0].replace("\n", " ")


def _observation_table(schema: list[dict]) -> list[str]:
    lines = [
        "| index | name | unit | scaling / meaning | low | high |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for i, f in enumerate(schema):
        lines.append(
            f"| {i} | `{f['name']}` | {_cell(f['unit'])} | {_cell(f['scaling'])} | {_num(f['low'])} "
            f"| {_num(f['high'])} |"
        )
    return [*lines, ""]


def _discrete_actions(names: list[str], meaning: list[str] | None = None) -> list[str]:
    lines = ["| action | name | meaning |", "| --- | --- | --- |"]
    for i, n in enumerate(names):
        lines.append(f"| {i} | `{n}` | {_cell(meaning[i]) if meaning else ''} |")
    return [*lines, ""]


def _box_actions(names: list[str], space: Any) -> list[str]:
    lines = ["| index | name | low | high |", "| --- | --- | --- | --- |"]
    for i, (n, lo, hi) in enumerate(zip(names, space.low.ravel(), space.high.ravel(), strict=True)):
        lines.append(f"| {i} | `{n}` | {_num(lo)} | {_num(hi)} |")
    return [*lines, ""]


def _header(title: str, cls: type, where: str, obs_space: Any, act_space: Any) -> list[str]:
    return [
        f"## {title}",
        "",
        f"{_summary(cls)} The manual (description, reward, episode end, arguments) is the docstring of "
        f"`{cls.__name__}` in `{where}`.",
        "",
        f"* observation: {_space(obs_space)}",
        f"* action: {_space(act_space)}",
        "",
    ]


def _info(keys: Any, intro: str) -> list[str]:
    from payroute.envs.info import info_table

    return ["### Info", "", intro, "", info_table(keys), ""]


def _route_meaning(route: Any) -> str:
    return f"{route.rail} rail: {', '.join(route.instruments)}; {', '.join(route.corridors)}"


def _routing() -> list[str]:
    import gymnasium as gym

    env = gym.make("payroute/Routing-v0", scenario=SCENARIO).unwrapped
    lines = _header(
        "`payroute/Routing-v0`",
        type(env),
        "envs/single_agent/routing.py",
        env.observation_space,
        env.action_space,
    )
    lines += [
        'With `dict_observation=True` the observation is `{"observations": <the Box below>, "action_mask": '
        f"Box(0, 1, ({env.action_space.n},))}}`.",
        "",
        "### Actions",
        "",
        "The index of a route in the scenario's route order (`env.route_names`); ineligible routes are masked "
        '(`info["action_mask"]`, `env.action_masks()`).',
        "",
        *_discrete_actions(
            list(env.route_names), [_route_meaning(env.scenario.routes[n]) for n in env.route_names]
        ),
        "### Observation",
        "",
        *_observation_table(env.feature_schema()),
        *_info(env.INFO_KEYS, f"`n_routes` = {env.action_space.n}."),
        *_routing_retries(env),
    ]
    return lines


def _routing_retries(off: Any) -> list[str]:
    """Routing-v0's retry steps: the actions and features the scenario's ``retries.enabled`` adds."""
    import gymnasium as gym

    env = gym.make(
        "payroute/Routing-v0", scenario=SCENARIO, scenario_overrides={"retries": {"enabled": True}}
    ).unwrapped
    steps = env.role.retries
    n = len(env.route_names)
    names = [f"cascade to `{r}`" for r in env.route_names]
    names += ["give up", *[f"later, after {d:g} s" for d in steps.delays_s], "step up"]
    meaning = ["first attempt: send it there; retry: cascade there now"] * n
    meaning += [
        "retry only: the payment ends declined (failed after a technical failure)",
        *["retry only: the same route again after this delay"] * len(steps.delays_s),
        "retry only: the risk desk's step-up challenge, then the same route at once",
    ]
    base = len(off.feature_schema())
    extra = env.feature_schema()[base:]
    lines = [
        "### With retries on",
        "",
        "With the scenario's `retries.enabled: true` a softly declined card payment comes back to the router "
        "(`payroute.envs.roles.retry_steps`): the action space is "
        f"`Discrete({env.action_space.n})` and the observation gains {len(extra)} entries after index "
        f"{base - 1} (with retries off, nothing changes). The mask allows, at a first attempt, the eligible "
        "routes; at a retry, the eligible routes but the one that declined, give up, each delay that starts "
        "inside the latency budget, and step up.",
        "",
        "| action | name | meaning |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {i} | {name} | {_cell(m)} |" for i, (name, m) in enumerate(zip(names, meaning, strict=True))
    ]
    lines += [
        "",
        "| index | name | unit | scaling / meaning | low | high |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for i, f in enumerate(extra, base):
        lines.append(
            f"| {i} | `{f['name']}` | {_cell(f['unit'])} | {_cell(f['scaling'])} | {_num(f['low'])} "
            f"| {_num(f['high'])} |"
        )
    return [*lines, ""]


def _risk() -> list[str]:
    import gymnasium as gym

    from payroute.envs.world.decisions import RISK_ACTIONS

    env = gym.make("payroute/Risk-v0", scenario=SCENARIO).unwrapped
    lines = _header(
        "`payroute/Risk-v0`", type(env), "envs/single_agent/risk.py", env.observation_space, env.action_space
    )
    meaning = [
        "the payment goes on to routing",
        "step-up authentication: some genuine payers abandon, most fraud is stopped",
        "the payment is refused",
    ]
    return [
        *lines,
        "### Actions",
        "",
        *_discrete_actions(list(RISK_ACTIONS), meaning),
        "### Observation",
        "",
        *_observation_table(env.feature_schema()),
        *_info(env.INFO_KEYS, "The waiting payment at reset and every step; the episode's KPIs at the last."),
    ]


def _pricing() -> list[str]:
    import gymnasium as gym

    env = gym.make("payroute/Pricing-v0", scenario=SCENARIO).unwrapped
    lines = _header(
        "`payroute/Pricing-v0`",
        type(env),
        "envs/single_agent/pricing.py",
        env.observation_space,
        env.action_space,
    )
    cells = [f"{s}.{f}" for s in env.segments for f in env.families]
    return [
        *lines,
        "### Actions",
        "",
        f"A `{tuple(env.action_space.shape)}` array of fee multipliers, row = segment, column = family; "
        "flattened row-major below (the order of the ecosystem's pricer).",
        "",
        *_box_actions(cells, env.action_space),
        "### Observation",
        "",
        *_observation_table(env.feature_schema()),
        *_info(env.INFO_KEYS, f"The same keys at reset and every step; `n_segments` = {len(env.segments)}."),
    ]


def _treasury() -> list[str]:
    import gymnasium as gym

    env = gym.make("payroute/Treasury-v0", scenario=SCENARIO).unwrapped
    lines = _header(
        "`payroute/Treasury-v0`",
        type(env),
        "envs/single_agent/treasury.py",
        env.observation_space,
        env.action_space,
    )
    return [
        *lines,
        "### Actions",
        "",
        "`transfer[a]`: the transfer into account `a` as a fraction of its target balance (negative: sweep "
        "back); `credit_line[a]`: the intraday credit line as a fraction of the account's limit.",
        "",
        *_box_actions(list(env.action_names), env.action_space),
        "### Observation",
        "",
        f"`H` = `forecast_hours` = {env.forecast_hours}.",
        "",
        *_observation_table(env.feature_schema()),
        *_info(
            env.INFO_KEYS,
            f"The same keys at reset and every step; `balances_cents` has one entry per account "
            f"({', '.join(f'`{a}`' for a in env.accounts)}).",
        ),
    ]


def _ecosystem() -> list[str]:
    from payroute.envs.multi_agent.ecosystem import ROLES, PaymentEcosystemEnv
    from payroute.envs.roles import RouterRole

    env = PaymentEcosystemEnv(scenario=SCENARIO, learning=ROLES)
    same = {
        "router": "Routing-v0's (above)",
        "risk": "Risk-v0's (above)",
        "pricer": "Pricing-v0's (above); action flattened row-major",
        "treasury": "Treasury-v0's (above)",
        "fraudster": "its own (below)",
    }
    lines = [
        "## Payment ecosystem (multi-agent)",
        "",
        f"{_summary(type(env))} The manual is the docstring of `PaymentEcosystemEnv` in `envs/multi_agent/ecosystem.py`; "
        "the roles are in `envs/roles/`. RLlib trains on `payroute.agents.rllib.env`, PettingZoo's AEC "
        "interface is `payroute.envs.multi_agent.pettingzoo_env`.",
        "",
        "| agent | observation | action | same as |",
        "| --- | --- | --- | --- |",
    ]
    for role in ROLES:
        lines.append(
            f"| `{role}` | {_space(env.observation_spaces[role])} | {_space(env.action_spaces[role])} "
            f"| {same[role]} |"
        )
    fraud = env.roles["fraudster"]
    names = [f"intensity[{p}]" for p in fraud.pattern_names]
    names += [f"amount_multiplier[{p}]" for p in fraud.pattern_names]
    lines += [
        "",
        "### Fraudster actions",
        "",
        "Per pattern the attack intensity (times the scenario's attack rate), then per pattern the amount "
        "multiplier on the pattern's amount band; values outside the bounds are clipped.",
        "",
        *_box_actions(names, fraud.action_space),
        "### Fraudster observation",
        "",
        *_observation_table([f.__dict__ for f in fraud.features]),
        *_info(
            RouterRole.INFO_KEYS + env.FINAL_INFO_KEYS,
            "At its decisions an agent's info holds its role's keys: only the router has one (`action_mask`); "
            "the PettingZoo wrapper gives the other agents an empty dict. At the end every agent that acted "
            "gets the same dict: `agent_money_usd` by agent id "
            f"({', '.join(f'`{a}`' for a in ROLES)}), `fraudster` by pattern "
            f"({', '.join(f'`{p}`' for p in fraud.pattern_names)}).",
        ),
    ]
    return lines


def _rtgs() -> list[str]:
    from payroute.envs.rtgs import OBSERVATION_NAMES, OBSERVATION_UNITS, RTGSLiquidityGame

    env = RTGSLiquidityGame()
    agent = env.possible_agents[0]
    obs, act = env.observation_space(agent), env.action_space(agent)
    lines = [
        "## RTGS liquidity game (multi-agent, PettingZoo)",
        "",
        f"{_summary(RTGSLiquidityGame)} Configured by `RTGSConfig`, not by a scenario; below with its defaults "
        f"({len(env.possible_agents)} banks, {env.config.n_periods} periods). The manual is the docstring of "
        "`payroute.envs.rtgs` and of `RTGSLiquidityGame`.",
        "",
        f"* agents: {', '.join(f'`{a}`' for a in env.possible_agents)}",
        f"* observation (each bank): {_space(obs)}",
        f"* action (each bank): {_space(act)}",
        "",
        "### Actions",
        "",
        "The index of a fraction in `grid`: at the morning step the share of collateral to post, at each "
        "period the share of what the bank owes to release.",
        "",
        "| action | fraction |",
        "| --- | --- |",
        *[f"| {i} | {_num(g)} |" for i, g in enumerate(env.config.grid)],
        "",
        "### Observation",
        "",
    ]
    schema = [
        {"name": n, "unit": u, "scaling": m, "low": lo, "high": hi}
        for n, (u, m), lo, hi in zip(OBSERVATION_NAMES, OBSERVATION_UNITS, obs.low, obs.high, strict=True)
    ]
    intro = (
        "Each bank's info; empty at reset. The morning step is step 0, the period steps 1 .. "
        f"{env.config.n_periods}, the last of them the last step."
    )
    return [*lines, *_observation_table(schema), *_info(RTGSLiquidityGame.INFO_KEYS, intro)]


def render_environment_reference() -> str:
    from payroute.registration import ENVIRONMENTS

    sections = {
        "payroute/Routing-v0": _routing,
        "payroute/Risk-v0": _risk,
        "payroute/Pricing-v0": _pricing,
        "payroute/Treasury-v0": _treasury,
    }
    missing = sorted(set(ENVIRONMENTS) - set(sections))
    if missing:
        raise RuntimeError(
            f"environments {missing} are registered but have no section in docs/environments.md"
        )
    lines = [
        "# Environment reference",
        "",
        f"Every payroute environment on the `{SCENARIO}` scenario: observation entry by entry (index, name, unit, "
        "scaling, bounds), the actions, and every key of `info`. Sizes follow the scenario (its routes, accounts, "
        "segments, fraud patterns); `env.feature_schema()` gives the same list for any scenario. The class "
        "docstrings are the manual; this is the exhaustive list.",
        "",
        "Info types: a single number is a Python `int` or `float` and a flag a `bool`, each key always of the same "
        "type; several numbers are a numpy array of a fixed dtype. So a Gymnasium vector env stacks each numeric key "
        "into one numeric array of shape `(num_envs, ...)` (`int` -> `int64` with NumPy 2, `float` -> `float64`) "
        "(with a boolean `_key` array saying which environments had it); a `dict` stacks key by key (a mapping "
        "keyed by scenario names too). Strings, tuples of strings and lists of records (`list[dict]`, whose "
        "length varies) stay Python objects, in object arrays. Every array in an info is the info's own or one the environment never writes "
        "again (some are read-only): a client may keep it. The `when` column: `reset`, every step but the "
        "last, the last (terminal) step. Each environment declares its keys next to the code that builds them "
        "(`INFO_KEYS`, `payroute.envs.info.InfoKey`), and a test fails on any key it returns undeclared.",
        "",
        "Generated by `python -m payroute.experiments.reference` from the environments; do not edit.",
        "",
    ]
    for build in (*sections.values(), _ecosystem, _rtgs):
        lines += build()
    return "\n".join(lines).rstrip("\n") + "\n"
