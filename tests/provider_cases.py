"""Checks every named provider's tests make: a refusal's exact kind, and zero-config end to end.

``refused`` verifies a request that must fail and returns the ``VerificationError`` subclass it
raised (asserting no secret leaks into the reason). ``zero_config_round_trip`` starts a real
gateway from ``<NAME>_WEBHOOK_SECRET`` (and any second variable) alone and posts over loopback:
a signed request is stored, a retry signed afresh is a duplicate, an unsigned one is a 401.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import pytest

from gateway.config import config_from_env
from gateway.providers import Inbound, Provider, VerificationError
from tests.server import run_gateway


def refused(
    provider: Provider, body: bytes, headers: Mapping[str, str], now: float, method: str = "POST"
) -> type[VerificationError]:
    """The kind of refusal ``provider`` gives this request at ``now``."""
    with pytest.raises(VerificationError) as info:
        provider.verify_request(Inbound(method, body, dict(headers)), now=now)
    assert all(secret not in info.value.reason for secret in provider.secrets)
    return type(info.value)


def zero_config_round_trip(
    tmp_path: Path,
    name: str,
    variables: Mapping[str, str],
    body: bytes,
    signed: Callable[[int], dict[str, str]],
) -> None:
    """``signed(unix_seconds)`` gives the provider's headers for ``body`` at that time."""
    env = {**variables, "GATEWAY_DATA_DIR": str(tmp_path)}
    config = config_from_env(env)
    config.forwarder.enabled = False
    with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        now = int(time.time())
        posted = client.post(f"/webhooks/{name}", content=body, headers=signed(now))
        assert (posted.status_code, posted.json()["events"]) == (200, 1), posted.text
        again = client.post(f"/webhooks/{name}", content=body, headers=signed(now + 1))
        assert (again.status_code, again.json()["duplicates"]) == (200, 1), again.text
        unsigned = client.post(
            f"/webhooks/{name}", content=body, headers={"content-type": "application/json"}
        )
        assert unsigned.status_code == 401
