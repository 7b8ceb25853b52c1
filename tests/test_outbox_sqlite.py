"""What only the SQLite outbox promises: WAL, group commit, failures, crashes, processes, keys."""

from __future__ import annotations

import asyncio
import base64
import ctypes
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, OutboxConfig
from gateway.outbox import Answer, OutboxUnavailable
from gateway.outbox.common import PRUNE_CHUNK
from gateway.outbox.crypto import Cipher, CipherError, blob_key_id, generate_key, key_id
from gateway.outbox.sqlite import FILE_NAME, MAX_RETRY_HISTORY, SQLiteOutbox
from gateway.outbox.sqlite_schema import MIN_SQLITE, SCHEMA_VERSION, check_sqlite_version
from gateway.webhook import Webhook

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_700_000_000.0


def hook(n: int = 0) -> Webhook:
    return Webhook(
        source="stripe",
        provider="stripe",
        body=b'{"card": "4242-%d"}' % n,
        headers={"Authorization": "Bearer sk_live_secret"},
        query={"token": "q-secret"},
        received_at=T0 + n,
    )


def one(
    name: str = "s/a.b", event_id: str | None = None
) -> tuple[list[bytes], list[str | None], list[str]]:
    return [b'{"name":"%s","data":{"pan":"4242"}}' % name.encode()], [event_id], [name]


def claim_all(outbox: SQLiteOutbox, now: float | None = None) -> list[int]:
    batch = outbox.claim(max_events=1000, max_bytes=10**9, lease_seconds=30, now=now)
    return [e.seq for e in batch]


