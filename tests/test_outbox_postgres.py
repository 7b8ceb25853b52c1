"""The PostgreSQL outbox's own behaviour: migrations, server checks, what replicas share.

The Outbox contract itself runs in tests/test_outbox_contract.py (both backends); this file
holds what only the PostgreSQL backend has. A real server: tests/pg.py.
"""

from __future__ import annotations

import threading

import psycopg
import pytest

from gateway.outbox.migrate import (
    SchemaMismatch,
    check_schema,
    latest_version,
    migrate,
    schema_version,
)
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
