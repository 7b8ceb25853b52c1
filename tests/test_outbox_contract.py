"""The Outbox contract: every backend runs this suite (huey's StorageTests idea)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.outbox import Outbox
from gateway.outbox.sqlite import SQLiteOutbox
from gateway.webhook import Webhook


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


BACKENDS: dict[str, Callable[[Path, Clock], Outbox]] = {
    "sqlite": lambda path, clock: SQLiteOutbox(
        path / "outbox.sqlite3", clock=clock, dedup_window=3600
    ),
}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=sorted(BACKENDS))
def outbox(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Outbox]:
    store = BACKENDS[request.param](tmp_path, clock)
    yield store
    store.close()


def webhook(n: int = 0, source: str = "stripe") -> Webhook:
    return Webhook(
        source=source,
        provider="stripe",
        body=b'{"n": %d}' % n,
        headers={"Stripe-Signature": "t=1,v1=ab"},
        query={"q": "1"},
        received_at=1_000_000.0 + n,
    )


def events(*names: str, ids: bool = True) -> tuple[list[bytes], list[str | None], list[str]]:
    payloads = [b'{"name":"%s","data":{}}' % n.encode() for n in names]
    return payloads, [f"id-{n}" if ids else None for n in names], list(names)


def claim_all(outbox: Outbox, **kw: float) -> list[int]:
    args = {"max_events": 1000, "max_bytes": 10**9, "lease_seconds": 30.0, **kw}
    return [e.seq for e in outbox.claim(**args)]  # type: ignore[arg-type]


def test_accept_then_claim_in_order_with_payloads(outbox: Outbox) -> None:
    first = outbox.accept(webhook(1), *events("s/a.one", "s/a.two"))
    second = outbox.accept(webhook(2), *events("s/b.one"))
    assert (first.stored, first.duplicates, second.stored) == (2, 0, 1)
    batch = outbox.claim(max_events=10, max_bytes=10**6, lease_seconds=30)
    assert [e.name for e in batch] == ["s/a.one", "s/a.two", "s/b.one"]
    assert [e.webhook_id for e in batch] == [first.webhook_id] * 2 + [second.webhook_id]
    assert batch[0].payload == b'{"name":"s/a.one","data":{}}'
    assert batch[0].event_id == "id-s/a.one"
    assert all(e.attempts == 0 for e in batch)
    assert batch[0].seq < batch[1].seq < batch[2].seq


def test_claim_respects_count_and_bytes_and_returns_at_least_one(outbox: Outbox) -> None:
    for i in range(5):
        outbox.accept(webhook(i), *events(f"s/e.n{i}"))
    assert len(claim_all(outbox, max_events=2)) == 2
    size = len(b'{"name":"s/e.n2","data":{}}')
    assert len(claim_all(outbox, max_bytes=size * 2)) == 2
    assert len(claim_all(outbox, max_bytes=1)) == 1  # one event larger than the budget still goes


def test_claim_keeps_a_webhooks_events_together(outbox: Outbox) -> None:
    outbox.accept(webhook(1), *events("s/a.one"))
    outbox.accept(webhook(2), *events("s/b.one", "s/b.two", "s/b.three"))
    batch = outbox.claim(max_events=3, max_bytes=10**6, lease_seconds=30)
    assert [e.name for e in batch] == ["s/a.one"]
    batch = outbox.claim(max_events=3, max_bytes=10**6, lease_seconds=30)
    assert [e.name for e in batch] == ["s/b.one", "s/b.two", "s/b.three"]


def test_lease_hides_then_expiry_reexposes(outbox: Outbox, clock: Clock) -> None:
    outbox.accept(webhook(), *events("s/a.b"))
    seqs = claim_all(outbox, lease_seconds=30)
    assert len(seqs) == 1
    assert claim_all(outbox) == []
    clock.now += 31
    assert claim_all(outbox) == seqs  # the forwarder that held it died: at-least-once


def test_ack_delivers(outbox: Outbox) -> None:
    outbox.accept(webhook(), *events("s/a.b", "s/c.d"))
    seqs = claim_all(outbox)
    outbox.ack(seqs)
    assert claim_all(outbox) == []
    stats = outbox.stats()
    assert (stats.delivered, stats.pending, stats.leased) == (2, 0, 0)


def test_release_retries_later_and_counts_attempts(outbox: Outbox, clock: Clock) -> None:
    outbox.accept(webhook(), *events("s/a.b"))
    seqs = claim_all(outbox)
    outbox.release(seqs, retry_at=clock.now + 10, error="503")
    assert claim_all(outbox) == []
    assert outbox.stats().retrying == 1
    clock.now += 10
    batch = outbox.claim(max_events=10, max_bytes=10**6, lease_seconds=30)
    assert [e.seq for e in batch] == seqs
    assert batch[0].attempts == 1


def test_unlease_returns_without_an_attempt(outbox: Outbox) -> None:
    outbox.accept(webhook(), *events("s/a.b"))
    seqs = claim_all(outbox)
    outbox.unlease(seqs)
    batch = outbox.claim(max_events=10, max_bytes=10**6, lease_seconds=30)
    assert [e.seq for e in batch] == seqs and batch[0].attempts == 0


def test_dead_letter_list_and_retry(outbox: Outbox) -> None:
    outbox.accept(webhook(), *events("s/good.one", "s/bad.one"))
    good, bad = claim_all(outbox)
    outbox.ack([good])
    outbox.dead_letter(bad, "event API: data must be an object")
    [letter] = outbox.dead_letters()
    assert (letter.id, letter.kind, letter.name, letter.source) == (
        bad,
        "event",
        "s/bad.one",
        "stripe",
    )
    assert letter.error == "event API: data must be an object"
    assert outbox.stats().dead == 1
    assert claim_all(outbox) == []
    assert outbox.retry_dead([bad]) == 1
    assert claim_all(outbox) == [bad]
    outbox.dead_letter(bad, "again")
    assert outbox.retry_dead() == 1


def test_dedup_within_window_only(outbox: Outbox, clock: Clock) -> None:
    assert outbox.accept(webhook(1), *events("s/a.b")).stored == 1
    again = outbox.accept(webhook(2), *events("s/a.b"))
    assert (again.stored, again.duplicates) == (0, 1)
    clock.now += 3601
    assert outbox.accept(webhook(3), *events("s/a.b")).stored == 1


def test_events_without_id_are_never_deduplicated(outbox: Outbox) -> None:
    assert outbox.accept(webhook(1), *events("s/a.b", ids=False)).stored == 1
    assert outbox.accept(webhook(2), *events("s/a.b", ids=False)).stored == 1


def test_dead_lettered_id_may_arrive_again(outbox: Outbox) -> None:
    outbox.accept(webhook(1), *events("s/a.b"))
    [seq] = claim_all(outbox)
    outbox.dead_letter(seq, "bad")
    assert outbox.accept(webhook(2), *events("s/a.b")).stored == 1


def test_quarantine_roundtrip(outbox: Outbox) -> None:
    original = webhook(7, source="slack")
    webhook_id = outbox.quarantine(original, "transform raised KeyError", "Traceback ...")
    [(held_id, held, error)] = outbox.quarantined()
    assert held_id == webhook_id and error == "transform raised KeyError"
    assert (held.source, held.provider, held.body, held.received_at) == (
        "slack",
        "stripe",
        original.body,
        original.received_at,
    )
    assert held.headers == original.headers and held.query == original.query
    assert outbox.stats().quarantined == 1
    assert [d.kind for d in outbox.dead_letters()] == ["webhook"]
    result = outbox.resolve_quarantined(webhook_id, *events("s/fixed.one"))
    assert result.stored == 1
    assert outbox.quarantined() == []
    assert [e.webhook_id for e in outbox.claim(max_events=5, max_bytes=10**6, lease_seconds=1)] == [
        webhook_id
    ]
    with pytest.raises(KeyError):
        outbox.resolve_quarantined(webhook_id, *events("s/x.y"))


def test_stats_and_oldest_age(outbox: Outbox, clock: Clock) -> None:
    outbox.accept(webhook(), *events("s/a.b"))
    clock.now += 5
    outbox.accept(webhook(), *events("s/c.d"))
    stats = outbox.stats(now=clock.now + 1)
    assert stats.pending == 2 and stats.oldest_pending_age == pytest.approx(6.0)
    outbox.ack(claim_all(outbox))
    assert outbox.stats().oldest_pending_age == 0.0


def test_prune_and_purge(outbox: Outbox, clock: Clock) -> None:
    outbox.accept(webhook(1), *events("s/a.b", "s/c.d"))
    outbox.quarantine(webhook(2), "err", "tb")
    first, second = claim_all(outbox)
    outbox.ack([first])
    outbox.dead_letter(second, "bad")
    assert outbox.prune(older_than=clock.now - 1) == 0
    clock.now += 10
    assert outbox.prune(older_than=clock.now) == 1  # the delivered event
    stats = outbox.stats()
    assert (stats.delivered, stats.dead, stats.quarantined) == (0, 1, 1)
    assert outbox.purge() >= 2
    stats = outbox.stats()
    assert (stats.dead, stats.quarantined, stats.pending) == (0, 0, 0)


def test_async_accept_and_check_writable(outbox: Outbox) -> None:
    import asyncio

    async def go() -> list[int]:
        results = await asyncio.gather(
            *[outbox.accept_async(webhook(i), *events(f"s/e.n{i}")) for i in range(20)]
        )
        return [r.stored for r in results]

    assert asyncio.run(go()) == [1] * 20
    outbox.check_writable()
    assert outbox.stats().pending == 20
