"""A run folder: everything needed to reproduce, resume and judge one training run, and nothing else.

``runs/<experiment>/<UTC timestamp>-<config hash>/``:

====================  ==================================================================================
``config.yaml``       the resolved experiment (every default filled in)
``run.json``          config hash, the command, package versions, git commit, host, start time, status
``tb/``               TensorBoard event files (library losses, ``kpi/...``, ``agent/<role>/...``)
``metrics.jsonl``     one JSON line per training iteration (the numbers behind the curves)
``checkpoints/``      ``iter_000010/`` ... and ``latest.json`` naming the newest complete one
``policy/<role>/``    the learned policy network per learning agent (``policy.pt`` + ``policy.json``)
``eval/``             written by ``payroute evaluate``: tables, Parquet, plots
====================  ==================================================================================

Checkpoints are written into a temporary folder and renamed into place, and ``latest.json`` is replaced
atomically after that, so a run killed at any instant (even ``kill -9``) leaves the previous complete
checkpoint named in ``latest.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from payroute.config_io import read_json, read_yaml_mapping
from payroute.errors import PayrouteError
from payroute.experiments.schema import Experiment, experiment_from_dict
from payroute.files import (
    atomic_folder,
    atomic_write_text,
    check_inside,
    check_output_folder,
    remove_stale_partials,
)

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
CHECKPOINT_DIR = "checkpoints"
LATEST_FILE = "latest.json"
TB_DIR = "tb"
POLICY_DIR = "policy"
EVAL_DIR = "eval"
METRICS_FILE = "metrics.jsonl"
PACKAGES = (
    "payroute",
    "ray",
    "torch",
    "stable_baselines3",
    "sb3_contrib",
    "gymnasium",
    "numpy",
    "simpy",
    "pydantic",
    "tensorboard",
)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit() -> dict[str, Any]:
    """The commit of the payroute source tree (and whether it had uncommitted changes), if it is a git checkout."""
    src = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return {"commit": None}
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}


def create_run_dir(exp: Experiment, root: Path, argv: list[str] | None = None) -> Path:
    """A fresh run folder with the resolved config and the run record."""
    config_hash = exp.config_hash()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    check_output_folder(root, "--runs")
    run_dir = check_inside(root, Path(root) / exp.name / f"{stamp}-{config_hash[:12]}", "the run folder")
    run_dir.mkdir(parents=True, exist_ok=False)
    atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(exp.resolved(), sort_keys=False, width=110))
    record = {
        "experiment": exp.name,
        "config_hash": config_hash,
        "command": " ".join(argv if argv is not None else sys.argv),
        "argv": list(argv if argv is not None else sys.argv),
        "cwd": os.getcwd(),
        "started_utc": dt.datetime.now(dt.UTC).isoformat(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "git": git_commit(),
        "status": "running",
        "resumes": [],
    }
    atomic_write_text(run_dir / RUN_FILE, json.dumps(record, indent=2))
    return run_dir


def read_run(run_dir: Path) -> tuple[Experiment, dict[str, Any]]:
    """The experiment and run record of a run folder; checks the recorded hash against the config."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file() or not (run_dir / RUN_FILE).is_file():
        raise PayrouteError(f"{run_dir} is not a run folder (no {CONFIG_FILE} / {RUN_FILE})")
    data = read_yaml_mapping(run_dir / CONFIG_FILE)
    exp = experiment_from_dict(data, source=str(run_dir / CONFIG_FILE))
    record = read_state(run_dir / RUN_FILE)
    if exp.config_hash() != record.get("config_hash"):
        raise PayrouteError(
            f"{run_dir / CONFIG_FILE} does not match the hash in {RUN_FILE} "
            f"({exp.config_hash()[:12]} != {str(record.get('config_hash'))[:12]}): the config was edited after the run"
        )
    return exp, record


def read_state(path: Path) -> dict[str, Any]:
    """A run-folder state file (``run.json``, ``latest.json``): a JSON object (read within
    :func:`~payroute.config_io.read_json`'s limits), or an error naming the file."""
    record = read_json(path)
    if not isinstance(record, dict):
        raise PayrouteError(
            f"{path}: a run-folder state file holds a JSON object, not {type(record).__name__}"
        )
    return record


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl``; a last line torn by a killed process is dropped, other bad lines are
    an error naming the file and the line."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PayrouteError(f"{path}: cannot be read ({exc})") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("iteration"), int):
            if number == len(lines):
                break  # the line a killed run was writing
            raise PayrouteError(
                f"{path}: line {number} is not a metrics row (a JSON object with 'iteration')"
            )
        rows.append(row)
    return rows


