"""Gymnasium registration of every payroute environment under the ``payroute/`` namespace.

Entry points are strings, so registering imports no environment: the classes load when ``gym.make`` first asks.

Importing :mod:`payroute` registers them, so ``gym.make("payroute/Routing-v0", scenario="default", seed=3)``
works after ``import payroute``.
"""

from __future__ import annotations

import gymnasium as gym

# id -> "module:Class"; each environment documents itself in its class docstring.
ENVIRONMENTS: dict[str, str] = {
    "payroute/Routing-v0": "payroute.envs.single_agent.routing:RoutingEnv",
    "payroute/Risk-v0": "payroute.envs.single_agent.risk:RiskEnv",
    "payroute/Pricing-v0": "payroute.envs.single_agent.pricing:PricingEnv",
    "payroute/Treasury-v0": "payroute.envs.single_agent.treasury:TreasuryEnv",
}


def register_all() -> None:
    for env_id, entry_point in ENVIRONMENTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)
