"""The benchmark's tasks: a decision kind on a scenario, evaluation seeds, a KPI, a reference and a top.

Each task fixes everything a score depends on: the decision the policy makes (every other decision is bound to
its default baseline), the scenario and its overrides, the simulated days, the held-out evaluation seeds, the
KPI (always what really happened in the world, never a training credit), the reference policy (score 0) and the
top (score 100): the oracle where one exists, else the best known bound, named per task in :data:`TASKS`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from payroute.envs.baselines import BASELINES_BY_KIND, ClairvoyantRisk, StaticPricing, make_policy
from payroute.envs.baselines.rtgs import FixedShareBank, play_day
from payroute.envs.rtgs.game import parallel_env
from payroute.errors import PayrouteError
from payroute.policies.compare import NamedPolicy
from payroute.vocabulary import HELD_OUT_SEED_START

SEED_START: int = HELD_OUT_SEED_START + 500_000
"""The benchmark's first evaluation seed: held out from training, and apart from the block ``payroute evaluate``
uses by default (which starts at ``HELD_OUT_SEED_START``), so no shipped policy was selected on these days."""

BENCHMARK_VOLUME = 0.1
"""Every payment-world task runs at a tenth of its scenario's volume (the volume the zoo bundles trained at)."""

PRICE_LEVEL_BOUND = 2.0
"""The pricing task's top: the static level that did best of 0.8 ... 2.0 (grid 0.2) in hindsight, the scenario's
``max_multiplier``; see :data:`TASKS`."""

RTGS_RELEASE_SHARES = (0.0, 0.5, 1.0)
"""Release shares the RTGS planner tries for each bank (with every posting share of the game's grid)."""


@dataclass(frozen=True)
class Task:
    """One benchmark task. ``top`` is the label of the 100 point; ``top_is_oracle`` says whether it is an oracle
    (a policy that sees hidden state) or a best known bound; ``top_note`` says what it is."""

    name: str
    kind: str
    scenario: str
    reference: str
    top: str
    top_is_oracle: bool
    top_note: str
    kpi: str
    days: float = 1.0
    seeds: int = 20
    overrides: Mapping[str, Any] = field(default_factory=lambda: {"volume_scale": BENCHMARK_VOLUME})

    def seed_list(self, count: int | None = None) -> list[int]:
        """The evaluation seeds: ``SEED_START`` onward, ``count`` of them (default: the task's)."""
        n = self.seeds if count is None else count
        if n < 2:
            raise PayrouteError(f"a score needs at least 2 seeds for its interval, got {n}")
        return list(range(SEED_START, SEED_START + n))

    def baseline_names(self) -> list[str]:
        """Every baseline a score can name on this task, the top included."""
        names = list(BASELINES_BY_KIND[self.kind])
        return names if self.top in names else [*names, self.top]


_MARGIN = "margin per simulated day (USD): revenue minus every cost the world booked, fraud losses and SLA penalties included"
_ORACLE = (
    "`oracle`: routes by expected margin knowing every route's hidden health and this payment's approval odds"
)
TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("routing-default", "route", "default", "cheapest", "oracle", True, _ORACLE, _MARGIN),
        Task("routing-processor_outage", "route", "processor_outage", "cheapest", "oracle", True, _ORACLE, _MARGIN),
        Task("routing-fraud_surge", "route", "fraud_surge", "cheapest", "oracle", True, _ORACLE, _MARGIN),
        Task("risk-default", "risk", "default", "threshold", "clairvoyant_risk", True,
             "`clairvoyant_risk`: blocks every fraud and allows every genuine payment (sees the fraud truth)", _MARGIN),
        Task("risk-fraud_surge", "risk", "fraud_surge", "threshold", "clairvoyant_risk", True,
             "`clairvoyant_risk`: blocks every fraud and allows every genuine payment (sees the fraud truth)", _MARGIN),
        Task("pricing-default", "price", "default", "static_pricing", "static_x2", False,
             "`static_x2`: the best static price level in hindsight (every segment and family at "
             "x2.0 of list, the scenario's maximum; levels 0.8 ... 2.0 tried); not a proven optimum",
             _MARGIN, days=2.0, seeds=10, overrides={"volume_scale": BENCHMARK_VOLUME, "prices": {"period_s": 21600}}),
        Task("treasury-liquidity_crunch", "treasury", "liquidity_crunch", "target_balance", "free_liquidity", False,
             "`free_liquidity`: the reference's own day with its liquidity, transfer and queue-delay "
             "costs given back (those days as if money were free to hold and move)",
             _MARGIN),
        Task("rtgs-game", "rtgs", "rtgs default config (2 banks, 12 periods, random demand)", "release_all",
             "planner", False,
             "`planner`: per day, the clairvoyant planner's best joint strategy (each bank's posting "
             "share on the grid x release share 0, 0.5 or 1), knowing that day's demands",
             "minus the banks' total cost per day (USD): liquidity posted, delay and overnight borrowing",
             seeds=10, overrides={}),
    )
}  # fmt: skip


def get_task(name: str) -> Task:
    """A task by name; a clear error lists the tasks otherwise."""
    if name not in TASKS:
        raise PayrouteError(f"unknown benchmark task {name!r}; tasks: {', '.join(TASKS)} (or 'all')")
    return TASKS[name]


def top_arm(task: Task) -> str | NamedPolicy | None:
    """The top of ``task`` as an arm of the world (``None``: computed, not played)."""
    if task.kind == "route":
        return task.top
    if task.kind == "risk":
        return NamedPolicy(task.top, ClairvoyantRisk)
    if task.kind == "price":
        return NamedPolicy(task.top, functools.partial(StaticPricing, PRICE_LEVEL_BOUND))
    return None


def free_liquidity(kpis: Mapping[str, float], days: float) -> float:
    """The treasury task's top on one seed: the reference's margin with its liquidity costs given back, per day."""
    return (kpis["margin_usd"] + kpis["liquidity_cost_usd"] + kpis["delay_cost_usd"]) / days


# ---------------------------------------------------------------------- the RTGS game
def rtgs_value(name: str, seed: int) -> float:
    """Minus the banks' total cost (USD) of one day of the default RTGS game, every bank playing ``name``."""
    game = parallel_env()
    banks = {a: make_policy("rtgs", name) for a in game.possible_agents}
    return -float(sum(play_day(game, banks, seed=seed).values()))


def rtgs_planner(seed: int) -> float:
    """The RTGS task's top on one day: the least total cost over every joint fixed-share strategy (each bank's
    posting share on the grid, release share in :data:`RTGS_RELEASE_SHARES`), knowing the day's demands."""
    game = parallel_env()
    strategies = [(p, r) for p in game.config.grid for r in RTGS_RELEASE_SHARES]
    best = np.inf
    for combo in itertools.product(strategies, repeat=len(game.possible_agents)):
        banks = {a: FixedShareBank(*s) for a, s in zip(game.possible_agents, combo, strict=True)}
        best = min(best, float(sum(play_day(game, banks, seed=seed).values())))
    return -best
