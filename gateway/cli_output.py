"""What the commands print: aligned tables with relative ages for people, JSON for scripts.

Commands build a list of plain dicts (the JSON form, unchanged by ``-o``) and describe the table
with :class:`Column` values; :func:`emit` prints one or the other. Tables follow kubectl: upper-case
headers, columns separated by two spaces, times as ``5m ago`` / ``in 30s``, ``-`` for nothing,
long text cut with ``…`` (JSON always has it whole). An empty result prints the headers and a
"No ... found." line on stderr, so ``| tail -n +2`` and ``wc -l`` still count rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TextIO

import orjson

OUTPUT_FORMATS = ("table", "json")
Kind = Literal["text", "number", "age", "due", "duration"]


#: formats only some commands print (``providers -o markdown``): accepted before the command,
#: refused by :func:`output_format` for the others
COMMAND_FORMATS = ("markdown",)


def add_output_option(
    parser: argparse.ArgumentParser, *, suppress: bool = True, extra: Sequence[str] = ()
) -> None:
    """``-o/--output table|json`` on ``parser``; suppressed defaults let it go anywhere.

    ``extra`` adds formats that only some commands print (the top-level parser takes them, so
    ``webhook-gateway -o markdown providers`` works as ``providers -o markdown`` does)."""
    parser.add_argument(
        "-o",
        "--output",
        choices=(*OUTPUT_FORMATS, *extra),
        default=argparse.SUPPRESS if suppress else "table",
        help="table (aligned columns, relative times; the default) or json (every field, "
        "Unix-time stamps, for scripts)",
    )


def output_format(args: argparse.Namespace) -> str:
    """The ``-o`` value given before or after the subcommand; ``table`` when none was."""
    return str(getattr(args, "output", None) or "table")


def duration(seconds: float) -> str:
    """A short human duration: ``45s``, ``5m12s``, ``42m``, ``3h5m``, ``20h``, ``2d4h``, ``40d``."""
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 10:
        return f"{m}m{s}s" if s else f"{m}m"
    if m < 180:
        return f"{m}m"
    h, m = divmod(m, 60)
    if h < 8:
        return f"{h}h{m}m" if m else f"{h}h"
    if h < 48:
        return f"{h}h"
    d, h = divmod(h, 24)
    if d < 8:
        return f"{d}d{h}h" if h else f"{d}d"
    return f"{d}d"


def relative(at: float | None, now: float) -> str:
    """``5m ago`` for a past Unix time, ``in 30s`` for a future one, ``-`` for none."""
    if at is None:
        return "-"
    delta = now - at
    return f"{duration(delta)} ago" if delta >= 0 else f"in {duration(-delta)}"


@dataclass(frozen=True)
class Column:
    """One table column: its header, the row key (or a function of the row) and how to show it.

    ``kind``: ``age`` (a past Unix time as ``5m ago``), ``due`` (a time as ``in 30s``/``now``),
    ``duration`` (seconds as ``5m``), ``number`` (right-aligned), else text. ``width`` cuts text.
    """

    header: str
    key: str | Callable[[Mapping[str, Any]], Any]
    kind: Kind = "text"
    width: int | None = None

    def cell(self, row: Mapping[str, Any], now: float) -> str:
        value = self.key(row) if callable(self.key) else row.get(self.key)
        if value is None or value == "":
            return "-"
        if self.kind == "age":
            return relative(float(value), now)
        if self.kind == "due":
            return "now" if float(value) <= now else relative(float(value), now)
        if self.kind == "duration":
            return duration(float(value))
        text = " ".join(str(value).split())  # one line per row, whatever the value holds
        if self.width is not None and len(text) > self.width:
            text = text[: self.width - 1] + "…"
        return text


def render_table(
    columns: Sequence[Column], rows: Iterable[Mapping[str, Any]], now: float | None = None
) -> str:
    """The rows as aligned text, headers first; trailing spaces stripped."""
    moment = time.time() if now is None else now
    cells = [[c.header for c in columns]]
    cells += [[c.cell(row, moment) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        parts = [
            text.rjust(w) if col.kind == "number" and line is not cells[0] else text.ljust(w)
            for text, w, col in zip(line, widths, columns, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines) + "\n"


def print_json(value: Any, out: TextIO | None = None) -> None:
    """``value`` as indented JSON."""
    (out or sys.stdout).write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def emit(
    args: argparse.Namespace,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    empty: str,
    now: float | None = None,
) -> None:
    """Print ``rows`` as ``-o`` asks: JSON (the list itself) or a table (``empty`` when none)."""
    if output_format(args) == "json":
        print_json(list(rows))
        return
    sys.stdout.write(render_table(columns, rows, now))
    if not rows:
        sys.stderr.write(empty + "\n")


def emit_one(
    args: argparse.Namespace,
    record: Mapping[str, Any],
    columns: Sequence[Column],
    *,
    now: float | None = None,
) -> None:
    """Print one record: JSON (the object) or a one-row table."""
    if output_format(args) == "json":
        print_json(dict(record))
        return
    sys.stdout.write(render_table(columns, [record], now))
