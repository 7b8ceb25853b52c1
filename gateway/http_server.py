"""The public port's HTTP/1.1 protocol: uvicorn's httptools protocol with limits and timeouts.

Every limit is enforced before an unauthenticated client can make the gateway buffer or wait
much, and every refusal is answered with the gateway's JSON error shape (where an answer is
still owed) and counted in ``webhook_gateway_http_refused_total{reason}``:

- ``header_too_large`` (431): the request line and headers exceed ``max_header_bytes``,
  counted as bytes arrive, so a huge header is never buffered whole;
- ``too_many_headers`` (431): more than ``max_header_count`` header lines;
- ``header_timeout`` (408, or a silent close when nothing arrived): the request head did not
  arrive within ``header_timeout`` seconds of the connection (or of the request's first byte);
- ``body_timeout`` (408): the body did not arrive within ``body_timeout`` seconds of the head;
- ``bad_request`` (400): the request is not valid HTTP/1.1;
- ``connection_limit``: more than ``max_connections`` are open. The oldest connection whose
  request has not fully arrived (idle, or still sending its head or body) is closed to make
  room (503 if it had started a request), so a flood of idle or dribbling connections cannot
  keep health checks and webhooks out; when every connection holds a whole request the app is
  answering, the new one gets 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import httptools
import orjson
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.config import HttpConfig

#: file descriptors kept for everything but client connections (SQLite, logs, the Event API
#: client's pool, the console)
FD_RESERVE = 64
#: the scope["state"] key holding the :class:`Refusal` of a request cut off mid-body: the app
#: sees a disconnect, and counts the refusal under this reason instead
REFUSED_STATE = "gateway.refused"


class RefusalCounter(Protocol):
    """Where refusals are counted (:class:`gateway.metrics.Metrics`)."""

    def refused_http(self, reason: str) -> None: ...


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a refused request."""


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    message: str


def error_bytes(status: int, reason: str, message: str) -> bytes:
    """A complete ``Connection: close`` response with the gateway's JSON error body."""
    body = orjson.dumps({"error": message, "source": None, "reason": reason})
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


