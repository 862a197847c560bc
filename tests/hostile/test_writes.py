"""Hostile and careless output: a killed writer, paths that cannot be written, run names that leave ``--runs``.

Each case ends in exit 0 with the files asked for, or exit 2 with one line naming the option (or field) and the
path, before any simulation, review or training runs; a killed or failed writer leaves the previous complete file
and no temporary file in the user's folders once the next write is done.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import payroute.experiments.simulate as simulate_module
import payroute.policies.review as review_module
from payroute.envs.world import PaymentWorld
from payroute.errors import ConfigError, PayrouteError
from payroute.experiments import runner as runner_module
from payroute.experiments.cli import app
from payroute.experiments.rundir import (
    CHECKPOINT_DIR,
    LATEST_FILE,
    RUN_FILE,
    create_run_dir,
    latest_checkpoint,
    read_metrics,
    read_run,
)
from payroute.experiments.schema import experiment_from_dict
from payroute.experiments.simulate import run_simulation
from payroute.files import PARTIAL, atomic_folder, atomic_path, atomic_write_text
from tests.helpers.experiments import tiny, tiny_experiment, write_experiment

runner = CliRunner()
WAIT_S = 180  # the most a subprocess may take to reach the point where it is killed (not a timing assertion)


@pytest.fixture
def small_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "scenarios" / "small.yaml"
    path.parent.mkdir()
    path.write_text("name: small\nbase: default\noverrides:\n  volume_scale: 0.03\n")
    return path


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if PARTIAL in p.name)


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return " ".join(result.stderr.split())


def _not_called(what: str):
    def refuse(*_args, **_kwargs):
        raise AssertionError(f"{what} ran although an output path was bad")

    return refuse


# ---------------------------------------------------------------------------- a killed or failing writer
KILLED_SIMULATE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from payroute.envs.world import eventlog

    marker = Path(sys.argv[1])
    write = eventlog.EventLog._write

    def write_then_hang(self):  # the log's first rows are in the file being written: wait here to be killed
        write(self)
        if self._writer is not None:
            marker.write_text("writing")
            time.sleep(600)

    eventlog.EventLog._write = write_then_hang
    from payroute.experiments.cli import app

    app(sys.argv[2:])
    """
)


def _wait_for(proc: subprocess.Popen, marker: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the writer ended (exit {proc.returncode}) before it was killed")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the writer never reached the point where it is killed")
        time.sleep(0.05)


def test_kill_9_while_simulate_writes_its_log_leaves_the_earlier_complete_log(tmp_path, small_yaml):
    log = tmp_path / "out" / "day.parquet"
    first = runner.invoke(app, ["simulate", str(small_yaml), "--days", "0.2", "--log", str(log), "--json"])
    assert first.exit_code == 0, first.output
    before = log.read_bytes()
    rows_before = pq.read_table(log).num_rows

    marker = tmp_path / "writing"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_SIMULATE, str(marker), "simulate", str(small_yaml), "--days", "0.3",
         "--seed", "7", "--log", str(log), "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_for(proc, marker)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert log.read_bytes() == before  # the complete log of the earlier run, byte for byte
    assert pq.read_table(log).num_rows == rows_before
    assert _partials(log.parent)  # it was killed mid-write: its unfinished file is beside the log

    again = runner.invoke(
        app, ["simulate", str(small_yaml), "--days", "0.3", "--seed", "7", "--log", str(log)]
    )
    assert again.exit_code == 0, again.output
    assert pq.read_table(log).num_rows != rows_before
    assert _partials(log.parent) == []  # the killed process's file is cleaned up by the next write


def test_a_simulation_that_fails_midway_leaves_the_earlier_log_and_no_temporary_file(
    tmp_path, small_yaml, monkeypatch
):
    log = tmp_path / "day.parquet"
    run_simulation(small_yaml, days=0.2, log_path=log)
    before = log.read_bytes()

    class FailsAtNoon(PaymentWorld):
        def run(self, until=None):
            super().run(self.horizon_s / 2)
            raise RuntimeError("the machine ran out of memory at noon")

    monkeypatch.setattr(simulate_module, "PaymentWorld", FailsAtNoon)
    # rows reach the file being written before the failure
    monkeypatch.setattr("payroute.envs.world.eventlog.GROUP_ROWS", 64)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_simulation(small_yaml, days=0.2, seed=3, log_path=log)
    assert log.read_bytes() == before
    assert _tree(tmp_path) == ["day.parquet", "scenarios", "scenarios/small.yaml"]


