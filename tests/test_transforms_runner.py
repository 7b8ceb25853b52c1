"""Running transforms: normalizing results, validation, errors, convention, time bounds."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway import Event, TransformError, Webhook
from gateway.transform_runner import (
    TransformOutcome,
    TransformPool,
    run_transform,
    run_transform_bounded,
)

FIXTURE = Path(__file__).parent / "fixtures" / "transforms" / "stripe" / "customer.created.json"


def webhook() -> Webhook:
    return Webhook(source="stripe", provider="stripe", body=FIXTURE.read_bytes(), received_at=1.7e9)


def returning(value: Any) -> Any:
    return lambda _webhook: value


def test_single_event() -> None:
    event = Event(name="stripe/customer.created", id="stripe-evt_1", ts=1_724_932_873_000, v="1")
    outcome = run_transform(returning(event), webhook(), prefix="stripe")
    assert outcome == TransformOutcome(
        events=[event],
        payloads=[
            b'{"name":"stripe/customer.created","data":{},"id":"stripe-evt_1",'
            b'"ts":1724932873000,"v":"1"}'
        ],
        convention_warnings=[],
    )


def test_fan_out_of_events_dicts_and_tuples() -> None:
    def fan_out(hook: Webhook) -> list[Any]:
        customer = hook.json["data"]["object"]
        return [
            Event(name="stripe/customer.created", data={"id": customer["id"]}),
            {"name": "crm/contact.added", "data": {"email": customer["email"]}, "id": "crm-1"},
        ]

    outcome = run_transform(fan_out, webhook(), prefix="stripe")
    assert [e.name for e in outcome.events] == ["stripe/customer.created", "crm/contact.added"]
    assert outcome.events[1].data == {"email": "jenny.rosen@example.com"}
    assert outcome.events[1].id == "crm-1"
    assert [orjson.loads(p) for p in outcome.payloads] == [
        {"name": "stripe/customer.created", "data": {"id": "cus_QhXjZ5uM0dUvq2"}},
        {"name": "crm/contact.added", "data": {"email": "jenny.rosen@example.com"}, "id": "crm-1"},
    ]
    assert outcome.convention_warnings == [
        "event name 'crm/contact.added' does not follow the convention 'stripe/noun.verb'"
    ]
    pair = (Event(name="stripe/a.b"), Event(name="stripe/c.d"))
    assert len(run_transform(returning(pair), webhook(), prefix="stripe").events) == 2


@pytest.mark.parametrize("nothing", [None, [], ()])
def test_filter(nothing: Any) -> None:
    outcome = run_transform(returning(nothing), webhook(), prefix="stripe")
    assert (outcome.events, outcome.payloads, outcome.convention_warnings) == ([], [], [])


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"name": "inngest/function.failed"}, "event 0 is invalid: name: .*reserved"),
        ({"name": ""}, "event 0 is invalid: name: .*non-empty"),
        ({"name": "stripe/a.b", "ts": 1.7e12}, "event 0 is invalid: ts: .*valid integer"),
        ({"name": "stripe/a.b", "ts": 17}, "event 0 is invalid: ts: .*between 1980 and 2100"),
        ({"name": "stripe/a.b", "data": [1]}, "event 0 is invalid: data: .*dictionary"),
        ({"name": "stripe/a.b", "colour": "red"}, "event 0 is invalid: colour: .*not permitted"),
        ({"data": {}}, "event 0 is invalid: name: Field required"),
        ("stripe/a.b", "transform returned a str"),
        (42, "transform returned a int"),
        ([Event(name="stripe/a.b"), 7], "event 1 is a int"),
        (Event(name="stripe/a.b", data={"tags": {"x"}}), "event 0 .*not JSON-serializable"),
        # 2**64 is kept exact since issue 13 point 15; beside a set it is still refused
        (Event(name="stripe/a.b", data={"n": 2**64, "s": {1}}), "event 0 .*not JSON-serializable"),
        (
            [Event(name="stripe/a.b", id="same"), Event(name="stripe/c.d", id="same")],
            "events 0 and 1 share the id 'same'",
        ),
        (
            Event(name="stripe/a.b").model_copy(update={"name": "inngest/sneaky"}),
            "event 0 is invalid: name: .*reserved",
        ),
    ],
)
def test_invalid_results_are_transform_errors(result: Any, message: str) -> None:
    with pytest.raises(TransformError, match=message):
        run_transform(returning(result), webhook(), prefix="stripe")


def test_invalid_event_built_inside_the_transform_names_the_field() -> None:
    def bad_ts(hook: Webhook) -> Event:
        return Event(name="stripe/customer.created", ts=hook.received_at * 1000)  # type: ignore[arg-type]

    with pytest.raises(TransformError, match=r"invalid event: ts: .*valid integer") as info:
        run_transform(bad_ts, webhook(), prefix="stripe")
    assert info.value.detail is not None
    assert "bad_ts" in info.value.detail


def test_raising_transform_keeps_cause_and_traceback() -> None:
    def explode(hook: Webhook) -> Event:
        return Event(name=hook.json["no_such_key"])

    with pytest.raises(TransformError, match="transform raised KeyError: 'no_such_key'") as info:
        run_transform(explode, webhook(), prefix="stripe")
    assert isinstance(info.value.__cause__, KeyError)
    assert info.value.detail is not None
    assert info.value.detail.startswith("Traceback (most recent call last):")
    assert 'return Event(name=hook.json["no_such_key"])' in info.value.detail


def test_sys_exit_in_a_transform_is_a_transform_error() -> None:
    def quits(hook: Webhook) -> None:
        sys.exit(3)

    with pytest.raises(TransformError, match="transform raised SystemExit: 3"):
        run_transform(quits, webhook(), prefix="stripe")


def test_transform_error_raised_by_a_transform_gets_a_traceback() -> None:
    def refuses(hook: Webhook) -> None:
        raise TransformError("unsupported plan")

    with pytest.raises(TransformError, match=r"^unsupported plan$") as info:
        run_transform(refuses, webhook(), prefix="stripe")
    assert info.value.detail is not None
    assert "refuses" in info.value.detail


def test_convention_warning_and_strict_names() -> None:
    odd = returning(Event(name="stripe/CustomerCreated"))
    outcome = run_transform(odd, webhook(), prefix="stripe")
    assert [e.name for e in outcome.events] == ["stripe/CustomerCreated"]
    assert outcome.convention_warnings == [
        "event name 'stripe/CustomerCreated' does not follow the convention 'stripe/noun.verb'"
    ]
    with pytest.raises(TransformError, match="does not follow the convention"):
        run_transform(odd, webhook(), prefix="stripe", strict_names=True)


# -- bounded runs in the pool ---------------------------------------------------------------


def test_bounded_run_returns_the_outcome_from_a_daemon_thread() -> None:
    seen: list[threading.Thread] = []

    def records(hook: Webhook) -> Event:
        seen.append(threading.current_thread())
        return Event(name="stripe/customer.created", id="stripe-" + hook.json["id"])

    outcome = asyncio.run(run_transform_bounded(records, webhook(), prefix="stripe", timeout=30))
    assert outcome.events[0].id == "stripe-evt_1PtD6HKX3nVq0sEhY7m2bQ4e"
    assert seen[0] is not threading.main_thread()
    assert seen[0].daemon  # a hung transform cannot keep the process from exiting
    assert seen[0].name.startswith("transform-")


def test_bounded_run_passes_transform_errors_through() -> None:
    with pytest.raises(TransformError, match="transform returned a int"):
        asyncio.run(run_transform_bounded(returning(1), webhook(), prefix="stripe", timeout=30))


def test_hanging_transform_times_out() -> None:
    release = threading.Event()

    def hang(hook: Webhook) -> None:
        release.wait()

    try:
        with pytest.raises(TransformError, match=r"transform timed out after 0\.2s"):
            asyncio.run(run_transform_bounded(hang, webhook(), prefix="stripe", timeout=0.2))
    finally:
        release.set()


def test_hung_transforms_hold_at_most_the_pool() -> None:
    pool = TransformPool(1)
    release = threading.Event()
    started = threading.Event()

    def hang(hook: Webhook) -> None:
        started.set()
        release.wait()

    async def scenario() -> tuple[str, str, TransformOutcome, int]:
        with pytest.raises(TransformError) as first:
            await run_transform_bounded(hang, webhook(), prefix="stripe", timeout=0.2, pool=pool)
        assert started.wait(30)  # the transform did start, and is still running
        # The only thread is still held: the next webhook waits for it and times out too.
        with pytest.raises(TransformError) as second:
            await run_transform_bounded(
                returning(None), webhook(), prefix="stripe", timeout=0.2, pool=pool
            )
        busy_while_hung = pool.busy
        release.set()  # the hung transform returns; its thread serves the next webhook
        outcome = await run_transform_bounded(
            returning(Event(name="stripe/a.b")), webhook(), prefix="stripe", timeout=30, pool=pool
        )
        return str(first.value), str(second.value), outcome, busy_while_hung

    try:
        first, second, outcome, busy_while_hung = asyncio.run(scenario())
    finally:
        release.set()
    assert first == "transform timed out after 0.2s (1 of 1 transform threads busy)"
    assert second == first
    assert busy_while_hung == 1
    assert [e.name for e in outcome.events] == ["stripe/a.b"]
    assert pool.busy == 0


def test_waiting_calls_are_served_in_order_across_cancellations() -> None:
    pool = TransformPool(1)
    gate = threading.Event()
    order: list[str] = []

    def gated(hook: Webhook) -> None:
        gate.wait()
        order.append("gated")

    def named(label: str) -> Any:
        def record(hook: Webhook) -> None:
            order.append(label)

        return record

    async def scenario() -> None:
        holder = asyncio.create_task(
            run_transform_bounded(gated, webhook(), prefix="stripe", timeout=30, pool=pool)
        )
        while pool.busy == 0:
            await asyncio.sleep(0)
        waiting = [
            asyncio.create_task(
                run_transform_bounded(
                    named(label), webhook(), prefix="stripe", timeout=30, pool=pool
                )
            )
            for label in ("a", "b", "c")
        ]
        await asyncio.sleep(0)
        waiting[1].cancel()  # "b" gives up while queued: its turn must not be lost
        gate.set()
        await holder
        await waiting[0]
        await waiting[2]
        with pytest.raises(asyncio.CancelledError):
            await waiting[1]

    try:
        asyncio.run(scenario())
    finally:
        gate.set()
    assert order == ["gated", "a", "c"]
    assert pool.busy == 0


def test_pool_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        TransformPool(0)


def test_pool_threads_are_reused_and_bounded() -> None:
    pool = TransformPool(2)
    names: list[str] = []

    def records(hook: Webhook) -> None:
        names.append(threading.current_thread().name)

    async def scenario() -> None:
        for _ in range(20):  # one after another: the first thread serves them all
            await run_transform_bounded(records, webhook(), prefix="stripe", timeout=30, pool=pool)
        await asyncio.gather(
            *(
                run_transform_bounded(records, webhook(), prefix="stripe", timeout=30, pool=pool)
                for _ in range(20)
            )
        )

    asyncio.run(scenario())
    assert names[:20] == ["transform-1"] * 20
    assert set(names) <= {"transform-1", "transform-2"}
    assert pool.threads <= 2
    assert pool.busy == 0
