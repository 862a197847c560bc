"""What an environment's ``info`` holds: every key declared, with its type, unit and when it is present.

Each environment declares its keys next to the code that builds them, as a tuple of :class:`InfoKey`
(``RoutingEnv.INFO_KEYS``, ``RouterRole.INFO_KEYS``, ``PaymentEcosystemEnv.FINAL_INFO_KEYS``,
``RTGSLiquidityGame.INFO_KEYS``, ...). From the same tuples come the ``## Info`` table of each class
docstring (:func:`with_info_table`), the tables of ``docs/environments.md``
(``python -m payroute.experiments.reference``) and the test that every key an environment returns is
declared, with the declared type (:func:`info_problems`, ``tests/envs/test_infos.py``).

Types. A single number is a Python ``int`` or ``float`` and a single flag a Python ``bool``, each key always of
the same type (a time is a ``float`` even when it is 0); several numbers are a numpy array of a fixed dtype
(``np.int8``, ``np.int64``, ``np.float64``, ``np.bool_``). So Gymnasium's vector environments stack every
numeric key into one numeric array of shape ``(num_envs, ...)`` (``int`` -> ``int64`` with NumPy 2, ``float`` ->
``float64``, ``bool`` -> ``bool``), and a ``dict`` key by key (a mapping keyed by scenario names too). Strings,
tuples of strings and lists of records (``list[dict]``, whose length varies) stay Python objects: a vector
environment keeps them in an object array, one entry per environment. Python scalars rather than numpy ones:
they cost nothing on the hot path (``np.int64(x)`` costs several times ``int(x)``, and an info is built at
every one of ~10^5 steps a day), stay JSON-serialisable, and stack better (Gymnasium keeps a ``np.bool_``
scalar in an object array).

Arrays. Each info holds its own arrays or arrays the environment never writes again: a client may keep
an info. Arrays that are the same at every step (``route_latency_s``) are one read-only array, handed out
again and again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

PHASES: dict[str, str] = {
    "reset": "reset",
    "step": "every step but the last",
    "terminal": "the last step",
    "decision": "with the agent's observation (reset or step)",
    "posting": "the morning step",
    "period": "each period's step but the last",
}
"""Phase name -> when it is, in words. Single-agent environments: ``reset``, ``step``, ``terminal``; the
ecosystem's agents: ``decision``, ``terminal``; the RTGS game: ``reset``, ``posting``, ``period``, ``terminal``."""

_NUMPY = {"np.int8": np.int8, "np.int64": np.int64, "np.float64": np.float64, "np.bool_": np.bool_}
_PYTHON = {"int": int, "float": float, "bool": bool, "str": str}
_OBJECTS = ("tuple[str]", "dict", "list[dict]", "dict[str, ...]")
DTYPES: tuple[str, ...] = (*_NUMPY, *_PYTHON, *_OBJECTS)
"""The types a key may declare: a numpy array (``np.*``, with a ``shape``), a Python scalar, a tuple of strings,
a dict of fixed fields, a list of records, or a mapping whose keys come from the scenario (``dict[str, ...]``:
its one field describes every value)."""


@dataclass(frozen=True)
class InfoKey:
    """One key of an ``info`` dict.

    ``dtype``: one of :data:`DTYPES`: a Python type for a scalar, a numpy dtype for an array. ``shape``: an
    array's dimensions, by name (``"n_routes"``) or size; empty for anything else. ``when``: the phases (:data:`PHASES`) whose info holds the key. ``fields``: the
    keys of a ``dict``, of each record of a ``list[dict]``, or (one field) every value of a ``dict[str, ...]``.
    ``only``: ``(argument, value)`` when the key is present only for environments built with that argument
    value (``None``: always).
    """

    name: str
    dtype: str
    unit: str
    meaning: str
    when: tuple[str, ...] = ("reset", "step")
    shape: tuple[str | int, ...] = ()
    fields: tuple[InfoKey, ...] = ()
    only: tuple[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"info key {self.name!r}: dtype {self.dtype!r} is not one of {DTYPES}")
        bad = sorted(set(self.when) - set(PHASES))
        if bad:
            raise ValueError(f"info key {self.name!r}: unknown phases {bad}; phases: {sorted(PHASES)}")
        if bool(self.shape) != (self.dtype in _NUMPY):
            raise ValueError(
                f"info key {self.name!r}: an array has a numpy dtype and a shape, nothing else does"
            )
        if bool(self.fields) != (self.dtype in ("dict", "list[dict]", "dict[str, ...]")):
            raise ValueError(f"info key {self.name!r}: fields go with dict, list[dict] and dict[str, ...]")


def keys_for(
    keys: Iterable[InfoKey], phase: str, arguments: Mapping[str, Any] | None = None
) -> list[InfoKey]:
    """The keys present at ``phase`` for an environment built with ``arguments`` (name -> value)."""
    arguments = arguments or {}
    return [
        k
        for k in keys
        if phase in k.when and (k.only is None or arguments.get(k.only[0], _MISSING) == k.only[1])
    ]


_MISSING = object()