KILLED_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from payroute.files import atomic_path

    with atomic_path(Path(sys.argv[1])) as tmp:
        tmp.write_text('{"verdict": "PASS", "checks": [')  # half of the new report
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_kill_9_mid_write_of_a_report_leaves_the_previous_report(tmp_path):
    report = tmp_path / "summary.json"
    atomic_write_text(report, json.dumps({"verdict": "FAIL"}) + "\n")
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITE, str(report)], capture_output=True, timeout=WAIT_S
    )
    assert proc.returncode == -signal.SIGKILL
    assert json.loads(report.read_text()) == {"verdict": "FAIL"}
    assert len(_partials(tmp_path)) == 1  # the half-written one, never at the report's path
    atomic_write_text(report, json.dumps({"verdict": "PASS"}))
    assert json.loads(report.read_text()) == {"verdict": "PASS"}
    assert _partials(tmp_path) == []


def test_an_error_while_writing_a_file_keeps_the_old_one_and_says_which_file(tmp_path):
    target = tmp_path / "runs.parquet"
    target.write_bytes(b"complete")
    with pytest.raises(ZeroDivisionError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        _ = 1 / 0
    assert target.read_bytes() == b"complete"
    with pytest.raises(PayrouteError, match="could not write .*runs.parquet"), atomic_path(target) as tmp:
        raise OSError(28, "No space left on device")
    assert target.read_bytes() == b"complete" and _partials(tmp_path) == []


def test_a_folder_that_fails_at_its_last_step_is_not_left_half_made(tmp_path, monkeypatch):
    """A bundle or checkpoint folder appears whole (every file written and synced) or not at all."""
    import payroute.files as files

    def disk_error(path):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(files, "_fsync_file", disk_error)
    with (
        pytest.raises(PayrouteError, match="could not write .*bundle"),
        atomic_folder(tmp_path / "bundle") as d,
    ):
        (d / "policy.onnx").write_bytes(b"onnx")
        (d / "card.json").write_text("{}")
    assert _tree(tmp_path) == []


def test_an_existing_bundle_is_never_replaced_by_a_new_export(tmp_path):
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "card.json").write_text("{}")
    with pytest.raises(PayrouteError, match="already exists"), atomic_folder(tmp_path / "bundle") as d:
        (d / "card.json").write_text('{"new": true}')
    assert (tmp_path / "bundle" / "card.json").read_text() == "{}"
    assert _partials(tmp_path) == []


# ---------------------------------------------------------------------------- output paths checked first
def _file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("a file, not a folder")
    return path


@pytest.mark.parametrize(
    "option, where, says",
    [
        ("--report", lambda t: t, "is a folder"),
        ("--json", lambda t: t, "is a folder"),
        ("--report", lambda t: _file(t) / "report.html", "is a file, not a folder"),
        ("--json", lambda t: _file(t) / "deeper" / "summary.json", "is a file, not a folder"),
    ],
)
def test_review_refuses_a_bad_output_path_before_it_reviews(tmp_path, monkeypatch, option, where, says):
    monkeypatch.setattr(review_module, "review_bundle", _not_called("the review"))
    path = where(tmp_path)
    result = runner.invoke(app, ["review", str(tmp_path / "any_bundle"), option, str(path)])
    message = _one_line_error(result)
    assert option in message and str(path) in message and says in message


