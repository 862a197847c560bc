"""Logged payments with several routing decisions: reading a log made with retries on.

With the scenario's ``retries.enabled`` a card payment softly declined goes back to the router, so one payment can
carry several routing decisions: the first route (its ``attempt`` row number 1), then one ``retry`` row per retry
decision (cascade to a route now, the same route later, a step-up, or give up), each with the behaviour policy's
propensity of the answer it gave and the eligible routes it chose from (the event log schema,
:mod:`payroute.envs.world.eventlog`). :func:`read_logged_sequences` reads such a log as

* ``first``: the first routing decision of every routed payment, as :class:`~payroute.policies.logs.LoggedDecisions`
  (checked as :func:`~payroute.policies.logs.read_logged_decisions` checks a single-attempt log), whose reward is
  the payment's whole margin: its attempts' route costs, the attempt fees (``retry_fee_cents``) and network fines
  (``network_fine_cents``) are costs of routing it, and its later chargebacks are in as before;
* the retry decisions, one entry per ``retry`` row, each tied to its payment's row in ``first``.

Off-policy evaluation then weights each payment by the ratio of its whole sequence of decisions
(:func:`continuation_weights` gives the later decisions' part; docs/review.md, "Retries"). A log without retry rows
reads as one decision per payment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from payroute.envs.world.codes import DO_NOT_RETRY_ADVICE
from payroute.envs.world.decisions import RETRY_KINDS
from payroute.errors import PayrouteError
from payroute.policies.logs.checks import bad_rows, no_nulls
from payroute.policies.logs.csv_log import is_csv_log, read_csv_log
from payroute.policies.logs.reading import MIN_PROPENSITY, OBS_PREFIX, LoggedDecisions, read_logged_decisions

RETRY_COLUMNS = ("tx_id", "attempt", "retry_action", "route_index", "route_propensity", "eligible_mask")
"""Columns every ``retry`` row must fill (``retry_delay_s``, ``merchant_advice``, ``response_code`` are read when
present)."""
FIRST_COLUMNS = ("route", "route_index", "route_propensity", "eligible_mask")
"""Columns of a payment's first decision, taken from its ``attempt`` row number 1."""


@dataclass(frozen=True)
class LoggedSequences:
    """The routed payments of a log and their retry decisions (arrays aligned by retry decision)."""

    first: LoggedDecisions  # one row per routed payment: its first decision; reward = the payment's margin
    payment: np.ndarray  # int64 (m,): the row in ``first`` of each retry decision's payment
    attempt: np.ndarray  # int64 (m,): the attempt that was softly declined just before the decision
    kind: np.ndarray  # str (m,): give_up | cascade | later | step_up
    route: np.ndarray  # int64 (m,): the route it sends the payment to (-1: give up)
    delay_s: np.ndarray  # float64 (m,): the delay of a 'later' retry (0 otherwise)
    propensities: np.ndarray  # float64 (m,): the behaviour policy's probability of the decision
    eligible: np.ndarray  # int64 (m,): bitmask of the routes eligible at the decision
    tried: np.ndarray  # int64 (m,): bitmask of the routes the payment went to before the decision
    last_route: np.ndarray  # int64 (m,): the route that just declined it
    merchant_advice: np.ndarray  # str (m,): the decline's Mastercard advice ('' if none)

    @property
    def n(self) -> int:
        return self.first.n

    @property
    def m(self) -> int:
        return int(self.payment.shape[0])

    @property
    def decisions(self) -> np.ndarray:
        """Routing decisions per payment (1 + its retry decisions), aligned with ``first``."""
        return 1 + np.bincount(self.payment, minlength=self.n)

    @property
    def sequence_propensities(self) -> np.ndarray:
        """The behaviour policy's probability of each payment's whole sequence of decisions."""
        out = self.first.propensities.copy()
        np.multiply.at(out, self.payment, self.propensities)
        return out


def give_up_probabilities(seqs: LoggedSequences) -> np.ndarray:
    """A target that does not take retry decisions (a bundle, or any router without ``handles_retries``): the world
    gives up at once after every soft decline, so its probability of each logged retry decision is 1 for give
    up and 0 for any other."""
    return (seqs.kind == "give_up").astype(np.float64)


