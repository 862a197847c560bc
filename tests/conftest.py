"""Shared fixtures: small, fast worlds."""

from __future__ import annotations

import os
import secrets

import pytest

# Ray in the tests stays on loopback. A local instance binds this machine's outward IP unless clusters are
# "disabled" (Ray's switch for Windows and macOS: the instance then keeps to 127.0.0.1); a head the tests start
# uses 127.0.0.2 (tests/helpers/ray_head.py). Ray reads its auth mode once per process, so every test process
# gets one token from the start, for its local instances and the heads it starts alike.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))

from payroute.envs.scenarios import load_scenario


@pytest.fixture(scope="session")
def default_scenario():
    return load_scenario("default")


@pytest.fixture(scope="session")
def small_scenario():
    """The default scenario at 5% volume: a day runs in a fraction of a second."""
    return load_scenario("default", {"volume_scale": 0.05})


def pytest_collection_modifyitems(config, items):
    """Run the slow tests first, the longest first (``@pytest.mark.slow(minutes=N)``; 1 when not given).

    ``make test`` shares the tests between two processes (``--dist worksteal``: an idle process takes tests
    queued for the other): a test of several minutes that starts last keeps one process busy long after the other
    ran out of work. Started first, the short tests fill the other process meanwhile. The order changes no
    result: every test stands alone.
    """

    def minutes(item) -> float:
        marker = item.get_closest_marker("slow")
        return float(marker.kwargs.get("minutes", 1)) if marker is not None else 0.0

    items.sort(key=minutes, reverse=True)  # stable: the collection order within the same weight
