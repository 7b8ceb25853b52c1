"""The PostgreSQL outbox's own behaviour: migrations, server checks, what replicas share.

The Outbox contract itself runs in tests/test_outbox_contract.py (both backends); this file
holds what only the PostgreSQL backend has. A real server: tests/pg.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway.outbox import AcceptResult, OutboxUnavailable
from gateway.outbox.crypto import Cipher, CipherError, generate_key
from gateway.outbox.migrate import (
    SchemaMismatch,
    check_schema,
    check_server,
    latest_version,
    migrate,
    migrations,
    refuse_old_server,
    schema_version,
)
from gateway.outbox.postgres import _CLAIM, PostgresOutbox
from gateway.outbox.postgres_conn import CHANNEL
from gateway.webhook import Webhook
from tests.pg import PgCluster

ROOT = Path(__file__).resolve().parent.parent


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


def test_servers_older_than_14_are_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        check_server(conn)  # the test server: 14 or newer
    with pytest.raises(OutboxUnavailable, match=r"PostgreSQL 13\.16 is too old: .* 14 or newer"):
        refuse_old_server(130016, "13.16")
    refuse_old_server(140000, "14.0")


def test_an_older_schema_is_refused_when_migrations_are_off(pg_cluster: PgCluster) -> None:
    url = pg_cluster.new_database(schema=False)
    with (
        psycopg.connect(url) as conn,
        pytest.raises(SchemaMismatch, match="run `webhook-gateway outbox migrate`"),
    ):
        check_schema(conn)


def test_a_version_1_database_gains_the_event_apis_answers_and_keeps_its_history(
    pg_cluster: PgCluster,
) -> None:
    url = pg_cluster.new_database(schema=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(migrations()[0].sql.encode())
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
        conn.execute(
            "INSERT INTO attempts (seq, at, outcome, error) VALUES (7, 1.5, 'retry', 'boom')"
        )
    assert migrate(url) == (1, latest_version())
    with psycopg.connect(url) as conn:
        # the attempt written before the answers were kept is still there, without one
        assert conn.execute(
            "SELECT seq, at, outcome, error, status, latency_ms FROM attempts"
        ).fetchall() == [(7, 1.5, "retry", "boom", None, None)]
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'"
        ).fetchall()
        assert {"delivery_status", "delivery_ms"} <= {c[0] for c in columns}


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
    wakes: list[float] = []
    woken = threading.Event()
    b.on_remote_events(lambda: (wakes.append(1), woken.set()))
    try:
        with psycopg.connect(pg_url, autocommit=True) as listener:
            listener.execute(f"LISTEN {CHANNEL}".encode())
            assert b.listening.wait(10)
            b.accept(hook(0), *events("s/own.one"))  # B's own commit does not wake B

            async def group() -> None:
                await asyncio.gather(
                    *(a.accept_async(hook(i), *events(f"s/n.e{i}")) for i in range(1, 31)),
                    a.accept_async(hook(99), [], [], []),  # nothing to forward
                )

            before = a.commit_count
            asyncio.run(group())
            commits = a.commit_count - before
            assert woken.wait(10)
            notes = [n.payload for n in listener.notifies(timeout=1.0)]
        assert notes == [b.replica] + [a.replica] * commits  # one per commit, in commit order
        assert commits < 31  # the webhooks shared commits
        assert len(wakes) == commits  # B heard A's commits only
    finally:
        a.close()
        b.close()


def test_encryption_keys_are_checked_across_replicas(pg_url: str) -> None:
    old, new = generate_key(), generate_key()
    with replica(pg_url, cipher=Cipher([old])) as first:
        first.accept(hook(1), *events("s/k.one"))
    with pytest.raises(CipherError, match="not configured"):
        replica(pg_url, cipher=Cipher([new]))
    with replica(pg_url, cipher=Cipher([new, old])) as rotated:
        [event] = rotated.claim(max_events=10, max_bytes=10**6, lease_seconds=30)
        assert event.payload == events("s/k.one")[0][0]
        with psycopg.connect(pg_url) as conn:
            stored = conn.execute("SELECT payload FROM event_payloads").fetchone()
        assert stored is not None and b"s/k.one" not in bytes(stored[0])  # sealed at rest


@pytest.mark.parametrize(("ci", "outcome"), [("", "1 skipped"), ("true", "1 error")])
def test_without_a_server_the_tests_skip_locally_and_fail_under_ci(
    tmp_path: Path, ci: str, outcome: str
) -> None:
    (tmp_path / "test_needs_pg.py").write_text(
        "def test_needs_pg(pg_url):\n    assert pg_url\n", encoding="utf-8"
    )
    (tmp_path / "conftest.py").write_text(
        "from tests.pg import pg_cluster, pg_url  # noqa: F401\n", encoding="utf-8"
    )
    env = {**os.environ, "CI": ci, "GATEWAY_TEST_POSTGRES_BINDIR": str(tmp_path / "none")}
    env.pop("GATEWAY_TEST_POSTGRES_URL", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )  # fmt: skip
    assert outcome in result.stdout, result.stdout  # an error in the fixture fails the run
    assert result.returncode == (1 if ci else 0)
    reason = "PostgreSQL is required under CI=true" if ci else "no PostgreSQL: no server binaries"
    assert reason in result.stdout