def connection_cap(wanted: int) -> int:
    """``wanted``, lowered to what this process's file descriptor limit leaves room for."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FD_RESERVE))


def raise_fd_limit(connections: int) -> None:
    """Raise the soft file descriptor limit towards the hard one, for ``connections``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class GuardedHttpProtocol(HttpToolsProtocol):
    """One connection. Subclasses made by :func:`protocol_class` carry the limits."""

    limits: ClassVar[HttpConfig]
    max_connections: ClassVar[int]
    counter: ClassVar[RefusalCounter]
    #: connections not handling a request (idle, or sending their head), oldest first
    evictable: ClassVar[dict[GuardedHttpProtocol, None]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # bytes received since the current request head began
        self._head_size = 0  # request line and header lines parsed so far
        self._header_count = 0
        self._in_head = True
        self._started = False  # a byte of the current request has arrived
        self._refusal: Refusal | None = None
        self._timer: asyncio.TimerHandle | None = None

    # connection life
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.evictable[self] = None
        self._arm(self.limits.header_timeout, self._header_timed_out)
        if len(self.connections) > self.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.evictable.pop(self, None)
        super().connection_lost(exc)

    def _make_room(self) -> None:
        victim = next((c for c in self.evictable if c is not self), None)
        self.counter.refused_http("connection_limit")
        busy = Refusal(503, "connection_limit", "too many connections; retry later")
        if victim is not None:
            self.logger.info("connection limit reached: closing the oldest unfinished connection")
            victim._close(busy if victim._started else None)  # an idle one is closed quietly
        else:
            self.logger.warning("connection limit reached and every connection is busy")
            self._close(busy)

    def _close(self, refusal: Refusal | None) -> None:
        """Close the connection, answering ``refusal`` if given; a body still arriving ends."""
        self._disarm()
        self.evictable.pop(self, None)
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if not self._in_head and cycle is not None and not cycle.response_started:
            # the app is waiting for the body: it sees a disconnect and counts ``refusal``
            if refusal is not None:
                cycle.scope["state"][REFUSED_STATE] = refusal
            cycle.disconnected = True
            cycle.message_event.set()
        if refusal is not None:
            self.transport.write(error_bytes(refusal.status, refusal.reason, refusal.message))
        self.transport.close()

    # timers
    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _header_timed_out(self) -> None:
        self._timer = None
        self.counter.refused_http("header_timeout")
        if not self._started:
            self._close(None)  # nothing was sent: an idle connection, closed quietly
            return
        limit = self.limits.header_timeout
        self._close(Refusal(408, "header_timeout", f"request headers not received in {limit}s"))

    def _body_timed_out(self) -> None:
        self._timer = None
        self.counter.refused_http("body_timeout")
        limit = self.limits.body_timeout
        answered = self.cycle is not None and self.cycle.response_started
        refusal = Refusal(408, "body_timeout", f"request body not received in {limit}s")
        self._close(None if answered else refusal)

    # parsing
    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()  # the public port serves no WebSockets
            return
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._close(self._refusal)
                return
            self.logger.info("Invalid HTTP request received.")
            self.counter.refused_http("bad_request")
            self._close(Refusal(400, "bad_request", "invalid HTTP request"))
            return
        if self._in_head and self._head_bytes > self.limits.max_header_bytes:
            self._refuse_head(self._too_large())

    def _too_large(self) -> Refusal:
        limit = self.limits.max_header_bytes
        return Refusal(431, "header_too_large", f"request headers exceed {limit} bytes")

    def _refuse_head(self, refusal: Refusal) -> None:
        self.counter.refused_http(refusal.reason)
        self._refusal = refusal
        self._close(refusal)

    def _stop(self, refusal: Refusal) -> None:
        self.counter.refused_http(refusal.reason)
        self._refusal = refusal
        raise _Refused(refusal.reason)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._started:
            self._started = True
            if self._timer is None:  # a keep-alive connection's next request
                self._arm(self.limits.header_timeout, self._header_timed_out)

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._head_size += len(name) + len(value) + 4
        if self._header_count > self.limits.max_header_count:
            limit = self.limits.max_header_count
            self._stop(Refusal(431, "too_many_headers", f"more than {limit} request headers"))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._head_size > self.limits.max_header_bytes:
            self._stop(self._too_large())
        self._in_head = False
        self._arm(self.limits.body_timeout, self._body_timed_out)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head = True
        self._started = False
        self._head_bytes = self._head_size = self._header_count = 0
        super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete:
            self.evictable[self] = None  # answered before its body ended: idle now
        else:
            self.evictable.pop(self, None)  # the app has the whole request: never cut off now

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._in_head:
            self.evictable[self] = None  # idle on keep-alive: first to go when room is needed


def protocol_class(limits: HttpConfig, counter: RefusalCounter) -> type[GuardedHttpProtocol]:
    """A protocol class for one server, carrying its limits and its refusal counter."""
    attributes = {
        "limits": limits,
        "max_connections": connection_cap(limits.max_connections),
        "counter": counter,
        "evictable": {},
    }
    return type("GatewayHttpProtocol", (GuardedHttpProtocol,), attributes)


#: connections the console's admin port keeps: a few operators, never the public port's share
CONSOLE_MAX_CONNECTIONS = 64


def console_limits(limits: HttpConfig) -> HttpConfig:
    """The admin port's limits: the public port's, with a connection cap of its own."""
    cap = min(limits.max_connections, CONSOLE_MAX_CONNECTIONS)
    return limits.model_copy(update={"max_connections": cap})


class ConsoleRefusals:
    """Counts the admin port's refusals apart: ``console_<reason>`` in the same metric."""

    def __init__(self, counter: RefusalCounter) -> None:
        self._counter = counter

    def refused_http(self, reason: str) -> None:
        self._counter.refused_http(f"console_{reason}")


def server_config(
    app: ASGIApp, limits: HttpConfig, counter: RefusalCounter, **kwargs: Any
) -> uvicorn.Config:
    """uvicorn's config for a port: the guarded protocol, keep-alive from ``limits``."""
    return uvicorn.Config(
        app,
        http=protocol_class(limits, counter),
        ws="none",
        timeout_keep_alive=limits.keep_alive_timeout,
        **kwargs,
    )
