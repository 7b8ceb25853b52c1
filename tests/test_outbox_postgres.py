"""The PostgreSQL outbox's own behaviour: migrations, server checks, what replicas share.

The Outbox contract itself runs in tests/test_outbox_contract.py (both backends); this file
holds what only the PostgreSQL backend has. A real server: tests/pg.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from gateway.outbox import AcceptResult, OutboxUnavailable
from gateway.outbox.migrate import (
    SchemaMismatch,
    check_schema,
    latest_version,
    migrate,
    schema_version,
)
from gateway.outbox.postgres import _CLAIM, PostgresOutbox
from gateway.webhook import Webhook
from tests.pg import PgCluster


def test_migrations_apply_once_and_record_the_version(pg_cluster: PgCluster) -> None:
    url = pg_cluster.new_database(schema=False)
    assert migrate(url) == (0, latest_version())
    assert migrate(url) == (latest_version(), latest_version())
    with psycopg.connect(url) as conn:
        assert schema_version(conn) == latest_version()
        assert check_schema(conn) == latest_version()


def test_replicas_migrating_at_once_apply_each_migration_once(pg_cluster: PgCluster) -> None:
    url = pg_cluster.new_database(schema=False)
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def replica() -> None:
        start.wait()
        try:
            results.append(migrate(url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    latest = latest_version()
    # the advisory lock let exactly one of them create the tables; the others found them
    assert sorted(results) == [(0, latest)] + [(latest, latest)] * 3


def test_a_newer_schema_is_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(latest_version() + 1),)
        )
        with pytest.raises(SchemaMismatch, match="newer than this gateway knows"):
            migrate(conn)
        with pytest.raises(SchemaMismatch, match="newer than this gateway knows"):
            check_schema(conn)


def test_an_older_schema_is_refused_when_migrations_are_off(pg_cluster: PgCluster) -> None:
    url = pg_cluster.new_database(schema=False)
    with (
        psycopg.connect(url) as conn,
        pytest.raises(SchemaMismatch, match="run `webhook-gateway outbox migrate`"),
    ):
        check_schema(conn)


# -- replicas: several PostgresOutbox instances, each on its own connections ----------------

T0 = 1_700_000_000.0


def replica(url: str, **options: Any) -> PostgresOutbox:
    return PostgresOutbox(
        url, **{"listen": False, "dedup_window": 3600.0, "clock": lambda: T0, **options}
    )


def hook(n: int) -> Webhook:
    return Webhook(
        source="stripe", provider="stripe", body=b'{"n": %d}' % n, headers={}, received_at=T0
    )


def events(*names: str, ids: bool = True) -> tuple[list[bytes], list[str | None], list[str]]:
    return (
        [b'{"name":"%s"}' % n.encode() for n in names],
        [f"id-{n}" if ids else None for n in names],
        list(names),
    )


def claimed(outbox: PostgresOutbox, now: float = T0, lease: float = 30.0) -> list[int]:
    batch = outbox.claim(max_events=100, max_bytes=10**6, lease_seconds=lease, now=now)
    return [event.seq for event in batch]


@pytest.fixture
def pair(pg_url: str) -> Iterator[tuple[PostgresOutbox, PostgresOutbox]]:
    a, b = replica(pg_url), replica(pg_url)
    yield a, b
    a.close()
    b.close()


def test_a_claim_still_open_holds_back_the_rest_of_its_webhook(
    pair: tuple[PostgresOutbox, PostgresOutbox], pg_url: str
) -> None:
    """Regression: with SQLite's claim query ported as is, B got [2, 3] here."""
    a, b = pair
    a.accept(hook(1), *events("s/a.one", "s/a.two"))
    a.accept(hook(2), *events("s/b.one"))
    (first, second), (third,) = claimed_rows(pg_url)
    with psycopg.connect(pg_url) as other:
        # replica A's claim, between locking webhook 1's first event and committing its lease
        locked = other.execute(_CLAIM, {"at": T0, "limit": 1}).fetchall()
        assert [row[0] for row in locked] == [first]
        assert claimed(b) == [third]  # not `second`: its webhook's first event is in flight
        other.rollback()
    assert claimed(b) == [first, second]


