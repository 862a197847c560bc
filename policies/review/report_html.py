"""The pieces every section of the review report is built from: escaped tables, embedded plots, anchors.

Everything that came from a file is escaped here (:func:`cell`, :func:`table`), plot labels built from names are
drawn with ``parse_math=False`` by the sections, and figures are drawn on matplotlib's Agg canvas (no display).
A plot is a PNG embedded as base64 at :data:`DPI` dots per inch, so the report stays one self-contained file.
"""

from __future__ import annotations

import base64
import html
import io
import re
from typing import Any

import numpy as np

DPI = 100


def esc(x: Any) -> str:
    return html.escape(str(x))


def slug(text: str) -> str:
    """An HTML id fragment from a name: lower case, runs of other characters as one '-'."""
    return re.sub(r"[^a-z0-9_]+", "-", text.lower()).strip("-") or "x"


def evidence_id(section: str, name: str = "") -> str:
    """The id a section gives the evidence for its check ``name`` (``section-<section>`` for the section)."""
    return f"ev-{slug(section)}-{slug(name)}" if name else f"section-{slug(section)}"


def num(x: float | None, fmt: str = "{:.4g}") -> str:
    return "" if x is None or not np.isfinite(x) else fmt.format(x)


def cell(v: Any) -> str:
    if isinstance(v, bool):
        return f"<td>{esc(v)}</td>"
    if isinstance(v, int | float | np.integer | np.floating):
        return f"<td class='num'>{num(float(v))}</td>"
    return f"<td>{esc(v)}</td>"


def table(header: list[str], rows: list[list[Any]], css: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    klass = f" class='{css}'" if css else ""
    return f"<table{klass}><tr>{head}</tr>{body}</table>"


def figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # Agg canvas by default: no display, no pyplot state

    return Figure(figsize=(width, height))


def img(fig: Any, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"<img alt='{esc(alt)}' src='data:image/png;base64,{data}'>"


__all__ = ["DPI", "cell", "esc", "evidence_id", "figure", "img", "num", "slug", "table"]
