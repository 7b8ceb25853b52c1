"""Issue 4 end to end: group commit over HTTP, a refused key on /readyz, processes sharing a
data directory, and the configurable dedup window. Real SQLite files, a real Event API stand-in.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from pathlib import Path

import httpx

from gateway.app import build_gateway, create_app
from gateway.config import OutboxConfig
from gateway.logs import configure_logging
from gateway.outbox.sqlite import SQLiteOutbox
from gateway.webhook import Webhook
from tests.eventapi_standin import event_api
from tests.helpers import STRIPE_SECRET, fixture, make_config
from tests.server import GatewayProcess, ThreadedServer, run_gateway
from tests.signing import stripe_headers
from tests.test_outbox_sqlite import Gate


def stripe_body(event_id: str) -> bytes:
    event = json.loads(fixture("stripe/customer.created.json"))
    event["id"] = event_id
    return json.dumps(event).encode()


def post_stripe(base_url: str, event_id: str) -> httpx.Response:
    """POST one signed Stripe event to a gateway at ``base_url``."""
    body = stripe_body(event_id)
    return httpx.post(
        f"{base_url}/webhooks/stripe",
        content=body,
        headers=stripe_headers(body, STRIPE_SECRET),
        timeout=30,
    )


def wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_concurrent_http_webhooks_share_one_commit(tmp_path: Path) -> None:
    outbox = SQLiteOutbox(tmp_path / "outbox.sqlite3")
    gateway = build_gateway(make_config(tmp_path / "unused"), {}, outbox=outbox)
    server = ThreadedServer(create_app(gateway))
    server.start()
    count = 40
    try:
        gate = Gate(outbox)  # the writer is busy: every request's write queues behind it
        before = outbox.commit_count

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

                async def post(i: int) -> int:
                    body = stripe_body(f"evt_group_{i}")
                    headers = stripe_headers(body, STRIPE_SECRET)
                    response = await client.post("/webhooks/stripe", content=body, headers=headers)
                    return response.status_code

                tasks = [asyncio.ensure_future(post(i)) for i in range(count)]
                while outbox._writer._jobs.qsize() < count:  # every accept is waiting
                    await asyncio.sleep(0.01)
                assert not any(t.done() for t in tasks)  # nobody was answered before the write
                gate.open()
                return await asyncio.gather(*tasks)

        assert asyncio.run(burst()) == [200] * count
        # the gate's own transaction, then all the webhooks in one transaction (one fsync)
        assert outbox.commit_count - before == 2
        assert outbox.stats().pending == count
    finally:
        server.stop()


def test_a_refused_key_degrades_readyz_and_alarms_then_delivers_once_fixed(
    tmp_path: Path,
) -> None:
    logs = io.StringIO()
    with event_api() as api:
        api.valid_keys = {"another-key"}  # the gateway's key (test-key) is refused with 401
        config = make_config(tmp_path / "data", api.url)
        gateway = build_gateway(config, {})
        configure_logging("info", gateway.secrets, stream=logs)
        server = ThreadedServer(create_app(gateway))
        server.start()
        try:
            with httpx.Client(base_url=server.url) as client:
                body = stripe_body("evt_held_1")
                response = client.post(
                    "/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
                )
                assert response.status_code == 200  # still accepted, held durably
                wait_for(lambda: 401 in api.statuses())
                wait_for(lambda: client.get("/readyz").json()["status"] == "degraded")
                ready = client.get("/readyz")
                assert ready.status_code == 200  # stays in the Service: webhooks are still stored
                assert "401" in ready.json()["checks"]["event_api"]
                assert api.events == []
                assert "webhook_gateway_event_api_degraded 1.0" in client.get("/metrics").text
                alarms = [
                    json.loads(line) for line in logs.getvalue().splitlines() if "ALARM" in line
                ]
                assert alarms and alarms[0]["level"] == "error" and alarms[0]["status"] == 401
                assert "test-key" not in logs.getvalue()

                api.valid_keys = {"test-key"}  # the operator fixes the key
                assert api.wait_for_events(1)
                wait_for(lambda: client.get("/readyz").json()["status"] == "ready")
        finally:
            server.stop()
            for name in ("webhook_gateway", "uvicorn", "uvicorn.error"):
                logging.getLogger(name).handlers.clear()
                logging.getLogger(name).propagate = True
    assert api.event_ids() == ["stripe-evt_held_1"]


def test_an_html_200_from_the_event_api_url_degrades_readyz_and_holds_the_webhook(
    tmp_path: Path,
) -> None:
    with event_api() as api:
        api.answer_next(10**6, 200, b"<html><h1>It works!</h1></html>", "text/html")
        config = make_config(tmp_path / "data", api.url)
        server = ThreadedServer(create_app(build_gateway(config, {})))
        server.start()
        try:
            with httpx.Client(base_url=server.url) as client:
                assert post_stripe(server.url, "evt_proxied_1").status_code == 200
                wait_for(lambda: client.get("/readyz").json()["status"] == "degraded")
                ready = client.get("/readyz")
                assert ready.status_code == 200  # webhooks are still stored and held
                reason = ready.json()["checks"]["event_api"]
                assert "answered 200" in reason and "not the Event API's answer" in reason
                assert "text/html" in reason
                assert "webhook_gateway_event_api_degraded 1.0" in client.get("/metrics").text
                assert "webhook_gateway_events_forwarded_total 0.0" in client.get("/metrics").text

                api.reset()  # the base URL now reaches the Event API
                assert api.wait_for_events(1)
                wait_for(lambda: client.get("/readyz").json()["status"] == "ready")
        finally:
            server.stop()
    assert api.event_ids() == ["stripe-evt_proxied_1"]


def test_two_gateway_processes_share_one_data_directory(tmp_path: Path) -> None:
    with event_api() as api:
        env = {
            "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
            "GATEWAY_DATA_DIR": str(tmp_path / "shared"),
            "INNGEST_EVENT_API_BASE_URL": api.url,
            "INNGEST_EVENT_KEY": "shared-key",
            "GATEWAY_CONFIG": "",
        }
        gateways = [GatewayProcess([], env, tmp_path / f"gw{i}.log") for i in range(2)]
        try:
            for gateway in gateways:
                gateway.wait_ready()
            for i in range(60):
                response = post_stripe(gateways[i % 2].url, f"evt_shared_{i}")
                assert response.status_code == 200
            # a provider retry that lands on the other process is still a duplicate
            again = post_stripe(gateways[1].url, "evt_shared_0")
            assert again.status_code == 200 and again.json()["duplicates"] == 1
            wanted = {f"stripe-evt_shared_{i}" for i in range(60)}
            assert api.wait_for(lambda a: wanted <= set(a.event_ids()))
        finally:
            for gateway in gateways:
                gateway.stop()
    assert sorted(api.event_ids()) == sorted(wanted)  # each event sent once, by one process


def test_the_dedup_window_is_configurable(tmp_path: Path) -> None:
    assert OutboxConfig().dedup_window == 24 * 3600  # the Inngest dedup window
    hook = Webhook(source="stripe", provider="stripe", body=b"{}")
    event = ([b'{"name":"stripe/a.b"}'], ["stripe-evt_1"], ["stripe/a.b"])
    with SQLiteOutbox.open(tmp_path / "default", OutboxConfig()) as box:
        assert box.accept(hook, *event).stored == 1
        assert box.accept(hook, *event).duplicates == 1
    with SQLiteOutbox.open(tmp_path / "off", OutboxConfig(dedup_window=0)) as box:
        assert box.accept(hook, *event).stored == 1
        assert box.accept(hook, *event).stored == 1
    short = OutboxConfig(dedup_window=0.2)
    with SQLiteOutbox.open(tmp_path / "short", short) as box:
        assert box.accept(hook, *event).duplicates == 0
        assert box.accept(hook, *event).duplicates == 1
        time.sleep(0.3)
        assert box.accept(hook, *event).stored == 1


def test_the_dedup_window_comes_from_the_config_file(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data")
    config.outbox.dedup_window = 0
    with run_gateway(config) as server, httpx.Client(base_url=server.url) as client:
        body = stripe_body("evt_twice")
        for _ in range(2):
            response = client.post(
                "/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
            )
            assert response.json()["duplicates"] == 0


def test_sigterm_during_an_outage_exits_and_the_next_start_delivers_the_rest(
    tmp_path: Path,
) -> None:
    import signal

    with event_api() as api:
        env = {
            "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
            "GATEWAY_DATA_DIR": str(tmp_path / "data"),
            "INNGEST_EVENT_API_BASE_URL": api.url,
            "INNGEST_EVENT_KEY": "term-key",
            "GATEWAY_CONFIG": "",
        }
        api.down = True
        first = GatewayProcess([], env, tmp_path / "first.log")
        first.wait_ready()
        for i in range(20):
            response = post_stripe(first.url, f"evt_left_{i}")
            assert response.status_code == 200
        assert api.wait_for(lambda a: len(a.requests) >= 1)
        # a clean exit (not the test's SIGKILL after its timeout), leaving the events queued
        assert first.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        stopped = [
            json.loads(line)
            for line in (tmp_path / "first.log").read_text().splitlines()
            if '"gateway stopped"' in line
        ]
        assert stopped and stopped[-1]["left_pending"] == 20
        assert api.events == []

        api.down = False
        second = GatewayProcess([], env, tmp_path / "second.log")
        try:
            second.wait_ready()
            wanted = {f"stripe-evt_left_{i}" for i in range(20)}
            assert api.wait_for(lambda a: wanted <= set(a.event_ids()))
        finally:
            second.stop()
    assert sorted(api.event_ids()) == sorted(wanted)
