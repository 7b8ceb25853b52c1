"""Random headers and bodies at every receiver over a real socket: never a 5xx, never a forgery."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import make_config
from tests.server import ThreadedServer, run_gateway

HEADER_NAMES = [
    "Stripe-Signature",
    "X-Slack-Signature",
    "X-Slack-Request-Timestamp",
    "X-Hub-Signature",
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
    with run_gateway(make_config(tmp_path_factory.mktemp("prop"))) as server:
        yield server


@pytest.mark.parametrize("source", ["stripe", "slack", "intercom"])
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
