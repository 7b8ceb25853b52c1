"""At-least-once across crashes: kill -9 a real gateway process, restart it, nothing is lost."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import httpx

from tests.eventapi_standin import event_api
from tests.helpers import STRIPE_SECRET, fixture
from tests.server import GatewayProcess
from tests.signing import stripe_headers


def env(data_dir: Path, api_url: str) -> dict[str, str]:
    return {
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "GATEWAY_DATA_DIR": str(data_dir),
        "INNGEST_EVENT_API_BASE_URL": api_url,
        "INNGEST_EVENT_KEY": "crash-test-key",
        "GATEWAY_CONFIG": "",
    }


def send(url: str, count: int, prefix: str) -> None:
    template = json.loads(fixture("stripe/customer.created.json"))
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(count):
            template["id"] = f"evt_{prefix}_{i}"
            body = json.dumps(template).encode()
            response = client.post(
                "/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
            )
            assert response.status_code == 200, response.text


def wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_sigkill_after_ack_then_restart_delivers_everything(tmp_path: Path) -> None:
    with event_api() as api:
        api.down = True  # the Event API is failing while webhooks are acknowledged
        first = GatewayProcess([], env(tmp_path / "data", api.url), tmp_path / "first.log")
        first.wait_ready()
        send(first.url, 300, "crash")
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        assert api.events == []

        api.down = False
        second = GatewayProcess([], env(tmp_path / "data", api.url), tmp_path / "second.log")
        try:
            second.wait_ready()
            wanted = {f"stripe-evt_crash_{i}" for i in range(300)}
            wait_for(lambda: wanted <= set(api.event_ids()))
        finally:
            second.stop()
        ids = api.event_ids()
        assert set(ids) == wanted
        assert len(ids) == 300  # the outbox sent each once (Inngest dedups replays by id anyway)
        # batching: far fewer requests than webhooks once the API is back
        assert sum(1 for r in api.requests if r.status == 200) < 50


def test_sigterm_drains_before_exit(tmp_path: Path) -> None:
    with event_api() as api:
        gateway = GatewayProcess([], env(tmp_path / "data", api.url), tmp_path / "gw.log")
        gateway.wait_ready()
        send(gateway.url, 50, "term")
        # uvicorn re-raises the signal after a clean shutdown, so -SIGTERM is a clean exit too
        assert gateway.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert {f"stripe-evt_term_{i}" for i in range(50)} <= set(api.event_ids())
        log = (tmp_path / "gw.log").read_text()
        stopped = [
            json.loads(line)
            for line in log.splitlines()
            if line.startswith("{") and '"gateway stopped"' in line
        ]
        assert stopped and stopped[-1]["left_pending"] == 0


def leases(data_dir: Path) -> dict[str, tuple[str, str | None]]:
    """``event_id -> (state, lease_token)`` read from the gateway's SQLite file."""
    with closing(sqlite3.connect(data_dir / "outbox.sqlite3")) as db:
        rows = db.execute("SELECT event_id, state, lease_token FROM events").fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def test_sigkill_while_holding_leases_then_restart_takes_them_over(tmp_path: Path) -> None:
    """The single-pod case of tests/test_postgres_faults.py: kill -9 while a batch is provably
    in flight (the stand-in took it and withholds the answer), restart on the same file."""
    with event_api() as api:
        config = tmp_path / "gateway.toml"
        config.write_text(
            """
[[sources]]
name = "stripe"
provider = "stripe"
secrets = ["env:STRIPE_WEBHOOK_SECRET"]

[forwarder]
lease_seconds = 3
request_timeout = 600
backoff_base = 0.1
backoff_max = 1
"""
        )
        environ = {**env(tmp_path / "data", api.url), "GATEWAY_CONFIG": str(config)}
        api.hold_answers("crash-test-key")
        first = GatewayProcess([], environ, tmp_path / "first.log")
        try:
            first.wait_ready()
            send(first.url, 1, "held")
            wait_for(lambda: len(api.held) == 1)
            in_flight = [str(e["id"]) for e in api.held[0].accepted]
            assert in_flight == ["stripe-evt_held_0"]
            send(first.url, 20, "queued")  # acknowledged while the forwarder waits
            rows = leases(tmp_path / "data")
            assert rows["stripe-evt_held_0"][0] == "leased" and rows["stripe-evt_held_0"][1]
            assert {state for i, (state, _) in rows.items() if i not in in_flight} == {"pending"}
            assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        finally:
            first.stop()
        api.release_answers()

        second = GatewayProcess([], environ, tmp_path / "second.log")
        wanted = {"stripe-evt_held_0"} | {f"stripe-evt_queued_{i}" for i in range(20)}
        try:
            second.wait_ready()
            wait_for(lambda: wanted <= set(api.event_ids()))
            wait_for(lambda: {s for s, _ in leases(tmp_path / "data").values()} == {"delivered"})
        finally:
            second.stop()
    counted = Counter(str(i) for i in api.event_ids())
    assert set(counted) == wanted
    # at-least-once: only the batch in flight at the kill was sent twice
    assert {i: n for i, n in counted.items() if n > 1} == dict.fromkeys(in_flight, 2)
    assert all(token is None for _, token in leases(tmp_path / "data").values())
