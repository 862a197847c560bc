"""Same scenario, seed and policy: the same bytes. Another policy on the same seed: the same customers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from payroute.envs.baselines import bound_policies
from payroute.envs.scenarios import load_scenario
from payroute.envs.world import EventLog, PaymentWorld, read_log
from payroute.experiments.simulate import run_simulation
from tests.helpers.worlds import log_rows

DEMAND_COLUMNS = [
    "tx_id", "t_arrival", "amount_cents", "currency", "cross_border", "segment", "merchant_category",
    "instrument", "network", "foreign_card", "urgency", "deadline_t", "is_fraud", "fraud_pattern", "risk_score",
]  # fmt: skip


@pytest.fixture
def small_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(
        "name: small\nbase: default\ndescription: default at 3% volume\noverrides: {volume_scale: 0.03}\n"
    )
    return path


def _logged(scenario, seed: int, path: Path | None = None, days: float = 1.0, **names):
    log = EventLog(path)
    world = PaymentWorld(scenario, seed=seed, policies=bound_policies(**names), days=days, log=log)
    world.run()
    log.close()
    return world, (read_log(path) if path is not None else log.table())


def test_two_runs_in_one_process_write_byte_identical_logs(tmp_path, small_scenario):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    wa, _ = _logged(small_scenario, 7, a, route="fastest")
    wb, _ = _logged(small_scenario, 7, b, route="fastest")
    assert a.read_bytes() == b.read_bytes()
    assert wa.summary() == wb.summary()
    assert wa.ledger.balances == wb.ledger.balances
    c = tmp_path / "c.parquet"
    _logged(small_scenario, 8, c, route="fastest")
    assert c.read_bytes() != a.read_bytes(), "another seed must give another log"


def test_two_processes_write_byte_identical_logs(tmp_path, small_yaml):
    """The CLI in two fresh interpreters, with different hash seeds, and once in this process."""
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"cli-{hash_seed}.parquet"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        cmd = [sys.executable, "-m", "payroute.experiments.cli", "simulate", str(small_yaml), "--policy", "priority",
               "--seed", "5", "--days", "0.5", "--log", str(out), "--json"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        summary.pop("wall_s"), summary.pop("log")
        outputs.append((out.read_bytes(), summary))
    assert outputs[0][0] == outputs[1][0]
    assert outputs[0][1] == outputs[1][1]
    here = tmp_path / "here.parquet"
    summary = run_simulation(small_yaml, route="priority", seed=5, days=0.5, log_path=here)
    assert here.read_bytes() == outputs[0][0]
    assert summary["arrivals"] == outputs[0][1]["arrivals"] > 100


def test_other_policies_on_the_same_seed_see_the_same_demand(small_scenario):
    """Common random numbers: arrivals, attributes, amounts and hidden fraud truth do not depend on decisions."""
    runs = [
        _logged(small_scenario, 3, route="cheapest", risk="threshold"),
        _logged(small_scenario, 3, route="fastest", risk="allow_all"),
        _logged(small_scenario, 3, route="priority", risk="threshold"),
    ]
    frames = [log_rows(table, "transaction").sort_values("tx_id").reset_index(drop=True) for _, table in runs]
    demand = [f[DEMAND_COLUMNS] for f in frames]
    assert len(demand[0]) == runs[0][0].arrivals > 1000
    assert demand[0].is_fraud.sum() > 10
    for other in demand[1:]:
        assert other.equals(demand[0])
    # the decisions did differ, and so did the outcomes
    assert not frames[0].route.equals(frames[1].route)
    assert not frames[0].state.equals(frames[1].state)


def test_another_seed_draws_other_customers(small_scenario):
    (wa, ta), (wb, tb) = _logged(small_scenario, 1), _logged(small_scenario, 2)
    a, b = log_rows(ta, "transaction"), log_rows(tb, "transaction")
    assert wa.arrivals != wb.arrivals or not a.amount_cents.equals(b.amount_cents)


def test_the_same_demand_holds_with_every_kind_of_scenario(tmp_path):
    sc = load_scenario("liquidity_crunch", {"volume_scale": 0.03})
    (_, ta), (_, tb) = _logged(sc, 9, route="cheapest"), _logged(sc, 9, route="fastest")
    a = log_rows(ta, "transaction").sort_values("tx_id").reset_index(drop=True)
    b = log_rows(tb, "transaction").sort_values("tx_id").reset_index(drop=True)
    assert a[DEMAND_COLUMNS].equals(b[DEMAND_COLUMNS])
    assert not a.state.equals(b.state)
