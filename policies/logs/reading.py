"""Logged routing decisions: reading and checking an event log before off-policy evaluation trusts it.

A log is a Parquet file (or an in-memory Arrow table) in the event log schema of
:mod:`payroute.envs.world.eventlog` — written by ``payroute simulate --log``, or brought by a user. Off-policy
evaluation reads its ``transaction`` rows that were routed (``route_index >= 0``): the context, the route taken,
the behaviour policy's propensity of it, the eligible-route mask, and the money the payment made or cost.

:func:`read_logged_decisions` checks the schema first (every column OPE needs is present with a compatible
type), then the values on the decision rows (no nulls, propensities in [:data:`MIN_PROPENSITY`, 1], the mask
contains the chosen route, amounts and reward components whole cents in [0, :data:`MAX_CENTS`], arrival times
and risk scores finite and in range, one row per transaction), and raises :class:`~payroute.errors.PayrouteError`
naming the column, the first offending row (its ``tx_id``) and its value. The reward of a decision is the payment's margin in cents:

    revenue - route cost - SLA penalty - liquidity cost - challenge cost - fraud loss

where the fraud loss includes the chargebacks and reimbursements that arrived later as ``post_settlement`` rows
with the same ``tx_id``.

:func:`render_log_schema` writes the column-by-column documentation (``docs/log_schema.md``) from
:data:`~payroute.envs.world.eventlog.LOG_COLUMNS`, so the documentation cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from payroute.envs.world.eventlog import LOG_COLUMNS, LOG_SCHEMA_VERSION
from payroute.errors import PayrouteError
from payroute.files import atomic_write_text
from payroute.policies.logs.checks import bad_rows as _bad_rows
from payroute.policies.logs.checks import no_nulls as _no_nulls
from payroute.policies.logs.csv_log import is_csv_log, read_csv_log

RECORD_KINDS = ("transaction", "post_settlement", "account", "decision")
REWARD_COMPONENTS = (
    ("revenue_cents", +1),
    ("route_cost_cents", -1),
    ("sla_penalty_cents", -1),
    ("liquidity_cost_cents", -1),
    ("challenge_cost_cents", -1),
    ("fraud_loss_cents", -1),
)
DECISION_COLUMNS = ("record", "tx_id", "route_index", "route_propensity", "eligible_mask")
CONTEXT_COLUMNS = ("t_arrival", "amount_cents", "cross_border", "instrument", "segment", "risk_score")
REQUIRED_COLUMNS = (*DECISION_COLUMNS, *CONTEXT_COLUMNS, *(name for name, _ in REWARD_COMPONENTS))
"""Columns :func:`read_logged_decisions` needs; every other schema column is optional (checked when present)."""
OPTIONAL_CONTEXT_COLUMNS = ("foreign_card", "urgency", "currency", "route", "is_fraud", "state")
MAX_ROUTES = 63  # eligible_mask is a signed 64-bit bitmask
MIN_PROPENSITY = 1e-9
"""Smallest propensity a log may hold: a weight above 1e9 makes every estimate one row's, and a correct log
almost never holds one (a logged action is drawn with its propensity); 1e-300 would overflow the diagnostics."""
MAX_CENTS = 10**15
"""Largest amount or reward component in a log: ten trillion dollars, far beyond any payment, and small enough
that sums and importance-weighted rewards stay exact and finite."""
OBS_PREFIX = "obs."
"""Prefix of the observation columns: ``obs.<feature>`` holds a routing feature as the router saw it."""

_TYPES = {name: typ for name, typ, _unit, _doc in LOG_COLUMNS}
_DAY_S = 86_400.0


@dataclass(frozen=True)
class LoggedDecisions:
    """The routed decisions of a log, as arrays aligned by row (one row per routed transaction)."""

    tx_id: np.ndarray  # int64 (n,)
    actions: np.ndarray  # int64 (n,): route index taken
    propensities: np.ndarray  # float64 (n,): behaviour policy's probability of it
    masks: np.ndarray  # bool (n, n_routes): eligible routes at decision time
    rewards: np.ndarray  # float64 (n,): margin in cents, later losses included
    features: np.ndarray  # float64 (n, d): context features for a reward model
    feature_names: list[str]
    route_names: list[str]  # by route index; "" where the log names no route for an index
    table: pa.Table  # the routed transaction rows, in the same order
    observations: np.ndarray | None = None  # float32 (n, len(observation_names)) when asked for
    fraud_losses: np.ndarray | None = None  # float64 (n,): the fraud loss inside each reward (cents, >= 0)
    is_fraud: np.ndarray | None = None  # bool (n,): the payment was fraud (column is_fraud), if the log says
    sent: np.ndarray | None = None  # bool (n,): its money moved (column state: settled), if the log says

    def fraud_labels(self, action_groups: np.ndarray | list[int]) -> FraudLabels | None:
        """Labels for the fraud-aware reward model (:class:`FraudLabels`), given each
        route's loss class (:func:`route_loss_classes`); ``None`` when the log does not say which payments were
        fraud (column ``is_fraud``) and which were sent (column ``state``)."""
        if self.is_fraud is None or self.sent is None or self.fraud_losses is None:
            return None
        amounts = _np(self.table, "amount_cents", np.float64)
        groups = np.asarray(action_groups, dtype=np.int64)
        return FraudLabels(self.is_fraud, self.sent, amounts, self.fraud_losses, groups)

    @property
    def model_features(self) -> np.ndarray:
        """Features for a reward model: the context features, and the policy's observations when read (they carry
        the routes' state at decision time: hours to cut-off, queues, recent approval, fees)."""
        if self.observations is None:
            return self.features
        return np.hstack([self.features, self.observations.astype(np.float64)])

    @property
    def n(self) -> int:
        return int(self.actions.shape[0])

    @property
    def n_routes(self) -> int:
        return int(self.masks.shape[1])


