"""Small worlds for the tests: run one with bound baselines, read one record kind of its log."""

from __future__ import annotations

from payroute.envs.baselines import bound_policies
from payroute.envs.world import PaymentWorld


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
