"""`payroute train --resume`: a run killed after a checkpoint, resumed, is the run that was killed.

A tiny experiment (a 2% volume day, one local env runner, 1,200 steps an iteration: a simulated day spans
two iterations, so the checkpoint falls mid-episode) runs four iterations without a break; the same experiment
is killed with SIGKILL during iteration 3 (after checkpoint 2, with iteration 3's metrics row already written)
and resumed. Iterations 3 and 4 of the resumed run must equal the uninterrupted run's, and so must its final
policy. The comparison is exact: the same operations in the same order on the same machine with single-threaded
torch give the same bits, so any difference, however small, is state the checkpoint failed to restore.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from payroute.agents.networks import load_policy
from payroute.experiments.rundir import latest_checkpoint, read_run
from payroute.experiments.runner import train
from tests.helpers.experiments import tiny_experiment, write_experiment

pytestmark = pytest.mark.slow

ITERATIONS, KILLED_IN = 4, 3
REPO = Path(__file__).resolve().parents[3]

# kill -9 of the trainer and the Ray processes it started, from inside iteration KILLED_IN: checkpoint
# KILLED_IN - 1 is complete, iteration KILLED_IN's metrics row is written and its checkpoint is not
_KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from payroute.experiments.runner import train

def kill(report):
    if report.iteration == int(sys.argv[3]):
        os.killpg(os.getpgid(0), signal.SIGKILL)

train(Path(sys.argv[1]), runs_root=Path(sys.argv[2]), progress=False, on_iteration=kill)
"""


_WHOLE_RUN = """
import sys
from pathlib import Path
from payroute.experiments.runner import train

train(Path(sys.argv[1]), runs_root=Path(sys.argv[2]), progress=False)
"""


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _numbers(row: dict) -> dict[str, float]:
    """What an iteration computed: KPIs, returns, the learner's losses and statistics, the step count."""
    keep = ("kpi/", "kpi_running/", "agent/", "rllib/learners/", "rllib/env_runners/")
    return {k: v for k, v in row.items() if k.startswith(keep) or k in ("iteration", "env_steps")}


def _same_policy(a: Path, b: Path) -> bool:
    x, y = load_policy(a), load_policy(b)
    return all(torch.equal(p, q) for p, q in zip(x.parameters(), y.parameters(), strict=True))


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    data = tiny_experiment("resumed", stopping={"iterations": ITERATIONS})
    return write_experiment(tmp_path_factory.mktemp("exp"), data)


@pytest.fixture(scope="module")
def whole_run(experiment, tmp_path_factory) -> Path:
    return train(experiment, runs_root=tmp_path_factory.mktemp("whole"), progress=False)


def _killed(experiment: Path, name: str, runs: Path, hash_seed: int | None = None) -> Path:
    """The run folder of ``experiment`` killed with SIGKILL in iteration KILLED_IN (in a process whose string
    hashes are seeded with ``hash_seed`` when given)."""
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN, str(experiment), str(runs), str(KILLED_IN)],
        cwd=REPO, start_new_session=True, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONHASHSEED": str(hash_seed)} if hash_seed is not None else None,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    (run_dir,) = (runs / name).iterdir()
    assert read_run(run_dir)[1]["status"] == "running"
    assert latest_checkpoint(run_dir)[1]["iteration"] == KILLED_IN - 1
    assert [r["iteration"] for r in _rows(run_dir)] == list(range(1, KILLED_IN + 1))
    return run_dir


def _assert_same_iterations(resumed_dir: Path, whole_dir: Path) -> list[dict[str, float]]:
    """Every iteration of the resumed run equals the uninterrupted run's; the ones after the checkpoint."""
    resumed, whole = _rows(resumed_dir), _rows(whole_dir)
    assert [r["iteration"] for r in resumed] == list(range(1, ITERATIONS + 1))
    for mine, theirs in zip(resumed, whole, strict=True):
        assert _numbers(mine) == _numbers(theirs), f"iteration {theirs['iteration']} differs"
    return [_numbers(r) for r in resumed[KILLED_IN - 1 :]]


