"""Issue 13, point 4: a forged ``webhook-signature`` cannot make the gateway verify without end.

Only the first few entries are considered (Standard Webhooks senders send one per active
secret), repeated entries are checked once, and large bodies are verified off the event loop.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import providers
from gateway.config import Config, ForwarderConfig, GatewayConfig, SourceConfig
from gateway.providers.standard import (
    MAX_SIGNATURE_ENTRIES,
    StandardWebhooksProvider,
    parse_signatures,
)
from tests.server import run_gateway
from tests.test_metrics_catalogue import value
from tests.test_providers_more import ed25519_pair, v1a


class ThreadRecordingStandard(StandardWebhooksProvider):
    """The real Standard Webhooks verifier, noting which thread each verification ran on."""

    name = "standard-thread-recording"
    threads: list[str] = []
    #: a verification of message id ``msg_held`` waits for this (bounded) before it goes on
    release = threading.Event()
    holding = threading.Event()

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        self.threads.append(threading.current_thread().name)
        if headers.get("webhook-id") == "msg_held":
            self.holding.set()
            self.release.wait(timeout=60)
        super().verify(body, headers, now=now)


def forged_entries(count: int) -> list[str]:
    return ["v1a," + base64.b64encode(os.urandom(64)).decode() for _ in range(count)]


def config(tmp_path: Path, provider: str, public: str) -> Config:
    source = SourceConfig(
        name="clerk", provider=provider, secrets=[f"inline:{public}"], transform="standard"
    )
    return Config(
        gateway=GatewayConfig(data_dir=str(tmp_path)),
        sources=[source],
        forwarder=ForwarderConfig(enabled=False),
    )


def post(
    url: str, body: bytes, msg_id: str, ts: int, entries: list[str], timeout: float = 60
) -> httpx.Response:
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": " ".join(entries),
        "content-type": "application/json",
    }
    return httpx.post(f"{url}/webhooks/clerk", content=body, headers=headers, timeout=timeout)


@pytest.fixture(autouse=True)
def _registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recording provider is registered for this module's tests only: a registration left
    behind would show in every later provider listing (``webhook-gateway providers``)."""
    monkeypatch.setitem(providers._REGISTRY, ThreadRecordingStandard.name, ThreadRecordingStandard)


def test_only_the_first_entries_are_considered() -> None:
    header = " ".join(["v2,abc"] * 5 + forged_entries(3 * MAX_SIGNATURE_ENTRIES))
    assert len(parse_signatures(header)) == MAX_SIGNATURE_ENTRIES
    same = forged_entries(1) * 50
    assert len(parse_signatures(" ".join(same))) == 1


def test_a_signature_past_the_bound_is_not_looked_for(tmp_path: Path) -> None:
    private, public = ed25519_pair()
    body = json.dumps({"type": "user.created", "data": {"id": "user_1"}}).encode()
    ts = int(time.time())
    valid = v1a(private, "msg_bound", ts, body)
    with run_gateway(config(tmp_path, "standard", public)) as gw:
        # 300 entries: as many as fit within the default header limit (32 KiB)
        late = post(gw.url, body, "msg_bound", ts, [*forged_entries(300), valid])
        assert late.status_code == 401, late.text
        assert late.json()["reason"] == "signature_mismatch"
        # a rotating sender's handful of entries, the valid one among them, is accepted
        few = post(gw.url, body, "msg_bound", ts, [*forged_entries(2), valid])
        assert few.status_code == 200, few.text
        metrics = httpx.get(f"{gw.url}/metrics").text
    assert value(metrics, "webhook_gateway_verification_seconds_count", provider="standard") == 2


def test_large_bodies_are_verified_off_the_event_loop(tmp_path: Path) -> None:
    private, public = ed25519_pair()
    small = json.dumps({"type": "user.created", "data": {"id": "small"}}).encode()
    filler: dict[str, Any] = {"blob": "x" * 200_000}
    large = json.dumps({"type": "user.updated", "data": {"id": "large", **filler}}).encode()
    ts = int(time.time())
    ThreadRecordingStandard.threads.clear()
    with run_gateway(config(tmp_path, ThreadRecordingStandard.name, public)) as gw:
        loop_thread = gw.thread.name
        ok = post(gw.url, small, "msg_small", ts, [v1a(private, "msg_small", ts, small)])
        assert ok.status_code == 200, ok.text
        ok = post(gw.url, large, "msg_large", ts, [v1a(private, "msg_large", ts, large)])
        assert ok.status_code == 200, ok.text
        forged = post(gw.url, large, "msg_forged", ts, forged_entries(MAX_SIGNATURE_ENTRIES))
        assert forged.status_code == 401
    small_thread, large_thread, forged_thread = ThreadRecordingStandard.threads
    assert small_thread == loop_thread  # cheap: stays inline
    assert large_thread != loop_thread and forged_thread != loop_thread
    assert large_thread.startswith("gateway-verify")


def test_other_webhooks_are_answered_while_a_large_body_is_being_verified(tmp_path: Path) -> None:
    private, public = ed25519_pair()
    large = json.dumps({"type": "user.updated", "data": {"blob": "x" * 200_000}}).encode()
    ts = int(time.time())
    small = json.dumps({"type": "user.created", "data": {"id": "meanwhile"}}).encode()
    ThreadRecordingStandard.release.clear()
    ThreadRecordingStandard.holding.clear()
    with run_gateway(config(tmp_path, ThreadRecordingStandard.name, public)) as gw:
        answers: list[httpx.Response] = []
        attack = threading.Thread(
            target=lambda: answers.append(
                post(gw.url, large, "msg_held", ts, forged_entries(MAX_SIGNATURE_ENTRIES))
            )
        )
        attack.start()
        try:
            assert ThreadRecordingStandard.holding.wait(timeout=30)
            # the forged request is still being verified: others are answered meanwhile
            entry = v1a(private, "msg_meanwhile", ts, small)
            meanwhile = post(gw.url, small, "msg_meanwhile", ts, [entry], timeout=10)
            assert meanwhile.status_code == 200, meanwhile.text
            assert httpx.get(f"{gw.url}/healthz", timeout=10).status_code == 200
            assert attack.is_alive() and not answers
        finally:
            ThreadRecordingStandard.release.set()
            attack.join(timeout=60)
    assert answers[0].status_code == 401
