"""Small shared helpers for tests: fixtures on disk and a config builder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.config import Config, ForwarderConfig, GatewayConfig, InngestConfig, SourceConfig

FIXTURES = Path(__file__).parent / "fixtures"

STRIPE_SECRET = "whsec_test_gateway_secret"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
INTERCOM_SECRET = "intercom_client_secret_123"


def fixture(name: str) -> bytes:
    """The bytes of ``tests/fixtures/<name>``."""
    return (FIXTURES / name).read_bytes()


def make_config(data_dir: Path, api_url: str | None = None, **forwarder: Any) -> Config:
    """Stripe, Slack and Intercom sources with inline test secrets; events to ``api_url``."""
    sources = [
        SourceConfig(name="stripe", provider="stripe", secrets=[f"inline:{STRIPE_SECRET}"]),
        SourceConfig(name="slack", provider="slack", secrets=[f"inline:{SLACK_SECRET}"]),
        SourceConfig(name="intercom", provider="intercom", secrets=[f"inline:{INTERCOM_SECRET}"]),
    ]
    fwd = {"backoff_base": 0.01, "backoff_max": 0.05, "idle_poll": 0.02, **forwarder}
    return Config(
        gateway=GatewayConfig(data_dir=str(data_dir)),
        sources=sources,
        inngest=InngestConfig(base_url=api_url, event_key="inline:test-key")
        if api_url
        else InngestConfig(),
        forwarder=ForwarderConfig(enabled=api_url is not None, **fwd),
    )


def read_table(text: str) -> list[dict[str, str]]:
    """A table as the CLI prints it, read back as a person would: header title -> cell.

    Columns start where a header title starts after two or more spaces.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = lines[0]
    starts = [0] + [
        i for i in range(2, len(header)) if header[i - 2 : i] == "  " and header[i] != " "
    ]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    titles = [header[a:b].strip() for a, b in bounds]
    return [
        {t: line[a:b].strip() for t, (a, b) in zip(titles, bounds, strict=True)}
        for line in lines[1:]
    ]
