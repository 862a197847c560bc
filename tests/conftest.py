"""Shared fixtures: small, fast worlds."""

from __future__ import annotations

import pytest

from payroute.envs.scenarios import load_scenario


@pytest.fixture(scope="session")
def default_scenario():
    return load_scenario("default")


@pytest.fixture(scope="session")
def small_scenario():
    """The default scenario at 5% volume: a day runs in a fraction of a second."""
    return load_scenario("default", {"volume_scale": 0.05})
