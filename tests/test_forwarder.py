"""The forwarder: a real SQLite outbox, the real client, the Event API stand-in over loopback.

Time is injected: the forwarder's clock and sleep (and the outbox's clock) are a fake that jumps
forward when slept on, so back-offs and Retry-After cost no real waiting and can be asserted.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ForwarderConfig, InngestConfig
from gateway.eventapi import EventApiClient, EventApiTarget, batch_size, resolve_target
from gateway.forwarder import Forwarder, NullMetrics, batch_seed
from gateway.metrics import PREFIX, Metrics
from gateway.outbox import OutboxUnavailable, StoredEvent
from gateway.outbox.sqlite import SQLiteOutbox
from gateway.webhook import Webhook
from tests.eventapi_standin import EventApiStandIn, event_api, seeded_ulid

IDLE = 0.25  # idle_poll: never equal to a back-off step, so sleeps can be told apart
LINGER = 0.125  # batch_linger: told apart the same way


class FakeTime:
    """An injected wall clock, monotonic clock and sleep: sleeping advances both clocks
    instantly and is recorded. ``steps`` are wall-clock steps (NTP) applied one per pause."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.mono = 1000.0
        self.slept: list[float] = []
        self.steps: list[float] = []
        #: ``(condition, mono)``: the monotonic time of the first sleep that found it true
        self.watch: tuple[Callable[[], bool], float | None] | None = None

    def clock(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    async def sleep(self, seconds: float) -> None:
        if self.watch is not None and self.watch[1] is None and self.watch[0]():
            self.watch = (self.watch[0], self.mono)
        self.slept.append(seconds)
        self.now += seconds
        self.mono += seconds
        if self.steps and seconds not in (IDLE, LINGER):
            self.now += self.steps.pop(0)
        await asyncio.sleep(0)

    def pauses(self) -> list[float]:
        """Sleeps other than idle polls and lingers: back-offs, Retry-After, refused-key waits."""
        return [s for s in self.slept if s not in (IDLE, LINGER)]


@pytest.fixture
def api() -> Iterator[EventApiStandIn]:
    with event_api() as stand_in:
        yield stand_in


@pytest.fixture
def ftime() -> FakeTime:
    return FakeTime()


@pytest.fixture
def outbox(tmp_path: Path, ftime: FakeTime) -> Iterator[SQLiteOutbox]:
    box = SQLiteOutbox(tmp_path / "outbox.db", clock=ftime.clock)
    yield box
    box.close()


def store(
    outbox: SQLiteOutbox, names: list[str], *, pad: int = 0, per_webhook: int = 1, tag: str = ""
) -> list[bytes]:
    """Accept events (``per_webhook`` to a webhook); returns their payloads in seq order."""
    payloads: list[bytes] = []
    for start in range(0, len(names), per_webhook):
        group = names[start : start + per_webhook]
        ids = [f"s-{tag}{start + i}" for i in range(len(group))]
        batch = [
            json.dumps(
                {"name": name, "data": {"n": start + i, "pad": "x" * pad}, "id": event_id},
                separators=(",", ":"),
            ).encode()
            for i, (name, event_id) in enumerate(zip(group, ids, strict=True))
        ]
        webhook = Webhook(source="s", provider="stripe", body=b"{}")
        result = outbox.accept(webhook, batch, ids, group)
        assert result.stored == len(group)
        payloads.extend(batch)
    return payloads


def make(
    api: EventApiStandIn | str,
    outbox: SQLiteOutbox,
    ftime: FakeTime,
    *,
    key: str = "test-key",
    env: str | None = None,
    metrics: Metrics | None = None,
    timeout: float = 10.0,
    **settings: Any,
) -> Forwarder:
    url = api if isinstance(api, str) else api.url
    target = resolve_target(InngestConfig(base_url=url, event_key=f"inline:{key}", env=env), {})
    config = ForwarderConfig.model_validate(
        {
            "backoff_base": 1.0,
            "backoff_max": 30.0,
            "idle_poll": IDLE,
            "batch_linger": LINGER,
            **settings,
        }
    )
    return Forwarder(
        outbox,
        EventApiClient(target, timeout=timeout),
        config,
        metrics=metrics,
        clock=ftime.clock,
        monotonic=ftime.monotonic,
        sleep=ftime.sleep,
        rng=lambda: 1.0,  # the jitter's upper end: back-offs are exactly the cap
    )


async def until(done: Callable[[], bool], task: asyncio.Task[None], polls: int = 6000) -> None:
    """Poll ``done()`` while the forwarder runs; fail if its loop ends or never gets there."""
    for _ in range(polls):
        if done():
            return
        assert not task.done(), "the forwarder's loop ended on its own"
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def run_until(forwarder: Forwarder, done: Callable[[], bool]) -> None:
    """Run the forwarder's loop until ``done()``, then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(forwarder.run(stop))
    try:
        await until(done, task)
    finally:
        stop.set()
        await task
        await forwarder.client.aclose()


def settled(outbox: SQLiteOutbox) -> Callable[[], bool]:
    def check() -> bool:
        stats = outbox.stats()
        return stats.pending + stats.retrying + stats.leased == 0

    return check


def go(coro: Awaitable[None]) -> None:
    async def main() -> None:
        await coro

    asyncio.run(main())


def counter(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"{PREFIX}_{name}", labels) or 0.0


# -- delivery ---------------------------------------------------------------------------------


def test_outage_then_recovery_delivers_each_event_once_in_order_byte_identical(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    payloads = store(outbox, [f"s/e.n{i}" for i in range(30)], per_webhook=3)
    api.fail_next(4, 503)
    metrics = Metrics()
    forwarder = make(api, outbox, ftime, max_batch_events=10, metrics=metrics)

    go(run_until(forwarder, settled(outbox)))

    assert api.raw_events == payloads  # every event, once, in order, byte for byte
    assert api.statuses()[:4] == [503] * 4 and set(api.statuses()[4:]) == {200}
    assert ftime.pauses() == [1.0, 2.0, 4.0, 8.0]  # exponential back-off between attempts
    first_body = api.requests[0].body
    assert all(r.body == first_body for r in api.requests[:5])  # the same batch first again
    assert outbox.stats().delivered == 30 and outbox.stats().dead == 0
    assert forwarder.paused_until <= ftime.mono
    assert counter(metrics, "events_forwarded_total") == 30
    assert counter(metrics, "forward_failures_total", status_class="5xx") == 4


def test_a_retried_batch_keeps_its_seed_and_internal_ids(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    store(outbox, ["s/a.b", "s/c.d"])
    api.drop_next(1)  # a network error: no answer at all
    forwarder = make(api, outbox, ftime)

    go(run_until(forwarder, settled(outbox)))

    seeds = [r.headers["x-inngest-event-id-seed"] for r in api.requests]
    assert api.statuses() == [0, 200]
    assert seeds[0] == seeds[1]
    assert api.ids == [seeded_ulid(seeds[0], 1), seeded_ulid(seeds[0], 2)]


def test_seed_is_fixed_by_the_first_event(outbox: SQLiteOutbox, ftime: FakeTime) -> None:
    store(outbox, ["s/a.b", "s/c.d", "s/e.f"])
    batch = outbox.claim(max_events=5, max_bytes=10**6, lease_seconds=60)
    assert batch_seed(batch) == batch_seed(batch[:1])  # a split keeps the first half's ids
    assert batch_seed(batch) != batch_seed(batch[1:])
    millis = batch_seed(batch).split(",")[0]
    assert millis == str(int(batch[0].created_at * 1000))


def test_request_shape(api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime) -> None:
    store(outbox, ["s/a.b"])
    forwarder = make(api, outbox, ftime, key="my-secret-key", env="feature-branch")

    go(run_until(forwarder, settled(outbox)))

    [request] = api.requests
    assert request.path == "/e/my-secret-key"
    assert request.headers["x-inngest-env"] == "feature-branch"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("webhook-gateway/")
    assert isinstance(json.loads(request.body), list)


def test_batches_respect_the_byte_and_count_limits(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    payloads = store(outbox, [f"s/e.n{i}" for i in range(60)], pad=200)
    forwarder = make(api, outbox, ftime, max_batch_bytes=2048, max_batch_events=7)

    go(run_until(forwarder, settled(outbox)))

    assert api.raw_events == payloads
    assert all(len(r.body) <= 2048 for r in api.requests)
    assert all(len(r.events) <= 7 for r in api.requests)
    assert max(len(r.events) for r in api.requests) == 7


def test_the_commas_count_towards_the_byte_limit(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    # 10 events of 99 bytes fit max_bytes - 2 but not the array: the batch is trimmed.
    payloads = store(outbox, [f"s/e.n{i}" for i in range(10)], pad=0)
    size = len(payloads[0])
    limit = 10 * size + 2 + 4  # room for the brackets and 4 of the 9 commas
    forwarder = make(api, outbox, ftime, max_batch_bytes=limit, max_batch_events=1000)

    go(run_until(forwarder, settled(outbox)))

    assert api.raw_events == payloads
    assert [len(r.events) for r in api.requests] == [9, 1]
    assert all(len(r.body) <= limit for r in api.requests)
    assert outbox.stats().delivered == 10


def test_notify_starts_a_batch_without_waiting_for_the_poll(
    api: EventApiStandIn, tmp_path: Path
) -> None:
    outbox = SQLiteOutbox(tmp_path / "outbox.db")
    target = resolve_target(InngestConfig(base_url=api.url, event_key="inline:k"), {})
    idle = asyncio.Event()

    async def real_sleep(seconds: float) -> None:
        idle.set()
        await asyncio.sleep(seconds)

    forwarder = Forwarder(
        outbox, EventApiClient(target), ForwarderConfig(idle_poll=3600.0), sleep=real_sleep
    )

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(forwarder.run(stop))
        try:
            await idle.wait()  # nothing due: the loop sleeps for an hour's poll
            assert api.requests == []
            await asyncio.to_thread(store, outbox, ["s/a.b"])
            forwarder.notify()
            assert await asyncio.to_thread(api.wait_for_events, 1, 30.0)
        finally:
            stop.set()
            await task  # stop also cuts the idle wait short
            await forwarder.client.aclose()

    try:
        go(scenario())
    finally:
        outbox.close()
    assert [e["name"] for e in api.events] == ["s/a.b"]


def test_after_a_small_batch_the_forwarder_lingers_so_the_next_one_gathers_more(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    store(outbox, ["s/a.first"])
    forwarder = make(api, outbox, ftime, max_batch_events=10)
    real_sleep = ftime.sleep

    async def sleep_and_receive(seconds: float) -> None:
        if seconds == LINGER and not api.events[1:]:
            store(outbox, [f"s/b.n{i}" for i in range(3)], tag="later")  # while it lingers
        await real_sleep(seconds)

    forwarder.sleep = sleep_and_receive
    go(run_until(forwarder, lambda: len(api.events) == 4))

    assert [len(r.events) for r in api.requests] == [1, 3]  # not one request per webhook
    assert ftime.slept[:2] == [LINGER, LINGER]  # after each small batch
    assert ftime.pauses() == []


def test_a_backlog_is_sent_without_lingering(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    store(outbox, [f"s/e.n{i}" for i in range(25)])
    forwarder = make(api, outbox, ftime, max_batch_events=10)

    go(run_until(forwarder, settled(outbox)))

    assert [len(r.events) for r in api.requests] == [10, 10, 5]
    assert ftime.slept.count(LINGER) == 1  # full batches go back to back; only the last lingers


@pytest.mark.parametrize("failure", ["503", "429"])
def test_a_wall_clock_stepped_back_during_a_pause_does_not_lengthen_it(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime, failure: str
) -> None:
    payloads = store(outbox, ["s/a.b", "s/c.d"])
    if failure == "503":
        api.fail_next(1, 503)
    else:
        api.rate_limit_next(1, retry_after=5)
    ftime.steps = [-3600.0]  # NTP steps the clock back an hour during the pause
    forwarder = make(api, outbox, ftime)
    start = ftime.mono
    ftime.watch = (settled(outbox), None)  # the forwarder's own time when it had delivered

    go(run_until(forwarder, settled(outbox)))

    assert ftime.pauses() == ([1.0] if failure == "503" else [5.0])
    assert ftime.watch[1] is not None
    # neither the pause nor the stored due time waited an hour (the test's own polling, which
    # lets the idle forwarder spin on after delivery, does not count)
    assert ftime.watch[1] - start < 10
    assert api.raw_events == payloads


# -- 429 --------------------------------------------------------------------------------------


def test_429_pauses_for_retry_after_then_delivers(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    store(outbox, ["s/a.b", "s/c.d"])
    api.rate_limit_next(1, retry_after=7)
    forwarder = make(api, outbox, ftime)
    start = ftime.mono

    go(run_until(forwarder, settled(outbox)))

    assert ftime.pauses() == [7.0]  # Retry-After, not the back-off
    assert api.statuses() == [429, 200]
    assert forwarder.paused_until == start + 7
    assert [e["name"] for e in api.events] == ["s/a.b", "s/c.d"]


def test_429_without_retry_after_uses_the_backoff(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    store(outbox, ["s/a.b"])
    api.rate_limit_next(2, retry_after=None)
    forwarder = make(api, outbox, ftime, backoff_base=3.0)

    go(run_until(forwarder, settled(outbox)))

    assert ftime.pauses() == [3.0, 6.0]
    assert len(api.events) == 1


@pytest.mark.parametrize("retry_after", ["0", "Wed, 21 Oct 2015 07:28:00 GMT", "-5"])
def test_a_retry_after_of_zero_or_in_the_past_never_waits_less_than_the_backoff(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime, retry_after: str
) -> None:
    store(outbox, ["s/a.b"])
    api.rate_limit_next(3, retry_after=retry_after)
    forwarder = make(api, outbox, ftime, backoff_base=2.0)

    go(run_until(forwarder, settled(outbox)))

    assert ftime.pauses() == [2.0, 4.0, 8.0]  # the back-off still grows under 429s
    assert api.statuses() == [429, 429, 429, 200]


def test_a_retry_after_shorter_than_the_backoff_waits_the_backoff(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    store(outbox, ["s/a.b"])
    api.rate_limit_next(1, retry_after=7)
    api.rate_limit_next(1, retry_after=1)
    forwarder = make(api, outbox, ftime, backoff_base=4.0)

    go(run_until(forwarder, settled(outbox)))

    assert ftime.pauses() == [7.0, 8.0]  # the longer of Retry-After and the back-off


# -- 413 and oversize -------------------------------------------------------------------------


def test_413_splits_the_batch_in_halves(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    payloads = store(outbox, [f"s/e.n{i}" for i in range(8)], pad=300)
    api.max_body_bytes = 1000  # about two events a request
    forwarder = make(api, outbox, ftime)

    go(run_until(forwarder, settled(outbox)))

    assert api.raw_events == payloads
    assert 413 in api.statuses()
    assert all(len(r.body) <= 1000 for r in api.requests if r.status == 200)
    assert outbox.stats().dead == 0 and ftime.pauses() == []  # a split is not a failure


def test_a_single_event_too_large_for_the_api_is_dead_lettered(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    small = store(outbox, ["s/small.one"], tag="a")
    store(outbox, ["s/huge.one"], pad=5000, tag="b")
    later = store(outbox, ["s/small.two"], tag="c")
    api.max_body_bytes = 2000
    forwarder = make(api, outbox, ftime)

    go(run_until(forwarder, settled(outbox)))

    assert api.raw_events == small + later
    [letter] = outbox.dead_letters()
    assert letter.name == "s/huge.one"
    assert letter.error == "event API: too large: Request body too large"


def test_oversize_400_acks_the_accepted_prefix_and_dead_letters_the_event(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    first = store(outbox, ["s/a", "s/b"], tag="a")
    store(outbox, ["s/huge.one"], pad=3000, tag="b")
    rest = store(outbox, ["s/c", "s/d"], tag="c")
    api.max_event_bytes = 1000  # the open-source server's "Event is over the max size"
    forwarder = make(api, outbox, ftime)

    go(run_until(forwarder, settled(outbox)))

    assert api.raw_events == first + rest  # the accepted two were not sent again
    [letter] = outbox.dead_letters()
    assert letter.name == "s/huge.one"
    assert letter.error.startswith("event API: too large: Event is over the max size")


def test_an_event_over_the_local_limit_is_dead_lettered_without_a_request(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    store(outbox, ["s/huge.one"], pad=3000)
    forwarder = make(api, outbox, ftime, max_event_bytes=1000)

    go(run_until(forwarder, settled(outbox)))

    assert api.requests == []
    [letter] = outbox.dead_letters()
    assert "over the per-event limit of 1000" in letter.error


# -- 400 --------------------------------------------------------------------------------------


def test_a_poison_event_is_isolated_and_the_rest_delivered(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    names = [f"s/e.n{i}" for i in range(10)]
    names[6] = "s/poison.event"
    payloads = store(outbox, names)
    api.poison_names = {"s/poison.event"}
    metrics = Metrics()
    forwarder = make(api, outbox, ftime, metrics=metrics)

    go(run_until(forwarder, settled(outbox)))

    assert api.raw_events == payloads[:6] + payloads[7:]  # each once, in order
    [letter] = outbox.dead_letters()
    assert letter.name == "s/poison.event"
    assert letter.error == "event API: event s/poison.event is invalid"
    # the batch (6 accepted), the suspect alone, then the rest
    assert [(r.status, len(r.events)) for r in api.requests] == [(400, 10), (400, 1), (200, 3)]
    assert counter(metrics, "dead_letters_total") == 1
    assert counter(metrics, "events_forwarded_total") == 9
    assert ftime.pauses() == []


def test_several_poison_events_including_the_first(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    names = ["s/bad", "s/a", "s/b", "s/bad", "s/bad", "s/c"]
    payloads = store(outbox, names)
    api.poison_names = {"s/bad"}
    forwarder = make(api, outbox, ftime)

    go(run_until(forwarder, settled(outbox)))

    assert api.raw_events == [p for p, n in zip(payloads, names, strict=True) if n != "s/bad"]
    assert sorted(d.id for d in outbox.dead_letters()) == [1, 4, 5]


def test_a_400_that_names_no_bad_event_loses_nothing(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    # A 400 without ids whose suspect then passes alone: the hint was wrong, nothing is dropped.
    payloads = store(outbox, [f"s/e.n{i}" for i in range(8)])
    api.fail_next(1, 400, error="transient validation hiccup")
    forwarder = make(api, outbox, ftime)

    go(run_until(forwarder, settled(outbox)))

    assert api.raw_events == payloads
    assert outbox.dead_letters() == []


# -- 401 --------------------------------------------------------------------------------------


def test_a_refused_key_holds_everything_then_delivers_once_fixed(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    payloads = store(outbox, ["s/a.b", "s/c.d", "s/e.f"])
    api.valid_keys = {"right-key"}
    metrics = Metrics()
    forwarder = make(api, outbox, ftime, key="wrong-key", metrics=metrics, max_batch_events=2)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(forwarder.run(stop))
        try:
            await until(lambda: len(api.requests) >= 3, task)
            assert forwarder.degraded == "event API answered 401: Event key not found"
            assert counter(metrics, "event_api_degraded") == 1
            stats = await asyncio.to_thread(outbox.stats)
            assert stats.dead == 0 and stats.delivered == 0  # held, never dropped
            assert api.events == []
            api.valid_keys = {"right-key", "wrong-key"}  # the operator fixes the key
            await until(settled(outbox), task)
        finally:
            stop.set()
            await task
            await forwarder.client.aclose()

    go(scenario())
    assert api.raw_events == payloads
    assert forwarder.degraded is None
    assert counter(metrics, "event_api_degraded") == 0
    assert set(ftime.pauses()) == {30.0}  # backoff_max between checks of the key
    assert outbox.dead_letters() == []


# -- answers that are not the Event API's -----------------------------------------------------


def test_a_2xx_that_is_not_the_event_apis_answer_holds_the_events_and_degrades(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    payloads = store(outbox, ["s/a.b", "s/c.d"])
    html = b"<!doctype html><title>Welcome</title>"
    api.answer_next(2, 200, html, "text/html")  # a wrong base URL behind an ingress
    metrics = Metrics()
    forwarder = make(api, outbox, ftime, metrics=metrics)

    seen: list[tuple[str, float, int]] = []  # while degraded: reason, gauge, delivered

    def done() -> bool:
        if forwarder.degraded and not seen:
            gauge = counter(metrics, "event_api_degraded")
            seen.append((forwarder.degraded, gauge, outbox.stats().delivered))
        return settled(outbox)()

    go(run_until(forwarder, done))
    [(reason, gauge, delivered)] = seen
    assert "answered 200" in reason and "not the Event API's answer" in reason
    assert gauge == 1 and delivered == 0  # held, not acknowledged
    assert api.statuses() == [200, 200, 200]
    assert api.raw_events == payloads  # the stand-in's own answer is the only acceptance
    assert forwarder.degraded is None  # cleared by the accepted batch
    assert counter(metrics, "event_api_degraded") == 0
    assert ftime.pauses() == [1.0, 2.0]  # backed off like any server error
    assert counter(metrics, "forward_failures_total", status_class="2xx") == 2


def test_a_proxys_html_400_never_dead_letters(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    payloads = store(outbox, ["s/a.b"])
    api.answer_next(1, 400, b"<html>400 Bad Request</html>", "text/html")
    forwarder = make(api, outbox, ftime)

    go(run_until(forwarder, settled(outbox)))

    assert api.raw_events == payloads
    assert outbox.dead_letters() == []


# -- resilience and shutdown ------------------------------------------------------------------


class FlakyOutbox(SQLiteOutbox):
    """The real outbox whose first ``claim`` fails like a locked or full disk."""

    failures = 1

    def claim(
        self, *, max_events: int, max_bytes: int, lease_seconds: float, now: float | None = None
    ) -> list[StoredEvent]:
        if self.failures:
            self.failures -= 1
            raise OutboxUnavailable("database is locked")
        return super().claim(
            max_events=max_events, max_bytes=max_bytes, lease_seconds=lease_seconds, now=now
        )


def test_an_unexpected_error_is_logged_and_the_loop_goes_on(
    api: EventApiStandIn, tmp_path: Path, ftime: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = FlakyOutbox(tmp_path / "outbox.db", clock=ftime.clock)
    payloads = store(outbox, ["s/a.b"])
    forwarder = make(api, outbox, ftime)

    try:
        with caplog.at_level("ERROR", logger="webhook_gateway"):
            go(run_until(forwarder, settled(outbox)))
    finally:
        outbox.close()
    assert api.raw_events == payloads
    assert ftime.pauses() == [1.0]
    assert any("forwarder error" in r.getMessage() for r in caplog.records)


def test_backoff_grows_is_capped_and_has_a_floor(outbox: SQLiteOutbox) -> None:
    target = EventApiTarget(origin="http://127.0.0.1:1", event_key="k")
    config = ForwarderConfig(backoff_base=1.0, backoff_max=8.0)
    top = Forwarder(outbox, EventApiClient(target), config, rng=lambda: 1.0)
    assert [top.backoff(n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    low = Forwarder(outbox, EventApiClient(target), config, rng=lambda: 0.0)
    assert [low.backoff(n) for n in range(4)] == [1.0, 1.0, 1.0, 1.0]
    mid = Forwarder(outbox, EventApiClient(target), config, rng=lambda: 0.5)
    assert mid.backoff(3) == 4.0  # full jitter: anywhere up to the cap
    assert isinstance(top.metrics, NullMetrics)


def test_drain_sends_what_is_due_then_stops(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    payloads = store(outbox, [f"s/e.n{i}" for i in range(20)])
    forwarder = make(api, outbox, ftime, max_batch_events=5)

    async def scenario() -> None:
        assert await forwarder.drain(deadline=ftime.now - 1) == 0  # already past the deadline
        assert api.requests == []
        assert await forwarder.drain(deadline=ftime.now + 60) == 20
        await forwarder.client.aclose()

    go(scenario())
    assert api.raw_events == payloads
    assert len(api.requests) == 4


def test_drain_sends_nothing_while_paused(
    api: EventApiStandIn, outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    store(outbox, ["s/a.b", "s/c.d"])
    api.fail_next(1, 503)
    forwarder = make(api, outbox, ftime, max_batch_events=1)

    async def scenario() -> None:
        assert await forwarder.drain(deadline=ftime.now + 60) == 1  # 503: paused
        await forwarder.client.aclose()

    go(scenario())
    assert api.statuses() == [503]
    stats = outbox.stats()
    assert stats.retrying == 1 and stats.pending == 1 and stats.leased == 0


def test_drain_cut_off_by_the_deadline_gives_the_batch_back(
    outbox: SQLiteOutbox, ftime: FakeTime
) -> None:
    store(outbox, ["s/a.b", "s/c.d"])
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        forwarder = make(url, outbox, ftime, timeout=60.0)

        async def scenario() -> None:
            # the fake clock stands still while the request hangs: a 0.2 s budget, in real time
            assert await forwarder.drain(deadline=ftime.now + 0.2) == 0
            await forwarder.client.aclose()

        go(scenario())
    stats = outbox.stats()
    assert stats.leased == 0 and stats.pending == 2 and stats.retrying == 0  # no attempt counted
    again = outbox.claim(max_events=5, max_bytes=10**6, lease_seconds=60)
    assert [e.name for e in again] == ["s/a.b", "s/c.d"]  # claimable at once on the next start


def test_batch_size_matches_the_encoded_array() -> None:
    assert batch_size([]) == 2
    assert batch_size([b"{}"]) == 4
    assert batch_size([b"{}", b'{"a":1}']) == len(b'[{},{"a":1}]')
