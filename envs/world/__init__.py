"""The SimPy payment world: calendar, demand, rails, ledger and liquidity, fraud, outcomes, event log."""

from payroute.envs.world.decisions import DECISION_KINDS, DecisionPoint, FraudAction, TreasuryAction
from payroute.envs.world.eventlog import LOG_COLUMNS, LOG_SCHEMA_VERSION, EventLog, read_log
from payroute.envs.world.world import HEADLINE_KPIS, TERMINAL_STATES, InvalidActionError, PaymentWorld

__all__ = [
    "DECISION_KINDS",
    "HEADLINE_KPIS",
    "LOG_COLUMNS",
    "LOG_SCHEMA_VERSION",
    "TERMINAL_STATES",
    "DecisionPoint",
    "EventLog",
    "FraudAction",
    "InvalidActionError",
    "PaymentWorld",
    "TreasuryAction",
    "read_log",
]
