"""The Outbox contract: every backend runs this suite (huey's ``StorageTests`` idea).

A new backend adds one factory to ``BACKENDS``; every test below then runs against it.
Time is injected: the clock passed to the factory, or ``now=`` where the protocol takes one.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.outbox import AcceptResult, Answer, Outbox, OutboxStats, Rejection
from gateway.outbox.common import MAX_DUE_AHEAD, PRUNE_CHUNK, REJECTION_PRUNE_CHUNK
from gateway.outbox.crypto import Cipher, generate_key
from gateway.outbox.sqlite import SQLiteOutbox
from gateway.webhook import Webhook

T0 = 1_700_000_000.0
WINDOW = 3600.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


#: ``(where, clock) -> Outbox``: ``where`` is a temporary directory, or a fresh PostgreSQL
#: database's URL for the backends named ``postgres*`` (tests/pg.py starts the server).
Factory = Callable[[Any, Clock], Outbox]


def _postgres(url: str, clock: Clock, cipher: Cipher | None = None) -> Outbox:
    from gateway.outbox.postgres import PostgresOutbox

    return PostgresOutbox(url, clock=clock, dedup_window=WINDOW, cipher=cipher, listen=False)


BACKENDS: dict[str, Factory] = {
    "sqlite": lambda tmp, clock: SQLiteOutbox(
        tmp / "outbox.sqlite3", clock=clock, dedup_window=WINDOW
    ),
    "sqlite-encrypted": lambda tmp, clock: SQLiteOutbox(
        tmp / "outbox.sqlite3", clock=clock, dedup_window=WINDOW, cipher=Cipher([generate_key()])
    ),
    "postgres": _postgres,
    "postgres-encrypted": lambda url, clock: _postgres(url, clock, Cipher([generate_key()])),
}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=sorted(BACKENDS))
def outbox(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Outbox]:
    # the PostgreSQL server is started only when a postgres backend's test runs
    pg = request.param.startswith("postgres")
    where = request.getfixturevalue("pg_url") if pg else tmp_path
    store = BACKENDS[request.param](where, clock)
    yield store
    store.close()


def hook(n: int = 0, source: str = "stripe") -> Webhook:
    return Webhook(
        source=source,
        provider="stripe",
        body=b'{"id": "evt_%d"}' % n,
        headers={"Stripe-Signature": f"t=1,v1={n:064x}", "Content-Type": "application/json"},
        query={"account": f"acct_{n}"},
        received_at=T0 + n,
    )


Batch = tuple[list[bytes], list[str | None], list[str]]


def evs(*names: str, ids: bool = True) -> Batch:
    """Serialized events named ``names``; ids ``id-<name>`` unless ``ids`` is false."""
    payloads = [b'{"name":"%s","data":{}}' % name.encode() for name in names]
    return payloads, [f"id-{name}" if ids else None for name in names], list(names)


def claim(outbox: Outbox, now: float | None = None, **bounds: int) -> list[int]:
    batch = outbox.claim(
        max_events=bounds.get("max_events", 1000),
        max_bytes=bounds.get("max_bytes", 10**9),
        lease_seconds=30.0,
        now=now,
    )
    return [event.seq for event in batch]


def counts(stats: OutboxStats) -> tuple[int, int, int, int, int, int | None]:
    return (
        stats.pending,
        stats.retrying,
        stats.leased,
        stats.dead,
        stats.quarantined,
        stats.delivered,
    )


def test_backend_satisfies_the_protocol(outbox: Outbox) -> None:
    assert isinstance(outbox, Outbox)


def test_accept_then_claim_in_order_with_everything_the_forwarder_needs(
    outbox: Outbox, clock: Clock
) -> None:
    first = outbox.accept(hook(1), *evs("s/a.one", "s/a.two"))
    clock.now += 1
    second = outbox.accept(hook(2), *evs("s/b.one"))
    assert (first.stored, first.duplicates, second.stored, second.duplicates) == (2, 0, 1, 0)
    assert first.webhook_id != second.webhook_id
    batch = outbox.claim(max_events=10, max_bytes=10**6, lease_seconds=30)
    assert [e.name for e in batch] == ["s/a.one", "s/a.two", "s/b.one"]
    assert batch[0].seq < batch[1].seq < batch[2].seq
    assert [e.webhook_id for e in batch] == [first.webhook_id] * 2 + [second.webhook_id]
    assert [e.payload for e in batch] == evs("s/a.one", "s/a.two", "s/b.one")[0]
    assert [e.event_id for e in batch] == ["id-s/a.one", "id-s/a.two", "id-s/b.one"]
    assert [e.attempts for e in batch] == [0, 0, 0]
    assert [e.created_at for e in batch] == [T0, T0, T0 + 1]


def test_a_webhook_without_events_is_accepted(outbox: Outbox) -> None:
    result = outbox.accept(hook(), [], [], [])
    assert (result.stored, result.duplicates) == (0, 0)
    assert claim(outbox) == []


def test_claim_bounds_count_and_bytes(outbox: Outbox) -> None:
    for i in range(5):
        outbox.accept(hook(i), *evs(f"s/e.n{i}"))
    size = len(evs("s/e.n0")[0][0])
    assert len(claim(outbox, max_events=2)) == 2
    assert len(claim(outbox, max_bytes=size * 2 + 1)) == 2
    assert len(claim(outbox)) == 1
    assert claim(outbox) == []


def test_claim_returns_one_event_larger_than_the_byte_budget(outbox: Outbox) -> None:
    big = [b'{"name":"s/big.one","data":{"x":"' + b"x" * 5000 + b'"}}']
    outbox.accept(hook(1), big, ["big"], ["s/big.one"])
    outbox.accept(hook(2), *evs("s/small.one"))
    batch = outbox.claim(max_events=10, max_bytes=100, lease_seconds=30)
    assert [e.payload for e in batch] == big  # alone, but it goes: the forwarder decides
    assert [e.name for e in outbox.claim(max_events=10, max_bytes=100, lease_seconds=30)] == [
        "s/small.one"
    ]


def test_claim_keeps_a_webhooks_events_in_one_batch(outbox: Outbox) -> None:
    outbox.accept(hook(1), *evs("s/a.one"))
    outbox.accept(hook(2), *evs("s/b.one", "s/b.two", "s/b.three"))
    first = outbox.claim(max_events=3, max_bytes=10**6, lease_seconds=30)
    assert [e.name for e in first] == ["s/a.one"]
    second = outbox.claim(max_events=3, max_bytes=10**6, lease_seconds=30)
    assert [e.name for e in second] == ["s/b.one", "s/b.two", "s/b.three"]


def test_a_webhook_bigger_than_a_batch_is_split_in_order(outbox: Outbox) -> None:
    outbox.accept(hook(), *evs("s/a.one", "s/a.two", "s/a.three"))
    first = claim(outbox, max_events=2)
    outbox.ack(first)
    second = claim(outbox, max_events=2)
    assert len(first) == 2 and len(second) == 1 and max(first) < second[0]


def test_lease_hides_events_until_it_expires(outbox: Outbox, clock: Clock) -> None:
    outbox.accept(hook(), *evs("s/a.b"))
    seqs = claim(outbox)
    assert len(seqs) == 1
    assert claim(outbox) == []
    assert claim(outbox, now=clock.now + 30) == []  # the lease still holds at its last instant
    again = outbox.claim(max_events=5, max_bytes=10**6, lease_seconds=30, now=clock.now + 31)
    assert [e.seq for e in again] == seqs  # the holder died: at-least-once, never lost
    assert again[0].attempts == 0


def test_ack_delivers_for_good(outbox: Outbox, clock: Clock) -> None:
    outbox.accept(hook(), *evs("s/a.b", "s/c.d"))
    outbox.ack(claim(outbox))
    assert claim(outbox, now=clock.now + 10_000) == []
    assert counts(outbox.stats()) == (0, 0, 0, 0, 0, 2)


def test_ack_of_nothing_is_a_no_op(outbox: Outbox) -> None:
    outbox.accept(hook(), *evs("s/a.b"))
    outbox.ack([])
    assert outbox.stats().pending == 1


def test_release_waits_for_retry_at_and_counts_an_attempt(outbox: Outbox, clock: Clock) -> None:
    outbox.accept(hook(), *evs("s/a.b"))
    seqs = claim(outbox)
    outbox.release(seqs, retry_at=clock.now + 10, error="event API answered 503")
    assert claim(outbox) == []
    assert claim(outbox, now=clock.now + 9.9) == []
    assert counts(outbox.stats()) == (0, 1, 0, 0, 0, 0)
    batch = outbox.claim(max_events=5, max_bytes=10**6, lease_seconds=30, now=clock.now + 10)
    assert [e.seq for e in batch] == seqs and batch[0].attempts == 1


def test_a_clock_stepped_back_does_not_hold_retries_for_the_step(
    outbox: Outbox, clock: Clock
) -> None:
    outbox.accept(hook(1), *evs("s/a.b", "s/c.d"))
    outbox.accept(hook(2), *evs("s/e.f"))
    seqs = claim(outbox)
    outbox.release(seqs, retry_at=clock.now + 5, error="event API answered 503")
    clock.now -= 3600  # NTP steps the clock back an hour
    assert claim(outbox) == seqs  # due at once, in order, not in an hour
    assert counts(outbox.stats()) == (0, 0, 3, 0, 0, 0)


def test_a_stored_due_time_is_clamped(outbox: Outbox, clock: Clock) -> None:
    outbox.accept(hook(), *evs("s/a.b"))
    seqs = claim(outbox)
    outbox.release(seqs, retry_at=clock.now + 10 * MAX_DUE_AHEAD, error="429")
    assert claim(outbox, now=clock.now + MAX_DUE_AHEAD - 1) == []
    assert claim(outbox, now=clock.now + MAX_DUE_AHEAD) == seqs


def test_a_later_event_never_overtakes_a_retrying_one_of_its_webhook(
    outbox: Outbox, clock: Clock
) -> None:
    outbox.accept(hook(1), *evs("s/a.one", "s/a.two"))
    a_one, a_two = claim(outbox)
    outbox.release([a_one], retry_at=clock.now + 60, error="timeout")
    outbox.unlease([a_two])  # due now, but behind a.one
    outbox.accept(hook(2), *evs("s/b.one"))
    [b_one] = outbox.claim(max_events=9, max_bytes=10**6, lease_seconds=5)
    assert b_one.name == "s/b.one"
    outbox.ack([b_one.seq])
    assert claim(outbox, now=clock.now + 60) == [a_one, a_two]


def test_a_later_event_waits_while_an_earlier_one_of_its_webhook_is_leased(
    outbox: Outbox,
) -> None:
    outbox.accept(hook(1), *evs("s/a.one", "s/a.two"))
    [a_one] = claim(outbox, max_events=1)
    outbox.accept(hook(2), *evs("s/b.one"))
    assert [e.name for e in outbox.claim(max_events=9, max_bytes=10**6, lease_seconds=5)] == [
        "s/b.one"
    ]
    outbox.ack([a_one])
    assert [e.name for e in outbox.claim(max_events=9, max_bytes=10**6, lease_seconds=5)] == [
        "s/a.two"
    ]


def test_unlease_gives_events_back_without_an_attempt(outbox: Outbox) -> None:
    outbox.accept(hook(), *evs("s/a.b"))
    seqs = claim(outbox)
    outbox.unlease(seqs)
    batch = outbox.claim(max_events=10, max_bytes=10**6, lease_seconds=30)
    assert [e.seq for e in batch] == seqs and batch[0].attempts == 0


def test_dead_letters_are_listed_kept_out_and_retried(outbox: Outbox, clock: Clock) -> None:
    outbox.accept(hook(1), *evs("s/good.one", "s/bad.one"))
    good, bad = claim(outbox)
    outbox.ack([good])
    outbox.dead_letter(bad, "event API: data must be an object")
    [letter] = outbox.dead_letters()
    assert (letter.id, letter.kind, letter.source, letter.name) == (
        bad,
        "event",
        "stripe",
        "s/bad.one",
    )
    assert (letter.error, letter.attempts, letter.created_at) == (
        "event API: data must be an object",
        1,
        T0,
    )
    assert counts(outbox.stats()) == (0, 0, 0, 1, 0, 1)
    assert claim(outbox, now=clock.now + 10_000) == []
    assert outbox.retry_dead([bad]) == 1
    assert outbox.dead_letters() == []
    [again] = outbox.claim(max_events=5, max_bytes=10**6, lease_seconds=30)
    assert again.seq == bad and again.attempts == 1  # attempts are kept
    outbox.dead_letter(bad, "still bad")
    assert outbox.retry_dead([good]) == 0  # only dead events come back
    assert outbox.retry_dead() == 1
    assert claim(outbox) == [bad]


@pytest.mark.parametrize("live", ["pending", "leased", "delivered"])
@pytest.mark.parametrize("which", ["all", "by seq"])
def test_retry_dead_skips_an_event_whose_id_a_live_event_holds(
    outbox: Outbox, live: str, which: str
) -> None:
    outbox.accept(hook(1), *evs("s/a.b", "s/c.d"))
    first, other = claim(outbox)
    outbox.dead_letter(first, "event API answered 400")
    outbox.dead_letter(other, "event API answered 400")
    resent = outbox.accept(hook(2), *evs("s/a.b"))  # the provider's resend, after the letter
    assert resent.stored == 1
    [copy] = claim(outbox)
    if live == "pending":
        outbox.unlease([copy])
    elif live == "delivered":
        outbox.ack([copy])
    assert outbox.retry_dead(None if which == "all" else [first, other]) == 1  # only "other"
    assert {d.id for d in outbox.dead_letters()} == {first}  # kept, not sent twice
    if live == "pending":
        assert claim(outbox) == [other, copy]
    else:
        assert claim(outbox) == [other]


def test_retry_dead_queues_one_of_several_dead_copies_of_an_id(outbox: Outbox) -> None:
    for n in (1, 2):
        outbox.accept(hook(n), *evs("s/a.b"))  # a dead-lettered id may arrive again
        [seq] = claim(outbox)
        outbox.dead_letter(seq, f"bad {n}")
    [newest, oldest] = [d.id for d in outbox.dead_letters()]
    assert outbox.retry_dead() == 1
    assert claim(outbox) == [newest]
    assert [d.id for d in outbox.dead_letters()] == [oldest]


def test_dead_letters_list_newest_first_with_quarantined_webhooks(
    outbox: Outbox, clock: Clock
) -> None:
    outbox.accept(hook(1), *evs("s/a.one"))
    clock.now += 10
    outbox.accept(hook(2), *evs("s/b.one"))
    first, second = claim(outbox)
    outbox.dead_letter(first, "one")
    outbox.dead_letter(second, "two")
    held = outbox.quarantine(hook(50, source="slack"), "transform raised", "Traceback ...")
    letters = outbox.dead_letters()
    assert [(d.kind, d.id) for d in letters] == [
        ("webhook", held),
        ("event", second),
        ("event", first),
    ]
    assert letters[0].source == "slack" and letters[0].name is None
    assert len(outbox.dead_letters(limit=2)) == 2


def test_dedup_within_the_window_only(outbox: Outbox, clock: Clock) -> None:
    assert outbox.accept(hook(1), *evs("s/a.b")).stored == 1
    clock.now += WINDOW - 1
    again = outbox.accept(hook(2), *evs("s/a.b"))
    assert (again.stored, again.duplicates) == (0, 1)
    clock.now += 2  # the window counts from the first acceptance, not from the duplicate
    later = outbox.accept(hook(3), *evs("s/a.b"))
    assert (later.stored, later.duplicates) == (1, 0)
    clock.now += 1
    assert outbox.accept(hook(4), *evs("s/a.b")).duplicates == 1  # the entry was refreshed
    assert outbox.stats().pending == 2


def test_dedup_counts_within_one_webhook_and_keeps_the_rest(outbox: Outbox) -> None:
    outbox.accept(hook(1), *evs("s/a.b"))
    payloads, ids, names = evs("s/a.b", "s/c.d", "s/c.d")
    result = outbox.accept(hook(2), payloads, ids, names)
    assert (result.stored, result.duplicates) == (1, 2)
    assert len(claim(outbox)) == 2


def test_events_without_an_id_are_never_deduplicated(outbox: Outbox) -> None:
    assert outbox.accept(hook(1), *evs("s/a.b", ids=False)).stored == 1
    assert outbox.accept(hook(2), *evs("s/a.b", ids=False)).stored == 1


def test_a_dead_lettered_id_may_arrive_again(outbox: Outbox) -> None:
    outbox.accept(hook(1), *evs("s/a.b"))
    [seq] = claim(outbox)
    outbox.dead_letter(seq, "bad")
    assert outbox.accept(hook(2), *evs("s/a.b")).stored == 1


def test_a_delivered_id_is_still_a_duplicate(outbox: Outbox) -> None:
    outbox.accept(hook(1), *evs("s/a.b"))
    outbox.ack(claim(outbox))
    assert outbox.accept(hook(2), *evs("s/a.b")).duplicates == 1


def test_a_body_key_makes_a_replayed_body_a_duplicate_whole(outbox: Outbox, clock: Clock) -> None:
    """Different event ids (from unsigned headers), the same verified body: a duplicate."""
    assert outbox.accept(hook(1), *evs("s/a.b"), body_key="body:s:aa").stored == 1
    payloads, ids, names = evs("s/c.d", "s/e.f")
    again = outbox.accept(hook(2), payloads, [f"new-{i}" for i in ids], names, body_key="body:s:aa")
    assert (again.stored, again.duplicates) == (0, 2)
    other = outbox.accept(hook(3), *evs("s/g.h"), body_key="body:s:bb")
    assert (other.stored, other.duplicates) == (1, 0)
    assert outbox.accept(hook(4), [], [], [], body_key="body:s:cc").stored == 0
    assert outbox.accept(hook(5), *evs("s/x.y"), body_key="body:s:cc").duplicates == 1
    clock.now += WINDOW + 1
    assert outbox.accept(hook(6), *evs("s/i.j"), body_key="body:s:aa").stored == 1


def test_a_body_key_is_honoured_by_accept_async_within_one_commit(outbox: Outbox) -> None:
    async def both() -> list[AcceptResult]:
        return await asyncio.gather(
            outbox.accept_async(hook(1), *evs("s/a.b"), body_key="body:s:k"),
            outbox.accept_async(hook(2), *evs("s/c.d"), body_key="body:s:k"),
        )

    first, second = asyncio.run(both())
    assert sorted([(first.stored, first.duplicates), (second.stored, second.duplicates)]) == [
        (0, 1),
        (1, 0),
    ]


def test_a_dead_lettered_body_may_arrive_again(outbox: Outbox) -> None:
    outbox.accept(hook(1), *evs("s/a.b"), body_key="body:s:k")
    [seq] = claim(outbox)
    outbox.dead_letter(seq, "bad")
    assert outbox.accept(hook(2), *evs("s/c.d"), body_key="body:s:k").stored == 1


def test_a_replay_key_stays_held_after_a_dead_letter(outbox: Outbox, clock: Clock) -> None:
    """A ``replay:`` key is a sender's single-use value (Mailgun's signed token), not a body
    digest: the body it came with is not signed, so once its events are dead-lettered the key
    must still refuse other event data under it, for the whole window."""
    outbox.accept(hook(1), *evs("s/a.b"), body_key="replay:s:token:t1")
    [seq] = claim(outbox)
    outbox.dead_letter(seq, "bad")
    forged = outbox.accept(hook(2), *evs("s/c.d"), body_key="replay:s:token:t1")
    assert (forged.stored, forged.duplicates) == (0, 1)
    assert outbox.accept(hook(3), *evs("s/e.f"), body_key="replay:s:token:t2").stored == 1
    clock.now += WINDOW + 1
    assert outbox.accept(hook(4), *evs("s/g.h"), body_key="replay:s:token:t1").stored == 1


def test_quarantine_keeps_the_webhook_and_resolving_queues_its_events(outbox: Outbox) -> None:
    original = hook(7, source="slack")
    webhook_id = outbox.quarantine(original, "transform raised KeyError", "Traceback ...")
    [(held_id, held, error)] = outbox.quarantined()
    assert (held_id, error) == (webhook_id, "transform raised KeyError")
    assert (held.source, held.provider, held.body, held.received_at) == (
        "slack",
        "stripe",
        original.body,
        original.received_at,
    )
    assert dict(held.headers) == dict(original.headers)
    assert held.header("stripe-signature") == original.header("Stripe-Signature")
    assert dict(held.query) == {"account": "acct_7"}
    assert held.json == {"id": "evt_7"}
    assert counts(outbox.stats()) == (0, 0, 0, 0, 1, 0)
    result = outbox.resolve_quarantined(webhook_id, *evs("s/fixed.one", "s/fixed.two"))
    assert (result.webhook_id, result.stored, result.duplicates) == (webhook_id, 2, 0)
    assert outbox.quarantined() == []
    assert outbox.stats().quarantined == 0
    batch = outbox.claim(max_events=5, max_bytes=10**6, lease_seconds=1)
    assert [e.webhook_id for e in batch] == [webhook_id, webhook_id]
    with pytest.raises(KeyError):
        outbox.resolve_quarantined(webhook_id, *evs("s/x.y"))


def test_quarantined_lists_oldest_first_with_a_limit(outbox: Outbox) -> None:
    ids = [outbox.quarantine(hook(i), f"error {i}", "tb") for i in range(3)]
    assert [wid for wid, _, _ in outbox.quarantined()] == ids
    assert [error for _, _, error in outbox.quarantined(limit=2)] == ["error 0", "error 1"]


def test_async_variants_store_like_the_sync_ones(outbox: Outbox) -> None:
    async def receive() -> tuple[list[int], int]:
        accepted = await asyncio.gather(
            *[outbox.accept_async(hook(i), *evs(f"s/e.n{i}")) for i in range(20)]
        )
        held = await outbox.quarantine_async(hook(99), "boom", "tb")
        return [r.stored for r in accepted], held

    stored, held = asyncio.run(receive())
    assert stored == [1] * 20
    assert [wid for wid, _, _ in outbox.quarantined()] == [held]
    assert counts(outbox.stats()) == (20, 0, 0, 0, 1, 0)


def test_stats_count_every_state_and_the_oldest_waiting_event(outbox: Outbox, clock: Clock) -> None:
    assert outbox.stats() == OutboxStats(0, 0, 0, 0, 0, 0, 0.0)
    outbox.accept(hook(1), *evs("s/a.one", "s/a.two"))
    clock.now += 5
    outbox.accept(hook(2), *evs("s/b.one"))
    clock.now += 5
    outbox.accept(hook(3), *evs("s/c.one", "s/c.two"))
    a_one, a_two, b_one, c_one, c_two = claim(outbox)
    outbox.ack([a_two])
    outbox.dead_letter(b_one, "bad")
    outbox.release([c_one], retry_at=clock.now + 60, error="503")
    outbox.unlease([c_two])
    outbox.quarantine(hook(4), "boom", "tb")
    stats = outbox.stats(now=clock.now + 1)
    assert counts(stats) == (1, 1, 1, 1, 1, 1)
    assert stats.oldest_pending_age == pytest.approx(11.0)  # a.one, still leased
    outbox.ack([a_one])
    assert outbox.stats(now=clock.now + 1).oldest_pending_age == pytest.approx(1.0)
    outbox.ack(claim(outbox, now=clock.now + 60))
    assert outbox.stats(now=clock.now + 100).oldest_pending_age == 0.0


def test_stats_without_the_delivered_count_keep_every_other_figure(
    outbox: Outbox, clock: Clock
) -> None:
    # what a /metrics scrape asks for: delivered rows (kept for the dedup window) not counted
    assert outbox.stats(delivered=False) == OutboxStats(0, 0, 0, 0, 0, None, 0.0)
    outbox.accept(hook(1), *evs("s/a.one", "s/a.two", "s/a.three"))
    clock.now += 5
    outbox.accept(hook(2), *evs("s/b.one", "s/b.two"))
    clock.now += 5
    outbox.accept(hook(3), *evs("s/c.one", "s/c.two"))
    a_one, a_two, a_three, b_one, _b_two, c_one, c_two = claim(outbox)
    outbox.ack([a_one, a_two, a_three])
    outbox.dead_letter(b_one, "bad")
    outbox.release([c_one], retry_at=clock.now + 60, error="503")
    outbox.unlease([c_two])
    outbox.quarantine(hook(4), "boom", "tb")
    full = outbox.stats(now=clock.now + 1)
    scrape = outbox.stats(now=clock.now + 1, delivered=False)
    assert counts(full) == (1, 1, 1, 1, 1, 3)
    assert counts(scrape) == (1, 1, 1, 1, 1, None)
    assert scrape == dataclasses.replace(full, delivered=None)
    assert scrape.oldest_pending_age == pytest.approx(6.0)  # b.two, still leased
    assert outbox.stats(delivered=True) == outbox.stats()


def test_prune_deletes_only_old_delivered_events(outbox: Outbox, clock: Clock) -> None:
    outbox.accept(hook(1), *evs("s/a.one", "s/a.two"))
    outbox.accept(hook(2), *evs("s/b.one"))
    outbox.quarantine(hook(3), "boom", "tb")
    a_one, a_two, b_one = claim(outbox)
    outbox.ack([a_one, a_two])
    outbox.dead_letter(b_one, "bad")
    assert outbox.prune(older_than=clock.now) == 0  # delivered at clock.now: not older
    clock.now += 10
    assert outbox.prune(older_than=clock.now) >= 2  # both events, and their emptied webhook
    assert counts(outbox.stats()) == (0, 0, 0, 1, 1, 0)
    assert outbox.prune(older_than=clock.now) == 0
    assert outbox.accept(hook(4), *evs("s/a.one")).duplicates == 1  # dedup outlives the rows


def test_purge_deletes_delivered_dead_and_quarantined_but_not_waiting(
    outbox: Outbox, clock: Clock
) -> None:
    outbox.accept(hook(1), *evs("s/a.one", "s/a.two"))
    outbox.quarantine(hook(2), "boom", "tb")
    first, second = claim(outbox)
    outbox.ack([first])
    outbox.dead_letter(second, "bad")
    outbox.accept(hook(3), *evs("s/c.one"))
    assert outbox.purge() == 4  # 2 events, the quarantined webhook, the emptied webhook
    assert counts(outbox.stats()) == (1, 0, 0, 0, 0, 0)
    assert outbox.dead_letters() == [] and outbox.quarantined() == []
    assert outbox.accept(hook(4), *evs("s/a.two")).stored == 1  # its dead letter is gone
    assert [e.name for e in outbox.claim(max_events=9, max_bytes=10**6, lease_seconds=1)] == [
        "s/c.one",
        "s/a.two",
    ]


def test_purge_deletes_more_rows_than_one_chunk(outbox: Outbox) -> None:
    # Purge works in chunks (each its own transaction, like prune): none may be left behind.
    per, hooks = 50, 2 * PRUNE_CHUNK // 50 + 1
    for n in range(hooks):
        ids = [f"id-{n}-{i}" for i in range(per)]
        outbox.accept(hook(n), [b"{}"] * per, ids, ["s/e"] * per)
    many = per * hooks
    seqs = [e.seq for e in outbox.claim(max_events=many, max_bytes=10**9, lease_seconds=60)]
    outbox.ack(seqs[:-3])
    for seq in seqs[-3:]:
        outbox.dead_letter(seq, "bad")
    for n in range(3):
        outbox.quarantine(hook(n), "boom", "tb")
    assert outbox.purge() == many + hooks + 3  # the events, their webhooks, the quarantined
    assert counts(outbox.stats()) == (0, 0, 0, 0, 0, 0)
    assert outbox.accept(hook(9), [b"{}"], [f"id-{hooks - 1}-{per - 1}"], ["s/x"]).stored == 1


def test_check_writable_passes_on_a_healthy_store(outbox: Outbox) -> None:
    outbox.check_writable()
    outbox.accept(hook(), *evs("s/a.b"))
    outbox.check_writable()
    assert outbox.stats().pending == 1


# -- inspection console ------------------------------------------------------------------


def refused(n: int = 0, source: str = "stripe", reason: str = "bad_signature") -> Rejection:
    return Rejection(
        source=source,
        provider="stripe",
        received_at=T0 + n,
        status=401,
        reason=reason,
        message=f"no signature matches ({n})",
        headers={"content-type": "application/json", "stripe-signature": "••••"},
        body=b'{"id": "ev',
        body_size=4000,
        request_id=f"req-{n}",
    )


def test_every_delivery_outcome_is_recorded_per_event(outbox: Outbox, clock: Clock) -> None:
    accepted = outbox.accept(hook(1), *evs("s/a.one"))
    [seq] = claim(outbox)
    clock.now += 1
    outbox.release([seq], retry_at=clock.now, error="event API answered 503")
    [seq] = claim(outbox)
    clock.now += 1
    outbox.dead_letter(seq, "event API: bad data")
    clock.now += 1
    assert outbox.retry_dead([seq]) == 1
    [seq] = claim(outbox)
    clock.now += 1
    outbox.ack([seq])
    outbox.ack([seq])  # a repeated ack changes nothing and records nothing
    record = outbox.webhook(accepted.webhook_id)
    assert record is not None
    [event] = record.events
    assert (event.seq, event.name, event.event_id, event.state) == (
        seq,
        "s/a.one",
        "id-s/a.one",
        "delivered",
    )
    assert event.payload == evs("s/a.one")[0][0]
    assert [(a.outcome, a.at, a.error) for a in event.history] == [
        ("retry", T0 + 1, "event API answered 503"),
        ("dead", T0 + 2, "event API: bad data"),
        ("requeued", T0 + 3, None),
        ("delivered", T0 + 4, None),
    ]
    assert record.summary.outcome == "delivered"
    assert record.webhook.body == hook(1).body
    assert record.webhook.header("stripe-signature") == hook(1).header("stripe-signature")


def test_each_attempt_keeps_the_event_apis_status_and_latency(outbox: Outbox, clock: Clock) -> None:
    accepted = outbox.accept(hook(1), *evs("s/a.one"))
    [seq] = claim(outbox)
    outbox.release([seq], retry_at=clock.now, error="no answer", answer=Answer(0, 10000.0))
    [seq] = claim(outbox)
    outbox.dead_letter(seq, "event API: bad data", answer=Answer(400, 12.5))
    outbox.retry_dead([seq])
    [seq] = claim(outbox)
    outbox.ack([seq], answer=Answer(200, 3.25))
    record = outbox.webhook(accepted.webhook_id)
    assert record is not None
    [event] = record.events
    assert [(a.outcome, a.status, a.latency_ms) for a in event.history] == [
        ("retry", 0, 10000.0),
        ("dead", 400, 12.5),
        ("requeued", None, None),
        ("delivered", 200, 3.25),
    ]
    # without an answer (a caller that sent nothing) the attempt is kept all the same
    other = outbox.accept(hook(2), *evs("s/b.two"))
    [seq] = claim(outbox)
    outbox.ack([seq])
    record = outbox.webhook(other.webhook_id)
    assert record is not None
    assert [(a.outcome, a.status) for a in record.events[0].history] == [("delivered", None)]


def test_webhooks_and_rejections_in_a_time_range(outbox: Outbox) -> None:
    ids = [outbox.accept(hook(n), *evs(f"s/e.n{n}")).webhook_id for n in range(1, 6)]
    for n in range(1, 6):
        outbox.record_rejection(refused(n))
    outbox.flush_rejections()
    # received_at is T0 + n for both: [T0 + 2, T0 + 4) holds n = 2 and 3, newest first
    within = outbox.webhooks(since=T0 + 2, until=T0 + 4)
    assert [w.id for w in within] == [ids[2], ids[1]]
    assert [w.id for w in outbox.webhooks(since=T0 + 4)] == [ids[4], ids[3]]
    assert [w.id for w in outbox.webhooks(until=T0 + 2)] == [ids[0]]
    assert [r.request_id for r in outbox.rejections(since=T0 + 2, until=T0 + 4)] == [
        "req-3",
        "req-2",
    ]
    assert outbox.webhooks(since=T0 + 10) == [] and outbox.rejections(until=T0) == []


def test_webhook_outcomes_filters_and_search(outbox: Outbox) -> None:
    delivered = outbox.accept(hook(1), *evs("s/a.one")).webhook_id
    dead = outbox.accept(hook(2, source="slack"), *evs("s/b.two", "s/b.three")).webhook_id
    filtered = outbox.accept(hook(3), [], [], []).webhook_id
    first, second, third = claim(outbox)
    outbox.ack([first, second])
    outbox.dead_letter(third, "refused")
    pending = outbox.accept(hook(4), *evs("s/c.four")).webhook_id
    held = outbox.quarantine(hook(5), "transform raised KeyError: 'data'", "Traceback ...")
    listed = outbox.webhooks()
    assert [(w.id, w.outcome) for w in listed] == [
        (held, "quarantined"),
        (pending, "pending"),
        (filtered, "filtered"),
        (dead, "dead"),
        (delivered, "delivered"),
    ]
    by_id = {w.id: w for w in listed}
    assert by_id[dead].event_names == ("s/b.two", "s/b.three")
    assert (by_id[dead].events, by_id[dead].source, by_id[dead].status) == (2, "slack", "accepted")
    assert by_id[held].error == "transform raised KeyError: 'data'"
    assert [w.id for w in outbox.webhooks(outcome="dead")] == [dead]
    assert [w.id for w in outbox.webhooks(source="slack")] == [dead]
    assert [w.id for w in outbox.webhooks(query="b.thr")] == [dead]  # part of a name
    assert [w.id for w in outbox.webhooks(query="id-s/c")] == [pending]  # part of an event id
    assert [w.id for w in outbox.webhooks(query=str(filtered))] == [filtered]
    assert [w.id for w in outbox.webhooks(query="KeyError")] == [held]
    assert outbox.webhooks(query="%") == []  # LIKE wildcards are literal
    assert len(outbox.webhooks(limit=2)) == 2
    record = outbox.webhook(held)
    assert record is not None and record.detail == "Traceback ..." and record.events == ()
    assert outbox.webhook(10_000) is None


def test_rejections_are_written_with_the_next_commit_or_a_flush(outbox: Outbox) -> None:
    outbox.record_rejection(refused(1))
    outbox.flush_rejections()
    [first] = outbox.rejections()
    assert (first.source, first.reason, first.status, first.request_id) == (
        "stripe",
        "bad_signature",
        401,
        "req-1",
    )
    assert (first.body, first.body_size, first.received_at) == (b'{"id": "ev', 4000, T0 + 1)
    assert dict(first.headers) == {"content-type": "application/json", "stripe-signature": "••••"}
    assert outbox.rejection(first.id) == first
    outbox.record_rejection(refused(2, source="slack", reason="timestamp_out_of_range"))
    outbox.accept(hook(9), *evs("s/a.b"))  # rides along with this commit: no flush needed
    assert [r.request_id for r in outbox.rejections()] == ["req-2", "req-1"]
    assert [r.request_id for r in outbox.rejections(source="slack")] == ["req-2"]
    assert [r.request_id for r in outbox.rejections(query="timestamp")] == ["req-2"]
    assert [r.request_id for r in outbox.rejections(limit=1)] == ["req-2"]
    assert outbox.rejection(first.id + 100) is None


def test_rejections_are_pruned_by_age_and_by_count(outbox: Outbox) -> None:
    for n in range(6):
        outbox.record_rejection(refused(n))
    outbox.flush_rejections()
    assert outbox.prune_rejections(older_than=T0 + 2, keep=100) == 2
    assert [r.request_id for r in outbox.rejections()] == ["req-5", "req-4", "req-3", "req-2"]
    assert outbox.prune_rejections(older_than=0, keep=3) == 1
    assert [r.request_id for r in outbox.rejections()] == ["req-5", "req-4", "req-3"]
    assert outbox.prune_rejections(older_than=0, keep=0) == 3
    assert outbox.rejections() == []


def test_rejections_are_pruned_by_bytes_newest_kept(outbox: Outbox) -> None:
    for n in range(6):
        outbox.record_rejection(refused(n))
    outbox.flush_rejections()
    [one] = outbox.rejections(limit=1)
    # a stored row holds its (sealed) headers and body: at least the plain body's 10 bytes
    assert outbox.prune_rejections(older_than=0, keep=100, max_bytes=10**9) == 0
    assert outbox.prune_rejections(older_than=0, keep=100, max_bytes=1) == 6
    assert outbox.rejections() == [] and one.request_id == "req-5"


def test_rejections_are_pruned_in_chunks_leaving_none_behind(outbox: Outbox) -> None:
    many = 2 * REJECTION_PRUNE_CHUNK + 3
    for n in range(many):
        outbox.record_rejection(refused(n))
    outbox.flush_rejections()
    assert outbox.prune_rejections(older_than=0, keep=1) == many - 1
    assert [r.request_id for r in outbox.rejections()] == [f"req-{many - 1}"]


def test_source_counts_and_activity(outbox: Outbox, clock: Clock) -> None:
    outbox.accept(hook(1), *evs("s/a.one"))
    outbox.accept(hook(70, source="slack"), *evs("s/b.one"))
    [_, slack_seq] = claim(outbox)
    outbox.dead_letter(slack_seq, "refused")
    outbox.quarantine(hook(75), "boom", "tb")
    for n in (2, 3, 80):
        outbox.record_rejection(refused(n, source="stripe" if n < 50 else "github"))
    outbox.flush_rejections()
    clock.now = T0 + 120
    counts = outbox.source_counts(since=T0)
    assert counts["stripe"].accepted == 1 and counts["stripe"].rejected == 2
    assert counts["stripe"].quarantined == 1 and counts["stripe"].dead == 0
    assert (counts["slack"].accepted, counts["slack"].dead) == (1, 1)
    assert (counts["github"].rejected, counts["github"].accepted) == (1, 0)
    assert outbox.source_counts(since=T0 + 60)["stripe"].accepted == 0
    buckets = outbox.activity(since=T0, bucket=60)
    assert [(b.start, b.accepted, b.rejected) for b in buckets] == [
        (T0, 1, 2),
        (T0 + 60, 2, 1),
    ]


def test_prune_forgets_the_history_of_pruned_events(outbox: Outbox, clock: Clock) -> None:
    accepted = outbox.accept(hook(1), *evs("s/a.one"))
    outbox.ack(claim(outbox))
    clock.now += 100
    assert outbox.prune(older_than=clock.now) == 2
    assert outbox.webhook(accepted.webhook_id) is None


def test_entries_list_every_state_oldest_first_with_retry_details(
    outbox: Outbox, clock: Clock
) -> None:
    outbox.accept(hook(1), *evs("s/a.one", "s/a.two", "s/a.three", "s/a.four"))
    clock.now += 1
    outbox.accept(hook(2), *evs("s/b.one"))
    delivered, retrying, dead, leased, pending = claim(outbox)
    outbox.ack([delivered])
    outbox.release([retrying], retry_at=T0 + 60, error="event API answered 503: down")
    outbox.dead_letter(dead, "event API: data must be an object")
    outbox.unlease([pending])
    clock.now += 1
    held = outbox.quarantine(hook(3, source="slack"), "transform raised KeyError", "tb")

    rows = outbox.entries()
    assert [(r.kind, r.id, r.state) for r in rows] == [
        ("event", retrying, "retrying"),
        ("event", dead, "dead"),
        ("event", leased, "leased"),
        ("event", pending, "pending"),
        ("webhook", held, "quarantined"),
    ]
    by_state = {r.state: r for r in rows}
    assert by_state["retrying"].attempts == 1 and by_state["retrying"].next_attempt_at == T0 + 60
    assert by_state["retrying"].error == "event API answered 503: down"
    assert (by_state["retrying"].name, by_state["retrying"].event_id) == ("s/a.two", "id-s/a.two")
    assert by_state["retrying"].source == "stripe" and by_state["retrying"].created_at == T0
    assert by_state["dead"].error == "event API: data must be an object"
    assert by_state["dead"].next_attempt_at is None
    assert by_state["leased"].next_attempt_at == T0 + 1 + 30  # claimed at T0 + 1, 30 s lease
    assert by_state["pending"].attempts == 0 and by_state["pending"].webhook_id != held
    assert by_state["quarantined"].source == "slack" and by_state["quarantined"].name is None
    assert by_state["quarantined"].error == "transform raised KeyError"

    assert [r.id for r in outbox.entries(["dead"])] == [d.id for d in outbox.dead_letters()[1:]]
    assert [r.id for r in outbox.entries(["delivered"])] == [delivered]
    assert [r.state for r in outbox.entries(["pending", "retrying"])] == ["retrying", "pending"]
    assert len(outbox.entries(limit=2)) == 2
    assert len(outbox.entries(["pending", "delivered", "dead"], limit=1)) == 1
    with pytest.raises(ValueError, match="unknown state"):
        outbox.entries(["stuck"])
    outbox.retry_dead([rows[1].id])  # an entry's id is what retry_dead takes
    assert [r.state for r in outbox.entries(["dead"])] == []
