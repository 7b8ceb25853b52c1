"""A GitHub REST API stand-in over loopback: one webhook's deliveries, as documented.

Serves, for the hook at ``hook_path`` (``/repos/{owner}/{repo}/hooks/{id}``,
``/orgs/{org}/hooks/{id}`` or ``/app/hook``):

- ``GET {hook}/deliveries?per_page=&cursor=``: newest first, the next page's cursor in a
  ``Link: <...>; rel="next"`` header;
- ``GET {hook}/deliveries/{id}``: one delivery with its ``request`` (headers, payload);
- ``POST {hook}/deliveries/{id}/attempts``: 202, and the delivery is sent again, signed, with
  its GUID, to the hook's URL (a new delivery with ``redelivery: true``);
- ``POST /app/installations/{id}/access_tokens``: 201 with an installation token, for a valid
  App JWT (checked with PyJWT against the App's public key).

Every answer carries ``x-ratelimit-limit/remaining/reset``. A token not configured gets 401;
``rate_limit_next`` makes the next answers 429 with ``Retry-After`` (a secondary limit) and
``exhaust`` makes them 403 with ``x-ratelimit-remaining: 0`` until the reset time.

:meth:`GitHubStandIn.emit` creates a delivery and sends it to the hook's URL as GitHub does;
a delivery that gets no answer is kept as failed (``status_code`` 0).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import orjson

from tests.signing import sign_github


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    authorization: str
    status: int = 0


@dataclass
class App:
    app_id: int
    public_pem: bytes
    installation_id: int
    token: str = "ghs_installation_token_standin"


class GitHubStandIn:
    """Serve one hook's deliveries on 127.0.0.1:<free port>."""

    def __init__(self, hook_path: str, hook_url: str = "", secret: str = "") -> None:
        self.hook_path = hook_path.rstrip("/")
        self.hook_url = hook_url  # where deliveries go (the gateway's /webhooks/<source>)
        self.secret = secret
        self.tokens: set[str] = set()
        self.app: App | None = None
        self.deliveries: list[dict[str, Any]] = []  # newest first
        self.calls: list[Call] = []
        self.remaining = 5000
        self.reset_at = int(time.time()) + 3600
        self.refusals: list[str] = []  # Retry-After values for the next 429s
        self.lock = threading.Lock()
        self._ids = itertools.count(1000)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- set-up ---------------------------------------------------------------------------

    def rate_limit_next(self, count: int, retry_after: str = "1") -> None:
        self.refusals.extend([retry_after] * count)

    def exhaust(self, reset_in: int) -> None:
        """The primary limit is used up until ``reset_in`` seconds from now."""
        self.remaining = 0
        self.reset_at = int(time.time()) + reset_in

    def emit(
        self, event: str, payload: dict[str, Any], *, delivered_at: float | None = None
    ) -> dict[str, Any]:
        """A new delivery of ``event``, sent to the hook's URL; returns the delivery."""
        return self._deliver(str(uuid.uuid4()), event, payload, False, delivered_at)

    def redeliveries(self) -> list[dict[str, Any]]:
        return [d for d in self.deliveries if d["redelivery"]]

    def _deliver(
        self,
        guid: str,
        event: str,
        payload: dict[str, Any],
        redelivery: bool,
        delivered_at: float | None = None,
    ) -> dict[str, Any]:
        body = orjson.dumps(payload)
        headers = sign_github(body, self.secret, event, guid)
        headers["User-Agent"] = "GitHub-Hookshot/standin"
        try:
            answer = httpx.post(self.hook_url, content=body, headers=headers, timeout=10)
            status_code, status = (
                answer.status_code,
                ("OK" if answer.is_success else f"Invalid HTTP Response: {answer.status_code}"),
            )
            response = {"headers": dict(answer.headers), "payload": answer.text}
        except httpx.TransportError:
            status_code, status, response = 0, "failed to connect", {"headers": {}, "payload": None}
        when = time.time() if delivered_at is None else delivered_at
        delivery = {
            "id": next(self._ids),
            "guid": guid,
            "delivered_at": datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "redelivery": redelivery,
            "duration": 0.01,
            "status": status,
            "status_code": status_code,
            "event": event,
            "action": payload.get("action"),
            "installation_id": None,
            "repository_id": 1296269,
            "url": self.hook_url,
            "request": {"headers": headers, "payload": payload},
            "response": response,
        }
        with self.lock:
            self.deliveries.insert(0, delivery)
        return delivery

    # -- server ---------------------------------------------------------------------------

    def __enter__(self) -> GitHubStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _limits(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(self.reset_at),
            "x-ratelimit-resource": "core",
        }

    def _answer(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        if self.refusals:
            retry = self.refusals.pop(0)
            body = {"message": "You have exceeded a secondary rate limit."}
            return 429, body, {**self._limits(), "retry-after": retry}
        if self.remaining == 0 and time.time() < self.reset_at:
            return 403, {"message": "API rate limit exceeded"}, self._limits()
        if self.remaining == 0:
            self.remaining = 5000
        self.remaining -= 1
        token_path = re.fullmatch(r"/app/installations/(\d+)/access_tokens", call.path)
        if token_path and call.method == "POST":
            return self._installation_token(call, int(token_path.group(1)))
        if not self._authorized(call):
            return 401, {"message": "Bad credentials"}, self._limits()
        rest = call.path.removeprefix(self.hook_path)
        if rest == call.path:
            return 404, {"message": "Not Found"}, self._limits()
        if rest == "/deliveries" and call.method == "GET":
            return self._list(call)
        match = re.fullmatch(r"/deliveries/(\d+)(/attempts)?", rest)
        found = match and next((d for d in self.deliveries if d["id"] == int(match[1])), None)
        if not match or not found:
            return 404, {"message": "Not Found"}, self._limits()
        if match[2] and call.method == "POST":
            threading.Thread(
                target=self._deliver,
                args=(found["guid"], found["event"], found["request"]["payload"], True),
            ).start()
            return 202, {}, self._limits()
        if not match[2] and call.method == "GET":
            return 200, found, self._limits()
        return 404, {"message": "Not Found"}, self._limits()

    def _authorized(self, call: Call) -> bool:
        scheme, _, credential = call.authorization.partition(" ")
        if credential in self.tokens:
            return True
        if self.app is None:
            return False
        if credential == self.app.token and scheme == "token":
            return not self.hook_path.startswith("/app/")
        if self.hook_path.startswith("/app/") and scheme == "Bearer":
            return self._valid_jwt(credential)
        return False

    def _valid_jwt(self, token: str) -> bool:
        assert self.app is not None
        try:
            claims = jwt.decode(
                token, self.app.public_pem, algorithms=["RS256"], options={"require": ["exp"]}
            )
        except jwt.PyJWTError:
            return False
        return bool(claims.get("iss") == self.app.app_id and claims["exp"] - claims["iat"] <= 600)

    def _installation_token(self, call: Call, installation: int) -> tuple[int, Any, dict[str, str]]:
        scheme, _, credential = call.authorization.partition(" ")
        app = self.app
        if app is None or scheme != "Bearer" or not self._valid_jwt(credential):
            return 401, {"message": "A JSON web token could not be decoded"}, self._limits()
        if installation != app.installation_id:
            return 404, {"message": "Not Found"}, self._limits()
        expires = datetime.fromtimestamp(time.time() + 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return 201, {"token": app.token, "expires_at": expires}, self._limits()

    def _list(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        per_page = max(1, min(100, int(call.query.get("per_page", "30"))))
        items = list(self.deliveries)
        cursor = call.query.get("cursor")
        if cursor:
            after = int(cursor.removeprefix("v1_"))
            items = [d for d in items if d["id"] < after]
        page = items[:per_page]
        headers = self._limits()
        if len(items) > per_page:
            link = f"{self.url}{call.path}?per_page={per_page}&cursor=v1_{page[-1]['id']}"
            headers["link"] = f'<{link}>; rel="next"'
        summary = [{k: v for k, v in d.items() if k not in ("request", "response")} for d in page]
        return 200, summary, headers

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                call = Call(
                    method,
                    parts.path,
                    dict(parse_qsl(parts.query)),
                    self.headers.get("authorization", ""),
                )
                with standin.lock:
                    status, body, headers = standin._answer(call)
                    call.status = status
                    standin.calls.append(call)
                data = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@contextmanager
def github_api(hook_path: str, hook_url: str = "", secret: str = "") -> Iterator[GitHubStandIn]:
    with GitHubStandIn(hook_path, hook_url, secret) as standin:
        yield standin
