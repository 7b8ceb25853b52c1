"""Issue 13, points 5-7: hostile or careless requests over a real loopback socket.

A client that hangs up mid-body is its own (info-level) reason; the request id header is echoed
only when it is short and well formed; a trailing slash is served, never redirected.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.logs import LOGGER_NAME
from tests.helpers import STRIPE_SECRET, fixture, make_config
from tests.server import ThreadedServer, run_gateway
from tests.signing import stripe_headers
from tests.test_metrics_catalogue import value

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[ThreadedServer]:
    with run_gateway(make_config(tmp_path)) as server:
        yield server


def stripe_event(event_id: str) -> bytes:
    event = json.loads(fixture("stripe/customer.created.json"))
    event["id"] = event_id
    return json.dumps(event).encode()


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def test_trailing_slash_is_served_never_redirected(gateway: ThreadedServer) -> None:
    body = stripe_event("evt_trailing_slash")
    headers = {**stripe_headers(body, STRIPE_SECRET), "Host": "evil.example"}
    with httpx.Client(base_url=gateway.url, follow_redirects=False) as client:
        response = client.post("/webhooks/stripe/", content=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "accepted"
        assert "location" not in response.headers
        forged = client.post("/webhooks/stripe/", content=body, headers={"Host": "evil.example"})
        assert forged.status_code == 401 and "location" not in forged.headers
        for path in ("/healthz/", "/metrics/", "/webhooks/stripe//", "/webhooks/a/b/"):
            other = client.request(
                "GET" if not path.startswith("/webhooks") else "POST",
                path,
                headers={"Host": "evil.example"},
            )
            assert other.status_code in (404, 405), (path, other.status_code)
            assert "location" not in other.headers, path
            assert other.json()["error"]


UNUSABLE_IDS = ["x" * 2000, "abc def", "<script>alert(1)</script>", '"quoted"', ""]
WELL_FORMED_IDS = [
    "req_8fQ2",
    "0f8fad5b-d9cb-469f-a165-70867728950e",
    "Root=1-67891233-abcdef012345678912345678",
]


@pytest.mark.parametrize("sent", UNUSABLE_IDS + WELL_FORMED_IDS)
def test_request_id_is_echoed_only_when_short_and_well_formed(
    gateway: ThreadedServer, sent: str
) -> None:
    with httpx.Client(base_url=gateway.url) as client:
        response = client.post("/webhooks/stripe", content=b"{}", headers={"X-Request-Id": sent})
    assert response.status_code == 401
    echoed = response.headers["x-request-id"]
    if sent in WELL_FORMED_IDS:
        assert echoed == sent
    else:
        assert GENERATED_ID.match(echoed), echoed


def test_client_hanging_up_mid_body_is_its_own_reason(
    gateway: ThreadedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hang_ups = 5
    for i in range(hang_ups):
        sock = connect(gateway.url)
        sock.sendall(
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5000\r\n\r\n" + b'{"id": "evt_%d", ' % i
        )
        time.sleep(0.05)  # let the server start reading the body
        sock.close()
    metrics = ""
    with httpx.Client(base_url=gateway.url) as client:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            metrics = client.get("/metrics").text
            seen = value(metrics, "webhook_gateway_webhooks_rejected_total", source="stripe")
            if seen >= hang_ups:
                break
            time.sleep(0.05)
        # the gateway goes on serving
        body = stripe_event("evt_after_hang_ups")
        ok = client.post(
            "/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
        )
        assert ok.status_code == 200
    rejected = "webhook_gateway_webhooks_rejected_total"
    assert value(metrics, rejected, source="stripe", reason="client_disconnected") == hang_ups
    assert value(metrics, rejected, reason="internal_error") == 0
    ours = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert not any(r.exc_info for r in caplog.records), "a hang-up is not a traceback"
    assert not any(r.levelno >= logging.WARNING for r in ours)
    hung = [r for r in ours if getattr(r, "outcome", None) == "client_disconnected"]
    assert len(hung) == hang_ups and all(r.levelno == logging.INFO for r in hung)
