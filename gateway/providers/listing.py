"""``webhook-gateway providers``: every provider with its verification, handshake, dedup id and
the variable that enables it, read from each provider class's metadata (the docs table in
docs/providers-more.md is checked against the same rows by a test).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping

from gateway.providers import Provider, get_provider, provider_names

COLUMNS = ("provider", "zero-config variable", "verification", "handshake", "dedup id")


def provider_rows() -> list[dict[str, str]]:
    """One row per registered provider, in name order."""
    rows = []
    for name in provider_names():
        cls = get_provider(name)
        variable = cls.secret_variable()
        extra = [f"`{var}`" for var in cls.env_options.values()]
        enabling = f"`{variable}`" if variable else "— (needs options)"
        rows.append(
            {
                "provider": f"`{name}`",
                "zero-config variable": ", ".join([enabling, *extra]),
                "verification": cls.verification,
                "handshake": cls.handshake_summary,
                "dedup id": dedup_text(cls),
            }
        )
    return rows


def dedup_text(cls: type[Provider]) -> str:
    """The dedup column: the provider's id, plus the body digest where no timestamp is signed."""
    text = cls.dedup_summary
    if not cls.signs_timestamp and "body digest" not in text:
        text += " + body digest"
    return text


def markdown_table(rows: list[dict[str, str]]) -> str:
    """The rows as the Markdown table docs/providers-more.md carries."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines.extend("| " + " | ".join(row[c] for c in COLUMNS) + " |" for row in rows)
    return "\n".join(lines)


def plain_table(rows: list[dict[str, str]]) -> str:
    """Aligned columns for a terminal, without Markdown backticks."""
    cells = [[row[c].replace("`", "") for c in COLUMNS] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(COLUMNS)]
    head = "  ".join(c.upper().ljust(w) for c, w in zip(COLUMNS, widths, strict=True))
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join([head.rstrip(), *body])


def cmd_providers(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Print the providers table (``-o json``/``-o markdown`` for other formats)."""
    rows = provider_rows()
    output = getattr(args, "output", "table")
    if output == "json":
        print(json.dumps([{k: v.replace("`", "") for k, v in r.items()} for r in rows], indent=2))
    elif output == "markdown":
        print(markdown_table(rows))
    else:
        print(plain_table(rows))
    return 0