def read_logged_decisions(
    source: str | Path | pa.Table,
    *,
    route_names: list[str] | None = None,
    observation_names: list[str] | None = None,
    label: str | None = None,
) -> LoggedDecisions:
    """Read and check the routed decisions of an event log (Parquet or CSV path, or Arrow table named ``label``).

    ``route_names`` (the scenario's route order) fixes the number of routes and is checked against the log's
    ``route`` column where it has one; otherwise the routes are inferred from the indices and masks seen.
    ``observation_names`` (a policy's feature names) also reads the observation of every decision from the
    ``obs.<feature>`` columns (float, no nulls or NaN on routed rows) into ``observations``.
    """
    csv_label = Path(source).name if is_csv_log(source) else None
    if csv_label is not None:  # a CSV log: typed by the schema, then checked as a Parquet one
        source = read_csv_log(source, OBS_PREFIX)
    schema, label_of = _schema_of(source)
    label = csv_label or label or label_of
    _check_schema(schema, label)
    present = set(schema.names)
    obs_columns = [OBS_PREFIX + n for n in observation_names or ()]
    _check_observation_schema(schema, obs_columns, label)
    wanted = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_CONTEXT_COLUMNS, *obs_columns) if c in present]
    table = source.select(wanted) if isinstance(source, pa.Table) else _read_parquet(source, wanted, label)

    records = table.column("record")
    bad_record = pc.invert(pc.fill_null(pc.is_in(records, value_set=pa.array(RECORD_KINDS)), False))
    if pc.any(bad_record).as_py():
        first = table.filter(bad_record).column("record")[0].as_py()
        if first in ("attempt", "retry"):  # a log made with retries: several decisions per payment
            raise PayrouteError(f"{label}: has {first} rows (retries on): read it with read_logged_sequences")
        raise PayrouteError(f"{label}: column record has value {first!r}; allowed: {', '.join(RECORD_KINDS)}")
    tx_rows = table.filter(pc.equal(records, "transaction"))
    _no_nulls(tx_rows, ("tx_id", "route_index"), label, "transaction rows")
    routed = tx_rows.filter(pc.greater_equal(tx_rows.column("route_index"), 0))
    if routed.num_rows == 0:
        raise PayrouteError(f"{label}: no routed transaction rows (record = transaction, route_index >= 0)")
    _no_nulls(routed, [c for c in REQUIRED_COLUMNS if c not in ("record",)], label, "routed transaction rows")

    tx_id = _np(routed, "tx_id", np.int64)
    all_tx = _np(tx_rows, "tx_id", np.int64)
    uniq, counts = np.unique(all_tx, return_counts=True)
    if (counts > 1).any():
        raise PayrouteError(
            f"{label}: column tx_id: transaction {int(uniq[counts > 1][0])} has more than one row"
        )

    actions = _np(routed, "route_index", np.int64)
    props = _np(routed, "route_propensity", np.float64)
    bitmask = _np(routed, "eligible_mask", np.int64)
    ok = (props >= MIN_PROPENSITY) & (props <= 1)
    _bad_rows(label, "route_propensity", ~ok, tx_id, props, f"is outside [{MIN_PROPENSITY:g}, 1]")
    _check_context(routed, tx_id, label)
    _bad_rows(label, "route_index", actions > MAX_ROUTES - 1, tx_id, actions, f"exceeds {MAX_ROUTES - 1}")
    _bad_rows(label, "eligible_mask", bitmask <= 0, tx_id, bitmask, "is not a positive bitmask")
    contains = ((bitmask >> actions) & 1).astype(bool)
    _bad_rows(label, "eligible_mask", ~contains, tx_id, bitmask, "does not contain the bit of route_index")

    names = _route_names(routed, actions, label, route_names)
    n_routes = len(names)
    if route_names is not None:
        _bad_rows(
            label,
            "route_index",
            actions >= n_routes,
            tx_id,
            actions,
            f"is not a route index 0..{n_routes - 1}",
        )
        _bad_rows(
            label,
            "eligible_mask",
            bitmask >> n_routes != 0,
            tx_id,
            bitmask,
            f"has bits beyond {n_routes} routes",
        )
    masks = ((bitmask[:, None] >> np.arange(n_routes)) & 1).astype(bool)

    rewards = np.zeros(routed.num_rows)
    fraud_losses = np.zeros(routed.num_rows)
    for col, sign in REWARD_COMPONENTS:
        amount = _np(routed, col, np.int64)
        _bad_rows(
            label,
            col,
            (amount < 0) | (amount > MAX_CENTS),
            tx_id,
            amount,
            f"is outside 0..{MAX_CENTS} (components are amounts in cents, signed by the reward)",
        )
        rewards += sign * amount
        if col == "fraud_loss_cents":
            fraud_losses += amount
    later = _later_losses(table, tx_id, label)
    rewards -= later
    fraud_losses += later
    # fraud labels for the fraud-aware reward model, where the log has them on every routed row
    is_fraud = sent = None
    if "is_fraud" in routed.column_names and routed.column("is_fraud").null_count == 0:
        is_fraud = routed.column("is_fraud").to_numpy(zero_copy_only=False).astype(bool)
    if "state" in routed.column_names and routed.column("state").null_count == 0:
        sent = pc.equal(routed.column("state"), "settled").to_numpy(zero_copy_only=False).astype(bool)

    features, feature_names = context_features(routed)
    observations = None
    if obs_columns:
        _no_nulls(routed, obs_columns, label, "routed transaction rows")
        observations = np.column_stack([_np(routed, c, np.float32) for c in obs_columns])
        finite = np.isfinite(observations)
        if not finite.all():
            col = int(np.argmax(~finite.all(axis=0)))
            _bad_rows(label, obs_columns[col], ~finite[:, col], tx_id, observations[:, col], "is not finite")
    return LoggedDecisions(
        tx_id,
        actions,
        props,
        masks,
        rewards,
        features,
        feature_names,
        names,
        routed,
        observations,
        fraud_losses,
        is_fraud,
        sent,
    )


