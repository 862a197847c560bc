"""Baseline banks for the RTGS liquidity game (:mod:`payroute.envs.rtgs`).

Each implements ``decide(game, observation) -> (action, propensity)``: the grid index to play, given the
bank's own observation (step 0: liquidity to post; later steps: share of what it owes to release).

==================  =========================================================================
name                what the bank does
==================  =========================================================================
``post_all``        posts all its collateral, releases everything it owes every period
``post_nothing``    posts nothing; releases everything every period (pays only with receipts)
``release_all``     posts a fixed share of collateral (``post_share``), releases everything
``free_rider``      posts nothing and holds every payment until the last period
==================  =========================================================================

:func:`play_day` runs one day with a baseline (or any object with ``decide``) per bank and returns each bank's
cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _nearest(grid: tuple[float, ...], share: float) -> int:
    return int(np.argmin(np.abs(np.asarray(grid) - share)))


class FixedShareBank:
    """Posts ``post_share`` of its collateral; releases ``release_share`` of what it owes, in the last period
    everything (``release_share`` applies to the periods before)."""

    kind = "rtgs"

    def __init__(self, post_share: float, release_share: float = 1.0) -> None:
        if not (0.0 <= post_share <= 1.0 and 0.0 <= release_share <= 1.0):
            raise ValueError(f"shares must be in [0, 1], got post {post_share}, release {release_share}")
        self.post_share = post_share
        self.release_share = release_share

    def decide(self, game: Any, observation: np.ndarray) -> tuple[int, float]:
        grid = game.config.grid
        if observation[0] > 0.5:  # morning: post
            return _nearest(grid, self.post_share), 1.0
        last = observation[1] >= 1.0 - 1e-9
        return _nearest(grid, 1.0 if last else self.release_share), 1.0


class PostAllBank(FixedShareBank):
    """Posts all its collateral and releases everything at once."""

    def __init__(self) -> None:
        super().__init__(post_share=1.0)


class PostNothingBank(FixedShareBank):
    """Posts nothing and releases everything it can (it pays only with what it receives)."""

    def __init__(self) -> None:
        super().__init__(post_share=0.0)


class ReleaseAllBank(FixedShareBank):
    """Posts ``post_share`` of its collateral (default half) and releases everything every period."""

    def __init__(self, post_share: float = 0.5) -> None:
        super().__init__(post_share=post_share)


class FreeRiderBank(FixedShareBank):
    """Posts nothing and holds every payment until the last period, living off the others' liquidity."""

    def __init__(self) -> None:
        super().__init__(post_share=0.0, release_share=0.0)


RTGS_BASELINES = {
    "post_all": PostAllBank,
    "post_nothing": PostNothingBank,
    "release_all": ReleaseAllBank,
    "free_rider": FreeRiderBank,
}


def play_day(game: Any, banks: dict[str, Any], seed: int | None = None) -> dict[str, float]:
    """Play one day of ``game`` with ``banks[agent].decide``; returns each bank's cost for the day in dollars."""
    missing = sorted(set(game.possible_agents) - set(banks))
    if missing:
        raise ValueError(f"no policy for {missing}")
    obs, _ = game.reset(seed=seed)
    cost = dict.fromkeys(game.possible_agents, 0.0)
    while game.agents:
        actions = {a: banks[a].decide(game, obs[a])[0] for a in game.agents}
        obs, rewards, _, _, _ = game.step(actions)
        for a, r in rewards.items():
            cost[a] -= r
    return cost
