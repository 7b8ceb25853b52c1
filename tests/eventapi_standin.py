"""A real HTTP stand-in for the Inngest Event API (``POST /e/{key}``) on a loopback port.

It follows the open-source server (``pkg/api/api.go``, ``pkg/eventstream``, ``pkg/event``): the
body is one event object or an array of them, at most 5,000; each event needs a non-empty
``name`` outside the reserved ``inngest/`` namespace, an object (or null) ``data`` and a ``ts``
between 1980 and 2100. It answers 200 ``{"ids": [...], "status": 200}``; a bad event stops the
request with 400 ``{"ids": [...], "status": 400, "error": "..."}`` listing the ids accepted before
it (``[""]`` when none, like the real server). Internal ids are ULIDs derived from the
``x-inngest-event-id-seed`` header as the server does, so a re-sent batch gets the same ids.

In-process use::

    with EventApiStandIn() as api:            # or: with event_api() as api:
        api.fail_next(3, 503)                 # the next 3 requests get 503
        api.rate_limit_next(1, retry_after=2) # 429 with Retry-After: 2
        api.drop_next(1)                      # close the connection without an answer
        api.answer_next(1, 200, b"<html>", "text/html")  # a proxy's answer, not the API's
        api.max_body_bytes = 2000             # 413 above that request size (like Cloud)
        api.max_event_bytes = 1000            # 400 "Event is over the max size" (like OSS)
        api.poison_names = {"stripe/bad"}     # 400 for events with that name
        api.valid_keys = {"good"}             # 401 "Event key not found" for other keys
        api.down = True                       # 503 for everything while set
        api.delay = 3.0                       # every event request answers 3 s late
        api.hold_answers("key")               # take key's events, withhold the answer
        api.release_answers()                 # ...until this (a held client may be gone)
        ... api.url, api.events, api.raw_events, api.requests, api.wait_for_events(10)

As a separate process: ``python tests/eventapi_standin.py --port 8288`` serves until killed and
prints ``LISTENING <port>``. ``GET /_standin/stats`` and ``GET /_standin/events`` report what
arrived; ``POST /_standin/control`` with a JSON object scripts it (keys: ``down``,
``valid_keys``, ``max_body_bytes``, ``max_event_bytes``, ``poison_names``, ``delay``, ``fail_next``
``[count, status]``, ``rate_limit_next`` ``[count, retry_after]``, ``drop_next``, ``reset``).
SIGUSR1 clears ``down``; SIGUSR2 prints the counts.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any

MAX_EVENTS = 5000
MIN_TS_MS = 315_532_800_000  # 1980-01-01
MAX_TS_MS = 4_102_444_800_000  # 2100-01-01
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODER = json.JSONDecoder()
_WS = " \t\r\n"


class BodyError(ValueError):
    """The body is not an event object or an array of them."""


@dataclass
class Recorded:
    """One request the stand-in answered."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int
    events: list[Any] = field(default_factory=list)  # the events parsed from the body
    accepted: list[dict[str, Any]] = field(default_factory=list)  # the events it took
    response: dict[str, Any] = field(default_factory=dict)
    peer: int = 0  # the client's port: one value per connection
    raw_response: bytes | None = None  # sent instead of ``response`` (see answer_next)

    @property
    def key(self) -> str:
        """The event key from the path."""
        return self.path[3:] if self.path.startswith("/e/") else ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a benchmark opens many connections at once


@dataclass
class _Failure:
    status: int  # 0: drop the connection without an answer
    headers: dict[str, str]
    error: str
    raw: bytes | None = None  # answer these bytes instead of the API's JSON