def route_loss_classes(routes: Any) -> list[int]:
    """Each route's fraud-loss class for the fraud-aware reward model, in route order: 0 cards (a chargeback:
    the amount and its fee), 1 irrevocable rails (the amount), 2 revocable rails (what a return does not bring
    back). ``routes``: the scenario's route specs (``scenario.routes.values()``) or the world's routes."""
    out = []
    for r in routes:
        spec = getattr(r, "spec", r)
        out.append(0 if spec.rail == "card" else 1 if spec.irrevocable else 2)
    return out


def context_features(rows: pa.Table) -> tuple[np.ndarray, list[str]]:
    """Numeric context features of transaction rows for a reward model: log amount, hour of day (sine and
    cosine), cross-border, risk score, and one-hot instrument and segment (plus foreign card, urgency and
    currency where the log has them)."""
    amount = _np(rows, "amount_cents", np.float64)
    hour = (_np(rows, "t_arrival", np.float64) % _DAY_S) / _DAY_S * 2 * np.pi
    cols = [np.log1p(np.maximum(amount, 0) / 100.0), np.sin(hour), np.cos(hour)]
    names = ["log_amount_usd", "hour_sin", "hour_cos"]
    for flag in ("cross_border", "foreign_card"):
        if flag in rows.column_names:
            cols.append(
                pc.fill_null(rows.column(flag), False).to_numpy(zero_copy_only=False).astype(np.float64)
            )
            names.append(flag)
    cols.append(_np(rows, "risk_score", np.float64))
    names.append("risk_score")
    for cat in ("instrument", "segment", "urgency", "currency"):
        if cat not in rows.column_names:
            continue
        values = np.asarray(
            pc.fill_null(rows.column(cat).cast(pa.string()), "").to_numpy(zero_copy_only=False)
        )
        for v in sorted(set(values.tolist())):
            cols.append((values == v).astype(np.float64))
            names.append(f"{cat}={v}")
    return np.column_stack(cols), names


