"""Several outbox instances on one store: the multi-instance contract every backend passes.

Instances run on separate connections (threads in this process) and in separate processes,
two and three at a time. A backend adds a factory to ``BACKENDS``: how this process opens
another instance on the shared store, and the Python a child process runs to do the same.
The factory gets a temporary directory, or for ``postgres`` a fresh database's URL
(tests/pg.py starts the server only when such a test runs).

Time is injected: every claim passes ``now``; instances share a clock the test moves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.outbox import Outbox
from gateway.outbox.sqlite import SQLiteOutbox
from gateway.webhook import Webhook
from tests.test_outbox_contract import T0, WINDOW, Clock

ROOT = Path(__file__).resolve().parent.parent
LEASE = 30.0


@dataclass(frozen=True)
class Backend:
    """One shared store. ``open`` makes another instance on it (its own connections);
    ``child_open`` is Python that binds ``box`` to one in a child process (``clock`` is
    defined there)."""

    open: Callable[[Clock], Outbox]
    child_open: str


def _sqlite(tmp: Path) -> Backend:
    path = tmp / "outbox.sqlite3"
    return Backend(
        open=lambda clock: SQLiteOutbox(path, clock=clock, dedup_window=WINDOW),
        child_open=(
            "from gateway.outbox.sqlite import SQLiteOutbox\n"
            f"box = SQLiteOutbox({str(path)!r}, clock=clock, dedup_window={WINDOW})"
        ),
    )


def _postgres(url: str) -> Backend:
    from gateway.outbox.postgres import PostgresOutbox

    options = f"clock=clock, dedup_window={WINDOW}, listen=False"
    return Backend(
        open=lambda clock: PostgresOutbox(url, clock=clock, dedup_window=WINDOW, listen=False),
        child_open=(
            "from gateway.outbox.postgres import PostgresOutbox\n"
            f"box = PostgresOutbox({url!r}, {options})"
        ),
    )


BACKENDS: dict[str, Callable[[Any], Backend]] = {"sqlite": _sqlite, "postgres": _postgres}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    where = request.getfixturevalue("pg_url") if request.param == "postgres" else tmp_path
    return BACKENDS[request.param](where)


@pytest.fixture
def clock() -> Clock:
    """One clock shared by the instances of a test."""
    return Clock()


@pytest.fixture
def instances(backend: Backend, clock: Clock) -> Iterator[Callable[[int], list[Outbox]]]:
    """``instances(n)``: ``n`` new instances on the backend's store, closed afterwards."""
    opened: list[Outbox] = []

    def open_many(n: int) -> list[Outbox]:
        boxes = [backend.open(clock) for _ in range(n)]
        opened.extend(boxes)
        return boxes

    yield open_many
    for box in opened:
        box.close()


def hook(n: int = 0) -> Webhook:
    return Webhook(source="s", provider="p", body=b'{"n": %d}' % n, received_at=T0 + n)


def accept(box: Outbox, n: int, *names: str, ids: bool = True) -> list[int]:
    """Accept webhook ``n`` with events ``names``; returns their seqs in order."""
    payloads = [b'{"name":"%s","data":{}}' % name.encode() for name in names]
    event_ids = [f"id-{n}-{name}" if ids else None for name in names]
    box.accept(hook(n), payloads, event_ids, list(names))
    record = box.webhook(box.webhooks(limit=1)[0].id)
    assert record is not None and [e.name for e in record.events] == list(names)
    return [e.seq for e in record.events]


def claim(box: Outbox, now: float = T0, max_events: int = 100, lease: float = LEASE) -> list[int]:
    batch = box.claim(max_events=max_events, max_bytes=10**6, lease_seconds=lease, now=now)
    return [e.seq for e in batch]


def populate(box: Outbox) -> dict[int, list[int]]:
    """60 webhooks of 1 to 4 events; returns each webhook's seqs."""
    return {n: accept(box, n, *[f"s/e{k}.done" for k in range(n % 4 + 1)]) for n in range(60)}


