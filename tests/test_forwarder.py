"""Forwarder and Event API client against the real stand-in over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import ForwarderConfig, InngestConfig
from gateway.eventapi import (
    CLOUD_ORIGIN,
    DEV_KEY,
    DEV_ORIGIN,
    EventApiClient,
    MissingEventKey,
    parse_retry_after,
    resolve_target,
)
from gateway.forwarder import Forwarder, event_id_seed
from gateway.metrics import Metrics
from gateway.outbox.sqlite import SQLiteOutbox
from gateway.webhook import Webhook
from tests.eventapi_standin import EventApiStandIn, event_api


class FakeTime:
    """An injected clock and sleep: back-off and Retry-After cost no real waiting."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def api() -> Iterator[EventApiStandIn]:
    with event_api() as stand_in:
        yield stand_in


@pytest.fixture
def ftime() -> FakeTime:
    return FakeTime()


@pytest.fixture
def outbox(tmp_path: Path, ftime: FakeTime) -> Iterator[SQLiteOutbox]:
    box = SQLiteOutbox(tmp_path / "o.db", clock=ftime.clock)
    yield box
    box.close()


def store(outbox: SQLiteOutbox, names: list[str], *, size: int = 0, tag: str = "") -> None:
    for i, name in enumerate(names):
        payload = json.dumps(
            {"name": name, "data": {"i": i, "pad": "x" * size}, "id": f"id-{tag}{i}"}
        ).encode()
        outbox.accept(
            Webhook(source="s", provider="stripe", body=b"{}"), [payload], [f"id-{tag}{i}"], [name]
        )


def make(
    api: EventApiStandIn,
    outbox: SQLiteOutbox,
    ftime: FakeTime,
    *,
    key: str = "k",
    env: str | None = None,
    metrics: Metrics | None = None,
    **cfg: object,
) -> tuple[Forwarder, EventApiClient]:
    target = resolve_target(InngestConfig(base_url=api.url, event_key=f"inline:{key}", env=env), {})
    client = EventApiClient(target)
    config = ForwarderConfig(**{"backoff_base": 1.0, "backoff_max": 30.0, **cfg})  # type: ignore[arg-type]
    return Forwarder(
        outbox,
        client,
        config,
        metrics=metrics,
        clock=ftime.clock,
        sleep=ftime.sleep,
        rng=lambda: 1.0,
    ), client


async def drain_all(forwarder: Forwarder, ftime: FakeTime, limit: int = 200) -> None:
    """Step until the outbox is empty, advancing the fake clock past every retry time."""
    for _ in range(limit):
        ftime.now = max(ftime.now, forwarder.paused_until)  # honour pauses, as run() does
        if not await forwarder.step():
            stats = forwarder.outbox.stats()
            if stats.pending + stats.retrying + stats.leased == 0:
                return
            ftime.now += 61  # past any back-off or lease
    raise AssertionError("outbox did not drain")


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_outage_then_recovery_delivers_everything_once_in_order(api, outbox, ftime) -> None:  # type: ignore[no-untyped-def]
    names = [f"s/e.n{i}" for i in range(30)]
    store(outbox, names)
    api.fail_next(4, 503)
    forwarder, client = make(api, outbox, ftime, max_batch_events=10)

    async def go() -> None:
        await drain_all(forwarder, ftime)
        await client.aclose()

    run(go())
    assert [e["name"] for e in api.events] == names
    assert len(set(api.event_ids())) == 30
    assert [r.status for r in api.requests[:4]] == [503] * 4
    sent = [json.dumps(e, separators=(",", ":")) for e in api.events]
    assert sent[0] == json.dumps(
        {"name": "s/e.n0", "data": {"i": 0, "pad": ""}, "id": "id-0"}, separators=(",", ":")
    )
    assert outbox.stats().delivered == 30


