"""What a ``/metrics`` scrape costs the outbox: ``stats()`` with and without the delivered count.

    python bench/scrape_stats.py                          # both backends, 200k then 1M delivered
    python bench/scrape_stats.py --backends sqlite --delivered 100000 --rounds 50

Each backend gets a fresh outbox (an SQLite file; a database on a local PostgreSQL started as
``tests/pg.py`` does, fsync on) holding a realistic small backlog, made through the outbox's own
paths: 1,000 pending events, 100 of them leased, 50 of those released for a retry, 10
dead-lettered. Delivered rows are what the retention period keeps: 100 made by accept, claim and
ack, and the rest copied from them by one bulk ``INSERT ... SELECT`` on the store's own schema
(each with its own seq and event id; payloads are not copied, no count reads them). Delivered
rows are grown to each ``--delivered`` size in turn, then PostgreSQL gets ``VACUUM ANALYZE``
(what autovacuum does in a steady state; it makes the delivered count's index-only scan the
cheapest it can be) and SQLite nothing (the gateway never runs ``ANALYZE``).

Per size, ``--rounds`` rounds each time, one after the other in the same round: ``stats()``
(what a scrape ran before: every count, delivered included), ``stats(delivered=False)`` (what it
runs now), and ``SELECT 1`` through the same read path (the floor: a round trip and the read
lock, no counting). Printed: median and p90 milliseconds and the before/after ratio of medians;
saved to ``bench/results/scrape-stats-<UTC time>.json`` unless ``--no-save``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from gateway.outbox import Outbox  # noqa: E402
from gateway.outbox.postgres import PostgresOutbox  # noqa: E402
from gateway.outbox.sqlite import SQLiteOutbox  # noqa: E402
from gateway.webhook import Webhook  # noqa: E402

T0 = 1_800_000_000.0
BACKLOG = (1000, 100, 50, 10)  # pending, of which leased, of which retrying, of which dead
SEEDED = 100  # delivered through accept, claim and ack; the rest are copies of them

# The delivered copies: each a template row (cycled) with its own event id and a later time.
_COLUMNS = (
    "webhook_id, event_id, name, size, sealed, state, attempts, next_attempt_at, created_at,"
    " delivered_at, delivery_status, delivery_ms"
)
_COPY = (
    f"INSERT INTO events ({_COLUMNS})"
    " SELECT t.webhook_id, 'bench-' || CAST(n.i AS TEXT), t.name, t.size, t.sealed, 'delivered',"
    " t.attempts, t.next_attempt_at, t.created_at + n.i * 0.001, t.delivered_at + n.i * 0.001,"
    " t.delivery_status, t.delivery_ms"
    " FROM ({series}) AS n JOIN events t ON t.seq = {first} + n.i % {seeded}"
)
_SQLITE_SERIES = (
    "WITH RECURSIVE c(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM c WHERE i < {stop})"
    " SELECT i FROM c"
)
_PG_SERIES = "SELECT generate_series({start}, {stop}) AS i"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def hook(n: int) -> Webhook:
    body = b'{"id": "evt_%d", "type": "payment_intent.succeeded"}' % n
    return Webhook(
        source="stripe",
        provider="stripe",
        body=body,
        headers={"Stripe-Signature": f"t=1,v1={n:064x}", "Content-Type": "application/json"},
        query={},
        received_at=T0,
    )


def accept(outbox: Outbox, first: int, webhooks: int, per: int) -> None:
    for n in range(first, first + webhooks):
        events = [b'{"name": "stripe/payment_intent.succeeded", "data": {"n": %d}}' % n] * per
        ids = [f"evt_{n}_{i}" for i in range(per)]
        outbox.accept(hook(n), events, ids, ["stripe/payment_intent.succeeded"] * per)


def seed(outbox: Outbox, clock: Clock) -> None:
    """The delivered templates, then the backlog, through the outbox's own paths."""
    accept(outbox, 0, SEEDED // 10, 10)
    claimed = outbox.claim(max_events=SEEDED, max_bytes=1 << 30, lease_seconds=60)
    outbox.ack([e.seq for e in claimed])
    pending, leased, retrying, dead = BACKLOG
    accept(outbox, 1000, pending // 10, 10)
    clock.now += 1
    held = outbox.claim(max_events=leased, max_bytes=1 << 30, lease_seconds=3600)
    outbox.release([e.seq for e in held[:retrying]], retry_at=clock.now + 3600, error="503")
    for event in held[retrying : retrying + dead]:
        outbox.dead_letter(event.seq, "400 bad event")


def timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def measure(outbox: Outbox, rounds: int, floor: Callable[[], Any]) -> dict[str, list[float]]:
    """Before, after and the floor, side by side in each round (after a warm-up round)."""
    full = outbox.stats()
    assert full.delivered is not None and outbox.stats(delivered=False).delivered is None
    times: dict[str, list[float]] = {"before": [], "after": [], "floor": []}
    for i in range(rounds + 1):
        before = timed(outbox.stats)
        after = timed(lambda: outbox.stats(delivered=False))
        base = timed(floor)
        if i:
            times["before"].append(before)
            times["after"].append(after)
            times["floor"].append(base)
    return times


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def report(backend: str, delivered: int, times: dict[str, list[float]]) -> dict[str, Any]:
    med = {k: statistics.median(v) for k, v in times.items()}
    row = {
        "backend": backend,
        "delivered": delivered,
        **{f"{k}_median_ms": round(m, 3) for k, m in med.items()},
        **{f"{k}_p90_ms": round(p90(v), 3) for k, v in times.items()},
        "ratio_before_after": round(med["before"] / med["after"], 1),
    }
    print(
        f"  {backend:<9} {delivered:>10,}  {med['before']:>9.3f} / {p90(times['before']):<9.3f}"
        f" {med['after']:>7.3f} / {p90(times['after']):<7.3f}"
        f" {med['floor']:>7.3f} / {p90(times['floor']):<7.3f} {row['ratio_before_after']:>8}x",
        flush=True,
    )
    return row


@contextmanager
def sqlite_store(workdir: Path) -> Iterator[tuple[Outbox, Callable[[int, int], None], Any]]:
    clock = Clock()
    outbox = SQLiteOutbox(workdir / "outbox.sqlite3", clock=clock, durability="process_crash")
    seed(outbox, clock)
    import sqlite3

    bulk = sqlite3.connect(workdir / "outbox.sqlite3", isolation_level=None)
    bulk.execute("PRAGMA busy_timeout = 10000")
    first = bulk.execute("SELECT MIN(seq) FROM events WHERE state = 'delivered'").fetchone()[0]

    def grow(start: int, stop: int) -> None:
        series = _SQLITE_SERIES.format(start=start, stop=stop)
        bulk.execute("BEGIN IMMEDIATE")
        bulk.execute(_COPY.format(series=series, first=first, seeded=SEEDED))
        bulk.execute("COMMIT")

    try:
        yield outbox, grow, lambda: outbox._read_query("SELECT 1")
    finally:
        bulk.close()
        outbox.close()


@contextmanager
def postgres_store(cluster: Any) -> Iterator[tuple[Outbox, Callable[[int, int], None], Any]]:
    import psycopg

    clock = Clock()
    url = cluster.new_database()
    outbox = PostgresOutbox(url, clock=clock, listen=False)
    seed(outbox, clock)
    bulk = psycopg.connect(url, autocommit=True)
    row = bulk.execute("SELECT MIN(seq) FROM events WHERE state = 'delivered'").fetchone()
    assert row is not None
    first = row[0]

    def grow(start: int, stop: int) -> None:
        series = _PG_SERIES.format(start=start, stop=stop)
        bulk.execute(_COPY.format(series=series, first=first, seeded=SEEDED).encode())
        bulk.execute(b"VACUUM ANALYZE events")

    try:
        yield outbox, grow, lambda: outbox._read_query("SELECT 1")
    finally:
        bulk.close()
        outbox.close()
        cluster.drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--delivered", default="200000,1000000", help="sizes, grown in turn")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.delivered.split(","))
    rows = []
    print(
        f"outbox stats() per scrape, {args.rounds} rounds; backlog: {BACKLOG[0]:,} undelivered"
        f" ({BACKLOG[1]} leased, {BACKLOG[2]} retrying), {BACKLOG[3]} dead\n"
        f"  {'backend':<9} {'delivered':>10}  {'before ms p50/p90':<21}"
        f" {'after ms p50/p90':<17} {'SELECT 1 p50/p90':<17} {'before/after':>9}"
    )
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="scrape-stats-") as tmp:
            cluster = None
            if backend == "postgres":
                from tests.pg import PgCluster

                cluster = PgCluster.start_local(fsync=True)
                store = postgres_store(cluster)
            else:
                store = sqlite_store(Path(tmp))
            try:
                with store as (outbox, grow, floor):
                    have = SEEDED
                    for size in sizes:
                        started = time.monotonic()
                        grow(have, size - 1)
                        have = size
                        total = outbox.stats().delivered
                        assert total == size, (total, size)
                        built = time.monotonic() - started
                        print(f"  ({backend}: {size:,} delivered rows, built in {built:.1f} s)")
                        rows.append(report(backend, size, measure(outbox, args.rounds, floor)))
            finally:
                if cluster is not None:
                    cluster.close()
    print("ratios (before/after, medians): " + ", ".join(
        f"{r['backend']} {r['delivered']:,}: {r['ratio_before_after']}x" for r in rows
    ))  # fmt: skip
    if not args.no_save:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        out = REPO / "bench" / "results" / f"scrape-stats-{stamp}.json"
        record = {"time": stamp, "rounds": args.rounds, "backlog": BACKLOG, "rows": rows}
        out.write_text(json.dumps(record, indent=2) + "\n")
        print(f"saved {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
