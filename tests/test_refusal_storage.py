"""Refused requests stored for the console stay bounded whatever an unauthenticated client
sends: headers capped, unknown sources aggregated, bytes bounded, pruning in small steps, and
an overview page that does not grow with made-up source names. Real HTTP over loopback, real
SQLite files.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.console.recording import UNKNOWN, housekeep
from gateway.outbox import Rejection
from gateway.outbox.common import REJECTION_PRUNE_CHUNK
from gateway.outbox.sqlite import SQLiteOutbox
from tests.console_support import Running, console_config, run_console, stripe_event


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    config = console_config(tmp_path, None, rejected_body_bytes=4096, rejected_max_bytes=65536)
    with run_console(config) as gw:
        yield gw


def stored_bytes(rejection: Rejection) -> int:
    return len(rejection.body) + sum(len(k) + len(v) for k, v in rejection.headers.items())


def test_huge_headers_of_a_refused_request_are_capped_per_value_and_in_total(
    running: Running,
) -> None:
    # under http.max_header_bytes (32 KB; larger heads get 431 before any of this), over the
    # console's caps: 512 bytes per value and 8 KB in all
    many = {f"x-pad-{i}": "v" * 600 for i in range(40)}
    response = running.send_stripe(
        stripe_event(1), secret="whsec_wrong", extra={"x-huge": "h" * 5_000, **many}
    )
    assert response.status_code == 401
    running.flush()
    [kept] = running.gateway.outbox.rejections()
    assert kept.reason == "signature_mismatch"
    assert len(kept.headers["x-huge"]) < 600 and "more bytes not kept" in kept.headers["x-huge"]
    assert sum(len(k) + len(v) for k, v in kept.headers.items()) < 8192 + 200
    assert "over the cap" in kept.headers["x-gateway-headers-not-kept"]


def test_unknown_sources_are_aggregated_and_the_overview_stays_small(running: Running) -> None:
    names = [os.urandom(20).hex() for _ in range(300)]
    with httpx.Client(base_url=running.public) as client:
        for name in names:
            assert client.post(f"/webhooks/{name}", content=b"x").status_code == 404
    running.flush()
    stored = running.gateway.outbox.rejections(limit=1000)
    assert len(stored) == 1 and stored[0].source == UNKNOWN
    with running.client() as client:
        page = client.get("/console")
        data = client.get("/console/api/overview").json()
    assert sum(name in page.text for name in names) <= 1
    listed = {s["name"] for s in data["sources"]}
    assert listed == set(running.gateway.sources) | {UNKNOWN}
    assert len(page.text) < 100_000


def test_refused_request_storage_is_bounded_in_bytes(running: Running) -> None:
    body = os.urandom(4000).hex().encode()
    with httpx.Client(base_url=running.public) as client:
        for _ in range(100):  # ~8 KB kept each: 800 KB without a byte bound
            response = client.post(
                "/webhooks/stripe", content=body, headers={"stripe-signature": "t=1,v1=00"}
            )
            assert response.status_code == 401
    running.flush()
    kept = running.gateway.outbox.rejections(limit=1000)
    assert 0 < len(kept) < 100
    assert sum(stored_bytes(r) for r in kept) <= 65536 // 2  # the budget until the next prune


def test_pruning_refused_requests_runs_in_small_transactions(tmp_path: Path) -> None:
    many = 3 * REJECTION_PRUNE_CHUNK
    config = console_config(tmp_path, None, rejected_max=10).console
    with SQLiteOutbox(tmp_path / "outbox.sqlite3", durability="process_crash") as outbox:
        for n in range(many):
            outbox.record_rejection(Rejection("stripe", "stripe", 1000.0 + n, 401, "r", "m"))
        outbox.flush_rejections()
        before = outbox.commit_count

        async def run() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(
                housekeep(outbox, config, stop, clock=lambda: 2000.0, flush_every=0.01)
            )
            for _ in range(3000):
                if len(outbox.rejections(limit=100)) == 10:
                    break
                await asyncio.sleep(0.01)
            stop.set()
            await task

        asyncio.run(run())
        assert len(outbox.rejections(limit=100)) == 10
        assert outbox.commit_count - before >= many // REJECTION_PRUNE_CHUNK  # not one long lock
