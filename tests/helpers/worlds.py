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


def write_exploration_log(path, seed: int):
    """A logged day for OPE: `default` at 2% volume, `cheapest` with 10% exploration, decisions logged to ``path``."""
    from payroute.experiments.simulate import run_simulation

    run_simulation(
        "default", route="cheapest", seed=seed, log_path=path, overrides={"volume_scale": 0.02}, explore=0.1
    )
    return path
