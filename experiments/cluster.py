"""The paired-comparison engine on a Ray cluster: ``--ray-address`` for review, baselines, evaluate and what-if.

:func:`payroute.policies.compare.run_all` runs its jobs (one world each) in this process, in worker processes,
or through an :class:`~payroute.policies.compare.Executor`. :class:`RayExecutor` is that executor on Ray: one
remote task per job (one CPU each), the jobs and the function put in Ray's object store once and fetched once
per worker process, the results returned in the order of the jobs. Bundles travel as bytes
(:func:`~payroute.policies.compare.ship_bundles`) and every worker verifies them again, against the same keys
and under the same limits, before it binds them. Each world depends on its scenario, seed and policies only,
so the numbers are those of local workers.

Ray is imported here only (``policies/`` never imports it); it comes with the ``train`` extra.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from payroute.errors import PayrouteError

# per worker process: the (function, jobs) object of the latest map, by its object id
_SHARED: dict[str, tuple[Callable[[Any], Any], Sequence[Any]]] = {}


def _run_job(boxed: list[Any], index: int) -> Any:
    """One job in a Ray worker: the shared (function, jobs) fetched once per process, then job ``index``."""
    import ray

    (ref,) = boxed  # boxed, so Ray hands over the reference, not the (large) value, to every task
    key = ref.hex()
    if key not in _SHARED:
        _SHARED.clear()
        _SHARED[key] = ray.get(ref)
    fn, jobs = _SHARED[key]
    return fn(jobs[index])


class RayExecutor:
    """Runs jobs as Ray tasks on the cluster this process is connected to (see :func:`ray_executor`)."""

    def __init__(self, num_cpus: float = 1.0) -> None:
        self.num_cpus = num_cpus

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Any]:
        import ray

        shared = ray.put((fn, list(jobs)))
        task = ray.remote(num_cpus=self.num_cpus)(_run_job)
        refs = [task.remote([shared], i) for i in range(len(jobs))]
        done = 0
        try:
            for ref in refs:
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayTaskError as err:
                    cause = getattr(err, "cause", None)
                    if isinstance(cause, Exception):
                        raise cause from None  # what the job raised, as itself (a PayrouteError stays one)
                    raise
                done += 1
        finally:
            for ref in refs[done:]:  # a failure or an abandoned iteration leaves no task running
                with contextlib.suppress(Exception):
                    ray.cancel(ref)


@contextlib.contextmanager
def ray_executor(address: str | None) -> Iterator[RayExecutor | None]:
    """A :class:`RayExecutor` on the cluster at ``address`` (``HOST:PORT``, ``auto``, or ``local`` for a new
    cluster on this machine), connected for the ``with`` block; ``None`` for ``address`` None (the engine's
    worker processes). A connection this block made is closed at its end; one already open is used as it is."""
    if address is None:
        yield None
        return
    try:
        import ray
    except ImportError:
        raise PayrouteError(
            "--ray-address needs Ray: install payroute with its train extra (pip install -c constraints.txt "
            "'payroute[train]')"
        ) from None
    connected_here = not ray.is_initialized()
    if connected_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except Exception as err:  # ConnectionError, ValueError, RuntimeError: Ray's, not ours
            msg = " ".join(str(err).split())[:300]
            raise PayrouteError(
                f"--ray-address {address}: cannot connect to a Ray cluster ({type(err).__name__}: {msg})"
            ) from None
    try:
        yield RayExecutor()
    finally:
        if connected_here:
            ray.shutdown()


__all__ = ["RayExecutor", "ray_executor"]
