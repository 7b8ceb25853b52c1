"""Random headers and bodies at every receiver over a real socket: never a 5xx, never a forgery."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import SourceConfig
from tests.helpers import make_config
from tests.server import ThreadedServer, run_gateway
from tests.signing import b64

SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

HEADER_NAMES = [
    "Stripe-Signature",
    "X-Slack-Signature",
    "X-Slack-Request-Timestamp",
    "X-Hub-Signature",
    "X-Hub-Signature-256",
    "X-GitHub-Event",
    "X-Shopify-Hmac-Sha256",
    "X-Shopify-Topic",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "X-Acme-Signature",
    "Content-Type",
    "Content-Length-Extra",
    "X-Request-Id",
]
header_values = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120).map(
        str.strip
    ),
    st.builds(
        lambda t, s: f"t={t},v1={s}",
        st.integers(-10, 2**40),
        st.text("0123456789abcdef", max_size=64),
    ),
    st.builds(lambda t: f"v0={t}", st.text("0123456789abcdef", max_size=64)),
    st.builds(lambda t: f"sha1={t}", st.text("0123456789abcdef", min_size=40, max_size=40)),
    st.builds(lambda t: f"sha256={t}", st.text("0123456789abcdef", min_size=64, max_size=64)),
    st.builds(lambda b: b64(b), st.binary(min_size=32, max_size=32)),
    st.builds(lambda b: f"v1,{b64(b)} v1a,{b64(b + b)}", st.binary(min_size=32, max_size=32)),
    st.integers(0, 2**40).map(str),
    st.sampled_from(["push", "ping", "orders/create", "msg_1"]),
)
bodies = st.one_of(
    st.binary(max_size=2048),
    st.builds(lambda s: s.encode(), st.text(max_size=512)),
    st.just(b'{"type":"url_verification","challenge":"x"}'),
    st.just(b"ssl_check=1"),
    st.just(b"payload=%7B%22type%22%3A%22block_actions%22%7D"),
)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    config = make_config(tmp_path_factory.mktemp("prop"))
    config.sources += [
        SourceConfig(name="github", provider="github", secrets=["inline:gh"]),
        SourceConfig(name="shopify", provider="shopify", secrets=["inline:shop"]),
        SourceConfig(name="standard", provider="standard", secrets=[f"inline:{SW_SECRET}"]),
        SourceConfig(
            name="acme",
            provider="hmac",
            secrets=["inline:acme"],
            options={"header": "X-Acme-Signature", "encoding": "base64"},
        ),
    ]
    with run_gateway(config) as server:
        yield server


@pytest.mark.parametrize(
    "source", ["stripe", "slack", "intercom", "github", "shopify", "standard", "acme"]
)
def test_random_requests_never_crash_or_pass(gw: ThreadedServer, source: str) -> None:
    client = httpx.Client(base_url=gw.url, timeout=10)

    @settings(
        max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        headers=st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=5),
        body=bodies,
    )
    def check(headers: dict[str, str], body: bytes) -> None:
        response = client.post(f"/webhooks/{source}", content=body, headers=headers)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert "error" in response.json()
        else:
            # Only unsigned handshakes may pass without a valid signature: never a stored event.
            assert source == "slack" and body == b"ssl_check=1", (headers, body, response.text)

    try:
        check()
    finally:
        client.close()
    # the worker still serves normally afterwards
    assert httpx.get(f"{gw.url}/healthz").status_code == 200
    stats = gw.config.app.state.gateway.outbox.stats()  # type: ignore[attr-defined]
    assert stats.pending + stats.delivered + stats.leased == 0  # no forgery was stored