def test_a_run_killed_after_a_checkpoint_resumes_into_the_run_it_would_have_been(
    experiment, whole_run, tmp_path
):
    run_dir = _killed(experiment, "resumed", tmp_path / "runs")
    exp_before = read_run(run_dir)[0]

    train(resume=run_dir, progress=False)

    exp_after, record = read_run(run_dir)
    assert record["status"] == "finished" and record["iterations"] == ITERATIONS
    # the same run: its own config, hash and name, and the resume recorded with where it started from
    assert exp_after.config_hash() == exp_before.config_hash() == record["config_hash"]
    assert exp_after.name == "resumed"
    assert record["resumes"][0]["from_iteration"] == KILLED_IN - 1
    after = _assert_same_iterations(run_dir, whole_run)
    # the iterations after the checkpoint include a finished day's KPIs and the learner's losses
    assert any("kpi/margin_per_tx_usd" in r for r in after)
    assert all("rllib/learners/router/policy_loss" in r for r in after)
    assert _same_policy(run_dir / "policy" / "router", whole_run / "policy" / "router")


@pytest.mark.slow(minutes=2)
def test_a_multi_agent_run_killed_after_a_checkpoint_resumes_into_the_run_it_would_have_been(tmp_path):
    """The ecosystem with a risk desk and a fraudster learning (experiments/risk_vs_fraudster.yaml in small):
    a 2% day of about 2,000 risk decisions and 24 fraud periods spans two iterations of 1,200 steps, so the
    checkpoint falls mid-day; the resumed run replays the day under way and draws the same next worlds."""
    data = tiny_experiment("resumed_ma", stopping={"iterations": ITERATIONS})
    data["env"] = {"id": "payroute.envs.multi_agent.ecosystem:PaymentEcosystemEnv", "kpi_every_steps": 0}
    data["agents"] = {"learn": ["risk", "fraudster"], "baselines": {"router": "cheapest"}}
    experiment = write_experiment(tmp_path, data)
    # the uninterrupted run and the killed one in processes whose string hashes order {risk, fraudster}
    # differently (PYTHONHASHSEED 3 and 4): the same seed gives the same numbers whatever a set's order
    whole = subprocess.run(
        [sys.executable, "-c", _WHOLE_RUN, str(experiment), str(tmp_path / "whole")],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONHASHSEED": "3"},
    )  # fmt: skip
    assert whole.returncode == 0, whole.stderr[-2000:]
    (whole_run,) = (tmp_path / "whole" / "resumed_ma").iterdir()

    run_dir = _killed(experiment, "resumed_ma", tmp_path / "runs", hash_seed=4)
    train(resume=run_dir, progress=False)

    _exp, record = read_run(run_dir)
    assert record["status"] == "finished" and record["iterations"] == ITERATIONS
    after = _assert_same_iterations(run_dir, whole_run)
    assert any("kpi/margin_per_tx_usd" in r for r in after)
    for role in ("risk", "fraudster"):
        assert all(f"rllib/learners/{role}/policy_loss" in r for r in after)
        assert any(f"agent/{role}/episode_return" in r for r in after)
        assert _same_policy(run_dir / "policy" / role, whole_run / "policy" / role)


def test_resume_of_a_finished_run_says_it_is_finished_and_changes_nothing(whole_run, tmp_path):
    from payroute.experiments.cli import app

    run = tmp_path / whole_run.name
    shutil.copytree(whole_run, run)
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"is finished (reached {ITERATIONS} iterations at iteration {ITERATIONS}); nothing to resume" in (
        " ".join(result.output.split())
    )
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before


def test_a_run_killed_after_its_final_checkpoint_is_closed_from_it_without_training(whole_run, tmp_path):
    run = tmp_path / whole_run.name
    shutil.copytree(whole_run, run)
    record = json.loads((run / "run.json").read_text())
    for key in ("finished_utc", "stop_reason", "iterations", "env_steps", "train_wall_s", "final_scalars"):
        record.pop(key)
    (run / "run.json").write_text(json.dumps({**record, "status": "running"}))
    shutil.rmtree(run / "policy")
    rows = (run / "metrics.jsonl").read_text()
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())

    train(resume=run, progress=False)

    _exp, closed = read_run(run)
    assert closed["status"] == "finished" and closed["iterations"] == ITERATIONS
    assert closed["stop_reason"] == f"reached {ITERATIONS} iterations"
    assert (run / "metrics.jsonl").read_text() == rows  # no iteration past stopping.iterations
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == checkpoints
    assert _same_policy(run / "policy" / "router", whole_run / "policy" / "router")
