"""`payroute baselines --retries`: the scenario's retries turned on, and the retry routers in the comparison."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from payroute.experiments.cli import app
from payroute.policies.compare import RETRY_BASELINE_ORDER, ROUTING_BASELINE_ORDER, baseline_order

runner = CliRunner()
ARGS = ["baselines", "default", "--seeds", "2", "--volume-scale", "0.05", "--days", "0.25", "--json"]


def test_baselines_with_retries_compare_the_retry_routers_too():
    result = runner.invoke(app, [*ARGS, "--retries"])
    assert result.exit_code == 0, result.output
    rows = {r["policy"]: r for r in json.loads(result.stdout)}
    assert list(rows) == list(baseline_order(True))
    assert set(RETRY_BASELINE_ORDER) <= set(rows) and set(ROUTING_BASELINE_ORDER) <= set(rows)
    # no_retry gives up on every retry: success_rate's numbers; a cascade approves more on the same customers
    assert rows["no_retry"]["approval_rate"] == rows["success_rate"]["approval_rate"]
    assert rows["sr_cascade"]["approval_rate"] > rows["no_retry"]["approval_rate"]


def test_baselines_without_retries_keep_their_list():
    result = runner.invoke(app, [*ARGS, "--policies", "cheapest,static_cascade,priority"])
    assert result.exit_code == 0, result.output
    rows = {r["policy"]: r for r in json.loads(result.stdout)}
    # retries off: the static cascade is the priority list
    assert rows["static_cascade"]["approval_rate"] == rows["priority"]["approval_rate"]
