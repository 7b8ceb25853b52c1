"""A real HTTP stand-in for the Inngest Event API (``POST /e/{key}``) on a loopback port.

It follows the open-source server's contract: a JSON array (or one object) of events; each needs
a non-empty ``name`` and an object ``data``; 200 ``{"ids": [...], "status": 200}``; a 400 names
the bad event and lists the ids accepted before it. It can be scripted to fail:

    api.fail_next(3, 503)                 # the next 3 requests get 503
    api.rate_limit_next(1, retry_after=2)  # 429 with Retry-After: 2
    api.max_body_bytes = 2000             # 413 above that size
    api.poison_names = {"stripe/bad"}      # 400 for events with that name
    api.valid_keys = {"good"}              # 401 for other keys

Run it alone with ``python tests/eventapi_standin.py --port 0``: it prints ``LISTENING <port>``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    events: list[dict[str, Any]] = field(default_factory=list)


class EventApiStandIn:
    """The server and its script; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.events: list[dict[str, Any]] = []
        self._failures: list[tuple[int, dict[str, str]]] = []
        self.max_body_bytes: int | None = None
        self.poison_names: set[str] = set()
        self.valid_keys: set[str] | None = None
        self.down = False  # every request gets 503 while set
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def fail_next(self, count: int, status: int = 503) -> None:
        with self.lock:
            self._failures.extend([(status, {})] * count)

    def rate_limit_next(self, count: int, retry_after: str | float | None = 1) -> None:
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        with self.lock:
            self._failures.extend([(429, headers)] * count)

    def event_ids(self) -> list[str | None]:
        with self.lock:
            return [e.get("id") for e in self.events]

    def start(self) -> EventApiStandIn:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _respond(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            if self.down:
                return 503, {"status": 503, "error": "unavailable"}, {}
            if self._failures:
                status, extra = self._failures.pop(0)
                return status, {"status": status, "error": "scripted failure"}, extra
        if not path.startswith("/e/") or len(path) <= 3:
            return 404, {"status": 404, "error": "not found"}, {}
        key = path[3:]
        if self.valid_keys is not None and key not in self.valid_keys:
            return 401, {"status": 401, "error": "Event key not found"}, {}
        if self.max_body_bytes is not None and len(body) > self.max_body_bytes:
            return 413, {"status": 413, "error": "Request body too large"}, {}
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            return 400, {"ids": [], "status": 400, "error": f"unable to parse: {exc}"}, {}
        events = parsed if isinstance(parsed, list) else [parsed]
        accepted: list[dict[str, Any]] = []
        ids: list[str] = []
        for event in events:
            error = None
            if not isinstance(event, dict) or not event.get("name"):
                error = "event name is empty"
            elif not isinstance(event.get("data", {}), dict):
                error = "data must be an object"
            elif event["name"] in self.poison_names:
                error = f"event {event['name']} is invalid"
            if error:
                with self.lock:
                    self.events.extend(accepted)
                return 400, {"ids": ids, "status": 400, "error": error}, {}
            accepted.append(event)
            ids.append(uuid.uuid4().hex)
        with self.lock:
            self.events.extend(accepted)
        return 200, {"ids": ids, "status": 200}, {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload, extra = api._respond(self.path, headers, body)
                record = Recorded(self.path, headers, body, status)
                if status == 200:
                    parsed = json.loads(body)
                    record.events = parsed if isinstance(parsed, list) else [parsed]
                with api.lock:
                    api.requests.append(record)
                out = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler


@contextmanager
def event_api() -> Iterator[EventApiStandIn]:
    """A started stand-in, stopped afterwards."""
    api = EventApiStandIn().start()
    try:
        yield api
    finally:
        api.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--down", action="store_true", help="answer 503 until SIGUSR1")
    args = parser.parse_args()
    api = EventApiStandIn()
    api.down = args.down
    import signal

    def release(signum: int, frame: Any) -> None:
        api.down = False

    def report(signum: int, frame: Any) -> None:
        with api.lock:
            ids = {e.get("id") for e in api.events}
            print(
                f"EVENTS {len(api.events)} DISTINCT {len(ids)} REQUESTS {len(api.requests)}",
                flush=True,
            )

    signal.signal(signal.SIGUSR1, release)
    signal.signal(signal.SIGUSR2, report)
    print(f"LISTENING {api.port}", flush=True)
    sys.stdout.flush()
    api.httpd.serve_forever()


if __name__ == "__main__":
    main()
