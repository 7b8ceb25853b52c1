"""At-least-once across crashes: kill -9 a real gateway process, restart it, nothing is lost."""

from __future__ import annotations

import json
import signal
import time
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