@dataclass(frozen=True)
class FraudLabels:
    """What the fraud-aware reward model needs beyond the context (see the module docstring).

    ``is_fraud`` (n,) bool: the payment was fraud; ``sent`` (n,) bool: its money moved on the logged route;
    ``amounts`` (n,) its amount; ``losses`` (n,) the fraud loss inside its reward (``reward = the rest - loss``;
    >= 0); ``action_groups`` (A,) int: each action's loss class (actions whose fraud losses behave alike).
    """

    is_fraud: np.ndarray
    sent: np.ndarray
    amounts: np.ndarray
    losses: np.ndarray
    action_groups: np.ndarray

    def checked(self, n: int, n_actions: int) -> FraudLabels:
        fraud = np.asarray(self.is_fraud)
        sent = np.asarray(self.sent)
        amounts = np.asarray(self.amounts, dtype=np.float64)
        losses = np.asarray(self.losses, dtype=np.float64)
        groups = np.asarray(self.action_groups)
        for name, arr in (("is_fraud", fraud), ("sent", sent), ("amounts", amounts), ("losses", losses)):
            if arr.shape != (n,):
                raise PayrouteError(f"fraud labels: {name} must have shape ({n},), got {arr.shape}")
        if groups.shape != (n_actions,) or not np.issubdtype(groups.dtype, np.integer) or (groups < 0).any():
            raise PayrouteError(
                f"fraud labels: action_groups must be {n_actions} non-negative integers, got {groups.tolist()!r}"
            )
        _first_bad("fraud labels: amounts", ~(np.isfinite(amounts) & (amounts >= 0)), amounts, "is not >= 0")
        _first_bad("fraud labels: losses", ~(np.isfinite(losses) & (losses >= 0)), losses, "is not >= 0")
        return FraudLabels(fraud.astype(bool), sent.astype(bool), amounts, losses, groups.astype(np.int64))