@pytest.mark.parametrize(
    "args, option",
    [
        (["simulate", "default", "--log", "{file}/day.parquet"], "--log"),
        (["simulate", "default", "--log", "{dir}"], "--log"),
        (["baselines", "default", "--out", "{dir}"], "--out"),
        (["baselines", "default", "--out", "{file}/runs.parquet"], "--out"),
        (["evaluate", "{dir}/run", "--out", "{file}"], "--out"),
        (["export", "{dir}/run", "--out", "{file}/bundle"], "--out"),
        (["export", "{dir}/run", "--out", "{file}/bundle.zip"], "--out"),
        (["train", "quickstart", "--runs", "{file}"], "--runs"),
        (["run", "--runs", "{file}/runs"], "--runs"),
        (["calibrate", "{file}", "--out", "{dir}"], "--out"),
        (["calibrate", "{file}", "--out", "{file}/fitted.yaml"], "--out"),
    ],
)
def test_a_bad_output_path_is_refused_before_any_work(tmp_path, monkeypatch, args, option):
    monkeypatch.setattr(simulate_module, "run_simulation", _not_called("the simulation"))
    monkeypatch.setattr("payroute.envs.calibration.calibrate", _not_called("the fit"))
    monkeypatch.setattr("payroute.policies.compare.run_paired", _not_called("the baselines"))
    monkeypatch.setattr(runner_module, "make_trainer", _not_called("training"))
    monkeypatch.setattr(runner_module, "_train", _not_called("training"))
    file = _file(tmp_path)
    argv = [a.format(file=file, dir=tmp_path) for a in args]
    before = _tree(tmp_path)
    message = _one_line_error(runner.invoke(app, argv))
    assert option in message and str(tmp_path) in message
    assert _tree(tmp_path) == before  # nothing made, not even a parent folder


def test_a_folder_that_cannot_be_written_is_refused_before_the_simulation(tmp_path, monkeypatch):
    monkeypatch.setattr(simulate_module, "run_simulation", _not_called("the simulation"))
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root may write anywhere: ask as a user would be answered
        import payroute.files as files

        real = os.access
        monkeypatch.setattr(files.os, "access", lambda p, mode: False if Path(p) == locked else real(p, mode))
    try:
        message = _one_line_error(
            runner.invoke(app, ["simulate", "default", "--log", str(locked / "d.parquet")])
        )
    finally:
        locked.chmod(0o700)
    assert "--log" in message and "not writable" in message and str(locked) in message


def test_a_missing_parent_folder_is_made_and_nothing_is_written_elsewhere(tmp_path, small_yaml, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    log = tmp_path / "new" / "deeper" / "day.parquet"
    result = runner.invoke(app, ["simulate", str(small_yaml), "--days", "0.1", "--log", str(log), "--json"])
    assert result.exit_code == 0, result.output
    assert pq.read_table(log).num_rows > 0
    assert _tree(tmp_path) == [
        "cwd", "new", "new/deeper", "new/deeper/day.parquet", "scenarios", "scenarios/small.yaml"
    ]  # fmt: skip


def test_review_json_can_go_to_a_terminal_or_pipe_that_cannot_be_renamed(tmp_path):
    """``--json /dev/stdout``: a target that is not a regular file is written straight into."""
    with atomic_path(Path("/dev/null")) as target:
        assert target == Path("/dev/null")
        target.write_text("{}")
    assert Path("/dev/null").exists()


# ---------------------------------------------------------------------------- run names and run-folder state
@pytest.mark.parametrize(
    "name", ["..", ".", "../../etc", "/tmp/elsewhere", "a/b", "a\\b", ".hidden", "-rf", ""]
)
def test_an_experiment_name_that_could_leave_runs_is_refused_at_load(name):
    with pytest.raises(ConfigError) as err:
        experiment_from_dict(tiny_experiment(name=name))
    assert "name = " in str(err.value) and repr(name) in str(err.value)


def test_the_cli_refuses_an_experiment_named_dot_dot_naming_the_file_and_field(tmp_path):
    path = write_experiment(tmp_path, {**tiny_experiment(), "name": ".."})
    message = _one_line_error(runner.invoke(app, ["train", str(path), "--runs", str(tmp_path / "runs")]))
    assert str(path) in message and "name = '..'" in message
    assert not (tmp_path / "runs").exists()


def test_a_run_folder_is_never_made_outside_runs_even_through_a_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "tiny").symlink_to(outside)
    with pytest.raises(PayrouteError, match="not inside"):
        create_run_dir(tiny(), runs, argv=["test"])
    assert list(outside.iterdir()) == []
    forged = tiny().model_copy(update={"name": ".."})  # past validation, as a library caller could
    with pytest.raises(PayrouteError, match="not inside"):
        create_run_dir(forged, runs / "sub", argv=["test"])
    assert _tree(tmp_path) == ["outside", "runs", "runs/tiny"]


