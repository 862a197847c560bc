"""Recording what the router saw: the routing observation of every decision, in the event log.

To evaluate a route bundle on a log, off-policy evaluation needs the bundle's action probabilities on every logged
context, so the log must hold the observation the bundle would have seen. :class:`ObservationLog` is an event log
with one extra float32 column per routing feature, named ``obs.<feature>`` (``obs.log_amount``,
``obs.card_alpha.fee_bps``, ... in :class:`~payroute.envs.features.RoutingFeatures` order), filled on the
``transaction`` row of every routed payment; :class:`RecordingRoute` wraps the world's router and records the
observation at the moment the route is chosen. ``payroute simulate --log`` writes these columns; logs brought
from elsewhere must carry them to evaluate a bundle (see ``docs/log_schema.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from payroute.envs.features import RoutingFeatures
from payroute.envs.world.decisions import RetryRequest
from payroute.envs.world.eventlog import EventLog
from payroute.policies.logs.reading import OBS_PREFIX


class ObservationLog(EventLog):
    """An :class:`EventLog` whose transaction rows also carry the routing observation (``obs.<feature>``).

    An observation waits, as the 4-byte floats of its vector, from the decision until its payment's terminal row,
    and is written with the other buffered rows' as one float32 block per flush.
    """

    def __init__(
        self,
        path: str | Path | None,
        feature_names: Sequence[str],
        flush_rows: int | None = None,
        keep_in_memory: bool = False,
    ) -> None:
        self.observation_columns = [OBS_PREFIX + n for n in feature_names]
        fields = [pa.field(c, pa.float32(), nullable=True) for c in self.observation_columns]
        super().__init__(path, flush_rows, keep_in_memory, block_fields=fields)
        self._width = len(self.observation_columns)
        self._pending: dict[int, bytes] = {}
        self._rows: list[bytes | None] = []  # per buffered row: its observation, or None

    def record(self, tx_id: int, observation: np.ndarray) -> None:
        """Remember the observation of transaction ``tx_id``; it is written with its terminal row."""
        obs = np.asarray(observation, dtype=np.float32)
        if obs.shape != (self._width,):
            raise ValueError(f"observation of shape {obs.shape}; this log holds {self._width} features")
        self._pending[tx_id] = obs.tobytes()

    def append(self, row: dict) -> None:
        obs = self._pending.pop(row["tx_id"], None) if row.get("record") == "transaction" else None
        self._rows.append(obs)
        super().append(row)

    def _flush_columns(self) -> dict[str, pa.Array]:
        rows, self._rows = self._rows, []
        have = np.fromiter((r is not None for r in rows), dtype=bool, count=len(rows))
        block = np.zeros((len(rows), self._width), dtype=np.float32)
        if have.any():
            block[have] = np.frombuffer(b"".join(r for r in rows if r is not None), np.float32).reshape(
                -1, self._width
            )
        missing = ~have
        return {
            name: pa.array(block[:, j], type=pa.float32(), mask=missing)
            for j, name in enumerate(self.observation_columns)
        }


class RecordingRoute:
    """Wraps a route policy: records the routing observation of each decision in an :class:`ObservationLog`."""

    kind = "route"

    def __init__(self, inner: Any, log: ObservationLog) -> None:
        self.inner = inner
        self.log = log
        self.features: RoutingFeatures | None = None

    def bind(self, world: Any) -> None:
        self.features = RoutingFeatures(world)
        have = [OBS_PREFIX + n for n in self.features.names]
        if have != self.log.observation_columns:
            raise ValueError("the observation log was made for another scenario's routing features")
        bind = getattr(self.inner, "bind", None)
        if bind is not None:
            bind(world)

    def decide(self, world: Any, payload: Any) -> tuple[Any, float]:
        if isinstance(payload, RetryRequest):  # a retry decision: logged as a ``retry`` row by the world
            return self.inner.decide(world, payload)
        tx, _eligible = payload
        self.log.record(tx.id, self.features.build(tx, world.now))
        return self.inner.decide(world, payload)

    def __getattr__(self, name: str) -> Any:
        # counters of the wrapped policy (an exploring router's ``explored``) stay reachable
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
