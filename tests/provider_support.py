"""Helpers shared by the provider tests: refusals, and what the gateway recorded."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gateway.config import Config, ConsoleConfig, ConsoleToken, OutboxConfig
from gateway.outbox.sqlite import SQLiteOutbox
from gateway.providers import Provider, VerificationError

NOW = 1_714_557_600


def refused(provider: Provider, body: bytes, headers: dict[str, str] | None = None) -> type:
    with pytest.raises(VerificationError) as info:
        provider.verify(body, headers or {}, now=NOW)
    for secret in provider.secrets:
        assert secret not in info.value.reason
    return type(info.value)


def handshakes(data_dir: Path, source: str) -> set[tuple[str, int, str]]:
    """The (reason, status, message) rows the gateway recorded for ``source``."""
    outbox = SQLiteOutbox.open(str(data_dir), OutboxConfig(), {})
    try:
        return {(r.reason, r.status, r.message) for r in outbox.rejections(source=source)}
    finally:
        outbox.close()


def recording(config: Config) -> Config:
    """``config`` with the console on, so that refusals and handshakes are recorded."""
    config.forwarder.enabled = False
    config.console = ConsoleConfig(
        enabled=True, port=0, tokens=[ConsoleToken(secret="inline:console-read")]
    )
    return config


def accepted_once(client: httpx.Client, path: str, body: bytes, headers: dict[str, str]) -> None:
    """A signed POST is stored as one event; the same body again is a duplicate."""
    posted = client.post(path, content=body, headers=headers)
    assert (posted.status_code, posted.json()["events"]) == (200, 1)
    again = client.post(path, content=body, headers=headers)
    assert (again.status_code, again.json()["duplicates"]) == (200, 1)
    source = path.split("?")[0].rsplit("/", 1)[-1]
    assert f'events_accepted_total{{source="{source}"}} 1.0' in client.get("/metrics").text
