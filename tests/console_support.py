"""Run the gateway with its console on two real loopback ports, and a flaky transform."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway import Event, Webhook
from gateway.app import Gateway, build_gateway, create_app
from gateway.config import Config, ConsoleConfig, ConsoleToken, SourceConfig
from gateway.console import create_console_app
from tests.helpers import STRIPE_SECRET, make_config
from tests.server import ThreadedServer
from tests.signing import stripe_headers

READ_TOKEN = "console-read-token-0123"
WRITE_TOKEN = "console-write-token-4567"

#: flip to False to make :func:`flaky` succeed (a fixed transform bug)
FLAKY = {"fail": True}


def flaky(webhook: Webhook) -> Event:
    """A transform with a bug that can be fixed at run time."""
    if FLAKY["fail"]:
        raise KeyError("customer")
    return Event(name="flaky/thing.happened", data=webhook.json, id=f"flaky-{webhook.json['id']}")


def console_config(data_dir: Path, api_url: str | None, **console: Any) -> Config:
    """Stripe, Slack, Intercom and a ``flaky`` source; the console with a read and a write token."""
    config = make_config(data_dir, api_url)
    config.sources.append(
        SourceConfig(
            name="flaky",
            provider="stripe",
            secrets=[f"inline:{STRIPE_SECRET}"],
            transform="tests.console_support:flaky",
            prefix="flaky",
        )
    )
    config.console = ConsoleConfig(
        enabled=True,
        port=0,
        tokens=[
            ConsoleToken(secret=f"inline:{READ_TOKEN}", scope="read"),
            ConsoleToken(secret=f"inline:{WRITE_TOKEN}", scope="write"),
        ],
        **console,
    )
    return config


@dataclass
class Running:
    gateway: Gateway
    public: str
    console: str

    def client(self, token: str | None = READ_TOKEN, **kwargs: Any) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.console, headers=headers, timeout=30, **kwargs)

    def send_stripe(
        self,
        body: bytes,
        *,
        source: str = "stripe",
        secret: str = STRIPE_SECRET,
        extra: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = {**stripe_headers(body, secret), **(extra or {})}
        return httpx.post(f"{self.public}/webhooks/{source}", content=body, headers=headers)

    def flush(self) -> None:
        self.gateway.outbox.flush_rejections()


@contextmanager
def run_console(config: Config, **console_options: Any) -> Iterator[Running]:
    """The public app and the console app on their own ports, sharing one gateway."""
    gateway = build_gateway(config, {})
    public = ThreadedServer(create_app(gateway))
    public.start()
    console = ThreadedServer(create_console_app(gateway, **console_options))
    try:
        console.start()
        yield Running(gateway, public.url, console.url)
    finally:
        console.stop()
        public.stop()


def stripe_event(n: int, type_: str = "customer.created") -> bytes:
    """A Stripe snapshot event ``evt_console_<n>``."""
    return (
        b'{"id": "evt_console_%d", "object": "event", "type": "%s", "created": %d,'
        b' "data": {"object": {"id": "cus_%d"}}}' % (n, type_.encode(), int(time.time()), n)
    )


def wait_until(predicate: Any, timeout: float = 30.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False
