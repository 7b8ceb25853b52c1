"""The receive path over a real loopback socket: genuine requests in, forgeries out."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.config import SourceConfig
from tests.eventapi_standin import EventApiStandIn, event_api
from tests.helpers import INTERCOM_SECRET, SLACK_SECRET, STRIPE_SECRET, fixture, make_config
from tests.server import ThreadedServer, run_gateway
from tests.signing import intercom_headers, slack_headers, stripe_headers


@pytest.fixture(scope="module")
def api() -> Iterator[EventApiStandIn]:
    with event_api() as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def gw(api: EventApiStandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    config = make_config(tmp_path_factory.mktemp("data"), api.url)
    config.sources.append(
        SourceConfig(
            name="tiny", provider="stripe", body_limit=64, secrets=[f"inline:{STRIPE_SECRET}"]
        )
    )
    with run_gateway(config) as server:
        yield server


@pytest.fixture
def client(gw: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        yield c


def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def unique_stripe(event_id: str, name: str = "stripe/customer.created.json") -> bytes:
    event = json.loads(fixture(name))
    event["id"] = event_id
    return json.dumps(event).encode()


def test_genuine_stripe_webhook_accepted_and_forwarded(
    client: httpx.Client, api: EventApiStandIn
) -> None:
    body = unique_stripe("evt_genuine_1")
    response = client.post(
        "/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
    )
    assert response.status_code == 200
    assert response.json()["status"] == "accepted" and response.json()["events"] == 1
    assert response.headers["x-request-id"]
    wait_for(lambda: "stripe-evt_genuine_1" in api.event_ids())
    event = next(e for e in api.events if e.get("id") == "stripe-evt_genuine_1")
    assert event["name"] == "stripe/customer.created"
    assert event["data"] == json.loads(body)


def test_duplicate_delivery_forwarded_once(client: httpx.Client, api: EventApiStandIn) -> None:
    body = unique_stripe("evt_dup_1")
    for _ in range(3):  # Stripe retries with the same evt_ id and a fresh signature
        response = client.post(
            "/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
        )
        assert response.status_code == 200
    assert response.json()["duplicates"] == 1
    wait_for(lambda: "stripe-evt_dup_1" in api.event_ids())
    time.sleep(0.2)
    assert api.event_ids().count("stripe-evt_dup_1") == 1


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing_signature"),
        ({"Stripe-Signature": "nonsense"}, "malformed_signature"),
        ({"Stripe-Signature": "t=1,v1=" + "0" * 64}, "signature_mismatch"),
    ],
)
def test_forged_stripe_refused(client: httpx.Client, headers: dict[str, str], reason: str) -> None:
    response = client.post("/webhooks/stripe", content=b'{"id":"evt_x"}', headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["source"] == "stripe" and body["reason"] == reason and body["error"]
    assert STRIPE_SECRET not in response.text


def test_replayed_and_tampered_refused(client: httpx.Client) -> None:
    body = unique_stripe("evt_old")
    old = stripe_headers(body, STRIPE_SECRET, t=int(time.time()) - 301)
    response = client.post("/webhooks/stripe", content=body, headers=old)
    assert (response.status_code, response.json()["reason"]) == (401, "timestamp_out_of_tolerance")
    future = stripe_headers(body, STRIPE_SECRET, t=int(time.time()) + 600)
    assert client.post("/webhooks/stripe", content=body, headers=future).status_code == 401
    fresh = stripe_headers(body, STRIPE_SECRET)
    tampered = body.replace(b"Jenny", b"Mallory")
    response = client.post("/webhooks/stripe", content=tampered, headers=fresh)
    assert (response.status_code, response.json()["reason"]) == (401, "signature_mismatch")


def test_verified_body_that_is_not_json_is_400(client: httpx.Client) -> None:
    body = b"this is not json"
    response = client.post(
        "/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
    )
    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_payload"
    arr = b"[1, 2, 3]"
    response = client.post(
        "/webhooks/stripe", content=arr, headers=stripe_headers(arr, STRIPE_SECRET)
    )
    assert response.status_code == 400


def test_unknown_source_wrong_method_head(client: httpx.Client) -> None:
    response = client.post("/webhooks/nope", content=b"{}")
    assert response.status_code == 404
    assert response.json() == {"error": "unknown source 'nope'", "source": "nope"}
    response = client.get("/webhooks/stripe")
    assert response.status_code == 405 and response.json()["error"]
    assert client.put("/webhooks/stripe", content=b"{}").status_code == 405
    assert client.head("/webhooks/intercom").status_code == 200
    assert client.head("/webhooks/nope").status_code == 404
    assert client.get("/no/such/path").status_code == 404


def test_body_over_limit_is_413(client: httpx.Client) -> None:
    body = unique_stripe("evt_big")
    response = client.post(
        "/webhooks/tiny", content=body, headers=stripe_headers(body, STRIPE_SECRET)
    )
    assert response.status_code == 413
    assert response.json()["reason"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: decided while streaming
        for _ in range(10):
            yield b"x" * 32

    response = client.post(
        "/webhooks/tiny", content=chunks(), headers={"Stripe-Signature": "t=1,v1=00"}
    )
    assert response.status_code == 413


def test_bad_content_length_is_400(gw: ThreadedServer) -> None:
    port = int(gw.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400")


def test_slack_flows(client: httpx.Client, api: EventApiStandIn) -> None:
    challenge = fixture("slack/url_verification.json")
    response = client.post(
        "/webhooks/slack", content=challenge, headers=slack_headers(challenge, SLACK_SECRET)
    )
    assert response.status_code == 200
    assert response.json() == {"challenge": json.loads(challenge)["challenge"]}
    unsigned = client.post("/webhooks/slack", content=challenge)
    assert unsigned.status_code == 401  # the challenge is signed too
    ssl = client.post(
        "/webhooks/slack",
        content=b"ssl_check=1&token=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (ssl.status_code, ssl.content) == (200, b"")
    for name in ("message.json", "block_actions.form", "slash_command.form"):
        body = fixture(f"slack/{name}")
        headers = slack_headers(body, SLACK_SECRET)
        headers["X-Slack-Retry-Num"] = "1"
        headers["X-Slack-Retry-Reason"] = "http_timeout"
        response = client.post("/webhooks/slack", content=body, headers=headers)
        assert response.status_code == 200, response.text
    wait_for(lambda: "slack-13345224609.738474920.8088930838d88f008e0" in api.event_ids())
    assert "slack-Ev08MFMKH6" in api.event_ids()
    bad = b"payload=%7Bbroken"
    response = client.post("/webhooks/slack", content=bad, headers=slack_headers(bad, SLACK_SECRET))
    assert response.status_code == 400


def test_intercom_flows(client: httpx.Client, api: EventApiStandIn) -> None:
    ping = fixture("intercom/ping.json")
    response = client.post(
        "/webhooks/intercom", content=ping, headers=intercom_headers(ping, INTERCOM_SECRET)
    )
    assert response.status_code == 200
    note = fixture("intercom/conversation.user.created.json")
    response = client.post(
        "/webhooks/intercom", content=note, headers=intercom_headers(note, INTERCOM_SECRET)
    )
    assert response.status_code == 200 and response.json()["events"] == 1
    wait_for(lambda: "intercom-notif_4b4b8a8e-8b5e-4f77-8c8a-6c2a6f0c9d3e" in api.event_ids())
    assert not any(e["name"] == "intercom/ping" for e in api.events)
    forged = client.post(
        "/webhooks/intercom", content=note, headers=intercom_headers(note, "wrong")
    )
    assert forged.status_code == 401


def test_probes_and_metrics(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    metrics = client.get("/metrics").text
    assert "webhook_gateway_webhooks_received_total" in metrics
    assert "webhook_gateway_outbox_oldest_age_seconds" in metrics


def test_transform_failure_quarantines_and_answers_200(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "flaky.py").write_text(
        "from gateway import transform\n"
        "@transform('flaky')\ndef flaky(webhook):\n    raise RuntimeError('bug in transform')\n"
        "@transform('invalid')\ndef invalid(webhook):\n    return {'name': 'inngest/nope'}\n"
    )
    config = make_config(tmp_path / "data")
    config.gateway.transforms_dir = str(plugins)
    config.sources[0].transform = "flaky"
    config.sources[2].transform = "invalid"
    with run_gateway(config) as server, httpx.Client(base_url=server.url) as c:
        body = unique_stripe("evt_q1")
        response = c.post(
            "/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
        )
        assert response.status_code == 200 and response.json()["status"] == "quarantined"
        note = fixture("intercom/conversation.user.created.json")
        response = c.post(
            "/webhooks/intercom", content=note, headers=intercom_headers(note, INTERCOM_SECRET)
        )
        assert response.json()["status"] == "quarantined"
        metrics = c.get("/metrics").text
        assert 'webhook_gateway_transform_errors_total{source="stripe"} 1.0' in metrics
        assert client_outbox_quarantined(server) == 2


def client_outbox_quarantined(server: ThreadedServer) -> int:
    gateway = server.config.app.state.gateway  # type: ignore[attr-defined]
    held = gateway.outbox.quarantined()
    errors = sorted(error for _, _, error in held)
    assert errors[0].startswith("event 0 is invalid") or "reserved" in errors[0]
    assert "RuntimeError: bug in transform" in errors[1]
    return len(held)


def test_outbox_unwritable_is_503_and_not_ready(tmp_path: Path) -> None:
    from gateway.outbox.sqlite import SQLiteOutbox

    outbox = SQLiteOutbox(tmp_path / "full.db", max_pages=30)
    config = make_config(tmp_path / "unused")
    from gateway.app import build_gateway, create_app

    gateway = build_gateway(config, {}, outbox=outbox)
    server = ThreadedServer(create_app(gateway))
    server.start()
    try:
        with httpx.Client(base_url=server.url) as c:
            statuses = []
            for i in range(200):
                body = unique_stripe(f"evt_fill_{i}", "stripe/invoice.paid.json")
                r = c.post(
                    "/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
                )
                statuses.append(r.status_code)
                if r.status_code == 503:
                    assert r.json()["reason"] == "outbox_unavailable"
                    break
            assert statuses[-1] == 503 and set(statuses[:-1]) <= {200}
            ready = c.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["outbox"].startswith("unavailable")
            accepted = statuses.count(200)
        assert outbox.stats().pending == accepted  # nothing half-accepted
    finally:
        server.stop()


def test_an_unexpected_error_is_a_json_500_counted_and_the_server_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with event_api() as api, run_gateway(make_config(tmp_path, api.url)) as server:
        provider = server.config.app.receiver.sources["stripe"].provider

        def broken_verify(body: bytes, headers: object) -> None:
            raise RuntimeError("a bug in a provider")

        body = unique_stripe("evt_internal_error")
        with httpx.Client(base_url=server.url, timeout=10) as c:
            with monkeypatch.context() as patch:
                patch.setattr(provider, "verify", broken_verify)
                response = c.post(
                    "/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
                )
            assert response.status_code == 500
            assert response.json() == {
                "error": "internal error",
                "source": "stripe",
                "reason": "internal_error",
            }
            metrics = c.get("/metrics").text
            assert (
                'webhook_gateway_webhooks_rejected_total{provider="stripe",reason="internal_error",'
                'source="stripe"} 1.0' in metrics
            )
            # the same webhook, retried by the provider once the bug is gone, is accepted
            retried = c.post(
                "/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
            )
            assert retried.status_code == 200 and retried.json()["events"] == 1
