"""The rows of ``webhook-gateway providers``: every provider with its verification, handshake,
dedup id, the variable that enables it and where it came from (built-in or plugin), read from
each provider class's metadata (the docs table in docs/providers-more.md is checked against the
same rows, less the origin, by a test); the command itself is gateway/commands/providers.py.
"""

from __future__ import annotations

from gateway.providers import Provider, get_provider, provider_names, provider_origin

COLUMNS = (
    "provider",
    "zero-config variable",
    "verification",
    "handshake",
    "dedup id",
    "replay window",
)
#: the column the table and JSON add: ``builtin (module)``, or the plugin's entry point and dist
ORIGIN = "origin"


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
                "replay window": window_text(cls),
                ORIGIN: provider_origin(name),
            }
        )
    return rows


def dedup_text(cls: type[Provider]) -> str:
    """The dedup column: the provider's id, plus the body digest where no timestamp is signed."""
    text = cls.dedup_summary
    if not cls.signs_timestamp and "body digest" not in text:
        text += " + body digest"
    return text


def window_text(cls: type[Provider]) -> str:
    """The replay-window column: the default ``tolerance`` where a timestamp is signed."""
    if "window_summary" in vars(cls):  # a class's own: the generic ``hmac``'s, not its presets'
        return cls.window_summary
    return f"{cls.default_tolerance} s" if cls.signs_timestamp else "none: body digest"


def markdown_table(rows: list[dict[str, str]]) -> str:
    """The rows as the Markdown table docs/providers-more.md carries."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines.extend("| " + " | ".join(row[c] for c in COLUMNS) + " |" for row in rows)
    return "\n".join(lines)
