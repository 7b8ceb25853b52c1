"""The asyncio load generator: signed Stripe webhooks over keep-alive connections.

Used for the fixed-rate latency runs and the drain test, and for everything when ``wrk`` is not
installed. Each request is built and signed (``stripe.WebhookSignature``) just before it is
sent, with the current time as its timestamp and its own ``evt_`` id, so a long run never sends a
stale signature. Its own CPU time is measured and reported, since it competes for a core.

Modes (``--mode``):

- ``saturate``: every connection sends its next request as soon as the previous is answered,
  for ``--duration`` seconds. Latency is from send to answer.
- ``count``: the same, until ``--count`` requests were answered (bounded by ``--max-seconds``).
- ``rate``: open loop at ``--rate`` requests per second for ``--duration`` seconds; each request
  has a scheduled send time and its latency is measured from that time, so a stall on the
  server shows up in the figures instead of silently lowering the offered load.

Prints one JSON object on stdout. The secret comes from ``STRIPE_WEBHOOK_SECRET``.

    python bench/loadgen.py --port P --template T.json --tag TAG --first 0 --mode rate --rate 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from payloads import Template, event_id

_MAX_FAILED_LISTED = 10_000
clock = time.perf_counter  # uvloop's loop.time() only moves in whole milliseconds


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            waiter.set_exception(ConnectionError("response without Content-Length"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        del self.buffer[:total]
        waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class Requests:
    """Builds the ``n``-th signed request on demand."""

    template: Template
    host: str
    secret: str
    tag: str
    first: int
    issued: int = 0

    def take(self) -> tuple[int, bytes]:
        n = self.first + self.issued
        self.issued += 1
        data = self.template.signed_request(
            self.host, self.secret, event_id(self.tag, n), int(time.time())
        )
        return n, data


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    failed: list[int] = field(default_factory=list)  # ids' numbers not answered 200
    failed_count: int = 0

    def record(self, n: int, status: int | None, latency: float, error: str = "") -> None:
        if status is not None:
            self.statuses[status] += 1
            self.latencies.append(latency)
        else:
            self.errors[error] += 1
        if status != 200:
            self.failed_count += 1
            if len(self.failed) < _MAX_FAILED_LISTED:
                self.failed.append(n)


async def _connect(host: str, port: int) -> Connection:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(Connection, host, port)
    return conn


async def _send(
    conn: Connection | None, host: str, port: int, data: bytes
) -> tuple[Connection | None, int | None, str]:
    """Send one request, reconnecting once if the connection is gone."""
    for attempt in (1, 2):
        try:
            if conn is None:
                conn = await _connect(host, port)
            return conn, await conn.request(data), ""
        except (ConnectionError, OSError) as exc:
            if conn is not None:
                conn.close()
            conn = None
            if attempt == 2:
                return None, None, type(exc).__name__
    raise AssertionError("unreachable")


async def closed_loop(
    args: argparse.Namespace, requests: Requests, tally: Tally, deadline: float
) -> None:
    """``saturate`` and ``count``: each connection keeps exactly one request in flight."""
    limit = args.count if args.mode == "count" else None

    async def worker() -> None:
        conn: Connection | None = None
        while clock() < deadline and (limit is None or requests.issued < limit):
            n, data = requests.take()
            start = clock()
            conn, status, error = await _send(conn, args.host, args.port, data)
            tally.record(n, status, clock() - start, error)
        if conn is not None:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(args.connections)))


async def open_loop(
    args: argparse.Namespace, requests: Requests, tally: Tally, deadline: float
) -> dict[str, Any]:
    """``rate``: requests are due at fixed times; latency counts from the due time."""
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    total = int(args.rate * args.duration)
    max_backlog = max(100, int(args.rate * 2))  # two seconds behind: the server is saturated
    state: dict[str, Any] = {"overloaded": False, "max_backlog": 0}
    lags: list[float] = []  # the generator's own lag: when a request was queued, past its due time
    waits: list[float] = []  # due time to send: lag plus waiting for a free connection
    service: list[float] = []

    async def schedule() -> None:
        start = clock() + 0.05
        i = 0
        while i < total and clock() < deadline:
            now = clock()
            due = start + i / args.rate
            if due > now:
                # uvloop's timers have millisecond resolution; shorter sleeps would spin.
                await asyncio.sleep(max(due - now, 0.001))
                continue
            while i < total and start + i / args.rate <= now:
                due = start + i / args.rate
                lags.append(now - due)
                queue.put_nowait(due)
                i += 1
            state["max_backlog"] = max(state["max_backlog"], queue.qsize())
            if queue.qsize() > max_backlog:
                state["overloaded"] = True
                break
        for _ in range(args.connections):
            queue.put_nowait(None)

    async def worker() -> None:
        conn: Connection | None = None
        while True:
            due = await queue.get()
            if due is None or clock() > deadline:
                break
            n, data = requests.take()
            sent = clock()
            waits.append(sent - due)
            conn, status, error = await _send(conn, args.host, args.port, data)
            done = clock()
            tally.record(n, status, done - due, error)
            if status is not None:
                service.append(done - sent)
        if conn is not None:
            conn.close()

    await asyncio.gather(schedule(), *(worker() for _ in range(args.connections)))
    state["send_lag_ms"] = percentiles(lags)
    state["send_wait_ms"] = percentiles(waits)
    state["service_latency_ms"] = percentiles(service)
    return state


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/p99.9/max in milliseconds (nearest rank)."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(p: float) -> float:
        index = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
        return ordered[index] * 1000

    return {
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "p999": rank(99.9),
        "max": ordered[-1] * 1000,
        "mean": sum(ordered) / len(ordered) * 1000,
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(args: argparse.Namespace) -> dict[str, Any]:
    template = Template.from_json(json.loads(Path(args.template).read_text()))
    host = f"{args.host}:{args.port}"
    requests = Requests(template, host, os.environ["STRIPE_WEBHOOK_SECRET"], args.tag, args.first)
    tally = Tally()
    cpu0, wall0 = _cpu(), clock()
    extra: dict[str, Any] = {}
    if args.mode == "rate":
        deadline = wall0 + args.duration + args.grace
        extra = await open_loop(args, requests, tally, deadline)
        extra["offered_rate"] = args.rate
    else:
        span = args.duration if args.mode == "saturate" else args.max_seconds
        await closed_loop(args, requests, tally, wall0 + span)
    wall = clock() - wall0
    cpu = _cpu() - cpu0
    answered = sum(tally.statuses.values())
    return {
        "generator": "asyncio",
        "mode": args.mode,
        "connections": args.connections,
        "first": args.first,
        "issued": requests.issued,
        "answered": answered,
        "ok": tally.statuses.get(200, 0),
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "errors": dict(tally.errors),
        "failed": tally.failed,
        "failed_count": tally.failed_count,
        "duration_s": wall,
        "rate": answered / wall if wall else 0.0,
        "latency_ms": percentiles(tally.latencies),
        "cpu_s": cpu,
        "cpu_share": cpu / wall if wall else 0.0,
        **extra,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--template", required=True, help="JSON written by bench/run.py")
    parser.add_argument("--tag", required=True, help="event-id tag of this bench run")
    parser.add_argument("--first", type=int, default=0, help="number of the first event id")
    parser.add_argument("--mode", choices=["saturate", "count", "rate"], default="saturate")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--grace", type=float, default=10.0, help="rate mode: wait for stragglers")
    args = parser.parse_args(argv)
    if args.mode == "rate" and args.rate <= 0:
        parser.error("--mode rate needs --rate")
    if args.mode == "count" and args.count <= 0:
        parser.error("--mode count needs --count")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
