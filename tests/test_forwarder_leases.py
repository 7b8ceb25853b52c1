"""Two forwarders on one SQLite file: a step that outlives its lease is never sent twice.

Real time, on purpose: the Event API stand-in answers late (its ``delay``) over loopback HTTP, so
one step takes longer than ``lease_seconds``, either in one slow request or in several (413
splitting, 400 bisection). The holder must renew its lease meanwhile; without that the second
forwarder claims the expired batch and sends it again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import ForwarderConfig, InngestConfig
from gateway.eventapi import EventApiClient, resolve_target
from gateway.forwarder import Forwarder
from gateway.outbox.sqlite import SQLiteOutbox
from gateway.webhook import Webhook
from tests.eventapi_standin import EventApiStandIn, event_api

LEASE = 2.0


@pytest.fixture
def api() -> Iterator[EventApiStandIn]:
    with event_api() as stand_in:
        yield stand_in


def forwarder(outbox: SQLiteOutbox, api: EventApiStandIn) -> Forwarder:
    target = resolve_target(InngestConfig(base_url=api.url, event_key="inline:test-key"), {})
    config = ForwarderConfig(
        lease_seconds=LEASE, idle_poll=0.05, batch_linger=0, backoff_base=0.1, backoff_max=0.5
    )
    return Forwarder(outbox, EventApiClient(target, timeout=30.0), config)


def store(outbox: SQLiteOutbox, names: list[str]) -> list[str]:
    """One webhook per event; returns the event ids."""
    ids = []
    for n, name in enumerate(names):
        event_id = f"evt-{n}"
        payload = json.dumps({"name": name, "data": {"n": n}, "id": event_id}).encode()
        outbox.accept(Webhook(source="s", provider="p", body=b"{}"), [payload], [event_id], [name])
        ids.append(event_id)
    return ids


async def race(first: Forwarder, second: Forwarder, observer: SQLiteOutbox, events: int) -> None:
    """Start ``first``; once it holds the batch, start ``second``; stop when all is settled."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(first.run(stop))]
    deadline = time.monotonic() + 60
    while observer.stats().leased == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    tasks.append(asyncio.create_task(second.run(stop)))
    while time.monotonic() < deadline:
        stats = observer.stats()
        if stats.delivered + stats.dead == events and stats.leased == stats.pending == 0:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*tasks)  # a step in flight finishes: every request is recorded


@pytest.mark.parametrize(
    ("scenario", "names", "delay"),
    [
        ("one slow request", ["s/a.one"], 3.0),
        ("413 splitting", ["s/a.one", "s/a.two"], 0.9),
        ("400 bisection", ["s/a.one", "s/bad.one", "s/a.two"], 0.9),
    ],
)
def test_a_step_longer_than_the_lease_is_sent_once(
    tmp_path: Path, api: EventApiStandIn, scenario: str, names: list[str], delay: float
) -> None:
    path = tmp_path / "outbox.sqlite3"
    with SQLiteOutbox(path) as a, SQLiteOutbox(path) as b:
        ids = store(a, names)
        api.delay = delay  # each request alone is shorter than the lease only when split
        if scenario == "413 splitting":
            api.max_body_bytes = 90  # one event fits, two do not
        if scenario == "400 bisection":
            api.poison_names = {"s/bad.one"}
        asyncio.run(race(forwarder(a, api), forwarder(b, api), a, len(names)))
        stats = a.stats()
    sent = Counter(event["id"] for r in api.requests for event in r.events)
    good = [i for i, name in zip(ids, names, strict=True) if name != "s/bad.one"]
    assert sorted(api.event_ids()) == sorted(good)  # each accepted exactly once
    if scenario != "400 bisection":  # there the refused event is sent twice, by design
        assert set(sent.values()) == {1}, sent
    assert (stats.delivered, stats.dead) == (len(good), len(names) - len(good))
