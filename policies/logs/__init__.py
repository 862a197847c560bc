"""Logged decisions: recording what a policy saw in the world, and reading a log back for off-policy evaluation.

- :mod:`~payroute.policies.logs.recording`: the event log with the routing observation of every decision;
- :mod:`~payroute.policies.logs.reading`: reading and checking a log (:func:`read_logged_decisions`) and the
  log schema's documentation (``python -m payroute.policies.logs docs/log_schema.md``);
- :mod:`~payroute.policies.logs.sequences`: a log made with retries on, each payment's several routing decisions
  (:func:`read_logged_sequences`);
- :mod:`~payroute.policies.logs.csv_log`: a log kept as CSV, read as the schema's types.
"""

from payroute.policies.logs.reading import (
    OBS_PREFIX,
    REQUIRED_COLUMNS,
    FraudLabels,
    LoggedDecisions,
    context_features,
    log_columns_table,
    read_logged_decisions,
    render_log_schema,
    route_loss_classes,
    write_log_schema,
)
from payroute.policies.logs.recording import ObservationLog, RecordingRoute
from payroute.policies.logs.sequences import LoggedSequences, continuation_weights, read_logged_sequences

__all__ = [
    "OBS_PREFIX",
    "REQUIRED_COLUMNS",
    "FraudLabels",
    "LoggedDecisions",
    "LoggedSequences",
    "ObservationLog",
    "RecordingRoute",
    "context_features",
    "continuation_weights",
    "log_columns_table",
    "read_logged_decisions",
    "read_logged_sequences",
    "render_log_schema",
    "route_loss_classes",
    "write_log_schema",
]