def split_events(body: bytes) -> list[tuple[Any, bytes]]:
    """Parse an event object or array into ``(event, its exact bytes)`` pairs."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"invalid UTF-8: {exc}") from None
    pos = _skip_ws(text, 0)
    if pos == len(text):
        return []
    if text[pos] == "{":
        obj, end = _decode(text, pos)
        _expect_end(text, end)
        return [(obj, text[pos:end].encode())]
    if text[pos] != "[":
        raise BodyError("Request body must contain an event object or an array of event objects")
    items: list[tuple[Any, bytes]] = []
    pos = _skip_ws(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        _expect_end(text, pos + 1)
        return items
    while True:
        obj, end = _decode(text, pos)
        items.append((obj, text[pos:end].encode()))
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            _expect_end(text, pos + 1)
            return items
        raise BodyError(f"invalid character at offset {pos} after array element")


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _decode(text: str, pos: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as exc:
        raise BodyError(f"invalid JSON: {exc.msg} at offset {exc.pos}") from None


def _expect_end(text: str, pos: int) -> None:
    if _skip_ws(text, pos) != len(text):
        raise BodyError(f"invalid character at offset {pos} after top-level value")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    kinds: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return kinds.get(type(value), "null")


def validate_event(event: Any) -> str | None:
    """The real server's error for one event, or None when it would accept it."""
    if not isinstance(event, dict):
        return f"json: cannot unmarshal {_json_kind(event)} into Go value of type event.Event"
    name = event.get("name")
    if name is not None and not isinstance(name, str):
        return "json: cannot unmarshal into Go struct field Event.name of type string"
    data = event.get("data")
    if data is not None and not isinstance(data, dict):
        return (
            f"json: cannot unmarshal {_json_kind(data)} into Go struct field Event.data of type "
            "map[string]interface {}"
        )
    ts = event.get("ts")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int)):
        return "json: cannot unmarshal into Go struct field Event.ts of type int64"
    if name and name.startswith("inngest/"):
        return f"event name is reserved for internal use: {name}"
    if not name:
        return "event name is empty"
    if ts:
        if ts < MIN_TS_MS:
            return "timestamp is before Jan 1, 1980"
        if ts > MAX_TS_MS:
            return "timestamp is after Jan 1, 2100"
    return None


def seeded_ulid(seed: str, index: int) -> str | None:
    """The internal id the server derives from ``millis,base64(10 bytes)`` and the index."""
    millis_text, sep, entropy_text = seed.partition(",")
    try:
        millis = int(millis_text)
        entropy = bytearray(base64.b64decode(entropy_text, validate=True))
    except ValueError:
        return None
    if not sep or millis <= 0 or len(entropy) != 10:
        return None
    tail = (int.from_bytes(entropy[6:10], "big") + index) % 2**32
    entropy[6:10] = tail.to_bytes(4, "big")
    value = (millis << 80) | int.from_bytes(entropy, "big")
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def random_ulid() -> str:
    return seeded_ulid(
        f"{int(time.time() * 1000)},{base64.b64encode(os.urandom(10)).decode()}", 0
    ) or ("0" * 26)


