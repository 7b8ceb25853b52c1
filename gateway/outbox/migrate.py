"""PostgreSQL schema migrations and ``webhook-gateway outbox migrate``.

Migrations are numbered SQL files shipped in ``gateway/outbox/migrations`` (``0001_init.sql``
...), forward only, each applied in its own transaction together with the new version number
in ``meta``. Whoever migrates holds a session advisory lock first, so replicas starting at once
(or a migration Job beside them) apply each file exactly once and the others wait, then see the
schema current. A database whose schema is newer than this gateway knows is refused: the
gateway's queries may not fit it (roll the gateway forward, never the schema back).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from gateway.outbox import OutboxUnavailable

#: PostgreSQL 14 is the oldest release still supported by its project (13 ended in 2025)
MIN_SERVER_VERSION = 140000
#: ``pg_advisory_lock`` key: "wgmigrat" as a number, the same in every replica
LOCK_KEY = int.from_bytes(b"wgmigrat", "big") - (1 << 63)
LOCK_WAIT = "120s"  # how long a replica waits for another's migration before giving up
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class SchemaMismatch(OutboxUnavailable):
    """The database's schema does not fit this gateway (newer, or older with migrate off)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def migrations() -> tuple[Migration, ...]:
    """The shipped migrations in order; their numbers run 1, 2, 3 ... without gaps."""
    found: list[Migration] = []
    for entry in resources.files("gateway.outbox").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration files are not numbered 1..n: {[m.name for m in found]}")
    return tuple(found)


def latest_version() -> int:
    return migrations()[-1].version


def check_server(conn: Any) -> None:
    """Refuse servers older than PostgreSQL 14 with a message that says so."""
    number = int(conn.execute("SHOW server_version_num").fetchone()[0])
    refuse_old_server(number, conn.execute("SHOW server_version").fetchone()[0])


def refuse_old_server(version_num: int, shown: str) -> None:
    """:class:`OutboxUnavailable` for a ``server_version_num`` below 14's."""
    if version_num < MIN_SERVER_VERSION:
        raise OutboxUnavailable(
            f"PostgreSQL {shown} is too old: the outbox needs PostgreSQL 14 or newer"
        )


def schema_version(conn: Any) -> int:
    """The database's schema version; 0 for a database without the outbox's tables."""
    if conn.execute("SELECT to_regclass('meta')").fetchone()[0] is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def refuse_newer(version: int) -> None:
    latest = latest_version()
    if version > latest:
        raise SchemaMismatch(
            f"the database's outbox schema is version {version}, newer than this gateway knows"
            f" ({latest}): a newer gateway migrated it; run that version (or newer)"
        )


def check_schema(conn: Any) -> int:
    """The schema version, when it is the one this gateway was written for (``migrate = off``)."""
    version = schema_version(conn)
    refuse_newer(version)
    if version < latest_version():
        raise SchemaMismatch(
            f"the database's outbox schema is version {version}, this gateway needs"
            f" {latest_version()}: run `webhook-gateway outbox migrate` (or set"
            ' [outbox] migrate = "auto")'
        )
    return version


def migrate(conn: Any) -> tuple[int, int]:
    """Apply every missing migration under the advisory lock; ``(version before, after)``.

    ``conn`` is a psycopg connection in autocommit mode (or a URL to open one). Raises
    :class:`SchemaMismatch` for a schema newer than this gateway knows.
    """
    if isinstance(conn, str):
        import psycopg

        with psycopg.connect(conn, autocommit=True) as own:
            return migrate(own)
    check_server(conn)
    conn.execute(f"SET lock_timeout = '{LOCK_WAIT}'")
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        before = version = schema_version(conn)
        refuse_newer(version)
        for step in migrations()[version:]:
            with conn.transaction():
                # DDL waits at most this long for a lock, then fails instead of queueing
                # every other query behind it
                conn.execute("SET LOCAL lock_timeout = '10s'")
                conn.execute("SET LOCAL statement_timeout = 0")
                conn.execute(step.sql.encode())
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(step.version),),
                )
            version = step.version
        return before, version
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        conn.execute("RESET lock_timeout")


def run_migrate(args: argparse.Namespace, environ: Mapping[str, str], config: Any) -> int:
    """``outbox migrate [--check]``: prints the versions; 1 when ``--check`` finds it behind."""
    from gateway.cli_output import Column, emit_one
    from gateway.outbox.postgres_conn import connect

    if config.outbox.backend != "postgres":
        raise OutboxUnavailable(
            'outbox migrate is for [outbox] backend = "postgres" (or GATEWAY_DATABASE_URL);'
            " the SQLite file migrates itself when it is opened"
        )
    with connect(config.outbox, environ, autocommit=True) as conn:
        check_server(conn)
        before = after = schema_version(conn)
        if not args.check:
            before, after = migrate(conn)
    latest = latest_version()
    record = {"from": before, "to": after, "latest": latest, "current": after == latest}
    columns = [Column("FROM", "from", "number"), Column("TO", "to", "number"),
               Column("LATEST", "latest", "number"), Column("CURRENT", "current")]  # fmt: skip
    emit_one(args, record, columns)
    return 0 if record["current"] else 1
