"""Shared by the named providers' tests: the refusal a request gets, and a zero-config gateway."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from gateway.config import config_from_env
from gateway.providers import VerificationError, get_provider
from tests.server import ThreadedServer, run_gateway


def refusal(
    provider: str,
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    now: float | None = None,
) -> type[VerificationError]:
    """The :class:`VerificationError` class ``provider`` (holding ``secret``) raises for the
    request; its reason never shows the secret (nor either half of Basic credentials)."""
    with pytest.raises(VerificationError) as info:
        get_provider(provider)([secret], 300, {}).verify(body, headers, now=now)
    for part in secret.split(":"):
        assert part not in info.value.reason
    return type(info.value)


@contextmanager
def zero_config_gateway(
    variables: Mapping[str, str], data_dir: Path
) -> Iterator[tuple[ThreadedServer, httpx.Client, dict[str, str]]]:
    """A gateway configured only by ``variables`` (``<NAME>_WEBHOOK_SECRET``, ...) on a loopback
    socket, without a forwarder: the server, a client for it, and the environment."""
    env = {**variables, "GATEWAY_DATA_DIR": str(data_dir)}
    config = config_from_env(env)
    config.forwarder.enabled = False
    with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        yield gw, client, env
