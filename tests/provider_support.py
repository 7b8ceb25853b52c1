"""Helpers shared by the provider tests: refusals, and what the gateway recorded."""

from __future__ import annotations

from pathlib import Path

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
