"""The one YAML reader and the one JSON reader: a file as Python data, or a :class:`~payroute.errors.ConfigError`
naming the file.

Scenarios, experiments and review configs are YAML mappings; each loader validates the mapping against its own
pydantic model. Bundles (``card.json``, ``golden.json``) and run folders (``run.json``, ``latest.json``, ...) are
JSON. Whatever a file holds, reading it is bounded before any Python object is built from it:

* **size**: at most :data:`YAML_MAX_BYTES` / :data:`JSON_MAX_BYTES` bytes are read; a larger file is refused
  without reading the rest;
* **encoding**: the text must be UTF-8 (a byte-order mark is allowed); anything else is refused naming the byte;
* **nesting**: at most :data:`MAX_DEPTH` levels of mappings and lists (checked while composing YAML and before
  parsing JSON, so deep nesting never reaches Python's recursion limit);
* **YAML aliases**: a document is refused when expanding its aliases would give more than
  :data:`YAML_MAX_NODES` nodes or :data:`YAML_MAX_CHARS` characters of scalars, or when an alias refers to a node
  that contains it (the "billion laughs" file fails in milliseconds, before anything is expanded).

Every refusal is one line: ``<file>: <what is wrong>; <what is allowed>``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from payroute.errors import ConfigError

MAX_DEPTH = 64
"""Most levels of nested mappings and lists in a YAML or JSON file (the deepest shipped file has under ten)."""
YAML_MAX_BYTES = 2 << 20
"""Largest YAML config read (2 MiB; the largest shipped scenario is under 20 KiB)."""
JSON_MAX_BYTES = 64 << 20
"""Largest JSON file read (64 MiB; a bundle's golden vectors are a few hundred KiB)."""
YAML_MAX_NODES = 200_000
"""Most nodes (mappings, lists, scalars) a YAML document may expand to, its aliases expanded."""
YAML_MAX_CHARS = 32 << 20
"""Most characters of scalars a YAML document may expand to, its aliases expanded."""


# ---------------------------------------------------------------------- bytes and text
def read_text(path: str | Path, max_bytes: int, *, source: str | None = None) -> str:
    """The UTF-8 text of ``path``, read no further than ``max_bytes`` (a larger file is refused)."""
    where = source or str(path)
    return decode_text(_read_bytes(Path(path), max_bytes, where), where, max_bytes)


def _read_bytes(path: Path, max_bytes: int, where: str) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(max_bytes + 1)
    except OSError as err:
        raise ConfigError(f"{where}: cannot be read ({err.strerror or type(err).__name__})") from None


def decode_text(raw: bytes | str, source: str, max_bytes: int) -> str:
    """``raw`` as text: at most ``max_bytes`` bytes of UTF-8 (a leading byte-order mark is dropped)."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        raise ConfigError(
            f"{source}: larger than {_size(max_bytes)}; allowed: files up to {_size(max_bytes)}"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{source}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); "
            "allowed: UTF-8 only, save the file as UTF-8"
        ) from None


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n} bytes"


# ---------------------------------------------------------------------- YAML
class _LimitExceeded(Exception):
    """Raised inside the loader; turned into a ConfigError naming the file."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing deep nesting while it composes and oversized alias expansion before it
    constructs anything."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise _LimitExceeded(
                    f"nested deeper than {MAX_DEPTH} levels (line {line}); allowed: at most {MAX_DEPTH}"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose expansion (aliases as copies) is too deep, too large, or infinite."""
    memo: dict[int, tuple[int, int, int]] = {}  # id -> (nodes, chars, depth) of the expanded subtree
    on_path: set[int] = set()

    def visit(node: yaml.Node, level: int) -> tuple[int, int, int]:
        key = id(node)
        if key in on_path:
            raise _LimitExceeded(
                f"an alias refers to a node that contains it (line {node.start_mark.line + 1})"
            )
        got = memo.get(key)
        if got is None:
            if level > MAX_DEPTH:
                raise _LimitExceeded(
                    f"nested deeper than {MAX_DEPTH} levels once its aliases are expanded "
                    f"(line {node.start_mark.line + 1})"
                )
            on_path.add(key)
            nodes, chars, depth = 1, 0, 0
            if isinstance(node, yaml.ScalarNode):
                chars = len(node.value)
            else:
                children = (
                    node.value
                    if isinstance(node, yaml.SequenceNode)
                    else [n for kv in node.value for n in kv]
                )
                for child in children:
                    n, c, d = visit(child, level + 1)
                    nodes, chars, depth = nodes + n, chars + c, max(depth, d + 1)
            on_path.discard(key)
            got = memo[key] = (nodes, chars, depth)
        elif level + got[2] > MAX_DEPTH:
            raise _LimitExceeded(
                f"nested deeper than {MAX_DEPTH} levels once its aliases are expanded "
                f"(line {node.start_mark.line + 1})"
            )
        # a reused node counts in full wherever it appears: that is what expanding it costs
        if got[0] > YAML_MAX_NODES or got[1] > YAML_MAX_CHARS:
            raise _LimitExceeded(
                f"its aliases expand to more than {YAML_MAX_NODES:,} nodes or {YAML_MAX_CHARS >> 20} MiB of text "
                f"(at line {node.start_mark.line + 1}); allowed: aliases that expand to less"
            )
        return got

    visit(root, 0)


def load_yaml(path: str | Path, *, source: str | None = None) -> Any:
    """The data of the YAML file ``path`` (one document), within the limits of the module docstring."""
    where = source or str(path)
    text = read_text(path, YAML_MAX_BYTES, source=where)
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except _LimitExceeded as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {' '.join(str(exc).split())}") from None
    except (ValueError, OverflowError) as exc:  # a scalar PyYAML cannot build: 2020-13-45, a 5000-digit int
        raise ConfigError(
            f"{where}: not valid YAML: a value cannot be read ({' '.join(str(exc).split())[:120]})"
        ) from None
    finally:
        loader.dispose()


def read_yaml_mapping(path: str | Path, *, empty: dict[str, Any] | None = None) -> dict[str, Any]:
    """The mapping at the top of the YAML file ``path``.

    An empty file gives ``empty`` when one is given (a config whose every field has a default), else it is an
    error like any other non-mapping top level.
    """
    path = Path(path)
    data = load_yaml(path)
    if data is None and empty is not None:
        return dict(empty)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------- JSON
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def json_depth(text: str) -> int:
    """How deeply the arrays and objects of the JSON ``text`` nest (brackets inside strings do not count)."""
    import numpy as np

    bare = _JSON_STRING.sub("", text).encode("utf-8", "surrogatepass")
    b = np.frombuffer(bare, dtype=np.uint8)
    step = np.isin(b, (0x5B, 0x7B)).astype(np.int64) - np.isin(b, (0x5D, 0x7D)).astype(np.int64)
    return int(np.cumsum(step).max(initial=0))


def parse_json(raw: bytes | str, source: str, *, max_bytes: int = JSON_MAX_BYTES) -> Any:
    """The data of the JSON document ``raw`` that came from ``source`` (named in every message), within the
    limits of the module docstring."""
    text = decode_text(raw, source, max_bytes)
    depth = json_depth(text)
    if depth > MAX_DEPTH:
        raise ConfigError(f"{source}: nested {depth} levels deep; allowed: at most {MAX_DEPTH}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{source}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None
    except ValueError as err:  # a number Python will not convert (an integer of more than 4300 digits)
        raise ConfigError(f"{source}: not valid JSON ({' '.join(str(err).split())[:120]})") from None
    except RecursionError:  # only reachable with a tiny interpreter recursion limit
        raise ConfigError(f"{source}: nested too deeply; allowed: at most {MAX_DEPTH} levels") from None


def read_json(path: str | Path, *, max_bytes: int = JSON_MAX_BYTES, source: str | None = None) -> Any:
    """The data of the JSON file ``path``, within the limits of the module docstring."""
    where = source or str(path)
    return parse_json(_read_bytes(Path(path), max_bytes, where), where, max_bytes=max_bytes)


__all__ = [
    "JSON_MAX_BYTES",
    "MAX_DEPTH",
    "YAML_MAX_BYTES",
    "YAML_MAX_CHARS",
    "YAML_MAX_NODES",
    "decode_text",
    "json_depth",
    "load_yaml",
    "parse_json",
    "read_json",
    "read_text",
    "read_yaml_mapping",
]
