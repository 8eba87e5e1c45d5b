"""The comparison table, defined once and rendered as markdown, CSV and HTML.

:func:`table_columns` is the one list of the table's columns: each knows its title, its cell text
(markdown and HTML) and its CSV fields, so the three renderings cannot drift apart. A row is what
:meth:`wgan.compare.CompareResult.rows` returns: labels plus one :data:`~wgan.compare.aggregate.Cell`
(mean, std, n) per numeric column.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from wgan.compare.aggregate import Cell
from wgan.metrics import Column

Row = dict[str, Any]


@dataclass(frozen=True)
class TableColumn:
    """One column of the table in every rendering.

    Attributes:
        title: the header in markdown and HTML; ``None`` for a column only the CSV has.
        text: the cell in markdown and HTML.
        csv_names: the CSV header fields this column writes.
        csv_values: the CSV fields of a row (as many as ``csv_names``).
        numeric: right-aligned in markdown.
    """

    title: str | None
    text: Callable[[Row], str]
    csv_names: tuple[str, ...]
    csv_values: Callable[[Row], list[str]]
    numeric: bool = False


def num(v: float | None) -> str:
    """A number for the CSV files: 6 significant digits, empty when missing or not finite."""
    return "" if v is None or not math.isfinite(v) else f"{v:.6g}"


def plus_minus(cell: Cell, fmt: str) -> str:
    """``"7.0 ± 1.0"``: the mean and sample std in the column's format; ``–`` without a value."""
    m, s, n = cell
    if n == 0:
        return "–"
    if fmt.endswith("d"):  # a mean of counts is no count
        fmt = fmt[:-1] + ".1f"
    return format(m, fmt) if n == 1 else f"{format(m, fmt)} ± {format(s, fmt)}"


def csv_name(key: str) -> str:
    """A record key as a CSV field name: ``metrics/w1`` -> ``metrics_w1``."""
    return key.replace("/", "_")


def _label(name: str, title: str, numeric: bool = False) -> TableColumn:
    return TableColumn(title, lambda r: r[name], (name,), lambda r: [r[name]], numeric)


def _measured(c: Column) -> TableColumn:
    name = csv_name(c.key)
    return TableColumn(c.title, lambda r: plus_minus(r[c.key], c.fmt), (f"{name}_mean", f"{name}_std"),
                       lambda r: [num(r[c.key][0]), num(r[c.key][1]) if r[c.key][2] else ""], numeric=True)


def table_columns(measured: Sequence[Column]) -> list[TableColumn]:
    """The table's columns, in order: labels, every measured column (mean ± std), health, failures.

    Args:
        measured: the numeric columns (:meth:`wgan.compare.CompareResult.columns`).
    """
    return [
        _label("variant", "variant"),
        TableColumn("objective + Lipschitz", lambda r: r["method"], ("method",), lambda r: [r["method"]]),
        _label("n_critic", "n_critic", numeric=True),
        TableColumn("runs ok", lambda r: r["runs"], ("runs_ok", "runs_total"), lambda r: r["runs"].split("/"),
                    numeric=True),
        *[_measured(c) for c in measured],
        _label("health", "health"),
        TableColumn(None, lambda r: "", ("failures",),
                    lambda r: ["; ".join(f"seed {s}: {e}" for s, e in r["failed"])]),
    ]


def markdown_table(columns: Sequence[TableColumn], rows: Sequence[Row]) -> str:
    """The table in GitHub markdown (an empty cell reads ``–``), without a final newline."""
    shown = [c for c in columns if c.title is not None]
    lines = ["| " + " | ".join(c.title for c in shown) + " |",
             "|" + "|".join("---:" if c.numeric else "---" for c in shown) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(c.text(row) or "–" for c in shown) + " |")
    return "\n".join(lines)


def html_table(columns: Sequence[TableColumn], rows: Sequence[Row]) -> str:
    """The table as one HTML ``<table>`` element (text escaped)."""
    shown = [c for c in columns if c.title is not None]
    head = "".join(f"<th>{html.escape(c.title)}</th>" for c in shown)
    body = ["<tr>" + "".join(f"<td>{html.escape(str(c.text(row)))}</td>" for c in shown) + "</tr>" for row in rows]
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def csv_table(columns: Sequence[TableColumn], rows: Sequence[Row]) -> str:
    """The table as CSV, one line per row: every column's CSV fields (a mean and a std per measured one)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([name for c in columns for name in c.csv_names])
    for row in rows:
        w.writerow([v for c in columns for v in c.csv_values(row)])
    return buf.getvalue()


def runs_csv(keys: Sequence[str], runs: Sequence[Any]) -> str:
    """One CSV line per run (:class:`~wgan.compare.RunResult`): the raw values behind the table."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["variant", "seed", "ok"] + [csv_name(k) for k in keys] + ["health", "error", "run_dir"])
    for r in runs:
        w.writerow([r.variant, r.seed, int(r.ok)] + [num(r.value(k)) for k in keys]
                   + [(r.verdict or {}).get("status", ""), r.error or "", r.run_dir or ""])
    return buf.getvalue()
