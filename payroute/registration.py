"""Registration of every payroute environment: with Gymnasium under the ``payroute/`` namespace, and with Ray.

Entry points are strings, so registering imports no environment: the classes load when ``gym.make`` first asks.

Importing :mod:`payroute` registers them, so ``gym.make("payroute/Routing-v0", scenario="default", seed=3)``
works after ``import payroute``. In a process that has not imported payroute (a subprocess worker, a Ray env
runner), write the id as ``"payroute:payroute/Routing-v0"``: Gymnasium imports the module before the part after
the colon (Gymnasium 1.x dropped plugin entry points, so nothing else can register the namespace there).

RLlib's env runners find a string id first in Ray's env registry (``ray.tune.registry``), which every process
of a Ray cluster shares, and only then ask Gymnasium in their own process. So each plain id is also registered
there, with a creator that makes the environment with RLlib's ``env_config`` as keyword arguments: as soon as
``ray.tune.registry`` is imported in a process that imported payroute (before or after it; RLlib imports it),
unless the id is registered there already; and again on each later ``ray.init`` (a new cluster's registry starts
empty). ``PPOConfig().environment("payroute/Routing-v0", env_config={...})``
then works with remote env runners as with a local one.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym

# id -> "module:Class"; each environment documents itself in its class docstring.
ENVIRONMENTS: dict[str, str] = {
    "payroute/Routing-v0": "payroute.envs.single_agent.routing:RoutingEnv",
    "payroute/Risk-v0": "payroute.envs.single_agent.risk:RiskEnv",
    "payroute/Pricing-v0": "payroute.envs.single_agent.pricing:PricingEnv",
    "payroute/Treasury-v0": "payroute.envs.single_agent.treasury:TreasuryEnv",
}

RAY_REGISTRY = "ray.tune.registry"


def register_all() -> None:
    for env_id, entry_point in ENVIRONMENTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)
    _when_imported(RAY_REGISTRY, register_with_ray)


# ---------------------------------------------------------------------------------------------------- Ray
def make_for_ray(env_id: str, env_config: Mapping[str, Any]) -> gym.Env:
    """Ray's env creator for ``env_id``: ``gym.make(env_id, **env_config)`` (RLlib passes an ``EnvContext``)."""
    return gym.make(env_id, **dict(env_config))


def register_with_ray() -> None:
    """Register every payroute id in Ray's env registry (see the module docstring), now and after every later
    ``ray.init`` (a new cluster starts with an empty registry); ids registered there already, by the user or
    an earlier call, are left as they are."""
    import ray._private.worker as ray_worker

    hooks = getattr(ray_worker, "_post_init_hooks", None)  # where Ray's registry flushes itself on ray.init
    if isinstance(hooks, list) and _register_ids not in hooks:
        hooks.append(_register_ids)
    _register_ids()


def _register_ids() -> None:
    from ray.tune.registry import ENV_CREATOR, _global_registry, register_env

    for env_id in ENVIRONMENTS:
        if not _global_registry.contains(ENV_CREATOR, env_id):
            register_env(env_id, functools.partial(make_for_ray, env_id))


class _RunAfterImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Runs ``callback`` right after the module ``name`` is first imported (found and loaded as it would be
    without this finder; the module's loader is the real one once it has run)."""

    def __init__(self, name: str, callback: Callable[[], None]) -> None:
        self.name = name
        self.callback = callback
        self.loader: Any = None

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # once; and the search below must not find this finder again
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        self.loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec: Any):
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        _run(self.callback)


def _when_imported(name: str, callback: Callable[[], None]) -> None:
    if name in sys.modules:
        _run(callback)
    elif not any(isinstance(f, _RunAfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _RunAfterImport(name, callback))


def _run(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception as exc:  # a registry that changed its API must not break importing Ray
        warnings.warn(
            f"payroute could not register its environments with Ray ({exc!r}); give RLlib the ids as "
            "'payroute:payroute/Routing-v0'",
            stacklevel=2,
        )
