"""A gateway configured only by zero-config variables, on a loopback socket (provider tests)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from gateway.config import config_from_env
from tests.server import ThreadedServer, run_gateway


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
