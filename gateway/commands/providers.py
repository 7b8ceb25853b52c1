"""``webhook-gateway providers``: every provider with its verification, handshake, dedup id,
the variable that enables it and its origin (rows from :mod:`gateway.providers.listing`)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from gateway.cli_output import OUTPUT_FORMATS, Column, emit, output_format
from gateway.providers.listing import COLUMNS, ORIGIN, markdown_table, provider_rows

#: ``-o`` choices for this command: the usual two, plus the Markdown table the docs carry
FORMATS = (*OUTPUT_FORMATS, "markdown")
TABLE = tuple(Column(name.upper(), name) for name in (*COLUMNS, ORIGIN))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``-o table|json|markdown`` (suppressed default: ``-o`` before the command counts too)."""
    parser.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default=argparse.SUPPRESS,
        help="table (aligned columns; the default), json (for scripts) or markdown (the table "
        "in docs/providers-more.md)",
    )


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    rows = provider_rows()
    if output_format(args) == "markdown":
        print(markdown_table(rows))
        return 0
    plain = [{k: v.replace("`", "") for k, v in row.items()} for row in rows]
    emit(args, plain, TABLE, empty="No providers registered.")
    return 0
