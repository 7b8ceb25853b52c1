"""Helpers shared by the provider tests: a refusal's exact class, a gateway configured only by
zero-config variables on a loopback socket (and its round trip), and what the gateway recorded."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from gateway.cli import main
from gateway.config import Config, ConsoleConfig, ConsoleToken, OutboxConfig, config_from_env
from gateway.outbox.sqlite import SQLiteOutbox
from gateway.providers import Provider, VerificationError, get_provider
from tests.server import ThreadedServer, run_gateway

NOW = 1_714_557_600

#: a secret in each provider's own format, for tests that only need one that signs
SECRETS: dict[str, str] = {
    "bitbucket": "Zq8vN3kR7tW1yB4eH6jM9pS2uX5aD0fG",
    "calendly": "3b4f9c1e7a2d8f60b5c4e3d2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2",
    "clerk": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "docusign": "Hx8QqkfG4U4pAvP9nUJq0wdvZ7rsG8mQW9Yt5a3cVyk=",
    "dropbox": "mz8xkq0v1hdj3ps",
    "github": "It's a Secret to Everybody",
    "gitlab": "gitlab-token-0123",
    "hubspot": "a1b2c3d4-client-secret",
    "intercom": "intercom-client-secret",
    "lemonsqueezy": "ls-signing-5ecret",
    "linear": "lin_wh_4tXx9YfRk2Jc0sQv7LmN8pBz3HdGe6Wa",
    "mailgun": "3c4a2d9b7e1f0a8c6d5b4e3f2a1c0d9e-8b7a6c5d-4e3f2a1b",
    "meta": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "msgraph": "client-state-0123",
    "mux": "okhlm6l4r0ljv6fa0h0o9vn0c2qevd1a",
    "notion": "secret_tMrlL1qK5vuQAh1b6cZGhFChZTSYJlce98V0pYn7yBl",
    "okta": "okta-hook-9f8e7d6c5b4a",
    "openai": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "paddle": "pdl_ntfset_01hxa3kqn1z8w6v4t2r0p8n6m4_h7Kq2vXz9PbWm4Ry8TcN3sLd6FgJ1aE5",
    "pagerduty": "ZHVtbXktcGFnZXJkdXR5LXN1YnNjcmlwdGlvbi1zZWNyZXQtMTIzNDU2Nzg5MA==",
    "postmark": "postmark-hooks:Xq8v2Lr7pT4w",
    "replicate": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "resend": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "sentry": "7f1bb3d4a2e34c5d9e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678901",
    "shopify": "shpss_secret",
    "slack": "8f742231b10e8888abcd99yyyzzz85a5",
    "square": "Ibxx_5AKakO-3qeNVR61Dw",
    "standard": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "stripe": "whsec_test_0123456789",
    "telegram": "k3Y_9f-2TqzR7vLm0PxW",
    "trello": "4f9a0c2e7b1d3a5c8e0f2a4b6c8d0e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d",
    "twilio": "12345abcdef67890fedcba0987654321",
    "twitch": "s3cRe7-eventsub-0123",
    "typeform": "5f0c1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b",
    "vercel": "Wz8kQd3nR5tYp1Lm7Hs9Vb2Xc4Fg6Jk0",
    "workos": "wh_secret_5nUq7tX2dWcV8bYe",
    "x": "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw7x9Bbyz",
    "xero": (
        "OSd0eLlVIY9ZhViEqlDUh4+6n6M+Lo+eDaEJheJ6OCCgWwIz2D3JIAU6jPMipHRbgKTLz2uJ+xiACXGDBLrgdA=="
    ),
    "zendesk": "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA=",
    "zoom": "6sp8Ze0dTduD5X3iLqmYmQ",
}


def other_secret(secret: str) -> str:
    """``secret`` with its middle character changed: the same format, another key."""
    middle = len(secret) // 2
    return secret[:middle] + ("A" if secret[middle] != "A" else "B") + secret[middle + 1 :]


def zero_config_variables(name: str, secret: str | None = None) -> dict[str, str]:
    """The variables that alone enable ``/webhooks/<name>``: its secret variable (``secret``,
    else :data:`SECRETS`), plus ``<NAME>_WEBHOOK_URL`` for a provider that signs its URL."""
    cls = get_provider(name)
    variable = cls.secret_variable()
    assert variable, f"{name} has no zero-config variable"
    variables = {variable: secret if secret is not None else SECRETS[name]}
    url_variable = cls.env_options.get("url")
    if url_variable:
        variables[url_variable] = f"https://hooks.example.com/webhooks/{name}"
    return variables


def refused(
    provider: Provider,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    now: float | None = NOW,
) -> type[VerificationError]:
    """The class of the refusal of this request (whose reason must not leak a secret)."""
    with pytest.raises(VerificationError) as info:
        provider.verify(body, headers or {}, now=now)
    for secret in provider.secrets:
        assert secret not in info.value.reason
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


def accepted_once(client: httpx.Client, path: str, body: bytes, headers: Mapping[str, str]) -> None:
    """A signed POST is stored as one event; the same body again is a duplicate."""
    posted = client.post(path, content=body, headers=dict(headers))
    assert (posted.status_code, posted.json()["events"]) == (200, 1), posted.text
    again = client.post(path, content=body, headers=dict(headers))
    assert (again.status_code, again.json()["duplicates"]) == (200, 1), again.text
    source = path.split("?")[0].rsplit("/", 1)[-1]
    assert f'events_accepted_total{{source="{source}"}} 1.0' in client.get("/metrics").text


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
    variables = {f"{name.upper()}_WEBHOOK_SECRET": secret}
    with zero_config_gateway(variables, tmp_path) as (gw, client, env):
        signed = headers() if callable(headers) else headers
        accepted_once(
            client, f"/webhooks/{name}", body, {"content-type": "application/json", **signed}
        )
        unsigned = client.post(f"/webhooks/{name}", content=body)
        assert unsigned.status_code == 401
        assert main(["send", name, "--sample", sample, "--url", gw.url], env) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[1] == "200 OK: accepted: 1 event(s) stored, 0 duplicate(s) skipped"


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