# ---------------------------------------------------------------------- checks
def _first_bad(name: str, bad: np.ndarray, values: np.ndarray, problem: str) -> None:
    if bad.any():
        i = int(np.argmax(bad))
        raise PayrouteError(
            f"{name}: {int(bad.sum())} row(s) where the value {problem} (first: row {i}, {values[i].tolist()!r})"
        )


def _schema_of(source: str | Path | pa.Table) -> tuple[pa.Schema, str]:
    if isinstance(source, pa.Table):
        return source.schema, "log"
    path = Path(source)
    if not path.is_file():
        raise PayrouteError(f"log file not found: {path}")
    try:
        return pq.read_schema(path), path.name
    except (pa.ArrowInvalid, OSError) as err:
        raise PayrouteError(f"{path.name} is not a readable Parquet file ({err})") from None


def _read_parquet(path: str | Path, columns: list[str], label: str) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as err:
        raise PayrouteError(f"{label}: could not read ({err})") from None


def _compatible(expected: pa.DataType, actual: pa.DataType) -> bool:
    if pa.types.is_dictionary(actual):
        actual = actual.value_type
    if pa.types.is_integer(expected):
        return pa.types.is_integer(actual)
    if pa.types.is_floating(expected):
        return pa.types.is_floating(actual)
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    return actual == expected