class EventApiStandIn:
    """The server, its record and its script; thread-safe. Binds 127.0.0.1, port 0 by default."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.requests: list[Recorded] = []
        self.events: list[dict[str, Any]] = []  # every accepted event, in arrival order
        self.raw_events: list[bytes] = []  # the same, as the exact bytes received
        self.ids: list[str] = []  # the internal id given to each accepted event
        self._script: list[_Failure] = []
        self.max_body_bytes: int | None = None
        self.max_event_bytes: int | None = None
        self.poison_names: set[str] = set()
        self.valid_keys: set[str] | None = None
        self.down = False  # every request gets 503 while set
        self.delay = 0.0  # seconds each event request waits before it is answered
        self.held_keys: set[str] = set()  # events taken, answers withheld (hold_answers)
        self.held: list[Recorded] = []  # requests whose answer is being withheld
        self._gate = threading.Event()
        self._gate.set()
        self.httpd = _Server((host, port), self._handler())
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    # -- scripting ----------------------------------------------------------------------------

    def fail_next(
        self,
        count: int,
        status: int = 503,
        *,
        error: str = "scripted failure",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``count`` requests with ``status`` (before any other check)."""
        with self.lock:
            self._script.extend(_Failure(status, dict(headers or {}), error) for _ in range(count))

    def rate_limit_next(self, count: int, retry_after: str | float | None = 1) -> None:
        """Answer the next ``count`` requests 429, with ``Retry-After`` unless None."""
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after}"}
        self.fail_next(count, 429, error="rate limit exceeded", headers=headers)

    def drop_next(self, count: int) -> None:
        """Close the connection of the next ``count`` requests without an answer."""
        self.fail_next(count, 0)

    def answer_next(
        self, count: int, status: int, body: bytes, content_type: str = "text/html"
    ) -> None:
        """Answer the next ``count`` requests with ``body`` as is: a proxy, not the API."""
        headers = {"content-type": content_type}
        with self.lock:
            self._script.extend(_Failure(status, headers, "", body) for _ in range(count))

    def reset(self) -> None:
        """Forget every request and event and clear the script."""
        with self.lock:
            self.requests.clear()
            self.held.clear()
            self.events.clear()
            self.raw_events.clear()
            self.ids.clear()
            self._script.clear()
            self.max_body_bytes = None
            self.max_event_bytes = None
            self.valid_keys = None
            self.poison_names = set()
            self.down = False
            self.delay = 0.0

    def hold_answers(self, key: str) -> None:
        """Take the events of requests with event key ``key`` as usual but withhold the answer
        (the client waits, mid-request) until :meth:`release_answers`; see :attr:`held`."""
        with self.lock:
            self.held_keys.add(key)
            self._gate.clear()

    def release_answers(self) -> None:
        """Answer every held request (one whose client is gone is dropped) and hold no more."""
        with self.lock:
            self.held_keys.clear()
            self._gate.set()

    # -- reading ------------------------------------------------------------------------------

    def event_ids(self) -> list[str | None]:
        """The ``id`` field of every accepted event, in order."""
        with self.lock:
            return [e.get("id") for e in self.events]

    def statuses(self) -> list[int]:
        """The status of every request, in order (0: dropped)."""
        with self.lock:
            return [r.status for r in self.requests]

    def stats(self) -> dict[str, Any]:
        """Counts for a separate process: events, distinct ids, requests by status."""
        with self.lock:
            return {
                "events": len(self.events),
                "distinct_ids": len({e.get("id") for e in self.events}),
                "requests": len(self.requests),
                "by_status": {
                    str(k): v for k, v in Counter(r.status for r in self.requests).items()
                },
            }

    def wait_for(self, predicate: Callable[[EventApiStandIn], bool], timeout: float = 30.0) -> bool:
        """Block until ``predicate(self)`` holds (checked after each request) or ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self.changed:
                self.changed.wait(min(remaining, 0.1))
        return True

    def wait_for_events(self, count: int, timeout: float = 30.0) -> bool:
        """Block until at least ``count`` events were accepted or ``timeout``."""
        return self.wait_for(lambda api: len(api.events) >= count, timeout)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> EventApiStandIn:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.release_answers()
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> EventApiStandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the contract -------------------------------------------------------------------------

    def _respond(
        self, path: str, headers: dict[str, str], body: bytes, record: Recorded
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            if self.down:
                return 503, {"status": 503, "error": "service unavailable"}, {}
            if self._script:
                failure = self._script.pop(0)
                if failure.raw is not None:
                    record.raw_response = failure.raw
                return (
                    failure.status,
                    {"status": failure.status, "error": failure.error},
                    (failure.headers),
                )
            valid_keys = self.valid_keys
            max_body, max_event = self.max_body_bytes, self.max_event_bytes
            poison = set(self.poison_names)
        key = path[3:] if path.startswith("/e/") else ""
        if not key or "/" in key:
            return 404, {"status": 404, "error": "not found"}, {}
        if valid_keys is not None and key not in valid_keys:
            return 401, {"status": 401, "error": "Event key not found"}, {}
        if max_body is not None and len(body) > max_body:
            return 413, {"status": 413, "error": "Request body too large"}, {}
        try:
            items = split_events(body)
        except BodyError as exc:
            return 400, {"ids": [""], "status": 400, "error": str(exc)}, {}
        record.events = [event for event, _ in items]
        seed = headers.get("x-inngest-event-id-seed", "")
        ids: list[str] = []
        error: str | None = None
        for index, (event, raw) in enumerate(items):
            if index == MAX_EVENTS:
                error = f"Cannot have more than {MAX_EVENTS} events in a batch"
            elif max_event is not None and len(raw) > max_event:
                error = f"Event is over the max size: Max {max_event} bytes / Size {len(raw)} bytes"
            else:
                error = validate_event(event)
                if error is None and event["name"] in poison:
                    error = f"event {event['name']} is invalid"
            if error is not None:
                break
            ids.append(seeded_ulid(seed, index + 1) or random_ulid())
            record.accepted.append(event)
            with self.lock:
                self.events.append(event)
                self.raw_events.append(raw)
                self.ids.append(ids[-1])
        if error is not None:
            return 400, {"ids": ids or [""], "status": 400, "error": error}, {}
        return 200, {"ids": ids, "status": 200}, {}

    def _control(self, body: bytes) -> dict[str, Any]:
        command = json.loads(body or b"{}")
        if command.get("reset"):
            self.reset()
        with self.lock:
            for name in ("down", "max_body_bytes", "max_event_bytes", "delay"):
                if name in command:
                    setattr(self, name, command[name])
            if "valid_keys" in command:
                keys = command["valid_keys"]
                self.valid_keys = None if keys is None else set(keys)
            if "poison_names" in command:
                self.poison_names = set(command["poison_names"])
        if "fail_next" in command:
            self.fail_next(*command["fail_next"])
        if "rate_limit_next" in command:
            self.rate_limit_next(*command["rate_limit_next"])
        if "drop_next" in command:
            self.drop_next(int(command["drop_next"]))
        return self.stats()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if self.path == "/_standin/control":
                    self._send(200, api._control(body), {})
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                if api.delay > 0:
                    time.sleep(api.delay)  # a slow API: the answer comes this much later
                record = Recorded(self.path, headers, body, 0, peer=self.client_address[1])
                status, payload, extra = api._respond(self.path, headers, body, record)
                record.status, record.response = status, payload
                with api.changed:
                    api.requests.append(record)
                    holding = record.key in api.held_keys
                    if holding:
                        api.held.append(record)
                    api.changed.notify_all()
                if holding:
                    api._gate.wait()
                if status == 0:
                    self.close_connection = True
                    return
                self._send(status, payload, extra, record.raw_response)

            def do_GET(self) -> None:
                if self.path == "/_standin/stats":
                    self._send(200, api.stats(), {})
                elif self.path == "/_standin/events":
                    with api.lock:
                        events = list(api.events)
                    self._send(200, {"events": events}, {})
                else:
                    self._send(404, {"status": 404, "error": "not found"}, {})

            def _send(
                self,
                status: int,
                payload: dict[str, Any],
                extra: dict[str, str],
                raw: bytes | None = None,
            ) -> None:
                out = json.dumps(payload).encode() if raw is None else raw
                self.send_response(status)
                if "content-type" not in extra:
                    self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                for name, value in extra.items():
                    self.send_header(name, value)
                try:
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:  # a held request's client died meanwhile (kill -9)
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler


@contextmanager
def event_api() -> Iterator[EventApiStandIn]:
    """A started stand-in on a free loopback port, stopped afterwards."""
    with EventApiStandIn() as api:
        yield api


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A stand-in for the Inngest Event API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--down", action="store_true", help="answer 503 until SIGUSR1")
    parser.add_argument("--valid-key", action="append", help="accept only these keys")
    parser.add_argument("--max-body-bytes", type=int, help="answer 413 above this size")
    parser.add_argument("--max-event-bytes", type=int, help="answer 400 for larger events")
    args = parser.parse_args(argv)
    api = EventApiStandIn(args.host, args.port)
    api.down = args.down
    api.valid_keys = set(args.valid_key) if args.valid_key else None
    api.max_body_bytes = args.max_body_bytes
    api.max_event_bytes = args.max_event_bytes

    def release(signum: int, frame: FrameType | None) -> None:
        api.down = False

    def report(signum: int, frame: FrameType | None) -> None:
        stats = api.stats()
        print(
            f"EVENTS {stats['events']} DISTINCT {stats['distinct_ids']} "
            f"REQUESTS {stats['requests']}",
            flush=True,
        )

    signal.signal(signal.SIGUSR1, release)
    signal.signal(signal.SIGUSR2, report)
    print(f"LISTENING {api.port}", flush=True)
    try:
        api.httpd.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        api.httpd.server_close()


if __name__ == "__main__":
    main()
