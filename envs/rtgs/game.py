"""The RTGS liquidity game: banks post liquidity in the morning and choose, period by period, how much to pay.

Scenario: ``N`` banks (default 2) settle payments to each other in a real-time gross settlement system
(Fedwire, CHAPS, Lynx). Each payment settles one by one, in full, in central-bank money. At the start of the
day each bank posts liquidity: a fraction of its collateral, chosen on a grid, that it pays
``liquidity_cost_rate`` per unit for. During the day, in each of ``n_periods`` periods, each bank receives
requests to pay the others and chooses the share of everything it owes (new and held-back requests) to
release; what it releases is capped by its balance. Payments it receives land at the end of the period and
are liquidity it can reuse from the next period on. Every unit still owed at the end of a period (other than
the last) costs ``delay_cost_rate_per_period``; what is still unpaid at the end of the day is paid with an
overnight loan at ``borrow_cost_rate``. This is the game of Castro et al. (Bank of Canada Staff Working Paper
2021-7), in which banks trade the cost of liquidity against the cost of delay, and each bank's liquidity is
worth more when the others pay early (docs/calibration.md, "Liquidity").

Demands come from :attr:`RTGSConfig.demand`: ``random`` (drawn per episode from the environment's seeded
generator), ``fixed`` (the same every day), or ``csv`` (a file of period demands per bank; each episode
plays one of its days).

Money is integer cents (liquidity posted, balances, payments); costs are rates times cents, and rewards are
minus those costs in dollars.

Timing of one episode (``n_periods + 1`` steps; every bank acts at every step):

============  ==================================================  ==========================================
step          the action (an index into ``grid``) means           reward (dollars)
============  ==================================================  ==========================================
0 (morning)   liquidity to post = ``grid[a] * collateral``          ``-liquidity_cost_rate * posted``
t = 1..T      share of what the bank owes to release in period t   ``-delay_cost_rate_per_period * still owed``
                                                                   (t < T) or ``-borrow_cost_rate * unpaid``
                                                                   (t = T)
============  ==================================================  ==========================================

The equilibrium of a small deterministic case
---------------------------------------------

Two banks A and B, two periods, collateral ``C``, the default 11-point grid (0, 0.1, ..., 1), costs
``r_c = 0.1`` (liquidity), ``r_d = 0.2`` (delay, per period), ``r_b = 0.4`` (borrowing), and fixed demands,
in units of ``C``: A must pay B ``a1 = 0.2`` in period 1 and ``a2 = 0.3`` in period 2; B must pay A
``b1 = 0.5`` and ``b2 = 0.4``. (:func:`deterministic_two_period_config` builds it.)

1. *Releasing everything is dominant in every period.* Posted liquidity is sunk once the day starts.
   Holding back a unit in period 1 costs ``r_d`` and buys nothing, because the unit would still be there in
   period 2; holding back in period 2 leaves it to be borrowed at ``r_b``. So each bank releases share 1 in
   both periods, whatever the other does.
2. *Posting.* Given that, bank i with demands ``(p1, p2)`` and period-1 receipts ``R`` pays
   ``r_c * l + r_d * (p1 - min(p1, l)) + r_b * max(0, p1 + p2 - l - R)`` for posting ``l``. Because
   ``r_c < r_d < r_b`` every unit of shortfall is dearer than a unit of liquidity, so the best response is
   the least liquidity that pays everything on time: ``l* = p1 + max(0, p2 - R)``.
3. *Receipts.* By step 1 each bank pays its whole period-1 demand in period 1 when it has the liquidity,
   which at ``l*`` it does, so A receives ``R_A = b1 = 0.5`` and B receives ``R_B = a1 = 0.2``.

Hence the unique equilibrium: **A posts 0.2 C, B posts 0.7 C, both release everything in both periods**
(``l_A = 0.2 + max(0, 0.3 - 0.5)``, ``l_B = 0.5 + max(0, 0.4 - 0.2)``). A settles its period-2 payment with
B's period-1 payment; B must fund its own. Costs: A ``0.02 C``, B ``0.07 C``. Checking every deviation on
the grid (the test suite does, by enumeration) confirms that each bank's equilibrium strategy is its unique best
response to the other's. With ``r_d < r_c`` instead, waiting for the other bank's payments becomes
attractive and the game has free-riding equilibria (one bank pays early, the other waits), the S-shaped
liquidity demand of Galbiati & Soramäki.

The PettingZoo interface is :class:`RTGSLiquidityGame` (``parallel_env()``); the learners' layer adapts it to
RLlib's ``MultiAgentEnv`` and learns the equilibrium above with REINFORCE (docs/using_environments.md).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from payroute.envs.info import InfoKey, with_info_table
from payroute.envs.rtgs.config import (
    OBSERVATION_NAMES,
    CsvDemand,
    FixedDemand,
    RTGSConfig,
    load_rtgs_config,
    read_demand_csv,
    split_evenly,
)


class RTGSLiquidityGame(ParallelEnv):
    """PettingZoo ``ParallelEnv`` of the RTGS liquidity game (``rtgs_liquidity_v0``).

    ## Agents

    ``bank_0`` .. ``bank_{N-1}``; all act at every step; all terminate together after ``n_periods + 1``
    steps.

    ## Action space

    ``Discrete(len(grid))``, the same at every step: at step 0 the index of the share of collateral to post,
    at steps 1..T the index of the share of what the bank owes to release.

    ## Observation space

    ``Box(0, inf, (7,), float32)``, money in units of the bank's collateral:

    | index | name                   | meaning                                                        |
    |-------|------------------------|----------------------------------------------------------------|
    | 0     | ``posting_stage``      | 1 at the morning step (posting), 0 afterwards                   |
    | 1     | ``period_share``       | t / T at the step of period t (0 in the morning)                |
    | 2     | ``posted``             | liquidity posted this morning                                   |
    | 3     | ``balance``            | balance available to pay now                                    |
    | 4     | ``owed``               | everything the bank must still pay, this period's requests too |
    | 5     | ``new_requests``       | requests that arrived this period                               |
    | 6     | ``received_last_period``| payments received in the previous period                        |

    A bank sees only its own account, as in a real RTGS.

    ## Rewards

    Minus the bank's costs of the step, in dollars (see the module docstring's timing table).

    ## Info

    Each bank's info, generated from ``RTGSLiquidityGame.INFO_KEYS`` (:mod:`payroute.envs.info`): ``int``
    and ``float``; empty at reset.

    ## Arguments

    ``RTGSLiquidityGame(config=None, **overrides)``: an :class:`RTGSConfig`, a mapping, or field overrides
    such as ``n_banks=3, demand={"kind": "csv", "path": "demands.csv"}``.
    """

    metadata = {"name": "rtgs_liquidity_v0", "render_modes": [], "is_parallelizable": True}

    INFO_KEYS: tuple[InfoKey, ...] = (
        InfoKey(
            "paid_cents",
            "int",
            "cents",
            "what the bank released (paid) in this step's period",
            when=("period", "terminal"),
        ),
        InfoKey(
            "cost_usd",
            "dict",
            "$",
            "the bank's costs of this step (minus their sum is its reward)",
            when=("posting", "period", "terminal"),
            fields=(
                InfoKey("liquidity", "float", "$", "`liquidity_cost_rate` x posted (the morning step)"),
                InfoKey(
                    "delay",
                    "float",
                    "$",
                    "`delay_cost_rate_per_period` x still owed (periods but the last)",
                ),
                InfoKey("borrowing", "float", "$", "`borrow_cost_rate` x unpaid at the end (the last step)"),
            ),
        ),
        InfoKey("day_cost_usd", "float", "$", "the bank's costs of the whole day", when=("terminal",)),
    )
    """Every key of a bank's info (the docstring's ``## Info`` table, docs/environments.md)."""

    def __init__(
        self,
        config: RTGSConfig | Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        **overrides,
    ) -> None:
        if render_mode is not None:
            raise ValueError(
                f"render_mode must be None (this environment does not render), got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.config = load_rtgs_config(config, **overrides)
        cfg = self.config
        self.possible_agents = [f"bank_{i}" for i in range(cfg.n_banks)]
        self.agents: list[str] = []
        self.grid = np.asarray(cfg.grid, dtype=float)
        self._csv_days = (
            read_demand_csv(cfg.demand.path, cfg.n_banks, cfg.n_periods)
            if isinstance(cfg.demand, CsvDemand)
            else None
        )
        self._rng: np.random.Generator | None = None
        # one space object per agent, made once (PettingZoo: ``observation_space(a) is observation_space(a)``)
        self.observation_spaces = {
            a: spaces.Box(0.0, np.inf, shape=(len(OBSERVATION_NAMES),), dtype=np.float32)
            for a in self.possible_agents
        }
        self.action_spaces = {a: spaces.Discrete(len(cfg.grid)) for a in self.possible_agents}

    def observation_space(self, agent: str) -> spaces.Box:
        self._check_agent(agent)
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        self._check_agent(agent)
        return self.action_spaces[agent]

    def _check_agent(self, agent: str) -> None:
        if agent not in self.observation_spaces:
            raise KeyError(f"unknown agent {agent!r}; agents: {self.possible_agents}")

    # ------------------------------------------------------------------ demand
    def _draw_demand(self, options: dict[str, Any]) -> np.ndarray:
        """This day's requests: ``(n_periods, payer, payee)`` cents."""
        cfg = self.config
        n, t = cfg.n_banks, cfg.n_periods
        dem = cfg.demand
        if isinstance(dem, FixedDemand):
            out = np.zeros((t, n, n), dtype=np.int64)
            for i, row in enumerate(dem.cents):
                for p, amount in enumerate(row):
                    split_evenly(out[p, i], i, int(amount))
            return out
        if isinstance(dem, CsvDemand):
            days = self._csv_days
            day = options.get("day")
            if day is None:
                day = int(self._rng.integers(len(days)))
            elif not 0 <= int(day) < len(days):
                raise ValueError(f"options['day'] = {day}: the csv has days 0..{len(days) - 1}")
            return days[int(day)].copy()
        rng = self._rng
        out = np.zeros((t, n, n), dtype=np.int64)
        mean = dem.mean_share_of_collateral * cfg.collateral_cents
        busy = rng.random((t, n)) >= dem.idle_probability
        amounts = np.rint(mean * np.exp(dem.sigma * rng.standard_normal((t, n)) - dem.sigma**2 / 2.0))
        offsets = rng.integers(1, n, size=(t, n))  # payee = payer + offset (mod n): never the payer
        for p in range(t):
            for i in range(n):
                if busy[p, i]:
                    out[p, i, (i + offsets[p, i]) % n] += int(amounts[p, i])
        return out

    # ------------------------------------------------------------------ exact resume
    def seed_state(self) -> dict[str, Any]:
        """The generator the next days' demand is drawn from (a picklable copy); :meth:`set_seed_state`
        puts it back (exact resume: the rest of a day is rebuilt by replaying its actions)."""
        return {"rng": copy.deepcopy(self._rng)}

    def set_seed_state(self, state: dict[str, Any]) -> None:
        self._rng = copy.deepcopy(state["rng"])

    # ------------------------------------------------------------------ PettingZoo API
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        cfg = self.config
        n = cfg.n_banks
        self.agents = list(self.possible_agents)
        self.demand = self._draw_demand(dict(options or {}))
        self.stage = 0
        self.posted = np.zeros(n, dtype=np.int64)
        self.balance = np.zeros(n, dtype=np.int64)
        self.owed = np.zeros((n, n), dtype=np.int64)  # payer x payee, requested and not yet paid
        self.new_requests = np.zeros(n, dtype=np.int64)
        self.received = np.zeros(n, dtype=np.int64)
        self.costs_cents = np.zeros((n, 3))  # liquidity, delay, borrowing, for the whole day
        return self._observations(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, int]):
        if not self.agents:
            raise RuntimeError("the day is over: call reset()")
        missing = sorted(set(self.agents) - set(actions))
        if missing:
            raise ValueError(f"every bank acts at every step; missing actions for {missing}")
        cfg = self.config
        n = cfg.n_banks
        idx = np.empty(n, dtype=np.int64)
        for i, agent in enumerate(self.possible_agents):
            a = int(actions[agent])
            if not 0 <= a < len(self.grid):
                raise ValueError(
                    f"{agent}: action {actions[agent]!r} is not a grid index 0..{len(self.grid) - 1}"
                )
            idx[i] = a
        share = self.grid[idx]
        step_cost = np.zeros((n, 3))
        infos: dict[str, dict[str, Any]] = {}
        if self.stage == 0:
            self.posted = np.rint(share * cfg.collateral_cents).astype(np.int64)
            self.balance = self.posted.copy()
            step_cost[:, 0] = cfg.liquidity_cost_rate * self.posted
            self._arrive(0)
        else:
            paid = self._settle(share)
            last = self.stage == cfg.n_periods
            still_owed = self.owed.sum(axis=1).astype(float)
            if last:
                step_cost[:, 2] = cfg.borrow_cost_rate * still_owed
                self.owed[:] = 0  # paid with overnight loans
            else:
                step_cost[:, 1] = cfg.delay_cost_rate_per_period * still_owed
                self._arrive(self.stage)
            for i, agent in enumerate(self.possible_agents):
                infos[agent] = {"paid_cents": int(paid[i])}
        self.costs_cents += step_cost
        self.stage += 1
        done = self.stage > cfg.n_periods
        rewards = {a: -float(step_cost[i].sum()) / 100.0 for i, a in enumerate(self.possible_agents)}
        obs = self._observations()
        for i, agent in enumerate(self.possible_agents):
            info = infos.setdefault(agent, {})
            info["cost_usd"] = dict(
                zip(("liquidity", "delay", "borrowing"), (step_cost[i] / 100.0).tolist(), strict=True)
            )
            if done:
                info["day_cost_usd"] = float(self.costs_cents[i].sum()) / 100.0
        terminations = dict.fromkeys(self.agents, done)
        truncations = dict.fromkeys(self.agents, False)
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def _arrive(self, period: int) -> None:
        """Period ``period``'s requests join what each bank owes."""
        new = self.demand[period]
        self.owed += new
        self.new_requests = new.sum(axis=1)

    def _settle(self, share: np.ndarray) -> np.ndarray:
        """Each bank releases ``share`` of what it owes, capped by its balance, pro rata to its payees;
        payments land at the payees at the end of the period (simultaneous gross settlement)."""
        n = self.config.n_banks
        incoming = np.zeros(n, dtype=np.int64)
        paid = np.zeros(n, dtype=np.int64)
        for i in range(n):
            owed = self.owed[i]
            total = int(owed.sum())
            release = min(int(np.floor(share[i] * total + 1e-9)), int(self.balance[i]))
            if release <= 0:
                continue
            pay = (owed * release) // total  # pro rata, rounded down ...
            rest = release - int(pay.sum())
            for j in np.argsort(-(owed * release - pay * total), kind="stable")[:rest]:  # ... odd cents
                pay[j] += 1
            self.owed[i] -= pay
            self.balance[i] -= release
            incoming += pay
            paid[i] = release
        self.balance += incoming
        self.received = incoming
        return paid

    def _observations(self) -> dict[str, np.ndarray]:
        cfg = self.config
        c = float(cfg.collateral_cents)
        posting = self.stage == 0
        period = 0.0 if posting else min(self.stage, cfg.n_periods) / cfg.n_periods
        owed = self.owed.sum(axis=1)
        return {
            agent: np.array(
                [
                    1.0 if posting else 0.0,
                    period,
                    self.posted[i] / c,
                    max(self.balance[i], 0) / c,
                    owed[i] / c,
                    self.new_requests[i] / c,
                    self.received[i] / c,
                ],
                dtype=np.float32,
            )
            for i, agent in enumerate(self.possible_agents)
        }

    def render(self) -> None:
        return None

    def close(self) -> None:
        return None


RTGSLiquidityGame.__doc__ = with_info_table(RTGSLiquidityGame.__doc__, RTGSLiquidityGame.INFO_KEYS)


def parallel_env(config: RTGSConfig | Mapping[str, Any] | None = None, **overrides: Any) -> RTGSLiquidityGame:
    """The game as a PettingZoo ``ParallelEnv`` (the PettingZoo module convention)."""
    return RTGSLiquidityGame(config, **overrides)