def _type_words(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "an integer type (int64)"
    if pa.types.is_floating(t):
        return "a floating-point type (float64)"
    if pa.types.is_string(t):
        return "string"
    return str(t)


def _check_schema(schema: pa.Schema, label: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in schema.names]
    if missing:
        raise PayrouteError(
            f"{label}: missing column(s) {', '.join(missing)}; see docs/log_schema.md for the event log schema"
        )
    for name in schema.names:
        expected = _TYPES.get(name)
        if expected is None:
            continue  # extra columns are the user's business
        actual = schema.field(name).type
        if not _compatible(expected, actual):
            raise PayrouteError(f"{label}: column {name} has type {actual}; expected {_type_words(expected)}")


def _check_observation_schema(schema: pa.Schema, obs_columns: list[str], label: str) -> None:
    missing = [c for c in obs_columns if c not in schema.names]
    if missing:
        raise PayrouteError(
            f"{label}: missing observation column {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; evaluating a policy on a log needs the observation it would have seen on every decision "
            "(payroute simulate --log writes obs.<feature> columns; see docs/log_schema.md)"
        )
    for c in obs_columns:
        if not pa.types.is_floating(schema.field(c).type):
            raise PayrouteError(
                f"{label}: column {c} has type {schema.field(c).type}; expected float32 or float64"
            )


def _check_context(routed: pa.Table, tx_id: np.ndarray, label: str) -> None:
    """The context columns every estimate's reward model reads: amounts, arrival times, risk scores."""
    amount = _np(routed, "amount_cents", np.int64)
    _bad_rows(
        label,
        "amount_cents",
        (amount < 0) | (amount > MAX_CENTS),
        tx_id,
        amount,
        f"is outside 0..{MAX_CENTS}",
    )
    t = _np(routed, "t_arrival", np.float64)
    _bad_rows(
        label, "t_arrival", ~(np.isfinite(t) & (t >= 0)), tx_id, t, "is not a finite time >= 0 (seconds)"
    )
    score = _np(routed, "risk_score", np.float64)
    _bad_rows(label, "risk_score", ~((score >= 0) & (score <= 1)), tx_id, score, "is outside [0, 1]")


def _route_names(routed: pa.Table, actions: np.ndarray, label: str, given: list[str] | None) -> list[str]:
    n_seen = int(max(actions.max() + 1, int(_np(routed, "eligible_mask", np.int64).max()).bit_length()))
    if given is not None and n_seen > len(given):
        raise PayrouteError(
            f"{label}: column route_index: the log uses route index {n_seen - 1}; the scenario has {len(given)} routes"
        )
    names = list(given) if given is not None else [""] * n_seen
    if "route" not in routed.column_names:
        return names
    pairs = (
        pa.table(
            {
                "i": routed.column("route_index"),
                "name": pc.fill_null(routed.column("route").cast(pa.string()), ""),
            }
        )
        .group_by(["i", "name"])
        .aggregate([])
        .sort_by([("i", "ascending"), ("name", "ascending")])
    )
    seen: dict[str, list[int]] = {}
    for idx_text, name in zip(pairs.column("i").to_pylist(), pairs.column("name").to_pylist(), strict=True):
        idx = int(idx_text)
        if name == "":
            continue  # the log does not name this row's route
        if names[idx] == "" and given is None:
            names[idx] = name
        elif names[idx] != name:
            raise PayrouteError(
                f"{label}: column route: route_index {idx} is named {name!r} but also {names[idx]!r}"
                + (" in the scenario" if given is not None else "")
            )
        seen[name] = [*seen.get(name, []), idx]
    for name, indices in seen.items():
        if len(indices) > 1:
            raise PayrouteError(
                f"{label}: column route: route name {name!r} is used for route_index "
                + " and ".join(str(i) for i in indices)
            )
    return names


def _later_losses(table: pa.Table, tx_id: np.ndarray, label: str) -> np.ndarray:
    """Fraud losses booked on ``post_settlement`` rows, summed per routed transaction (aligned with ``tx_id``)."""
    post = table.filter(pc.equal(table.column("record"), "post_settlement"))
    if post.num_rows == 0:
        return np.zeros(tx_id.shape[0])
    _no_nulls(post, ("tx_id", "fraud_loss_cents"), label, "post_settlement rows")
    ids = _np(post, "tx_id", np.int64)
    loss = _np(post, "fraud_loss_cents", np.int64)
    bad = (loss < 0) | (loss > MAX_CENTS)
    _bad_rows(
        label, "fraud_loss_cents", bad, ids, loss, f"is outside 0..{MAX_CENTS} on a post_settlement row"
    )
    order = np.argsort(tx_id)
    pos = np.searchsorted(tx_id, ids, sorter=order)
    pos = np.minimum(pos, tx_id.shape[0] - 1)
    hit = tx_id[order[pos]] == ids
    out = np.zeros(tx_id.shape[0])
    np.add.at(out, order[pos[hit]], loss[hit].astype(np.float64))
    return out


def _np(rows: pa.Table, column: str, dtype: type) -> np.ndarray:
    col = rows.column(column)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col.to_numpy(zero_copy_only=False).astype(dtype, copy=False)


# ---------------------------------------------------------------------- documentation
def log_columns_table() -> list[str]:
    """The markdown table of the log's columns (type, unit, meaning, whether OPE requires it)."""
    lines = [
        "| column | type | unit / values | meaning | off-policy evaluation |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, typ, unit, doc in LOG_COLUMNS:
        need = "required" if name in REQUIRED_COLUMNS else ""
        unit_text, doc_text = (text.replace("|", " \\| ") for text in (unit, doc))
        lines.append(f"| `{name}` | {typ} | {unit_text} | {doc_text} | {need} |")
    return lines


def render_log_schema() -> str:
    """The event log schema as markdown, column by column (the content of ``docs/log_schema.md``)."""
    lines = [
        f"# Event log schema (version {LOG_SCHEMA_VERSION})",
        "",
        "<!-- Generated from payroute.envs.world.eventlog.LOG_COLUMNS by payroute.policies.logs.render_log_schema;",
        "     regenerate with: python -m payroute.policies.logs docs/log_schema.md -->",
        "",
        "`payroute simulate ... --log FILE.parquet` writes every decision and outcome to one Parquet table, one row",
        "per record. Bring your own logs in the same schema to evaluate a policy on your traffic. The `record`",
        "column says which kind of row it is:",
        "",
        "* `transaction`: one row per transaction at its terminal state: attributes, hidden truth (simulated logs",
        "  only), risk and route decisions with the behaviour policy's propensity and the eligible-route mask,",
        "  terminal state, and the money it made or cost.",
        "* `post_settlement`: a chargeback, return or reimbursement after settlement; `tx_id` joins it to its",
        "  transaction.",
        "* `account`: money that moved on a settlement account without a transaction.",
        "* `decision`: a period decision (price, treasury, fraud) with its action as JSON and its propensity.",
        "",
        "Columns marked *required* must be present for off-policy evaluation; the others are optional, and",
        "checked for type when present. Integer columns accept any integer width, float columns any float width.",
        "A log may also be a CSV file (`.csv`, `.csv.gz`) with these column names: each is read as its type here.",
        "",
        *log_columns_table(),
    ]
    reward = " ".join(f"{'+' if sign > 0 else '-'} `{col}`" for col, sign in REWARD_COMPONENTS).lstrip("+ ")
    lines += [
        "",
        "## Logged decisions",
        "",
        "Off-policy evaluation reads the `transaction` rows with `route_index >= 0` (a route was chosen). A log",
        "is refused, with a message naming the column, when:",
        "",
        "* a required column is missing, or any schema column has an incompatible type;",
        "* `record` holds a value other than " + ", ".join(f"`{k}`" for k in RECORD_KINDS) + ";",
        "* a required column is null or NaN on a routed transaction row;",
        f"* `route_propensity` is outside [{MIN_PROPENSITY:g}, 1] (a smaller one would make one row the estimate);",
        f"* `amount_cents` or a reward component is negative or above {MAX_CENTS:.0e} cents;",
        "* `t_arrival` is not a finite time >= 0, or `risk_score` is outside [0, 1];",
        f"* `eligible_mask` is not a positive bitmask, or does not contain bit `route_index` (routes 0..{MAX_ROUTES - 1});",
        "* a `tx_id` has more than one `transaction` row;",
        "* `route` names one `route_index` two ways, or disagrees with the scenario's route order.",
        "",
        "The reward of a decision is the payment's margin in cents:",
        "",
        f"> reward = {reward}",
        "",
        "where `fraud_loss_cents` also sums the `post_settlement` rows with the same `tx_id` (chargebacks and",
        "reimbursements that arrived after settlement).",
        "",
        "## Observation columns",
        "",
        "To evaluate a policy bundle on a log, every routed decision's row must also hold the observation the",
        f"bundle would have seen: one float column per feature, named `{OBS_PREFIX}<feature>` in the order of the",
        "bundle's `card.json` observation (for the routing observation: `obs.log_amount`, `obs.segment=...`, ...,",
        "`obs.<route>.fee_bps`, ..., `obs.<account>.balance_to_target`; the names, units and scaling are the",
        "`payroute/Routing-v0` observation table). `payroute simulate --log` writes them, recorded at the moment",
        "each route was chosen, and leaves them null on rows without a routing decision. A log without them, or",
        "with a null, NaN or infinite value on a routed row, is refused naming the column.",
        "",
        "## Retries",
        "",
        "A log made with retries on (`payroute simulate --retries`) adds the columns of `CODE_FIELDS`",
        "(`payroute.envs.world.eventlog`): `attempt` rows, one per route answer, and `retry` rows, one per retry",
        "decision with its propensity. `read_logged_decisions` refuses it; `read_logged_sequences`",
        "(`payroute.policies.logs.sequences`) reads each payment's decisions (docs/review.md, Retries).",
        "",
        "## Exploration",
        "",
        "`payroute simulate --policy NAME --explore EPS --log FILE.parquet` routes with epsilon-greedy",
        "exploration around the policy (a baseline name or a bundle path) and logs each decision's exact",
        "behaviour propensity: `(1 - EPS) * 1[route = the policy's choice] + EPS / (number of eligible routes)`.",
        "",
    ]
    return "\n".join(lines)


def write_log_schema(path: str | Path) -> None:
    atomic_write_text(path, render_log_schema())
