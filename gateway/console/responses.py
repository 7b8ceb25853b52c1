"""Error answers for the console: JSON for API clients, a small HTML page for browsers."""

from __future__ import annotations

import html
from collections.abc import Mapping

from starlette.responses import HTMLResponse, Response
from starlette.types import Scope

from gateway.receive import json_response

#: every console answer carries these (no framing, no caching, scripts only from the console)
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def wants_json(scope: Scope) -> bool:
    """API paths, and clients that ask for JSON, get JSON."""
    if str(scope.get("path", "")).startswith("/console/api/"):
        return True
    for name, value in scope.get("headers", []):
        if name == b"accept":
            accept = value.decode("latin-1")
            return "application/json" in accept and "text/html" not in accept
    return False


def problem(
    scope: Scope, status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """``{"error": message}`` or an HTML page saying the same, with ``status``."""
    extra = {**SECURITY_HEADERS, **(headers or {})}
    if wants_json(scope):
        return json_response(status, {"error": message, "status": status}, extra)
    page = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>"
        f"{status} · webhook-gateway console</title>"
        '<link rel=stylesheet href="/console/static/console.css">'
        f"<main class=error><h1>{status}</h1><p id=error-message>{html.escape(message)}</p>"
        '<p><a href="/console">Back to the overview</a></p></main></html>'
    )
    return HTMLResponse(page, status, extra)
