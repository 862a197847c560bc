"""The SimPy payment world: calendar, demand, rails, ledger and liquidity, fraud, outcomes, event log."""

from payroute.envs.world.decisions import DecisionPoint, FraudAction, InvalidActionError, TreasuryAction
from payroute.envs.world.eventlog import LOG_COLUMNS, LOG_SCHEMA_VERSION, EventLog, read_log
from payroute.envs.world.world import PaymentWorld

__all__ = [
    "LOG_COLUMNS",
    "LOG_SCHEMA_VERSION",
    "DecisionPoint",
    "EventLog",
    "FraudAction",
    "InvalidActionError",
    "PaymentWorld",
    "TreasuryAction",
    "read_log",
]