def claimed_rows(url: str) -> list[list[int]]:
    """The stored events' seqs, grouped by webhook in acceptance order."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT webhook_id, seq FROM events ORDER BY seq").fetchall()
    groups: dict[int, list[int]] = {}
    for webhook_id, seq in rows:
        groups.setdefault(webhook_id, []).append(seq)
    return list(groups.values())


def test_leased_elsewhere_or_waiting_for_a_retry_holds_back_later_events(
    pair: tuple[PostgresOutbox, PostgresOutbox], pg_url: str
) -> None:
    a, b = pair
    a.accept(hook(1), *events("s/a.one", "s/a.two"))
    a.claim(max_events=1, max_bytes=10**6, lease_seconds=30, now=T0)
    assert claimed(b) == []  # webhook 1's first event is leased by A
    a.release(claimed_rows(pg_url)[0][:1], retry_at=T0 + 60, error="503")
    assert claimed(b) == []  # and now waits for its retry
    assert claimed(b, now=T0 + 61) == claimed_rows(pg_url)[0]


def test_concurrent_claims_are_disjoint_and_keep_each_webhooks_order(pg_url: str) -> None:
    writer = replica(pg_url)
    for i in range(60):
        writer.accept(hook(i), *events(*(f"s/w{i}.e{j}" for j in range(i % 3 + 1))))
    groups = claimed_rows(pg_url)
    webhook_of = {seq: n for n, seqs in enumerate(groups) for seq in seqs}
    order = {seq: i for seqs in groups for i, seq in enumerate(seqs)}
    total = sum(len(seqs) for seqs in groups)
    finished: set[int] = set()
    batches: list[list[int]] = []
    violations: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(3)

    def forward(outbox: PostgresOutbox) -> None:
        start.wait()
        idle = 0
        while idle < 3:
            batch = [e.seq for e in outbox.claim(max_events=4, max_bytes=10**6, lease_seconds=60)]
            if not batch:
                idle += 1
                continue
            with lock:
                for seq in batch:
                    earlier = groups[webhook_of[seq]][: order[seq]]
                    if any(s not in finished and s not in batch for s in earlier):
                        violations.append(f"{seq} claimed before {earlier}")
                batches.append(batch)
                finished.update(batch)  # before the ack commits: a later claim may not be early
            outbox.ack(batch)

    replicas = [replica(pg_url) for _ in range(3)]
    threads = [threading.Thread(target=forward, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for r in (writer, *replicas):
        r.close()
    every = [seq for batch in batches for seq in batch]
    assert violations == []
    assert len(every) == len(set(every)) == total  # disjoint, and every event was claimed


def test_a_stale_holder_changes_nothing_once_another_replica_took_the_lease(
    pair: tuple[PostgresOutbox, PostgresOutbox],
) -> None:
    a, b = pair
    a.accept(hook(1), *events("s/a.one"))
    [seq] = claimed(a, lease=5)
    assert a.renew([seq], 5, now=T0 + 4) == {seq}  # A still holds it: lease until T0 + 9
    assert claimed(b, now=T0 + 8) == []
    assert claimed(b, now=T0 + 10) == [seq]  # A's lease ran out; B took it over
    assert a.renew([seq], 5, now=T0 + 10) == set()
    a.release([seq], retry_at=T0 + 100, error="late")
    a.unlease([seq])
    a.dead_letter(seq, "late")
    a.ack([seq])
    [entry] = b.entries(["leased"])
    assert (entry.id, entry.attempts, entry.error) == (seq, 0, "")
    b.ack([seq])
    assert b.stats(now=T0 + 10).delivered == 1


def test_dedup_holds_across_replicas_accepting_at_once(
    pair: tuple[PostgresOutbox, PostgresOutbox],
) -> None:
    start = threading.Barrier(2)
    results: dict[str, list[AcceptResult]] = {}

    def send(name: str, outbox: PostgresOutbox) -> None:
        start.wait()
        results[name] = [outbox.accept(hook(i), *events(f"s/x.e{i}")) for i in range(20)]

    threads = [threading.Thread(target=send, args=item) for item in zip("ab", pair, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes = [r for rs in results.values() for r in rs]
    assert sum(r.stored for r in outcomes) == 20
    assert sum(r.duplicates for r in outcomes) == 20
    a, b = pair
    # a dead-lettered id is accepted again, by either replica
    [seq] = [e.seq for e in a.claim(max_events=1, max_bytes=10**6, lease_seconds=30)]
    a.dead_letter(seq, "400 bad event")
    [dead] = [e.event_id for e in a.entries(["dead"])]
    index = int((dead or "").rsplit("e", 1)[1])
    assert b.accept(hook(99), *events(f"s/x.e{index}")).stored == 1
    assert a.accept(hook(98), *events(f"s/x.e{index}")).duplicates == 1


def test_accepts_commit_durably_in_groups_without_savepoints(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER DATABASE " + conn.info.dbname + " SET synchronous_commit = off")
    outbox = replica(pg_url)
    try:
        session = outbox._writer.conn.conn
        assert session is not None
        # the server's default is off here; the writer's session turns it on for accepts
        assert session.execute("SHOW synchronous_commit").fetchone() == ("on",)

        async def many() -> list[Any]:
            bad = Webhook(source="bad\x00", provider="stripe", body=b"{}", headers={})
            jobs = [outbox.accept_async(hook(i), *events(f"s/g.e{i}")) for i in range(40)]
            jobs.insert(20, outbox.accept_async(bad, *events("s/g.bad")))
            return await asyncio.gather(*jobs, return_exceptions=True)

        before = outbox.commit_count
        results = asyncio.run(many())
        failed = [r for r in results if isinstance(r, BaseException)]
        # the NUL byte fails its own webhook only: the group ran again one job at a time
        assert len(failed) == 1 and isinstance(failed[0], OutboxUnavailable)
        assert sum(r.stored for r in results if isinstance(r, AcceptResult)) == 40
        assert outbox.stats().pending == 40
        assert outbox.commit_count - before <= 41
    finally:
        outbox.close()


def test_one_notify_per_commit_wakes_the_other_replicas(pg_url: str) -> None:
    a = replica(pg_url)
    b = replica(pg_url, listen=True)
    woken = threading.Event()
    own: list[int] = []
    b.on_remote_events(woken.set)
    try:
        assert b.listening.wait(10)
        b.accept(hook(0), *events("s/own.one"))  # B's own commit does not wake B
        own.append(int(woken.is_set()))
        a.accept(hook(1), *events("s/n.one"))
        assert woken.wait(10)
        woken.clear()
        a.accept(hook(2), [], [], [])  # nothing to forward: no NOTIFY
        a.accept(hook(3), *events("s/n.two"))
        assert woken.wait(10)
    finally:
        a.close()
        b.close()
    assert own == [0]
