"""Console credentials: a bearer token or HTTP basic auth (any user, password = a token).

Every request needs a token; a token has the ``read`` or ``write`` scope. Tokens are compared
in constant time against every configured token. The granted scope and how it was presented
are left in ``request.state`` (``console_scope``, ``console_auth``) for the views.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.console.responses import problem
from gateway.metrics import Metrics

READ = "read"
WRITE = "write"
REALM = 'Basic realm="webhook-gateway console", charset="UTF-8"'


def presented_token(authorization: str) -> tuple[str, str] | None:
    """``(method, token)`` from an ``Authorization`` header: ``bearer`` or ``basic``."""
    kind, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if kind.lower() == "bearer" and value:
        return "bearer", value
    if kind.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, sep, password = decoded.partition(":")
        return ("basic", password) if sep and password else None
    return None


class TokenSet:
    """The configured ``(token, scope)`` pairs."""

    def __init__(self, tokens: Sequence[tuple[str, str]]) -> None:
        self._tokens = [(token.encode(), scope) for token, scope in tokens]

    def scope_of(self, token: str) -> str | None:
        """``write``, ``read`` or None; compares against every token in constant time."""
        given = token.encode()
        granted: str | None = None
        for known, scope in self._tokens:
            if hmac.compare_digest(given, known) and granted != WRITE:
                granted = scope
        return granted


class ConsoleAuth:
    """ASGI middleware: 401 without a valid token, otherwise the app with the scope noted."""

    def __init__(self, app: ASGIApp, tokens: TokenSet, metrics: Metrics | None = None) -> None:
        self.app = app
        self.tokens = tokens
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
        presented = presented_token(header) if header else None
        granted = self.tokens.scope_of(presented[1]) if presented else None
        if presented is None or granted is None:
            reason = "missing" if not header else "invalid"
            if self.metrics is not None:
                self.metrics.console_auth_failures.labels(reason).inc()
            message = (
                "console credentials required: send 'Authorization: Bearer <token>' or log in"
                " with any user name and a console token as the password"
                if reason == "missing"
                else "console credentials not accepted: unknown token"
            )
            response = problem(scope, 401, message, headers={"www-authenticate": REALM})
            await response(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["console_scope"] = granted
        state["console_auth"] = presented[0]
        await self.app(scope, receive, send)
