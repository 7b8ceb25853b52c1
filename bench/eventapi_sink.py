"""A fast stand-in for the Inngest Event API: ``POST /e/{key}`` with a JSON array of events.

It answers like the open-source server (200 ``{"ids": [...], "status": 200}``; 400 naming the
first invalid event with the ids accepted before it; 401 for another key) and counts requests,
events and distinct event ids. While "down" every ``/e/`` request gets 503.

Control, on the same port (the gateway only ever posts to ``/e/{key}``):

    POST /_control/down     answer 503 from now on      (or send SIGUSR1)
    POST /_control/up       answer normally again       (or send SIGUSR2)
    POST /_control/reset    forget every count and id
    GET  /_control/stats    counts as JSON
    GET  /_control/ids      every distinct event id received, as a JSON array

    python bench/eventapi_sink.py --port 0 --key KEY
"""

from __future__ import annotations

import argparse
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from serve import serve

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Sink:
    """The ASGI app and its counters; one process, one event loop, so no locks."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.down = False
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.ok_requests = 0
        self.statuses: Counter[int] = Counter()
        self.events = 0  # events in accepted requests, repeats included
        self.ids: set[str] = set()
        self.missing_ids = 0
        self.invalid = 0
        self.bytes = 0
        self.max_batch = 0
        self.first_ok_at: float | None = None  # time.monotonic(), comparable across processes
        self.last_ok_at: float | None = None
        self.first_request_at: float | None = None

    def stats(self) -> dict[str, Any]:
        return {
            "down": self.down,
            "requests": self.requests,
            "ok_requests": self.ok_requests,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "events": self.events,
            "distinct_ids": len(self.ids),
            "repeats": self.events - len(self.ids) - self.missing_ids,
            "missing_ids": self.missing_ids,
            "invalid": self.invalid,
            "bytes": self.bytes,
            "max_batch": self.max_batch,
            "first_ok_at": self.first_ok_at,
            "last_ok_at": self.last_ok_at,
            "first_request_at": self.first_request_at,
            "now": time.monotonic(),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith("/e/") and method == "POST":
            status, answer = self.events_endpoint(path[3:], body)
        else:
            status, answer = self.control(method, path)
        await _respond(send, status, answer)

    def events_endpoint(self, key: str, body: bytes) -> tuple[int, Any]:
        now = time.monotonic()
        self.requests += 1
        if self.first_request_at is None:
            self.first_request_at = now
        status, answer = self._events(key, body)
        self.statuses[status] += 1
        if status == 200:
            self.ok_requests += 1
            if self.first_ok_at is None:
                self.first_ok_at = now
            self.last_ok_at = now
        return status, answer

    def _events(self, key: str, body: bytes) -> tuple[int, Any]:
        if self.down:
            return 503, {"status": 503, "error": "stand-in is down"}
        if key != self.key:
            return 401, {"status": 401, "error": "Event key not found"}
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return 400, {"status": 400, "ids": [], "error": f"invalid JSON: {exc}"}
        events = parsed if isinstance(parsed, list) else [parsed]
        for index, event in enumerate(events):
            if (
                not isinstance(event, dict)
                or not isinstance(event.get("name"), str)
                or not event["name"]
                or not isinstance(event.get("data", {}), dict)
            ):
                self.invalid += 1
                self._take(events[:index], len(body))
                return 400, {
                    "status": 400,
                    "ids": [f"{self.events - index + i:026d}" for i in range(index)],
                    "error": f"event {index} is invalid",
                }
        self._take(events, len(body))
        first = self.events - len(events)
        return 200, {"ids": [f"{first + i:026d}" for i in range(len(events))], "status": 200}

    def _take(self, events: list[Any], size: int) -> None:
        self.events += len(events)
        self.bytes += size
        self.max_batch = max(self.max_batch, len(events))
        for event in events:
            event_id = event.get("id")
            if isinstance(event_id, str):
                self.ids.add(event_id)
            else:
                self.missing_ids += 1

    def control(self, method: str, path: str) -> tuple[int, Any]:
        if method == "POST" and path == "/_control/down":
            self.down = True
        elif method == "POST" and path == "/_control/up":
            self.down = False
        elif method == "POST" and path == "/_control/reset":
            self.reset()
        elif method == "GET" and path == "/_control/ids":
            return 200, sorted(self.ids)
        elif not (method == "GET" and path == "/_control/stats"):
            return 404, {"error": "not found"}
        return 200, self.stats()


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, status: int, answer: Any) -> None:
    body = orjson.dumps(answer)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Inngest Event API stand-in for benchmarks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", required=True, help="the only event key accepted")
    args = parser.parse_args(argv)
    sink = Sink(args.key)

    def set_down(down: bool) -> Callable[[int, Any], None]:
        def handler(signum: int, frame: Any) -> None:
            sink.down = down

        return handler

    signal.signal(signal.SIGUSR1, set_down(True))
    signal.signal(signal.SIGUSR2, set_down(False))
    serve(sink, args.host, args.port)


if __name__ == "__main__":
    main()
