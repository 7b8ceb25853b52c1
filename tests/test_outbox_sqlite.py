"""SQLite specifics: WAL, group commit, a full disk, several processes, crashes, encryption."""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.config import OutboxConfig
from gateway.outbox import OutboxUnavailable
from gateway.outbox.crypto import Cipher, CipherError
from gateway.outbox.sqlite import SQLiteOutbox
from gateway.webhook import Webhook

ROOT = Path(__file__).resolve().parent.parent


def hook(n: int = 0) -> Webhook:
    return Webhook(
        source="stripe",
        provider="stripe",
        body=b'{"secret-ish body": %d}' % n,
        headers={"x": "y"},
        received_at=float(n),
    )


def one(
    name: str = "s/a.b", event_id: str | None = None
) -> tuple[list[bytes], list[str | None], list[str]]:
    return [b'{"name":"%s"}' % name.encode()], [event_id], [name]


def test_wal_and_durability_levels(tmp_path: Path) -> None:
    full = SQLiteOutbox(tmp_path / "a.db", durability="power_loss")
    normal = SQLiteOutbox(tmp_path / "b.db", durability="process_crash")
    try:
        assert full._write.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert full._write.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert normal._write.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    finally:
        full.close()
        normal.close()


def test_concurrent_accepts_share_commits(tmp_path: Path) -> None:
    outbox = SQLiteOutbox(tmp_path / "o.db")

    async def burst() -> None:
        await asyncio.gather(
            *[outbox.accept_async(hook(i), *one(event_id=f"e{i}")) for i in range(300)]
        )

    asyncio.run(burst())
    assert outbox.job_count >= 300
    assert outbox.commit_count < outbox.job_count  # group commit: fewer fsyncs than webhooks
    assert outbox.stats().pending == 300
    outbox.close()


def test_full_disk_is_unavailable_and_nothing_half_written(tmp_path: Path) -> None:
    outbox = SQLiteOutbox(tmp_path / "o.db", max_pages=60)
    event = [b'{"name":"s/a.b","data":{"x":"' + b"x" * 3000 + b'"}}']
    stored = 0
    with pytest.raises(OutboxUnavailable, match="full"):
        for i in range(1000):
            outbox.accept(hook(i), event, [None], ["s/a.b"])
            stored += 1
    assert 0 < stored < 1000
    with pytest.raises(OutboxUnavailable):
        outbox.check_writable()
    assert outbox.stats().pending == stored  # the failed accept left no event behind
    count = outbox._read_query("SELECT COUNT(*) FROM webhooks")[0][0]
    assert count == stored  # ... and no webhook row either
    outbox.close()


def test_unwritable_location_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OutboxUnavailable, match="cannot create data directory"):
        SQLiteOutbox.open(blocker / "data", OutboxConfig())


def test_crash_leaves_leased_events_for_the_next_start(tmp_path: Path) -> None:
    now = [1000.0]
    first = SQLiteOutbox(tmp_path / "o.db", clock=lambda: now[0])
    first.accept(hook(), *one("s/a.b"))
    first.accept(hook(), *one("s/c.d"))
    leased = first.claim(max_events=10, max_bytes=10**6, lease_seconds=30)
    assert len(leased) == 2
    first._closed = True  # simulate a crash: no ack, no clean close of the lease
    first._jobs.put(None)
    first._thread.join()
    second = SQLiteOutbox(tmp_path / "o.db", clock=lambda: now[0])
    assert second.claim(max_events=10, max_bytes=10**6, lease_seconds=30) == []
    now[0] += 31
    again = second.claim(max_events=10, max_bytes=10**6, lease_seconds=30)
    assert [e.name for e in again] == ["s/a.b", "s/c.d"]
    second.close()


def test_two_processes_share_one_file(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    SQLiteOutbox(db).close()
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from gateway.outbox.sqlite import SQLiteOutbox
        from gateway.webhook import Webhook
        tag = sys.argv[1]
        box = SQLiteOutbox({str(db)!r})
        for i in range(200):
            w = Webhook(source="s", provider="stripe", body=b"{{}}")
            box.accept(w, [b'{{"name":"s/a.b"}}'], [tag + str(i)], ["s/a.b"])
        claimed = []
        while True:
            batch = box.claim(max_events=7, max_bytes=10**6, lease_seconds=600)
            if not batch:
                break
            claimed += [e.seq for e in batch]
            box.ack([e.seq for e in batch])
        box.close()
        print(",".join(map(str, claimed)))
    """)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, tag], stdout=subprocess.PIPE, text=True)
        for tag in ("a", "b")
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    claimed = [int(s) for out in outputs for s in out.split(",") if s]
    assert len(claimed) == len(set(claimed))  # no event handed to both processes
    box = SQLiteOutbox(db)
    stats = box.stats()
    assert stats.pending == 0 and stats.leased == 0
    assert stats.delivered == 400 == len(claimed)
    box.close()


def key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def test_encryption_at_rest_and_rotation(tmp_path: Path) -> None:
    old, new = key(), key()
    db = tmp_path / "o.db"
    box = SQLiteOutbox(db, cipher=Cipher([old]))
    box.accept(hook(42), [b'{"name":"s/a.b","data":{"card":"4242"}}'], ["x"], ["s/a.b"])
    box.quarantine(hook(43), "err", "tb")
    box.close()
    raw = sqlite3.connect(db).execute("SELECT payload FROM events").fetchone()[0]
    assert b"4242" not in raw
    body = sqlite3.connect(db).execute("SELECT body FROM webhooks WHERE id = 2").fetchone()[0]
    assert b"secret-ish" not in body
    rotated = SQLiteOutbox(db, cipher=Cipher([new, old]))  # new key first, old still decrypts
    [event] = rotated.claim(max_events=5, max_bytes=10**6, lease_seconds=5)
    assert event.payload == b'{"name":"s/a.b","data":{"card":"4242"}}'
    [(_, held, _)] = rotated.quarantined()
    assert held.body == b'{"secret-ish body": 43}'
    rotated.close()
    wrong = SQLiteOutbox(db, cipher=Cipher([new]))
    with pytest.raises(CipherError, match="not configured"):
        wrong.quarantined()
    wrong.close()


def test_cipher_rejects_bad_keys_and_swapped_columns() -> None:
    with pytest.raises(CipherError, match="base64"):
        Cipher(["not base64 at all!"])
    with pytest.raises(CipherError, match="32 bytes"):
        Cipher([base64.urlsafe_b64encode(b"short").decode()])
    with pytest.raises(CipherError, match="at least one key"):
        Cipher([])
    cipher = Cipher([key()])
    blob = cipher.encrypt(b"data", "payload")
    assert cipher.decrypt(blob, "payload") == b"data"
    with pytest.raises(CipherError, match="authentication"):
        cipher.decrypt(blob, "body")


def test_open_with_encryption_from_environment(tmp_path: Path) -> None:
    config = OutboxConfig(encryption_key="env:OUTBOX_KEY")
    box = SQLiteOutbox.open(tmp_path / "d", config, {"OUTBOX_KEY": key()})
    assert box.cipher is not None and (tmp_path / "d" / "outbox.sqlite3").exists()
    box.close()
    with pytest.raises(OutboxUnavailable, match="32 bytes"):
        SQLiteOutbox.open(tmp_path / "e", config, {"OUTBOX_KEY": "abcd"})
