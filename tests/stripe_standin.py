"""A Stripe API stand-in over loopback: ``GET /v1/events`` and ``GET /v1/accounts`` as documented.

Lists are newest first with ``limit``, ``starting_after``, ``has_more`` and ``url``; events
filter on ``created[gte|gt|lte|lt]`` and ``types[]`` (the ``types[0]=`` form stripe-python
sends, and ``types[]=``); ``Stripe-Account`` picks a connected account's events. Errors have
Stripe's shape ``{"error": {"type", "message"}}``: 401 for an unknown key, 403 for a key
without the endpoint's permission, 429 (with ``Retry-After`` when asked) for rate limits.

:meth:`StripeStandIn.emit` creates an event and sends it as Stripe would, signed, to a
webhook URL; it is kept whether or not the delivery succeeds, as Stripe keeps it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson

from tests.signing import sign_stripe


@dataclass
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    status: int = 0


@dataclass
class _State:
    keys: dict[str, set[str]] = field(default_factory=dict)  # key -> {"events", "accounts"}
    events: dict[str | None, list[dict[str, Any]]] = field(default_factory=dict)  # by account
    accounts: list[str] = field(default_factory=list)
    rate_limits: list[str | None] = field(default_factory=list)  # Retry-After per 429 to give
    requests: list[Request] = field(default_factory=list)


class StripeStandIn:
    """Serve a Stripe account's events over HTTP on 127.0.0.1:<free port>."""

    def __init__(self) -> None:
        self.state = _State()
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- set-up ---------------------------------------------------------------------------

    def add_key(self, key: str, *permissions: str) -> str:
        self.state.keys[key] = set(permissions or ("events",))
        return key

    def add_account(self, account: str) -> None:
        self.state.accounts.append(account)

    def rate_limit_next(self, count: int, retry_after: str | None = "1") -> None:
        with self.lock:
            self.state.rate_limits.extend([retry_after] * count)

    def event(
        self,
        type_: str,
        *,
        created: int | None = None,
        account: str | None = None,
        obj: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create an event (kept by the account, newest first) and return it."""
        n = next(self._ids)
        event: dict[str, Any] = {
            "id": f"evt_standin{n:08d}",
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()) if created is None else created,
            "data": {"object": obj or {"id": f"obj_{n}", "object": type_.split(".")[0]}},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
        }
        if account:
            event["account"] = account
        with self.lock:
            self.state.events.setdefault(account, []).insert(0, event)
        return event

    def emit(self, url: str, secret: str, type_: str, **kwargs: Any) -> tuple[dict[str, Any], int]:
        """Create an event and deliver it to ``url`` signed; (event, status, 0 if no answer)."""
        event = self.event(type_, **kwargs)
        body = orjson.dumps(event)
        try:
            status = httpx.post(url, content=body, headers=sign_stripe(body, secret)).status_code
        except httpx.TransportError:
            status = 0
        return event, status

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in self.state.requests if r.path == path]

    # -- server ---------------------------------------------------------------------------

    def __enter__(self) -> StripeStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, request: Request) -> tuple[int, dict[str, Any], dict[str, str]]:
        auth = request.headers.get("authorization", "")
        key = auth.removeprefix("Bearer ").strip()
        if key not in self.state.keys:
            return _error(401, "invalid_request_error", f"Invalid API Key provided: {key[:8]}***")
        with self.lock:
            if self.state.rate_limits:
                retry = self.state.rate_limits.pop(0)
                status, body, _ = _error(429, "rate_limit_error", "Too many requests")
                return status, body, {"Retry-After": retry} if retry is not None else {}
        resource = request.path.removeprefix("/v1/")
        if resource not in ("events", "accounts"):
            return _error(
                404, "invalid_request_error", f"Unrecognized request URL ({request.path})"
            )
        if resource not in self.state.keys[key]:
            return _error(
                403,
                "invalid_request_error",
                f"The provided key 'rk_***' does not have the required permissions for this "
                f"endpoint on account 'acct_standin'. Having the '{resource}_read' permission "
                "would allow this request to continue.",
            )
        query = request.query
        if resource == "accounts":
            items = [{"id": a, "object": "account"} for a in self.state.accounts]
        else:
            account = request.headers.get("stripe-account")
            with self.lock:
                items = [e for e in self.state.events.get(account, []) if _matches(e, query)]
        return 200, _page(items, query, request.path), {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                request = Request(
                    "GET",
                    parts.path,
                    parse_qsl(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                )
                status, body, extra = standin._answer(request)
                request.status = status
                with standin.lock:
                    standin.state.requests.append(request)
                data = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", f"req_{len(standin.state.requests)}")
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _error(status: int, kind: str, message: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    return status, {"error": {"type": kind, "message": message}}, {}


_BOUNDS = {
    "created[gte]": lambda created, v: created >= v,
    "created[gt]": lambda created, v: created > v,
    "created[lte]": lambda created, v: created <= v,
    "created[lt]": lambda created, v: created < v,
}


def _matches(event: dict[str, Any], query: list[tuple[str, str]]) -> bool:
    types = [value for key, value in query if key.startswith("types[")]
    for key, value in query:
        if key == "type" and event["type"] != value:
            return False
        if key in _BOUNDS and not _BOUNDS[key](event["created"], int(value)):
            return False
    return not types or event["type"] in types


def _page(items: list[dict[str, Any]], query: list[tuple[str, str]], path: str) -> dict[str, Any]:
    params = dict(query)
    limit = max(1, min(100, int(params.get("limit", "10"))))
    after = params.get("starting_after")
    if after is not None:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return {"object": "list", "url": path, "has_more": len(items) > limit, "data": items[:limit]}


@contextmanager
def stripe_api() -> Iterator[StripeStandIn]:
    with StripeStandIn() as standin:
        yield standin
