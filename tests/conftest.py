"""Shared fixtures: small, fast worlds."""

from __future__ import annotations

import pytest

from payroute.envs.baselines import bound_policies
from payroute.envs.scenarios import load_scenario
from payroute.envs.world import PaymentWorld


@pytest.fixture(scope="session")
def default_scenario():
    return load_scenario("default")


@pytest.fixture(scope="session")
def small_scenario():
    """The default scenario at 5% volume: a day runs in a fraction of a second."""
    return load_scenario("default", {"volume_scale": 0.05})


def run_world(scenario, seed=0, days=1.0, log=None, **names):
    world = PaymentWorld(scenario, seed=seed, policies=bound_policies(**names), days=days, log=log)
    world.run()
    return world


def log_rows(log, record: str):
    """The rows of one record kind of an :class:`EventLog` (or a table read from Parquet) as a DataFrame.

    Filtering before the conversion keeps each kind's columns in their own type (ints stay ints).
    """
    import pyarrow.compute as pc

    table = log if hasattr(log, "filter") else log.table()
    return table.filter(pc.equal(table["record"], record)).to_pandas()
