"""A Ray head for the tests, on loopback only: started with ``ray start --head``, a fresh token, every port given,
stopped at the end (its own process group, nothing else).

Ray replaces the addresses ``127.0.0.1`` and ``localhost`` by the machine's outward IP before it uses them (its
``resolve_ip_for_localhost``), so a head "on 127.0.0.1" is reached over that IP. Any other loopback address is kept
as it is: the head and the driver use ``127.0.0.2``, and no traffic leaves the loopback interface.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

LOOPBACK = "127.0.0.2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop the head we started, and only it: its own process group (gcs, raylet, workers). A blocked
    ``ray start`` can sit out SIGTERM for longer than the tests should wait: SIGKILL follows after 5 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=5 if sig == signal.SIGTERM else 20)
            break
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def ray_head(log: Path, num_cpus: int = 2, start_timeout_s: float = 120.0) -> Iterator[str]:
    """A Ray head on :data:`LOOPBACK`; yields its address. This process's environment carries the head's token
    (``RAY_AUTH_MODE``/``RAY_AUTH_TOKEN``) while the head runs, so a driver here or in a child process connects."""
    ports = [free_port() for _ in range(6)]
    # Ray reads its auth mode once per process: a driver here that already ran a local instance keeps the
    # token it had (tests/conftest.py gives every test process one), so the head takes that token
    token = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": os.environ.get("RAY_AUTH_TOKEN") or secrets.token_hex(16),
    }
    ray_tmp = tempfile.mkdtemp(prefix="pr-ray-", dir="/tmp")  # Ray's socket paths must stay short
    with open(log, "w") as out:
        # every agent port given: the raylet then need not wait for the agents to report theirs
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={ports[0]}",
             f"--ray-client-server-port={ports[1]}", f"--metrics-export-port={ports[2]}",
             f"--dashboard-agent-grpc-port={ports[3]}", f"--dashboard-agent-listen-port={ports[4]}",
             f"--runtime-env-agent-port={ports[5]}", f"--node-ip-address={LOOPBACK}", f"--num-cpus={num_cpus}",
             "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={ray_tmp}", "--block"],
            env={**os.environ, **token}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    saved = {k: os.environ.get(k) for k in token}
    os.environ.update(token)
    try:
        deadline = time.monotonic() + start_timeout_s
        while "Ray runtime started" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no Ray head: {log.read_text()[-1500:]}")
            time.sleep(0.5)
        yield f"{LOOPBACK}:{ports[0]}"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _stop(proc)
        shutil.rmtree(ray_tmp, ignore_errors=True)