# ------------------------------------------------------------------ checking an info against its declaration
def info_problems(
    info: Mapping[str, Any],
    keys: Iterable[InfoKey],
    sizes: Mapping[str, int] | None = None,
    where: str = "info",
) -> list[str]:
    """What is wrong with ``info`` given the keys it should hold (empty when nothing): missing or undeclared
    keys, values of another type, dtype or shape. ``sizes`` resolves named dimensions (``n_routes``)."""
    keys = list(keys)
    sizes = sizes or {}
    problems = []
    declared = {k.name for k in keys}
    extra, missing = sorted(set(info) - declared), sorted(declared - set(info))
    if extra:
        problems.append(f"{where}: undeclared keys {extra}")
    if missing:
        problems.append(f"{where}: missing keys {missing}")
    for k in keys:
        if k.name in info:
            problems += _value_problems(info[k.name], k, sizes, f"{where}[{k.name!r}]")
    return problems


def _value_problems(value: Any, key: InfoKey, sizes: Mapping[str, int], where: str) -> list[str]:
    dtype = key.dtype
    if dtype in _NUMPY:
        want = _NUMPY[dtype]
        if not isinstance(value, np.ndarray) or value.dtype != want:
            got = getattr(value, "dtype", type(value).__name__)
            return [f"{where}: {type(value).__name__} of {got}, declared an array of {dtype}"]
        shape = tuple(sizes.get(d, -1) if isinstance(d, str) else d for d in key.shape)
        if value.ndim != len(shape) or any(s not in (-1, v) for s, v in zip(shape, value.shape, strict=True)):
            return [f"{where}: shape {value.shape}, declared {key.shape} = {shape}"]
        return []
    if dtype in _PYTHON:
        return [] if type(value) is _PYTHON[dtype] else [f"{where}: {type(value).__name__}, declared {dtype}"]
    if dtype == "tuple[str]":
        ok = type(value) is tuple and all(type(v) is str for v in value)
        return [] if ok else [f"{where}: {type(value).__name__}, declared a tuple of str"]
    if not isinstance(value, (list if dtype == "list[dict]" else dict)):
        return [f"{where}: {type(value).__name__}, declared {dtype}"]
    if dtype == "dict":
        return info_problems(value, key.fields, sizes, where)
    if dtype == "list[dict]":
        out = []
        for i, record in enumerate(value):
            out += info_problems(record, key.fields, sizes, f"{where}[{i}]")
        return out
    out = []
    for name, item in value.items():  # dict[str, ...]: every value as the one field says
        out += [f"{where}: key {name!r} is not a str"] if type(name) is not str else []
        out += _value_problems(item, key.fields[0], sizes, f"{where}[{name!r}]")
    return out


# ------------------------------------------------------------------ the tables
def _type_text(key: InfoKey) -> str:
    if key.shape:
        return f"`{key.dtype}` array `({', '.join(str(d) for d in key.shape)}{',' if len(key.shape) == 1 else ''})`"
    return f"`{key.dtype}`"


_WHEN_TOGETHER = {
    frozenset({"reset", "step", "terminal"}): "always",
    frozenset({"reset", "step"}): "reset and every step but the last",
    frozenset({"posting", "period", "terminal"}): "every step",
    frozenset({"period", "terminal"}): "every period's step (not the morning's)",
}


def _when_text(key: InfoKey) -> str:
    text = _WHEN_TOGETHER.get(frozenset(key.when)) or ", ".join(PHASES[p] for p in key.when)
    if key.only is not None:
        text += f"; only with `{key.only[0]}={key.only[1]!r}`"
    return text


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _rows(keys: Iterable[InfoKey], prefix: str = "", nested: bool = False) -> list[str]:
    rows = []
    for k in keys:
        name = prefix + k.name
        when = "" if nested else _when_text(k)
        rows.append(f"| `{name}` | {_type_text(k)} | {_cell(k.unit)} | {when} | {_cell(k.meaning)} |")
        if k.dtype == "dict":
            rows += _rows(k.fields, f"{name}.", True)
        elif k.dtype == "list[dict]":
            rows += _rows(k.fields, f"{name}[i].", True)
        elif k.dtype == "dict[str, ...]":  # its one field stands for every value: key[field name]
            (value,) = k.fields
            rows += _rows((replace(value, name=f"[{value.name}]"),), name, True)
    return rows


def info_table(keys: Iterable[InfoKey]) -> str:
    """The markdown table of ``keys`` (nested fields as ``key.field``, ``key[i].field``, ``key[name]``)."""
    head = ["| key | type | unit | when | meaning |", "| --- | --- | --- | --- | --- |"]
    return "\n".join([*head, *_rows(keys)])


INFO_HEADING = "## Info"


def with_info_table(doc: str | None, keys: Iterable[InfoKey]) -> str | None:
    """``doc`` (a class docstring) with :func:`info_table` of ``keys`` after the paragraph that follows its
    ``## Info`` heading (``None`` stays ``None``: ``python -OO``)."""
    if doc is None:
        return None
    import inspect

    doc = inspect.cleandoc(doc)
    if INFO_HEADING not in doc:
        raise ValueError(f"the docstring has no {INFO_HEADING!r} section for its info table")
    head, rest = doc.split(INFO_HEADING, 1)
    intro, sep, tail = rest.lstrip("\n").partition("\n\n")
    return f"{head}{INFO_HEADING}\n\n{intro}\n\n{info_table(keys)}\n\n{tail}".rstrip() + "\n"


def readonly(array: np.ndarray) -> np.ndarray:
    """``array`` made read-only (an info may hand it out more than once), returned."""
    array.flags.writeable = False
    return array


ELAPSED_S = InfoKey(
    "t_s", "float", "s", "simulated time now, since the episode's start", when=("reset", "step", "terminal")
)
"""The ``t_s`` key of the environments that step by period (Pricing-v0, Treasury-v0)."""