def test_backoff_grows_and_is_capped(api, outbox, ftime) -> None:  # type: ignore[no-untyped-def]
    forwarder, _ = make(api, outbox, ftime, backoff_base=1.0, backoff_max=8.0)
    assert [forwarder.backoff(n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    jittered = Forwarder(outbox, forwarder.client, forwarder.config, rng=lambda: 0.0)
    assert jittered.backoff(3) == 4.0  # full jitter keeps at least half the step


def test_429_honours_retry_after(api, outbox, ftime) -> None:  # type: ignore[no-untyped-def]
    store(outbox, ["s/a.b"])
    api.rate_limit_next(1, retry_after=7)
    forwarder, client = make(api, outbox, ftime)

    async def go() -> None:
        await forwarder.step()
        assert forwarder.paused_until == ftime.now + 7
        assert api.events == []
        stop = asyncio.Event()
        task = asyncio.create_task(forwarder.run(stop))
        for _ in range(200):
            if api.events:
                break
            await asyncio.sleep(0.01)
            ftime.now += 1
        stop.set()
        await task
        await client.aclose()

    run(go())
    assert [e["name"] for e in api.events] == ["s/a.b"]
    first_retry = [r for r in api.requests if r.status == 200]
    assert len(first_retry) == 1


def test_retry_after_parsing() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_413_splits_batches(api, outbox, ftime) -> None:  # type: ignore[no-untyped-def]
    store(outbox, [f"s/e.n{i}" for i in range(8)], size=300)
    api.max_body_bytes = 1000  # about two events a request
    forwarder, client = make(api, outbox, ftime)

    async def go() -> None:
        await drain_all(forwarder, ftime)
        await client.aclose()

    run(go())
    assert [e["name"] for e in api.events] == [f"s/e.n{i}" for i in range(8)]
    assert any(r.status == 413 for r in api.requests)
    assert all(len(r.body) <= 1000 for r in api.requests if r.status == 200)


def test_single_event_too_large_is_dead_lettered(api, outbox, ftime) -> None:  # type: ignore[no-untyped-def]
    store(outbox, ["s/small.one"], tag="a")
    store(outbox, ["s/huge.one"], size=5000, tag="b")
    api.max_body_bytes = 2000
    forwarder, client = make(api, outbox, ftime)

    async def go() -> None:
        await drain_all(forwarder, ftime)
        await client.aclose()

    run(go())
    assert [e["name"] for e in api.events] == ["s/small.one"]
    [letter] = outbox.dead_letters()
    assert letter.name == "s/huge.one" and "too large" in letter.error


def test_per_event_limit_dead_letters_without_a_request(api, outbox, ftime) -> None:  # type: ignore[no-untyped-def]
    store(outbox, ["s/huge.one"], size=3000)
    forwarder, client = make(api, outbox, ftime, max_event_bytes=1000)

    async def go() -> None:
        await forwarder.step()
        await client.aclose()

    run(go())
    assert api.requests == []
    assert "over the per-event limit" in outbox.dead_letters()[0].error


def test_400_poison_isolated_rest_delivered(api, outbox, ftime) -> None:  # type: ignore[no-untyped-def]
    names = [f"s/e.n{i}" for i in range(10)]
    names[6] = "s/poison.event"
    store(outbox, names)
    api.poison_names = {"s/poison.event"}
    metrics = Metrics()
    forwarder, client = make(api, outbox, ftime, metrics=metrics)

    async def go() -> None:
        await drain_all(forwarder, ftime)
        await client.aclose()

    run(go())
    delivered = [e["name"] for e in api.events]
    assert delivered == [n for n in names if n != "s/poison.event"]
    assert len(set(api.event_ids())) == 9  # nothing delivered twice
    [letter] = outbox.dead_letters()
    assert letter.name == "s/poison.event"
    assert letter.error == "event API: event s/poison.event is invalid"
    assert metrics.dead_letters._value.get() == 1


def test_401_holds_everything_then_delivers_once_fixed(api, outbox, ftime) -> None:  # type: ignore[no-untyped-def]
    store(outbox, ["s/a.b", "s/c.d"])
    api.valid_keys = {"right-key"}
    metrics = Metrics()
    forwarder, client = make(api, outbox, ftime, key="wrong-key", metrics=metrics)

    async def go() -> None:
        for _ in range(3):
            await forwarder.step()
            ftime.now += 31
        assert forwarder.degraded == "event API answered 401: Event key not found"
        assert metrics.degraded._value.get() == 1
        stats = outbox.stats()
        assert stats.retrying == 2 and stats.dead == 0  # held, never dropped
        api.valid_keys = {"right-key", "wrong-key"}  # the operator fixes the key
        forwarder.paused_until = 0
        await drain_all(forwarder, ftime)
        assert forwarder.degraded is None
        await client.aclose()

    run(go())
    assert [e["name"] for e in api.events] == ["s/a.b", "s/c.d"]
    assert metrics.degraded._value.get() == 0


def test_batches_respect_byte_and_count_limits(api, outbox, ftime) -> None:  # type: ignore[no-untyped-def]
    store(outbox, [f"s/e.n{i}" for i in range(60)], size=200)
    forwarder, client = make(api, outbox, ftime, max_batch_bytes=2048, max_batch_events=7)

    async def go() -> None:
        await drain_all(forwarder, ftime)
        await client.aclose()

    run(go())
    assert len(api.events) == 60
    assert all(len(r.body) <= 2048 for r in api.requests)
    assert all(len(r.events) <= 7 for r in api.requests)
    assert len(api.requests) >= 60 // 7


def test_request_shape_key_env_headers_and_seed(api, outbox, ftime) -> None:  # type: ignore[no-untyped-def]
    store(outbox, ["s/a.b"])
    forwarder, client = make(api, outbox, ftime, key="my-key", env="feature-branch")

    async def go() -> None:
        await drain_all(forwarder, ftime)
        await client.aclose()

    run(go())
    [request] = api.requests
    assert request.path == "/e/my-key"
    assert request.headers["x-inngest-env"] == "feature-branch"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("webhook-gateway/")
    millis, random_part = request.headers["x-inngest-event-id-seed"].split(",")
    assert int(millis) == int(ftime.now * 1000) or int(millis) > 0
    assert len(random_part) == 16  # base64 of 10 bytes
    assert isinstance(json.loads(request.body), list)


def test_seed_is_stable_for_a_batch(outbox, ftime) -> None:  # type: ignore[no-untyped-def]
    store(outbox, ["s/a.b", "s/c.d"])
    batch = outbox.claim(max_events=5, max_bytes=10**6, lease_seconds=1)
    assert event_id_seed(batch) == event_id_seed(list(batch))
    assert event_id_seed(batch) != event_id_seed(batch[:1])


def test_network_error_is_retried(outbox, ftime) -> None:  # type: ignore[no-untyped-def]
    store(outbox, ["s/a.b"])
    target = resolve_target(InngestConfig(base_url="http://127.0.0.1:9", event_key="inline:k"), {})
    client = EventApiClient(target, timeout=2.0)
    forwarder = Forwarder(outbox, client, ForwarderConfig(), clock=ftime.clock)

    async def go() -> None:
        await forwarder.step()
        await client.aclose()

    run(go())
    stats = outbox.stats()
    assert stats.retrying == 1 and stats.dead == 0


def test_drain_stops_at_deadline_and_leaves_the_rest(api, outbox, ftime) -> None:  # type: ignore[no-untyped-def]
    store(outbox, [f"s/e.n{i}" for i in range(20)])
    forwarder, client = make(api, outbox, ftime, max_batch_events=5)

    async def go() -> None:
        assert await forwarder.drain(deadline=ftime.now - 1) == 0
        assert await forwarder.drain(deadline=ftime.now + 60) == 20
        await client.aclose()

    run(go())
    assert len(api.events) == 20


@pytest.mark.parametrize(
    ("config", "env", "dev_flag", "origin", "key"),
    [
        ({}, {"INNGEST_EVENT_KEY": "k"}, False, CLOUD_ORIGIN, "k"),
        ({}, {}, True, DEV_ORIGIN, DEV_KEY),
        ({}, {"INNGEST_DEV": "1"}, False, DEV_ORIGIN, DEV_KEY),
        ({}, {"INNGEST_DEV": "http://dev.local:9999"}, False, "http://dev.local:9999", DEV_KEY),
        ({}, {"INNGEST_DEV": "0", "INNGEST_EVENT_KEY": "k"}, False, CLOUD_ORIGIN, "k"),
        ({}, {"INNGEST_DEV": "false", "INNGEST_EVENT_KEY": "k"}, False, CLOUD_ORIGIN, "k"),
        ({}, {"INNGEST_BASE_URL": "http://b", "INNGEST_EVENT_KEY": "k"}, False, "http://b", "k"),
        (
            {},
            {
                "INNGEST_BASE_URL": "http://b",
                "INNGEST_EVENT_API_BASE_URL": "http://e",
                "INNGEST_EVENT_KEY": "k",
            },
            False,
            "http://e",
            "k",
        ),
        (
            {"base_url": "http://c", "event_key": "env:MY_KEY"},
            {"INNGEST_EVENT_API_BASE_URL": "http://e", "MY_KEY": "mk", "INNGEST_EVENT_KEY": "k"},
            False,
            "http://c",
            "mk",
        ),
        ({}, {"INNGEST_DEV": "1", "INNGEST_EVENT_KEY": "k"}, False, DEV_ORIGIN, "k"),
    ],
)
def test_target_precedence(
    config: dict[str, str], env: dict[str, str], dev_flag: bool, origin: str, key: str
) -> None:
    target = resolve_target(InngestConfig(**config), env, dev_flag=dev_flag)  # type: ignore[arg-type]
    assert (target.origin, target.event_key) == (origin, key)
    assert key not in target.redacted_url or (key == DEV_KEY and "***" in target.redacted_url)


def test_env_branch_and_cloud_without_key() -> None:
    target = resolve_target(InngestConfig(), {"INNGEST_DEV": "1", "INNGEST_ENV": "pr-12"})
    assert target.env == "pr-12"
    with pytest.raises(MissingEventKey, match="INNGEST_EVENT_KEY"):
        resolve_target(InngestConfig(), {})
