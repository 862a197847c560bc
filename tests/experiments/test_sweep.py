"""`payroute sweep`: a search space in the YAML, Ray Tune trials as ordinary runs, the best one reported."""

from __future__ import annotations

import math

import pytest

from payroute.experiments.rundir import read_run
from payroute.experiments.sweep import sweep
from tests.helpers.experiments import tiny_experiment, write_experiment

pytestmark = pytest.mark.slow


def test_sweep_runs_each_trial_as_a_run_and_reports_the_best_run_folder(tmp_path):
    data = tiny_experiment("tiny_sweep", stopping={"iterations": 2})
    data["sweep"] = {
        "space": {"trainer.hyperparameters.lr": {"choice": [0.0001, 0.003]}},
        "num_samples": 2,
        "metric": "margin_per_tx_usd",
        "mode": "max",
    }
    result = sweep(write_experiment(tmp_path, data), runs_root=tmp_path / "runs")
    assert len(result.trials) == 2 and result.trials["error"].isna().all()
    assert set(result.trials["trainer.hyperparameters.lr"]) <= {0.0001, 0.003}
    values = result.trials.set_index("run_dir")["margin_per_tx_usd"]
    assert result.best_value == max(values) and not math.isnan(result.best_value)
    exp, record = read_run(result.best_run_dir)
    assert record["status"] == "finished"
    assert (
        exp.trainer.hyperparameters.lr
        == result.trials.set_index("run_dir").loc[str(result.best_run_dir), "trainer.hyperparameters.lr"]
    )
    assert result.best_run_dir.parent == (tmp_path / "runs" / "tiny_sweep").resolve()


def test_sweep_needs_a_search_space(tmp_path):
    from payroute.errors import PayrouteError

    with pytest.raises(PayrouteError, match="no 'sweep' section"):
        sweep(write_experiment(tmp_path, tiny_experiment("nospace")), runs_root=tmp_path / "runs")