def continuation_weights(seqs: LoggedSequences, retry_probs: np.ndarray | None = None) -> np.ndarray:
    r"""Per payment, the importance ratio of its decisions after the first:
    :math:`\prod_{k \ge 2} \pi(a_k \mid x_k) / \mu(a_k \mid x_k)` (1 for a payment decided once).

    ``retry_probs`` ``(m,)``: the target's probability of each logged retry decision (``None``: the target does not
    take retries, :func:`give_up_probabilities`).
    """
    probs = give_up_probabilities(seqs) if retry_probs is None else np.asarray(retry_probs, dtype=np.float64)
    if probs.shape != (seqs.m,) or not (np.isfinite(probs) & (probs >= 0) & (probs <= 1)).all():
        raise PayrouteError(f"retry_probs must be {seqs.m} probabilities in [0, 1], got shape {probs.shape}")
    out = np.ones(seqs.n)
    np.multiply.at(out, seqs.payment, probs / seqs.propensities)
    return out


def static_cascade_probabilities(
    seqs: LoggedSequences, order: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``static_cascade`` baseline as a target on a log: its first decisions' action probabilities ``(n, A)``
    (the first eligible route on the priority list ``order``, route indices, by default the scenario's route order)
    and its probability of each logged retry decision ``(m,)`` (a cascade to the first untried eligible route on the
    list; give up after a do-not-retry advice or when none is left). Deterministic: probabilities are 0 or 1."""
    n_routes = seqs.first.n_routes
    order = list(range(n_routes)) if order is None else list(order)
    rank = np.full(n_routes, 10_000, dtype=np.int64)
    for i, r in enumerate(order):
        rank[r] = i
    rank += np.where(rank == 10_000, np.arange(n_routes), 0)
    masks = seqs.first.masks
    first = np.zeros(masks.shape)
    choice = np.argmin(np.where(masks, rank[None, :], np.iinfo(np.int64).max), axis=1)
    first[np.arange(seqs.n), choice] = 1.0
    bits = np.arange(n_routes)
    free = ((seqs.eligible[:, None] >> bits) & 1).astype(bool) & ~((seqs.tried[:, None] >> bits) & 1).astype(
        bool
    )
    best = np.argmin(np.where(free, rank[None, :], np.iinfo(np.int64).max), axis=1)
    stop = ~free.any(axis=1) | np.isin(seqs.merchant_advice, list(DO_NOT_RETRY_ADVICE))
    retry = np.where(stop, seqs.kind == "give_up", (seqs.kind == "cascade") & (seqs.route == best))
    return first, retry.astype(np.float64)


def read_logged_sequences(
    source: str | Path | pa.Table,
    *,
    route_names: list[str] | None = None,
    observation_names: list[str] | None = None,
) -> LoggedSequences:
    """Read and check the routed payments of an event log and their retry decisions (see the module docstring).

    The arguments are those of :func:`~payroute.policies.logs.read_logged_decisions`; a log without ``retry`` or
    ``attempt`` rows reads as one decision per payment. A malformed ``retry`` row raises
    :class:`~payroute.errors.PayrouteError` naming the column, the first offending row's ``tx_id`` and its value.
    """
    single = dict(route_names=route_names, observation_names=observation_names)
    if _single_attempt(source):  # no attempt rows possible: read as before (only the columns it needs)
        return _sequences(read_logged_decisions(source, **single))
    table, label = _table(source)
    names = set(table.column_names)
    records = table.column("record") if "record" in names else None
    if records is None or "attempt" not in names:
        return _sequences(read_logged_decisions(table, **single, label=label))
    attempts = table.filter(pc.fill_null(pc.equal(records, "attempt"), False))
    retries = table.filter(pc.fill_null(pc.equal(records, "retry"), False))
    rest = table.filter(
        pc.invert(pc.fill_null(pc.is_in(records, value_set=pa.array(["attempt", "retry"])), False))
    )
    rest = _with_first_decisions(rest, attempts, label)
    first = read_logged_decisions(rest, **single, label=label)
    if retries.num_rows == 0:
        return _sequences(first)
    return _retry_decisions(first, retries, attempts, label)


# ---------------------------------------------------------------------- reading
def _single_attempt(source: str | Path | pa.Table) -> bool:
    """A Parquet log whose schema has no ``attempt`` column (made with retries off)."""
    if isinstance(source, pa.Table) or is_csv_log(source) or not Path(source).is_file():
        return False
    try:
        return "attempt" not in pq.read_schema(source).names
    except (pa.ArrowInvalid, OSError):
        return True  # read_logged_decisions names the unreadable file


def _table(source: str | Path | pa.Table) -> tuple[pa.Table, str]:
    if isinstance(source, pa.Table):
        return source, "log"
    path = Path(source)
    if is_csv_log(path):
        return read_csv_log(path, OBS_PREFIX), path.name
    if not path.is_file():
        raise PayrouteError(f"log file not found: {path}")
    try:
        return pq.read_table(path), path.name
    except (pa.ArrowInvalid, OSError) as err:
        raise PayrouteError(f"{path.name} is not a readable Parquet file ({err})") from None


def _sequences(first: LoggedDecisions) -> LoggedSequences:
    empty_i, empty_s = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object)
    return LoggedSequences(
        first,
        empty_i,
        empty_i,
        empty_s,
        empty_i,
        np.zeros(0),
        np.zeros(0),
        empty_i,
        empty_i,
        empty_i,
        empty_s,
    )


def _ints(rows: pa.Table, column: str) -> np.ndarray:
    return rows.column(column).to_numpy(zero_copy_only=False).astype(np.int64)


def _bad(
    label: str, column: str, bad: np.ndarray, tx_id: np.ndarray, values: np.ndarray, problem: str
) -> None:
    bad_rows(label, column, bad, tx_id, values, problem, kind="retry row(s)")


def _with_first_decisions(rest: pa.Table, attempts: pa.Table, label: str) -> pa.Table:
    """The transaction rows with each payment's first decision (its attempt row 1) and its attempt fees and network
    fines folded into its route cost: the reward of the first decision is the payment's whole margin."""
    out = rest
    for col in ("retry_fee_cents", "network_fine_cents"):
        if col in out.column_names:
            at = out.column_names.index("route_cost_cents")
            cost = pc.add(out.column("route_cost_cents"), pc.fill_null(out.column(col), 0))
            out = out.set_column(at, "route_cost_cents", cost.cast(out.schema.field(at).type))
    if attempts.num_rows == 0:
        return out
    no_nulls(attempts, ("tx_id", "attempt", *FIRST_COLUMNS[1:]), label, "attempt rows")
    ones = attempts.filter(pc.equal(attempts.column("attempt"), 1))
    ids = _ints(ones, "tx_id")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise PayrouteError(
            f"{label}: column attempt: transaction {int(uniq[counts > 1][0])} has two attempt rows 1"
        )
    if ones.num_rows == 0:
        return out
    is_tx = pc.fill_null(pc.equal(out.column("record"), "transaction"), False).to_numpy(zero_copy_only=False)
    tx = pc.fill_null(out.column("tx_id"), -1).to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.argsort(ids)
    pos = np.minimum(np.searchsorted(ids[order], tx), len(ids) - 1)
    hit = is_tx & (ids[order][pos] == tx)
    take = np.where(hit, out.num_rows + order[pos], np.arange(out.num_rows))
    for col in FIRST_COLUMNS:
        if col not in ones.column_names or col not in out.column_names:
            continue
        at = out.column_names.index(col)
        typ = out.schema.field(at).type
        both = pa.concat_arrays(
            [out.column(col).combine_chunks(), ones.column(col).combine_chunks().cast(typ)]
        )
        out = out.set_column(at, col, both.take(pa.array(take)))
    return out


def _retry_decisions(
    first: LoggedDecisions, retries: pa.Table, attempts: pa.Table, label: str
) -> LoggedSequences:
    no_nulls(retries, RETRY_COLUMNS, label, "retry rows")
    tx_id = _ints(retries, "tx_id")
    row_of = {int(t): i for i, t in enumerate(first.tx_id)}
    known = np.array([int(t) in row_of for t in tx_id], dtype=bool)
    _bad(label, "tx_id", ~known, tx_id, tx_id, "is not a routed transaction of the log")
    payment = np.array([row_of[int(t)] for t in tx_id], dtype=np.int64)
    attempt = _ints(retries, "attempt")
    kind = np.asarray(retries.column("retry_action").to_pylist(), dtype=object)
    route = _ints(retries, "route_index")
    props = retries.column("route_propensity").to_numpy(zero_copy_only=False).astype(np.float64)
    eligible = _ints(retries, "eligible_mask")
    _bad(
        label,
        "retry_action",
        ~np.isin(kind, list(RETRY_KINDS)),
        tx_id,
        kind,
        f"is not one of {', '.join(RETRY_KINDS)}",
    )
    _bad(
        label,
        "route_propensity",
        ~((props >= MIN_PROPENSITY) & (props <= 1)),
        tx_id,
        props,
        f"is outside [{MIN_PROPENSITY:g}, 1]",
    )
    _bad(label, "attempt", attempt < 1, tx_id, attempt, "is not an attempt number >= 1")
    gave_up = kind == "give_up"
    n_routes = first.n_routes
    _bad(
        label,
        "route_index",
        gave_up != (route < 0),
        tx_id,
        route,
        "is -1 exactly when retry_action is give_up",
    )
    _bad(label, "route_index", route >= n_routes, tx_id, route, f"is not a route index 0..{n_routes - 1}")
    _bad(label, "eligible_mask", eligible < 0, tx_id, eligible, "is not a bitmask")
    cascade = kind == "cascade"
    in_mask = ((eligible >> np.maximum(route, 0)) & 1).astype(bool)
    _bad(
        label,
        "eligible_mask",
        cascade & ~in_mask,
        tx_id,
        eligible,
        "does not contain the bit of a cascade's route_index",
    )
    order = np.lexsort((attempt, payment))
    pair = payment[order] * 1_000_003 + attempt[order]
    dup = np.zeros(len(order), dtype=bool)
    dup[order[1:]] = pair[1:] == pair[:-1]
    _bad(label, "attempt", dup, tx_id, attempt, "repeats another retry row of the same transaction")
    delay = (
        pc.fill_null(retries.column("retry_delay_s"), 0.0).to_numpy(zero_copy_only=False).astype(np.float64)
        if "retry_delay_s" in retries.column_names
        else np.zeros(len(tx_id))
    )
    advice = (
        np.asarray(pc.fill_null(retries.column("merchant_advice"), "").to_pylist(), dtype=object)
        if "merchant_advice" in retries.column_names
        else np.full(len(tx_id), "", dtype=object)
    )
    tried, last = _tried(tx_id, attempt, attempts, first, payment)
    return LoggedSequences(first, payment, attempt, kind, route, delay, props, eligible, tried, last, advice)


def _tried(
    tx_id: np.ndarray, attempt: np.ndarray, attempts: pa.Table, first: LoggedDecisions, payment: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per retry decision: the bitmask of the routes its payment's attempts 1..``attempt`` went to, and the route
    of attempt ``attempt`` (the one that just declined)."""
    routes: dict[tuple[int, int], int] = {}
    if attempts.num_rows:
        for t, a, r in zip(
            _ints(attempts, "tx_id"), _ints(attempts, "attempt"), _ints(attempts, "route_index"), strict=True
        ):
            routes[(int(t), int(a))] = int(r)
    tried = np.zeros(len(tx_id), dtype=np.int64)
    last = np.zeros(len(tx_id), dtype=np.int64)
    for i, (t, a) in enumerate(zip(tx_id, attempt, strict=True)):
        mask = 0
        for k in range(1, int(a) + 1):
            r = routes.get((int(t), k))
            if r is not None and r >= 0:
                mask |= 1 << r
        tried[i] = mask
        last[i] = routes.get((int(t), int(a)), int(first.actions[payment[i]]))
    return tried, last