def raw(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[SQLiteOutbox]:
    box = SQLiteOutbox(tmp_path / FILE_NAME)
    yield box
    box.close()


class WriteLock:
    """Another connection's write transaction: the outbox's writer waits behind it."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


class Gate:
    """A job that holds the writer mid-transaction; whatever is queued meanwhile waits."""

    def __init__(self, outbox: SQLiteOutbox) -> None:
        self.started = threading.Event()
        self.proceed = threading.Event()
        self.done = outbox._submit(self._hold)
        self.started.wait()

    def _hold(self, conn: sqlite3.Connection) -> None:
        self.started.set()
        self.proceed.wait()

    def open(self) -> None:
        self.proceed.set()
        self.done.result()


# -- WAL and durability ----------------------------------------------------------------


@pytest.mark.parametrize(("durability", "synchronous"), [("power_loss", 2), ("process_crash", 1)])
def test_wal_mode_and_durability_levels(tmp_path: Path, durability: str, synchronous: int) -> None:
    box = SQLiteOutbox(tmp_path / FILE_NAME, durability=durability)  # type: ignore[arg-type]
    try:
        assert raw(tmp_path / FILE_NAME, "PRAGMA journal_mode") == [("wal",)]
        assert box._call(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0]) == (
            synchronous
        )
    finally:
        box.close()


@pytest.mark.parametrize("version", ["3.31.1", "3.34.1", "3.7.17", "2.8.17"])
def test_an_sqlite_older_than_3_35_is_refused_with_a_clear_message(version: str) -> None:
    # The library is linked into Python, so an old one cannot be loaded here: the check that
    # open_connections runs on the connection's sqlite_version() is exercised directly.
    with pytest.raises(OutboxUnavailable) as info:
        check_sqlite_version(version)
    message = str(info.value)
    assert f"SQLite {version} is too old" in message
    assert "needs SQLite 3.35 or newer (for RETURNING)" in message


@pytest.mark.parametrize("version", ["3.35.0", "3.35.5", "3.40.1", "3.45.0.1", "4.0.0"])
def test_sqlite_3_35_and_newer_are_accepted(version: str) -> None:
    check_sqlite_version(version)


def test_the_linked_sqlite_is_checked_at_open(tmp_path: Path) -> None:
    assert MIN_SQLITE == (3, 35, 0)
    assert sqlite3.sqlite_version_info >= MIN_SQLITE  # else opening below would have refused
    SQLiteOutbox(tmp_path / "outbox.sqlite3").close()


def test_purge_deletes_in_small_transactions_that_accepts_interleave_with(
    tmp_path: Path,
) -> None:
    many = 3 * PRUNE_CHUNK
    with SQLiteOutbox(tmp_path / "outbox.sqlite3", durability="process_crash") as box:
        hook = Webhook(source="s", provider="p", body=b"{}")
        for _ in range(many // 100):
            box.accept(hook, [b"{}"] * 100, [None] * 100, ["s/e"] * 100)
        seqs = [e.seq for e in box.claim(max_events=many, max_bytes=10**9, lease_seconds=60)]
        box.ack(seqs)
        sizes: list[int] = []  # events deleted per transaction, read from another connection
        before = box.commit_count
        observer = sqlite3.connect(tmp_path / "outbox.sqlite3")

        def watch(seconds: float) -> None:
            left = observer.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            sizes.append(left)

        box.observe_commits(watch)
        assert box.purge(states=["delivered"]) == many + many // 100
        observer.close()
    assert box.commit_count - before >= 3  # not one transaction holding the lock throughout
    counts = [n for n in sizes if n]  # events left after each commit that still had some
    assert all(a - b <= PRUNE_CHUNK for a, b in zip([many, *counts], counts, strict=False))


def test_unknown_durability_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        SQLiteOutbox(tmp_path / FILE_NAME, durability="sometimes")  # type: ignore[arg-type]


def test_the_file_is_private_to_its_owner(tmp_path: Path) -> None:
    box = SQLiteOutbox.open(tmp_path / "data", OutboxConfig())
    box.close()
    assert stat.S_IMODE((tmp_path / "data" / FILE_NAME).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


# -- group commit ------------------------------------------------------------------------


def test_concurrent_accepts_share_commits(tmp_path: Path, outbox: SQLiteOutbox) -> None:
    lock = WriteLock(tmp_path / FILE_NAME)  # hold the writer so 200 requests queue behind it
    commits_before = outbox.commit_count

    async def burst() -> list[int]:
        tasks = [
            asyncio.ensure_future(outbox.accept_async(hook(i), *one(event_id=f"e{i}")))
            for i in range(200)
        ]
        await asyncio.sleep(0)  # every task has now queued its job
        lock.release()
        return [result.stored for result in await asyncio.gather(*tasks)]

    assert asyncio.run(burst()) == [1] * 200
    commits = outbox.commit_count - commits_before
    assert outbox.job_count >= 200
    assert 1 <= commits <= 2 < 200  # the first job alone at most, then all the others at once
    assert outbox.stats().pending == 200


def test_a_failing_job_rolls_back_alone_and_gets_its_own_error(outbox: SQLiteOutbox) -> None:
    held = outbox.quarantine(hook(1), "boom", "tb")
    outbox.accept(hook(2), *one("s/a.one"))
    gate = Gate(outbox)

    def write_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM events")
        raise RuntimeError("job failed after writing")

    before = outbox.commit_count
    jobs: list[Future[Any]] = [
        outbox._submit(outbox._accept_job(hook(3), *one("s/b.one"))),
        outbox._submit(write_then_fail),
        outbox._submit(outbox._accept_job(hook(4), *one("s/c.one"))),
    ]
    gate.open()
    assert jobs[0].result().stored == 1
    with pytest.raises(RuntimeError, match="after writing"):
        jobs[1].result()
    assert jobs[2].result().stored == 1
    assert outbox.commit_count - before == 2  # the gate's transaction, then all three in one
    names = [e.name for e in outbox.claim(max_events=9, max_bytes=10**6, lease_seconds=5)]
    assert names == ["s/a.one", "s/b.one", "s/c.one"]  # the failed job's DELETE was undone
    assert [wid for wid, _, _ in outbox.quarantined()] == [held]


def test_queued_accepts_are_written_together_as_if_one_by_one(outbox: SQLiteOutbox) -> None:
    """Accepts queued behind one another share a few multi-row statements, same results."""
    first = outbox.accept(hook(0), *one("s/first.one", event_id="dup-old"))
    outbox.dead_letter(claim_all(outbox)[0], "400 from the Event API")
    kept = outbox.accept(hook(1), *one("s/kept.one", event_id="dup-kept"))
    gate = Gate(outbox)
    calls = [
        ("s/a.one", "new-1"),
        ("s/b.one", "dup-kept"),  # accepted before: a duplicate
        ("s/c.one", "new-1"),  # earlier in this same group: a duplicate
        ("s/d.one", "dup-old"),  # its first copy was dead-lettered: stored again
        ("s/e.one", None),  # no id: never a duplicate
        ("s/f.one", None),
    ]
    jobs = [
        outbox._submit(outbox._accept_job(hook(i + 2), *one(n, e)))
        for i, (n, e) in enumerate(calls)
    ]
    before = outbox.commit_count
    gate.open()
    results = [job.result() for job in jobs]
    assert outbox.commit_count - before == 2  # the gate's transaction, then all six at once
    assert [(r.stored, r.duplicates) for r in results] == [
        (1, 0),
        (0, 1),
        (0, 1),
        (1, 0),
        (1, 0),
        (1, 0),
    ]
    ids = [r.webhook_id for r in results]
    assert (
        ids == list(range(kept.webhook_id + 1, kept.webhook_id + 7)) and ids[0] > first.webhook_id
    )
    batch = outbox.claim(max_events=99, max_bytes=10**6, lease_seconds=5)
    assert [(e.name, e.webhook_id) for e in batch] == [
        ("s/kept.one", kept.webhook_id),
        ("s/a.one", ids[0]),
        ("s/d.one", ids[3]),
        ("s/e.one", ids[4]),
        ("s/f.one", ids[5]),
    ]
    assert [e.seq for e in batch] == sorted(e.seq for e in batch)
    # ids continue after the batch, for the next single write as for the next batch
    assert outbox.quarantine(hook(99), "boom", "tb") == ids[-1] + 1
    assert outbox.accept(hook(100), *one("s/g.one")).webhook_id == ids[-1] + 2


def test_one_bad_accept_in_a_group_fails_alone(outbox: SQLiteOutbox) -> None:
    gate = Gate(outbox)
    good = outbox._submit(outbox._accept_job(hook(1), *one("s/a.one", "a")))
    no_name: Any = None  # events.name is NOT NULL: the batch's INSERT fails
    bad = outbox._submit(outbox._accept_job(hook(2), *one("s/b.one", "b")[:2], [no_name]))
    also_good = outbox._submit(outbox._accept_job(hook(3), *one("s/c.one", "c")))
    gate.open()
    assert good.result().stored == 1 and also_good.result().stored == 1
    with pytest.raises(OutboxUnavailable):
        bad.result()
    names = [e.name for e in outbox.claim(max_events=9, max_bytes=10**6, lease_seconds=5)]
    assert names == ["s/a.one", "s/c.one"]
    # the failed webhook's id left no gap-filling row and no dedup entry behind
    assert outbox.accept(hook(4), *one("s/b.one", "b")).stored == 1


def test_a_cancelled_request_is_not_written(outbox: SQLiteOutbox) -> None:
    async def scenario() -> None:
        gate = Gate(outbox)
        kept = asyncio.ensure_future(outbox.accept_async(hook(1), *one("s/kept.one")))
        dropped = asyncio.ensure_future(outbox.accept_async(hook(2), *one("s/dropped.one")))
        await asyncio.sleep(0)  # both queued behind the gate
        dropped.cancel()  # the client went away before the write began
        await asyncio.sleep(0)
        gate.open()
        assert (await kept).stored == 1
        with pytest.raises(asyncio.CancelledError):
            await dropped

    asyncio.run(scenario())
    assert [e.name for e in outbox.claim(max_events=9, max_bytes=10**6, lease_seconds=5)] == [
        "s/kept.one"
    ]


def test_close_finishes_queued_writes_then_refuses_new_ones(tmp_path: Path) -> None:
    box = SQLiteOutbox(tmp_path / FILE_NAME)

    async def queue_then_close() -> list[int]:
        tasks = [asyncio.ensure_future(box.accept_async(hook(i), *one())) for i in range(50)]
        await asyncio.sleep(0)
        box.close()
        return [r.stored for r in await asyncio.gather(*tasks)]

    assert asyncio.run(queue_then_close()) == [1] * 50
    box.close()  # idempotent
    with pytest.raises(OutboxUnavailable, match="closed"):
        box.accept(hook(), *one())
    with pytest.raises(OutboxUnavailable, match="closed"):
        box.stats()
    with SQLiteOutbox(tmp_path / FILE_NAME) as reopened:
        assert reopened.stats().pending == 50


def test_mismatched_lengths_are_refused_before_writing(outbox: SQLiteOutbox) -> None:
    with pytest.raises(ValueError, match="same length"):
        outbox.accept(hook(), [b"{}", b"{}"], [None], ["s/a.b"])
    assert outbox.stats().pending == 0


# -- failures ------------------------------------------------------------------------------


def test_a_full_disk_is_unavailable_and_nothing_is_half_written(tmp_path: Path) -> None:
    box = SQLiteOutbox(tmp_path / FILE_NAME, max_pages=60)
    payload = [b'{"name":"s/a.b","data":{"x":"' + b"x" * 3000 + b'"}}']
    stored = 0
    with pytest.raises(OutboxUnavailable, match="full"):
        for i in range(1000):
            box.accept(hook(i), payload, [None], ["s/a.b"])
            stored += 1
    assert 0 < stored < 1000
    with pytest.raises(OutboxUnavailable, match="full"):
        box.check_writable()
    assert box.stats().pending == stored  # the failed accept left no event ...
    box.close()
    assert raw(tmp_path / FILE_NAME, "SELECT COUNT(*) FROM webhooks") == [
        (stored,)
    ]  # ... nor webhook


def test_a_data_dir_that_cannot_be_created_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OutboxUnavailable, match="cannot create data directory"):
        SQLiteOutbox.open(blocker / "data", OutboxConfig())


def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(OutboxUnavailable, match="not a database"):
        SQLiteOutbox(tmp_path / FILE_NAME)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    SQLiteOutbox(tmp_path / FILE_NAME).close()
    conn = sqlite3.connect(tmp_path / FILE_NAME)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(OutboxUnavailable, match="newer"):
        SQLiteOutbox(tmp_path / FILE_NAME)


# The version-1 events table: each payload in its event's row.
_V1_EVENTS = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id INTEGER NOT NULL,
    event_id TEXT,
    name TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    sealed INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'leased', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_until REAL,
    last_error TEXT,
    created_at REAL NOT NULL,
    delivered_at REAL
);
INSERT INTO events (webhook_id, event_id, name, payload, size, sealed, state, next_attempt_at,
    created_at) VALUES (1, 'a', 's/a.one', X'7B2261223A317D', 7, 0, 'pending', 0, 0),
    (1, 'b', 's/b.one', X'7B2262223A327D', 7, 0, 'dead', 0, 0);
"""


def test_a_version_1_file_is_migrated_and_keeps_every_payload(tmp_path: Path) -> None:
    db = tmp_path / FILE_NAME
    conn = sqlite3.connect(db)
    conn.executescript(_V1_EVENTS)
    conn.close()
    with SQLiteOutbox(db) as box:
        [pending] = box.claim(max_events=9, max_bytes=10**6, lease_seconds=5)
        assert (pending.name, pending.payload) == ("s/a.one", b'{"a":1}')
        [dead] = box.dead_letters()
        assert dead.name == "s/b.one"
        box.accept(hook(1), *one("s/c.one", "c"))  # new events get the next seq
    assert raw(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    columns = {row[1] for row in raw(db, "PRAGMA table_info(events)")}
    assert "payload" not in columns and "lease_token" in columns
    assert raw(db, "SELECT seq FROM event_payloads ORDER BY seq") == [(1,), (2,), (3,)]
    with SQLiteOutbox(db) as box:  # opening a migrated file again changes nothing
        assert box.purge() >= 1  # the dead event (and its payload, by the trigger) go
    assert raw(db, "SELECT seq FROM event_payloads ORDER BY seq") == [(1,), (3,)]


def test_a_version_2_file_gains_lease_tokens_and_its_old_leases_expire(tmp_path: Path) -> None:
    """A row leased by a version-2 gateway has no owner token: it is claimed after its lease."""
    db = tmp_path / FILE_NAME
    with SQLiteOutbox(db, clock=lambda: 100.0) as box:
        box.accept(hook(1), *one("s/a.one", "a"))
    conn = sqlite3.connect(db)
    conn.execute("UPDATE events SET state = 'leased', lease_until = 130")
    conn.execute("ALTER TABLE events DROP COLUMN lease_token")  # as version 2 wrote it
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with SQLiteOutbox(db, clock=lambda: 100.0) as box:
        assert box.claim(max_events=9, max_bytes=10**6, lease_seconds=5, now=130) == []
        box.ack([1])  # not this instance's lease: nothing changes
        assert box.stats().leased == 1
        [again] = box.claim(max_events=9, max_bytes=10**6, lease_seconds=5, now=131)
        box.ack([again.seq])
        assert box.stats().delivered == 1
    assert raw(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]


def test_a_version_3_file_gains_the_event_apis_answers_and_keeps_its_history(
    tmp_path: Path,
) -> None:
    db = tmp_path / FILE_NAME
    with SQLiteOutbox(db, clock=lambda: 100.0) as box:
        accepted = box.accept(hook(1), *one("s/a.one", "a"))
        [event] = box.claim(max_events=9, max_bytes=10**6, lease_seconds=5)
        box.release([event.seq], retry_at=100.0, error="event API answered 503")
    conn = sqlite3.connect(db)
    for table, column in (
        ("attempts", "status"),
        ("attempts", "latency_ms"),
        ("events", "delivery_status"),
        ("events", "delivery_ms"),
    ):
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")  # as version 3 wrote them
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with SQLiteOutbox(db, clock=lambda: 101.0) as box:
        [event] = box.claim(max_events=9, max_bytes=10**6, lease_seconds=5)
        box.ack([event.seq], answer=Answer(202, 8.0))
        record = box.webhook(accepted.webhook_id)
    assert record is not None
    history = [(a.outcome, a.error, a.status, a.latency_ms) for a in record.events[0].history]
    assert history == [
        ("retry", "event API answered 503", None, None),  # written by version 3: no answer
        ("delivered", None, 202, 8.0),
    ]
    assert raw(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [("4",)]


def test_openers_racing_on_a_new_file_all_succeed(tmp_path: Path) -> None:
    """Two pods (or serve and a CLI command) opening a fresh file at once: none is refused.

    SQLite refuses one of two connections that both hold a shared lock and want an exclusive
    one at once, without waiting; before opens were retried, about a quarter of these rounds
    failed with "database is locked".
    """

    def open_it(
        path: Path,
        start: threading.Barrier,
        opened: list[SQLiteOutbox],
        errors: list[BaseException],
    ) -> None:
        start.wait()
        try:
            opened.append(SQLiteOutbox(path, busy_timeout=10))
        except BaseException as exc:
            errors.append(exc)

    for round_ in range(20):
        path = tmp_path / f"race-{round_}" / FILE_NAME
        start = threading.Barrier(3)
        opened: list[SQLiteOutbox] = []
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=open_it, args=(path, start, opened, errors)) for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for box in opened:
            box.close()
        assert errors == [] and len(opened) == 3


def test_another_process_holding_the_lock_too_long_is_unavailable(tmp_path: Path) -> None:
    box = SQLiteOutbox(tmp_path / FILE_NAME, busy_timeout=0.05)
    lock = WriteLock(tmp_path / FILE_NAME)
    try:
        with pytest.raises(OutboxUnavailable, match="locked"):
            box.accept(hook(), *one())
        with pytest.raises(OutboxUnavailable, match="locked"):
            box.check_writable()
    finally:
        lock.release()
    assert box.accept(hook(), *one()).stored == 1
    box.close()


def _without_dac_override() -> None:
    """Runs in the child: drop root's right to ignore file modes (CAP_DAC_*) before exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def open_in_child(path: Path) -> str:
    """Open an outbox at ``path`` and write to it in a process that file modes apply to."""
    code = textwrap.dedent(
        f"""
        from gateway.outbox.sqlite import OutboxUnavailable, SQLiteOutbox
        from gateway.webhook import Webhook
        try:
            box = SQLiteOutbox({str(path)!r})
            box.accept(Webhook(source="s", provider="p", body=b"{{}}"), [b"{{}}"], [None], ["s/a"])
            print("written")
        except OutboxUnavailable as exc:
            print("unavailable:", exc)
        """
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            preexec_fn=_without_dac_override if os.geteuid() == 0 else None,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.SubprocessError as exc:  # root without CAP_SETPCAP cannot drop it
        pytest.skip(f"cannot run a child that file modes apply to: {exc}")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_read_only_directory_is_unavailable(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o555)
    try:
        outcome = open_in_child(directory / FILE_NAME)
    finally:
        directory.chmod(0o755)
    assert outcome.startswith("unavailable:") and "ermission denied" in outcome
    assert not (directory / FILE_NAME).exists()


def test_a_read_only_outbox_is_unavailable_and_left_intact(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    with SQLiteOutbox(directory / FILE_NAME) as box:
        box.accept(hook(), *one())
    for name in os.listdir(directory):
        (directory / name).chmod(0o444)
    directory.chmod(0o555)
    try:
        outcome = open_in_child(directory / FILE_NAME)
    finally:
        directory.chmod(0o755)
        for name in os.listdir(directory):
            (directory / name).chmod(0o600)
    assert outcome.startswith("unavailable:") and "readonly database" in outcome
    with SQLiteOutbox(directory / FILE_NAME) as box:
        assert box.stats().pending == 1


# -- crashes and processes -----------------------------------------------------------------


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("durability", ["power_loss", "process_crash"])
def test_kill_9_with_events_leased_loses_nothing(tmp_path: Path, durability: str) -> None:
    db = tmp_path / FILE_NAME
    child = run_python(
        f"""
        import os, signal
        from gateway.outbox.sqlite import SQLiteOutbox
        from gateway.webhook import Webhook
        box = SQLiteOutbox({str(db)!r}, durability={durability!r}, clock=lambda: {T0})
        for n, names in enumerate([["s/a.one", "s/a.two"], ["s/b.one"], ["s/c.one"]]):
            hook = Webhook(source="s", provider="p", body=b"{{}}")
            box.accept(hook, [b'{{"name":"%s"}}' % n.encode() for n in names],
                       [None] * len(names), names)
        batch = box.claim(max_events=3, max_bytes=10**6, lease_seconds=30)
        print(",".join(e.name for e in batch), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no ack, no close
        """
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == -9, err
    assert out.strip() == "s/a.one,s/a.two,s/b.one"
    with SQLiteOutbox(db, clock=lambda: T0) as box:
        stats = box.stats()
        assert (stats.leased, stats.pending) == (3, 1)
        [fresh] = box.claim(max_events=9, max_bytes=10**6, lease_seconds=30)
        assert fresh.name == "s/c.one"  # accepted, never claimed: due at once
        box.ack([fresh.seq])
        again = box.claim(max_events=9, max_bytes=10**6, lease_seconds=30, now=T0 + 31)
        assert [e.name for e in again] == ["s/a.one", "s/a.two", "s/b.one"]
        assert all(e.attempts == 0 for e in again)


def test_two_processes_share_one_file_without_claiming_an_event_twice(tmp_path: Path) -> None:
    db = tmp_path / FILE_NAME
    SQLiteOutbox(db).close()
    worker = f"""
        import sys
        from gateway.outbox.sqlite import SQLiteOutbox
        from gateway.webhook import Webhook
        tag = sys.argv[1]
        box = SQLiteOutbox({str(db)!r})
        claimed = []

        def take():
            batch = box.claim(max_events=7, max_bytes=10**6, lease_seconds=3600)
            claimed.extend(e.seq for e in batch)
            return batch

        for i in range(200):
            hook = Webhook(source="s", provider="p", body=b"{{}}")
            box.accept(hook, [b'{{"name":"s/a.b"}}'], [tag + str(i)], ["s/a.b"])
            if i % 10 == 9:
                take()  # claim while the other process is still accepting
        while take():
            pass
        box.ack(claimed)  # only now: until here every claimed event stayed leased
        box.close()
        print(",".join(map(str, claimed)))
    """
    workers = [run_python(worker, tag) for tag in ("a", "b")]
    results = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err for _, err in results]
    claimed = [int(s) for out, _ in results for s in out.strip().split(",") if s]
    assert len(claimed) == len(set(claimed))  # no event was leased to both processes
    with SQLiteOutbox(db) as box:
        stats = box.stats()
        assert (stats.pending, stats.leased, stats.delivered) == (0, 0, 400)
    assert sorted(claimed) == [seq for (seq,) in raw(db, "SELECT seq FROM events ORDER BY seq")]


def test_dedup_spans_processes(tmp_path: Path) -> None:
    db = tmp_path / FILE_NAME
    first = SQLiteOutbox(db)
    second = SQLiteOutbox(db)  # another worker's connection to the same file
    try:
        assert first.accept(hook(1), *one(event_id="evt_1")).stored == 1
        assert second.accept(hook(2), *one(event_id="evt_1")).duplicates == 1
    finally:
        first.close()
        second.close()


def test_prune_sweeps_expired_dedup_entries(tmp_path: Path) -> None:
    now = [T0]
    box = SQLiteOutbox(tmp_path / FILE_NAME, dedup_window=60, clock=lambda: now[0])
    box.accept(hook(1), *one(event_id="evt_1"))
    box.accept(hook(2), *one(event_id="evt_2"))
    now[0] += 30
    box.prune(older_than=0)
    assert raw(tmp_path / FILE_NAME, "SELECT COUNT(*) FROM dedup") == [(2,)]
    now[0] += 31
    box.prune(older_than=0)
    assert raw(tmp_path / FILE_NAME, "SELECT COUNT(*) FROM dedup") == [(0,)]
    assert box.accept(hook(3), *one(event_id="evt_1")).stored == 1
    box.close()


# -- encryption at rest ----------------------------------------------------------------------


def test_encrypted_rows_hold_no_plaintext(tmp_path: Path) -> None:
    db = tmp_path / FILE_NAME
    cipher = Cipher([generate_key()])
    with SQLiteOutbox(db, cipher=cipher) as box:
        box.accept(hook(1), *one(event_id="evt_1"))
        box.quarantine(hook(2), "boom", "tb")
        [event] = box.claim(max_events=5, max_bytes=10**6, lease_seconds=5)
        assert event.payload == one()[0][0]
        [(_, held, _)] = box.quarantined()
        assert held.body == hook(2).body and held.header("authorization") == "Bearer sk_live_secret"
    stored = b"".join(
        bytes(value)
        for row in raw(db, "SELECT headers, query, body FROM webhooks")
        + raw(db, "SELECT payload FROM event_payloads")
        for value in row
    )
    for secret in (b"4242", b"sk_live_secret", b"q-secret"):
        assert secret not in stored
    kids = {blob_key_id(blob) for (blob,) in raw(db, "SELECT payload FROM event_payloads")}
    assert kids == {cipher.current_key_id}


def test_key_rotation_reads_old_rows_and_writes_with_the_new_key(tmp_path: Path) -> None:
    db = tmp_path / FILE_NAME
    old, new = generate_key(), generate_key()
    with SQLiteOutbox(db, cipher=Cipher([old])) as box:
        box.accept(hook(1), *one("s/old.one"))
        box.quarantine(hook(2), "boom", "tb")
    rotated = Cipher([new, old])
    with SQLiteOutbox(db, cipher=rotated) as box:
        box.accept(hook(3), *one("s/new.one"))
        batch = box.claim(max_events=9, max_bytes=10**6, lease_seconds=5)
        assert [e.name for e in batch] == ["s/old.one", "s/new.one"]
        assert [held.body for _, held, _ in box.quarantined()] == [hook(2).body]
    kids = [
        blob_key_id(blob) for (blob,) in raw(db, "SELECT payload FROM event_payloads ORDER BY seq")
    ]
    assert kids == [Cipher([old]).current_key_id, rotated.current_key_id]


def test_dropping_a_key_still_needed_is_refused_at_open(tmp_path: Path) -> None:
    db = tmp_path / FILE_NAME
    old, new = generate_key(), generate_key()
    old_id = Cipher([old]).current_key_id.hex()
    with SQLiteOutbox(db, cipher=Cipher([old])) as box:
        box.accept(hook(1), *one("s/a.one"))
        box.accept(hook(2), *one("s/b.one"))
    with pytest.raises(CipherError, match=f"2 stored row.*key id {old_id}.*not configured"):
        SQLiteOutbox(db, cipher=Cipher([new]))
    with pytest.raises(CipherError, match=r"set outbox\.encryption_key"):
        SQLiteOutbox(db)  # encryption turned off with encrypted events waiting
    with SQLiteOutbox(db, cipher=Cipher([new, old])) as box:
        box.ack(claim_all(box))
    with SQLiteOutbox(db, cipher=Cipher([new])) as box:  # delivered rows need no key
        box.accept(hook(3), *one("s/c.one"))
        assert [e.payload for e in box.claim(max_events=9, max_bytes=10**6, lease_seconds=5)] == (
            one("s/c.one")[0]
        )
    assert raw(db, "SELECT key_id FROM encryption_keys") == [(Cipher([new]).current_key_id,)]


def test_turning_encryption_on_keeps_plaintext_rows_readable(tmp_path: Path) -> None:
    db = tmp_path / FILE_NAME
    with SQLiteOutbox(db) as box:
        box.accept(hook(1), *one("s/plain.one"))
    with SQLiteOutbox(db, cipher=Cipher([generate_key()])) as box:
        box.accept(hook(2), *one("s/sealed.one"))
        batch = box.claim(max_events=9, max_bytes=10**6, lease_seconds=5)
        assert [e.payload for e in batch] == one("s/plain.one")[0] + one("s/sealed.one")[0]
    assert raw(db, "SELECT sealed FROM events ORDER BY seq") == [(0,), (1,)]  # 1: encrypted


def test_a_tampered_row_fails_loudly(tmp_path: Path) -> None:
    db = tmp_path / FILE_NAME
    cipher = Cipher([generate_key()])
    with SQLiteOutbox(db, cipher=cipher) as box:
        box.quarantine(hook(1), "boom", "tb")
    conn = sqlite3.connect(db)
    conn.execute("UPDATE webhooks SET body = headers")  # a blob moved to another column
    conn.commit()
    conn.close()
    with SQLiteOutbox(db, cipher=cipher) as box, pytest.raises(CipherError, match="authentic"):
        box.quarantined()


def test_cipher_keys_are_checked_and_blobs_bound_to_their_kind() -> None:
    with pytest.raises(CipherError, match="base64"):
        Cipher(["not base64 at all!"])
    with pytest.raises(CipherError, match="#2 must decode to 32 bytes"):
        Cipher([generate_key(), "c2hvcnQ="])
    with pytest.raises(CipherError, match="at least one key"):
        Cipher([])
    key = generate_key()
    cipher = Cipher([key.rstrip("=")])  # padding is optional
    blob = cipher.encrypt(b"data", "event.payload")
    assert blob[0] == 1 and blob[1:5] == cipher.current_key_id
    assert cipher.encrypt(b"data", "event.payload") != blob  # a fresh nonce every time
    assert cipher.decrypt(blob, "event.payload") == b"data"
    with pytest.raises(CipherError, match="authentication"):
        cipher.decrypt(blob, "webhook.body")
    with pytest.raises(CipherError, match="not an encrypted blob"):
        cipher.decrypt(b"{}", "event.payload")
    with pytest.raises(CipherError, match="not configured"):
        Cipher([generate_key()]).decrypt(blob, "event.payload")
    assert key_id(base64.urlsafe_b64decode(key)) == cipher.current_key_id


def test_open_resolves_the_key_reference(tmp_path: Path) -> None:
    config = OutboxConfig(encryption_key="env:OUTBOX_KEY", durability="process_crash")
    key = generate_key()
    environ = {"OUTBOX_KEY": f"{key}, {generate_key()}"}
    with SQLiteOutbox.open(tmp_path / "d", config, environ) as box:
        assert box.cipher is not None and box.durability == "process_crash"
        box.accept(hook(), *one())
        assert len(box.cipher.key_ids) == 2
        assert (tmp_path / "d" / FILE_NAME).exists()
    key_file = tmp_path / "key"
    key_file.write_text(key + "\n")
    with SQLiteOutbox.open(tmp_path / "d", OutboxConfig(encryption_key=f"file:{key_file}")) as box:
        assert box.cipher is not None
    with pytest.raises(OutboxUnavailable, match=r"encryption_key.*32 bytes"):
        SQLiteOutbox.open(tmp_path / "e", config, {"OUTBOX_KEY": "abcd"})
    with pytest.raises(ConfigError, match="OUTBOX_KEY"):
        SQLiteOutbox.open(tmp_path / "e", config, {})
    with pytest.raises(OutboxUnavailable, match="not configured"):
        SQLiteOutbox.open(tmp_path / "d", config, {"OUTBOX_KEY": generate_key()})


def test_buffered_rejections_are_written_on_close(tmp_path: Path) -> None:
    from gateway.outbox import Rejection

    path = tmp_path / "outbox.sqlite3"
    store = SQLiteOutbox(path)
    store.record_rejection(Rejection("stripe", "stripe", 1.0, 401, "bad_signature", "no match"))
    commits = store.commit_count
    store.close()
    assert store.commit_count == commits + 1
    with SQLiteOutbox(path) as reopened:
        [kept] = reopened.rejections()
    assert (kept.reason, kept.message, kept.body_size) == ("bad_signature", "no match", -1)


def test_rejections_share_the_commit_of_the_next_write(tmp_path: Path) -> None:
    from gateway.outbox import Rejection

    with SQLiteOutbox(tmp_path / "outbox.sqlite3") as store:
        before = store.commit_count
        for n in range(50):
            store.record_rejection(Rejection("stripe", "stripe", n, 401, "bad_signature", "x"))
        store.check_writable()
        assert store.commit_count == before + 1  # 50 rejections, one commit
        assert len(store.rejections(limit=100)) == 50
        store.flush_rejections()
        flushed = store.commit_count
        store.flush_rejections()  # nothing recorded since the last flush: no commit
        assert store.commit_count == flushed


def test_rejections_under_a_key_no_longer_configured_are_listed_without_content(
    tmp_path: Path,
) -> None:
    from gateway.outbox import Rejection

    path = tmp_path / "outbox.sqlite3"
    with SQLiteOutbox(path, cipher=Cipher([generate_key()])) as store:
        store.record_rejection(
            Rejection("stripe", "stripe", 1.0, 401, "bad_signature", "x", {"a": "b"}, b"body", 4)
        )
    with SQLiteOutbox(path) as store:
        [kept] = store.rejections()
    assert (kept.reason, kept.body, dict(kept.headers)) == ("bad_signature", b"", {})
    assert "encrypted" in kept.message


# -- delivery history ------------------------------------------------------------------


def test_a_long_outage_keeps_the_retry_history_bounded(outbox: SQLiteOutbox) -> None:
    accepted = outbox.accept(hook(1), *one("s/a.one"))
    outbox.accept(hook(2), *one("s/a.two"))
    retries = MAX_RETRY_HISTORY + 15
    for n in range(retries):
        seqs = claim_all(outbox)
        assert len(seqs) == 2
        outbox.release(seqs, retry_at=0, error=f"event API answered 503 (#{n})")
    [seq, _] = claim_all(outbox)
    outbox.dead_letter(seq, "event API: 400 bad data")
    record = outbox.webhook(accepted.webhook_id)
    assert record is not None
    [event] = record.events
    assert event.attempts == retries + 1  # the count is exact; only old rows were dropped
    errors = [a.error for a in event.history]
    assert len(errors) == MAX_RETRY_HISTORY + 1
    # the newest retries survive, in order, then the final outcome
    assert errors[0] == f"event API answered 503 (#{retries - MAX_RETRY_HISTORY})"
    assert errors[-2] == f"event API answered 503 (#{retries - 1})"
    assert [a.outcome for a in event.history][-1] == "dead" and errors[
        -1
    ] == "event API: 400 bad data"
    counts = raw(outbox.path, "SELECT seq, COUNT(*) FROM attempts GROUP BY seq ORDER BY seq")
    assert [c for _, c in counts] == [MAX_RETRY_HISTORY + 1, MAX_RETRY_HISTORY]


def test_bodies_and_payloads_are_stored_compressed_and_either_setting_reads_both(
    tmp_path: Path,
) -> None:
    import zlib

    db = tmp_path / FILE_NAME
    body = b'{"object": "event", "data": {"object": {"description": "%s"}}}' % (b"x" * 5000)
    payload = b'{"name":"s/big.one","data":{"d":"%s"}}' % (b"y" * 5000)
    with SQLiteOutbox(db, compress=False) as box:
        box.accept(Webhook(source="s", provider="stripe", body=body), [payload], ["p"], ["s/a"])
    with SQLiteOutbox(db) as box:  # compresses by default
        box.accept(Webhook(source="s", provider="stripe", body=body), [payload], ["c"], ["s/a"])
        batch = box.claim(max_events=9, max_bytes=10**6, lease_seconds=5)
        assert [e.payload for e in batch] == [payload, payload]
        assert [box.webhook(e.webhook_id).webhook.body for e in batch] == [body, body]  # type: ignore[union-attr]
    stored = raw(
        db,
        "SELECT e.sealed, p.payload, e.size FROM events e"
        " JOIN event_payloads p USING (seq) ORDER BY seq",
    )
    assert [(flags, size) for flags, _, size in stored] == [(0, len(payload)), (2, len(payload))]
    assert stored[0][1] == payload and zlib.decompress(stored[1][1]) == payload
    assert len(stored[1][1]) < len(payload) // 10
    bodies = raw(db, "SELECT sealed, body FROM webhooks ORDER BY id")
    assert bodies[0] == (0, body) and zlib.decompress(bodies[1][1]) == body
    with SQLiteOutbox(db) as box:  # under 4 KB a blob is stored as it is, compression on or not
        box.accept(hook(7), *one("s/small.one", "small"))
    assert raw(db, "SELECT sealed FROM webhooks ORDER BY id DESC LIMIT 1") == [(0,)]
    assert raw(db, "SELECT sealed FROM events ORDER BY seq DESC LIMIT 1") == [(0,)]
    with SQLiteOutbox(db, compress=False) as box:  # and the plain setting reads both too
        assert [box.webhook(i).webhook.body for i in (1, 2)] == [body, body]  # type: ignore[union-attr]
    with SQLiteOutbox(db, cipher=Cipher([generate_key()])) as box:  # compressed, then encrypted
        box.accept(Webhook(source="s", provider="stripe", body=body), [payload], ["e"], ["s/a"])
        batch = box.claim(max_events=9, max_bytes=10**6, lease_seconds=5)
        [event] = [e for e in batch if e.event_id == "e"]
        assert event.payload == payload
        assert box.webhook(event.webhook_id).webhook.body == body  # type: ignore[union-attr]
    assert raw(db, "SELECT sealed FROM events ORDER BY seq DESC LIMIT 1") == [(3,)]
