"""A full outbox volume over loopback HTTP: readiness follows write failures at once, and
delivered rows give way before an accepted webhook is refused.

The volume is a real SQLite file capped with ``max_pages`` (SQLite's ``max_page_count``): a
write beyond it fails with SQLITE_FULL exactly as on a full disk.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import httpx

from gateway.app import build_gateway, create_app
from gateway.outbox.sqlite import SQLiteOutbox
from tests.helpers import STRIPE_SECRET, fixture, make_config
from tests.server import ThreadedServer
from tests.signing import stripe_headers


def stripe_body(event_id: str, pad: int = 0) -> bytes:
    event = json.loads(fixture("stripe/customer.created.json"))
    event["id"] = event_id
    if pad:  # random base64: it does not compress away
        event["data"]["object"]["description"] = base64.b64encode(os.urandom(pad)).decode()
    return json.dumps(event).encode()


def post(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post(
        "/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
    )


def serve(tmp_path: Path, max_pages: int) -> tuple[SQLiteOutbox, ThreadedServer]:
    outbox = SQLiteOutbox(tmp_path / "full.sqlite3", max_pages=max_pages)
    gateway = build_gateway(make_config(tmp_path / "unused"), {}, outbox=outbox)
    server = ThreadedServer(create_app(gateway))
    server.start()
    return outbox, server


def test_readyz_follows_a_failed_accept_at_once(tmp_path: Path) -> None:
    _, server = serve(tmp_path, max_pages=100)  # about 400 KB
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert post(client, stripe_body("evt_small")).status_code == 200
            assert client.get("/readyz").status_code == 200
            big = post(client, stripe_body("evt_big", pad=180_000))  # ~480 KB with its event
            assert big.status_code == 503 and big.json()["reason"] == "outbox_unavailable"
            ready = client.get("/readyz")  # the very next probe, not seconds later
            assert ready.status_code == 503
            assert "full" in ready.json()["checks"]["outbox"]
            assert post(client, stripe_body("evt_small_2")).status_code == 200  # small ones fit
            assert client.get("/readyz").status_code == 200  # a write went through again
    finally:
        server.stop()


def test_delivered_rows_give_way_before_an_accepted_webhook_is_refused(tmp_path: Path) -> None:
    outbox, server = serve(tmp_path, max_pages=120)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            accepted = 0
            for i in range(500):
                response = post(client, stripe_body(f"evt_fill_{i}", pad=3000))
                if response.status_code != 200:
                    break
                accepted += 1
            assert 0 < accepted < 500 and response.status_code == 503  # the volume filled up
            # the forwarder delivers them all; retention would keep them for three days
            batch = outbox.claim(max_events=1000, max_bytes=10**9, lease_seconds=60)
            outbox.ack([e.seq for e in batch])
            assert outbox.stats().delivered == accepted
            for i in range(5):
                again = post(client, stripe_body(f"evt_after_{i}", pad=3000))
                assert again.status_code == 200, again.text
            assert client.get("/readyz").status_code == 200
        stats = outbox.stats()
        assert stats.pending == 5 and stats.delivered < accepted  # the oldest delivered went
    finally:
        server.stop()


def test_refused_request_records_give_way_to_an_accepted_webhook(tmp_path: Path) -> None:
    outbox, server = serve(tmp_path, max_pages=120)
    try:
        from gateway.outbox import Rejection

        blob = os.urandom(3000)
        filled = 0
        while True:  # the console's records take the whole volume
            outbox.record_rejection(
                Rejection("stripe", "stripe", 1.0, 401, "r", "m", body=blob, body_size=3000)
            )
            try:
                outbox.flush_rejections()
            except Exception:
                break
            filled += 1
            assert filled < 1000
        assert outbox.rejections(limit=5000) != []
        with httpx.Client(base_url=server.url, timeout=30) as client:
            accepted = post(client, stripe_body("evt_wins", pad=3000))
            assert accepted.status_code == 200, accepted.text
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
        assert outbox.stats().pending == 1
    finally:
        server.stop()
