"""The RTGS liquidity game: banks post liquidity in the morning and choose, period by period, how much to pay
(:mod:`payroute.envs.rtgs.game`, the manual), and its configuration (:mod:`payroute.envs.rtgs.config`). Its
non-learning banks live with the other baselines, in :mod:`payroute.envs.baselines.rtgs`.
"""

from payroute.envs.rtgs.config import (
    DEFAULT_GRID,
    OBSERVATION_NAMES,
    OBSERVATION_UNITS,
    CsvDemand,
    FixedDemand,
    RandomDemand,
    RTGSConfig,
    deterministic_two_period_config,
    load_rtgs_config,
    read_demand_csv,
)
from payroute.envs.rtgs.game import RTGSLiquidityGame, parallel_env

__all__ = [
    "DEFAULT_GRID",
    "OBSERVATION_NAMES",
    "OBSERVATION_UNITS",
    "CsvDemand",
    "FixedDemand",
    "RTGSConfig",
    "RTGSLiquidityGame",
    "RandomDemand",
    "deterministic_two_period_config",
    "load_rtgs_config",
    "parallel_env",
    "read_demand_csv",
]