def assert_drained(seqs_of: dict[int, list[int]], batches: list[list[int]], box: Outbox) -> None:
    """Every event claimed exactly once; each webhook's events claimed in order."""
    claimed = [seq for batch in batches for seq in batch]
    assert len(claimed) == len(set(claimed)), "an event was leased to two instances"
    assert sorted(claimed) == sorted(seq for seqs in seqs_of.values() for seq in seqs)
    position = {seq: i for i, seq in enumerate(claimed)}
    for seqs in seqs_of.values():
        assert [position[s] for s in seqs] == sorted(position[s] for s in seqs), seqs
    stats = box.stats()
    assert (stats.pending, stats.leased, stats.delivered) == (0, 0, len(claimed))


# -- in one process, separate connections ------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3])
def test_claims_are_disjoint_and_every_due_event_is_claimed(
    instances: Callable[[int], list[Outbox]], n: int
) -> None:
    boxes = instances(n)
    seqs_of = populate(boxes[0])
    log: list[list[int]] = []  # batches in the order they were "sent" (before their ack)
    lock = threading.Lock()
    start = threading.Barrier(n)

    def drain(box: Outbox) -> None:
        start.wait()
        idle = 0
        while idle < 3:  # an event held back behind another instance's lease comes later
            batch = claim(box, max_events=3)
            if not batch:
                idle += 1
                continue
            idle = 0
            with lock:
                log.append(batch)
            box.ack(batch)

    threads = [threading.Thread(target=drain, args=(box,)) for box in boxes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    while batch := claim(boxes[0]):  # what the idle rounds left (none when all went well)
        log.append(batch)
        boxes[0].ack(batch)
    assert_drained(seqs_of, log, boxes[0])


def test_an_event_waits_while_another_instance_holds_an_earlier_one_of_its_webhook(
    instances: Callable[[int], list[Outbox]], clock: Clock
) -> None:
    """The regression a straight port of the claim query has: B took the second event while A
    still held the first."""
    a, b = instances(2)
    first, second = accept(a, 1, "s/a.one", "s/a.two")
    [other] = accept(a, 2, "s/b.one")
    assert claim(a, max_events=1) == [first]
    assert claim(b) == [other]  # not ``second``: its webhook's first event is in flight
    assert claim(b, now=T0 + LEASE) == []
    a.ack([first])
    assert claim(b) == [second]


def test_an_event_waits_while_an_earlier_one_of_its_webhook_waits_for_a_retry(
    instances: Callable[[int], list[Outbox]],
) -> None:
    a, b = instances(2)
    first, second = accept(a, 1, "s/a.one", "s/a.two")
    assert claim(a, max_events=1) == [first]
    a.release([first], retry_at=T0 + 60, error="event API answered 503")
    assert claim(b) == []
    assert claim(b, now=T0 + 60) == [first, second]


def test_a_stale_holder_changes_nothing(instances: Callable[[int], list[Outbox]]) -> None:
    a, b = instances(2)
    seqs = accept(a, 1, "s/a.one", "s/a.two")
    assert claim(a) == seqs
    assert claim(b, now=T0 + LEASE + 1) == seqs  # a's lease ran out: b holds them now
    a.ack(seqs)
    a.release(seqs, retry_at=T0, error="stale")
    a.unlease(seqs)
    a.dead_letter(seqs[0], "stale")
    assert a.renew(seqs, LEASE, now=T0 + LEASE + 2) == set()
    entries = a.entries(["leased"])
    assert [(e.id, e.attempts, e.error) for e in entries] == [(s, 0, "") for s in seqs]
    assert a.stats().leased == 2 and a.dead_letters() == []
    b.ack(seqs)
    assert (a.stats().leased, a.stats().delivered) == (0, 2)


def test_a_holder_whose_lease_ran_out_unclaimed_still_holds_it(
    instances: Callable[[int], list[Outbox]],
) -> None:
    a, b = instances(2)
    seqs = accept(a, 1, "s/a.one")
    assert claim(a) == seqs
    a.ack(seqs)  # after the lease's end, nobody claimed it since: the delivery counts
    assert claim(b, now=T0 + 2 * LEASE) == []
    assert a.stats().delivered == 1


def test_renew_extends_only_the_holders_lease(instances: Callable[[int], list[Outbox]]) -> None:
    a, b = instances(2)
    seqs = accept(a, 1, "s/a.one", "s/a.two")
    assert claim(a) == seqs
    assert b.renew(seqs, LEASE, now=T0 + 10) == set()  # b holds nothing
    assert a.renew(seqs, LEASE, now=T0 + 20) == set(seqs)
    assert claim(b, now=T0 + LEASE + 1) == []  # the old end has passed, the new one has not
    assert claim(b, now=T0 + 20 + LEASE) == []  # a lease holds at its last instant
    assert claim(b, now=T0 + 20 + LEASE + 1) == seqs
    assert a.renew(seqs, LEASE, now=T0 + 60) == set()  # taken over: nothing to renew


def test_concurrent_accepts_of_one_event_id_store_it_once(
    instances: Callable[[int], list[Outbox]],
) -> None:
    boxes = instances(3)
    start = threading.Barrier(len(boxes))
    results: list[tuple[int, int]] = []
    lock = threading.Lock()

    def send(box: Outbox) -> None:
        start.wait()
        for n in range(20):
            result = box.accept(hook(n), [b'{"name":"s/a.b"}'], [f"evt-{n}"], ["s/a.b"])
            with lock:
                results.append((result.stored, result.duplicates))

    threads = [threading.Thread(target=send, args=(box,)) for box in boxes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(stored for stored, _ in results) == 20
    assert sum(dups for _, dups in results) == 40
    assert boxes[0].stats().pending == 20


def test_a_dead_lettered_id_is_not_a_duplicate_for_another_instance(
    instances: Callable[[int], list[Outbox]],
) -> None:
    a, b = instances(2)
    [seq] = accept(a, 1, "s/a.one")
    payload = [b'{"name":"s/a.one","data":{}}']
    assert b.accept(hook(2), payload, ["id-1-s/a.one"], ["s/a.one"]).duplicates == 1
    assert claim(a) == [seq]
    a.dead_letter(seq, "event API: bad data")
    assert b.accept(hook(3), payload, ["id-1-s/a.one"], ["s/a.one"]).stored == 1


def test_concurrent_replays_of_one_body_store_it_once(
    instances: Callable[[int], list[Outbox]],
) -> None:
    """A body key is claimed across instances: each body's events are stored by one of them,
    whatever fresh event ids the replays carry (the PostgreSQL dedup upsert, SQLite's lock)."""
    boxes = instances(3)
    start = threading.Barrier(len(boxes))
    results: list[tuple[int, int]] = []
    lock = threading.Lock()

    def send(i: int, box: Outbox) -> None:
        start.wait()
        for n in range(20):
            payloads = [b'{"name":"s/a.b"}', b'{"name":"s/c.d"}']
            ids = [f"replica-{i}-{n}-a", f"replica-{i}-{n}-b"]
            result = box.accept(hook(n), payloads, ids, ["s/a.b", "s/c.d"], body_key=f"body:s:{n}")
            with lock:
                results.append((result.stored, result.duplicates))

    threads = [threading.Thread(target=send, args=(i, box)) for i, box in enumerate(boxes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(set(results)) == [(0, 2), (2, 0)]
    assert sum(stored for stored, _ in results) == 40
    assert boxes[0].stats().pending == 40


def test_a_body_whose_first_event_died_may_arrive_at_another_instance(
    instances: Callable[[int], list[Outbox]],
) -> None:
    a, b = instances(2)
    payload = [b'{"name":"s/a.one","data":{}}']
    first = a.accept(hook(1), payload, ["x-1"], ["s/a.one"], body_key="body:s:k")
    assert first.stored == 1
    assert b.accept(hook(2), payload, ["x-2"], ["s/a.one"], body_key="body:s:k").duplicates == 1
    [seq] = claim(a)
    a.dead_letter(seq, "event API: bad data")
    assert b.accept(hook(3), payload, ["x-3"], ["s/a.one"], body_key="body:s:k").stored == 1


# -- in separate processes ---------------------------------------------------------------------

_PRELUDE = f"""
import json, os, signal, sys
T0 = {T0}
clock = lambda: T0
"""


def child(backend: Backend, code: str, *args: str) -> subprocess.Popen[str]:
    """A Python process with ``box`` open on the backend's store, running ``code``."""
    source = _PRELUDE + backend.child_open + "\n" + textwrap.dedent(code)
    return subprocess.Popen(
        [sys.executable, "-c", source, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(procs: list[subprocess.Popen[str]]) -> list[str]:
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * len(procs), [e for _, e in outputs]
    return [out for out, _ in outputs]


@pytest.mark.parametrize("n", [2, 3])
def test_processes_claim_disjoint_batches_in_webhook_order(
    backend: Backend, instances: Callable[[int], list[Outbox]], tmp_path: Path, n: int
) -> None:
    [box] = instances(1)
    seqs_of = populate(box)
    log = tmp_path / "sent.log"
    start = tmp_path / "go"
    worker = f"""
        import time
        while not os.path.exists({str(start)!r}):
            time.sleep(0.005)
        idle = 0
        while idle < 3:
            batch = [e.seq for e in box.claim(max_events=3, max_bytes=10**6, lease_seconds=3600,
                                              now=T0)]
            if not batch:
                idle += 1
                continue
            idle = 0
            fd = os.open({str(log)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, (json.dumps(batch) + "\\n").encode())  # "sent", before the ack
            os.close(fd)
            box.ack(batch)
        box.close()
    """
    procs = [child(backend, worker) for _ in range(n)]
    start.touch()
    finish(procs)
    batches = [json.loads(line) for line in log.read_text().splitlines()]
    while batch := claim(box):
        batches.append(batch)
        box.ack(batch)
    assert_drained(seqs_of, batches, box)


def test_a_killed_holders_events_are_taken_over_after_its_lease(
    backend: Backend, instances: Callable[[int], list[Outbox]]
) -> None:
    [box] = instances(1)
    first, second = accept(box, 1, "s/a.one", "s/a.two")
    [other] = accept(box, 2, "s/b.one")
    holder = child(
        backend,
        f"""
        batch = box.claim(max_events=1, max_bytes=10**6, lease_seconds={LEASE}, now=T0)
        print(json.dumps([e.seq for e in batch]), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no ack, no unlease, no close
        """,
    )
    out, err = holder.communicate(timeout=60)
    assert holder.returncode == -9, err
    assert json.loads(out) == [first]
    assert claim(box, now=T0 + LEASE) == [other]  # the dead holder's lease still holds
    assert claim(box, now=T0 + LEASE + 1) == [first, second]


def test_processes_accepting_one_event_id_store_it_once(
    backend: Backend, instances: Callable[[int], list[Outbox]], tmp_path: Path
) -> None:
    [box] = instances(1)
    start = tmp_path / "go"
    worker = f"""
        import time
        from gateway.webhook import Webhook
        while not os.path.exists({str(start)!r}):
            time.sleep(0.005)
        stored = duplicates = 0
        for n in range(30):
            hook = Webhook(source="s", provider="p", body=b"{{}}")
            result = box.accept(hook, [b'{{"name":"s/a.b"}}'], [f"evt-{{n}}"], ["s/a.b"])
            stored += result.stored
            duplicates += result.duplicates
        box.close()
        print(json.dumps([stored, duplicates]))
    """
    procs = [child(backend, worker) for _ in range(3)]
    start.touch()
    counts = [json.loads(out) for out in finish(procs)]
    assert sum(stored for stored, _ in counts) == 30
    assert sum(dups for _, dups in counts) == 60
    assert box.stats().pending == 30