def _run_folder(tmp_path: Path) -> Path:
    run_dir = create_run_dir(tiny(), tmp_path / "runs", argv=["test"])
    (run_dir / CHECKPOINT_DIR / "iter_000002").mkdir(parents=True)
    return run_dir


@pytest.mark.parametrize(
    "latest",
    [
        '{"iteration": 2, "pa',  # torn by a kill
        "",
        "[1, 2]",
        '{"iteration": 2}',
        '{"iteration": "2", "path": "iter_000002"}',
        '{"iteration": 2, "path": ".."}',
        '{"iteration": 2, "path": "../../../etc"}',
        '{"iteration": 2, "path": "iter_000009"}',
        b"\xff\xfe{}",
    ],
)
def test_a_torn_or_forged_latest_json_is_a_short_error_naming_it(tmp_path, latest):
    run_dir = _run_folder(tmp_path)
    path = run_dir / CHECKPOINT_DIR / LATEST_FILE
    path.write_bytes(latest if isinstance(latest, bytes) else latest.encode())
    with pytest.raises(PayrouteError) as err:
        latest_checkpoint(run_dir)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_resume_with_a_truncated_latest_json_exits_2_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_module, "make_trainer", _not_called("training"))
    run_dir = _run_folder(tmp_path)
    latest = run_dir / CHECKPOINT_DIR / LATEST_FILE
    latest.write_text('{"iteration": 2, "path": "iter_0')
    message = _one_line_error(runner.invoke(app, ["train", "--resume", str(run_dir)]))
    assert str(latest) in message
    assert json.loads((run_dir / RUN_FILE).read_text())["status"] == "running"  # untouched: it did not resume


def test_a_torn_run_json_is_a_short_error_naming_it(tmp_path):
    run_dir = _run_folder(tmp_path)
    (run_dir / RUN_FILE).write_text('{"experiment": "tiny", "config_')
    with pytest.raises(PayrouteError, match=RUN_FILE):
        read_run(run_dir)


def test_a_metrics_line_torn_by_a_kill_is_dropped_and_a_corrupt_one_named(tmp_path):
    run_dir = _run_folder(tmp_path)
    metrics = run_dir / "metrics.jsonl"
    metrics.write_text('{"iteration": 1, "env_steps": 10}\n{"iteration": 2, "env_st')
    assert read_metrics(run_dir) == [{"iteration": 1, "env_steps": 10}]
    metrics.write_text('{"iteration": 1\n{"iteration": 2, "env_steps": 20}\n')
    with pytest.raises(PayrouteError, match="metrics.jsonl: line 1"):
        read_metrics(run_dir)


def test_a_bad_train_scenarios_entry_makes_no_run_folder(tmp_path):
    exp = write_experiment(tmp_path, tiny_experiment(train_scenarios={"default": 1.0, "nowhere.yaml": 1.0}))
    runs = tmp_path / "runs"
    message = _one_line_error(runner.invoke(app, ["train", str(exp), "--runs", str(runs)]))
    assert "nowhere.yaml" in message
    assert not runs.exists()


def test_a_run_that_fails_after_its_folder_is_made_is_marked_failed_with_the_reason(tmp_path, monkeypatch):
    def broken_trainer(*_args, **_kwargs):
        raise RuntimeError("no GPU on this machine")

    monkeypatch.setattr(runner_module, "make_trainer", broken_trainer)
    with pytest.raises(RuntimeError):
        runner_module.train(tiny(), runs_root=tmp_path / "runs", argv=["test"], progress=False)
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    record = json.loads((run_dir / RUN_FILE).read_text())
    assert record["status"] == "failed"
    assert record["error"] == "RuntimeError: no GPU on this machine"