def keep_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Replace ``metrics.jsonl`` by ``rows``, atomically."""
    atomic_write_text(Path(run_dir) / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in rows))


def mark_stopped(run_dir: Path, exc: BaseException) -> None:
    """Record in ``run.json`` why a run stopped before it finished: ``interrupted`` (Ctrl-C) or ``failed``
    with the error, so that no folder is left marked ``running`` by a run that is not."""
    if isinstance(exc, KeyboardInterrupt):
        update_run(run_dir, status="interrupted")
        return
    reason = str(exc).strip() or type(exc).__name__
    update_run(
        run_dir,
        status="failed",
        failed_utc=dt.datetime.now(dt.UTC).isoformat(),
        error=f"{type(exc).__name__}: {reason}"[:2000],
    )


def update_run(run_dir: Path, **changes: Any) -> dict[str, Any]:
    record = read_state(Path(run_dir) / RUN_FILE)
    record.update(changes)
    atomic_write_text(Path(run_dir) / RUN_FILE, json.dumps(record, indent=2))
    return record


# ---------------------------------------------------------------------------- checkpoints
def save_checkpoint(
    run_dir: Path, iteration: int, write: Callable[[Path], None], info: dict[str, Any], keep_last: int
) -> Path:
    """Write a checkpoint with ``write(folder)``, rename it into place, then point ``latest.json`` at it."""
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(exist_ok=True)
    name = f"iter_{iteration:06d}"
    final = root / name
    # replace: a checkpoint of this iteration from before a crash that never became "latest"
    with atomic_folder(final, replace=True) as tmp:
        write(tmp)
    atomic_write_text(
        root / LATEST_FILE, json.dumps({"iteration": iteration, "path": name, **info}, indent=2)
    )
    _prune(root, keep_last, keep=name)
    return final


def _prune(root: Path, keep_last: int, keep: str) -> None:
    done = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("iter_"))
    for old in done[:-keep_last]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-*"):  # the temporary folders of earlier versions
        shutil.rmtree(stale, ignore_errors=True)
    remove_stale_partials(root)  # those of checkpoints a killed process was writing


def latest_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest complete checkpoint of a run and its record, or ``None`` if it has none."""
    latest = Path(run_dir) / CHECKPOINT_DIR / LATEST_FILE
    if not latest.is_file():
        return None
    info = read_state(latest)
    name = info.get("path")
    if not isinstance(name, str) or not isinstance(info.get("iteration"), int) or "/" in name or "\\" in name:
        raise PayrouteError(
            f"{latest}: needs 'iteration' (an integer) and 'path' (a checkpoint folder name such as "
            f"iter_000010); got iteration = {info.get('iteration')!r}, path = {name!r}"
        )
    path = Path(run_dir) / CHECKPOINT_DIR / name
    if name in ("", ".", "..") or not path.is_dir():
        raise PayrouteError(f"{latest} names {name!r}, which is missing")
    return path, info


def policy_folder(run_dir: Path, checkpoint: int | None = None) -> tuple[Path, str]:
    """Where the networks to export are, and a label: the final policy, checkpoint ``N``, or the newest one."""
    run_dir = Path(run_dir)
    if checkpoint is not None:
        folder = run_dir / CHECKPOINT_DIR / f"iter_{checkpoint:06d}" / POLICY_DIR
        if not folder.is_dir():
            have = sorted(
                int(p.name.removeprefix("iter_"))
                for p in (run_dir / CHECKPOINT_DIR).glob("iter_*")
                if p.is_dir() and p.name.removeprefix("iter_").isdigit()
            )
            raise PayrouteError(
                f"{run_dir} has no checkpoint {checkpoint}; checkpoints kept: {have or 'none'}"
            )
        return folder, f"checkpoint {checkpoint}"
    if (run_dir / POLICY_DIR).is_dir():
        return run_dir / POLICY_DIR, "final"
    latest = latest_checkpoint(run_dir)
    if latest is None:
        raise PayrouteError(f"{run_dir} has no policy yet: it has neither finished nor checkpointed")
    return latest[0] / POLICY_DIR, f"checkpoint {latest[1]['iteration']} (the run did not finish)"
