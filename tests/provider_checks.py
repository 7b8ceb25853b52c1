"""Checks every named provider's tests make: a refusal's exact class, and the zero-config route
end to end over a real socket (a signed POST stored, its redelivery a duplicate, an unsigned one
refused, ``webhook-gateway send --sample`` accepted)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import pytest

from gateway.cli import main
from gateway.config import config_from_env
from gateway.providers import Provider, VerificationError
from tests.server import run_gateway


def refused(
    provider: Provider, body: bytes, headers: Mapping[str, str], now: float | None = None
) -> type[VerificationError]:
    """The class of the refusal of this request (whose reason must not leak a secret)."""
    with pytest.raises(VerificationError) as info:
        provider.verify(body, headers, now=now)
    for secret in provider.secrets:
        assert secret not in info.value.reason
    return type(info.value)


def zero_config_round_trip(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    secret: str,
    body: bytes,
    headers: Mapping[str, str] | Callable[[], Mapping[str, str]],
    sample: str,
) -> None:
    """``<NAME>_WEBHOOK_SECRET`` alone serves ``/webhooks/<name>``: ``body`` signed by
    ``headers`` is stored once (the second POST is a duplicate), unsigned it is a 401, and
    ``send <name> --sample <sample>`` is accepted. ``headers`` may be a function called once the
    gateway is up: a signed timestamp then starts its window when the request is sent."""
    env = {f"{name.upper()}_WEBHOOK_SECRET": secret, "GATEWAY_DATA_DIR": str(tmp_path)}
    config = config_from_env(env)
    config.forwarder.enabled = False
    with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        signed = headers() if callable(headers) else headers
        sent = {"content-type": "application/json", **signed}
        first = client.post(f"/webhooks/{name}", content=body, headers=sent)
        assert (first.status_code, first.json()["events"]) == (200, 1), first.text
        again = client.post(f"/webhooks/{name}", content=body, headers=sent)
        assert (again.status_code, again.json()["duplicates"]) == (200, 1), again.text
        unsigned = client.post(f"/webhooks/{name}", content=body)
        assert unsigned.status_code == 401
        assert main(["send", name, "--sample", sample, "--url", gw.url], env) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[1] == "200 OK: accepted: 1 event(s) stored, 0 duplicate(s) skipped"
