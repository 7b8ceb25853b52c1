"""``linear``: Linear-Signature (hex HMAC-SHA256 of the body) and the signed in-body
``webhookTimestamp``, cross-checked with ``LinearWebhookClient`` from ``@linear/sdk`` (npm: Linear
publishes no PyPI SDK) through tests/npm_sdk.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import gateway
from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    Provider,
    SignatureMismatch,
    TimestampOutOfTolerance,
    get_provider,
)
from gateway.webhook import Webhook
from tests.npm_sdk import run_node
from tests.provider_support import refused as refused_by
from tests.provider_support import zero_config_round_trip
from transforms.linear import linear as linear_transform

SAMPLE = (Path(gateway.__file__).parent / "samples" / "linear" / "issue.create.json").read_bytes()
SECRET = "lin_wh_4tXx9YfRk2Jc0sQv7LmN8pBz3HdGe6Wa"
NOW = 1_714_557_600

#: each case verified by the SDK: true, or the SDK's error message
LINEAR_SDK = """
import { LinearWebhookClient, LINEAR_WEBHOOK_SIGNATURE_HEADER } from "@linear/sdk/webhooks";
async function main(cases) {
  return cases.map(({ secret, body, headers }) => {
    try {
      const client = new LinearWebhookClient(secret);
      return client.verify(Buffer.from(body, "utf8"), headers[LINEAR_WEBHOOK_SIGNATURE_HEADER]);
    } catch (error) {
      return error.message;
    }
  });
}
"""


def body_at(ms: float | None, base: bytes = SAMPLE) -> bytes:
    payload = json.loads(base)
    if ms is None:
        del payload["webhookTimestamp"]
    else:
        payload["webhookTimestamp"] = ms
    return json.dumps(payload).encode()


def linear(secret: str = SECRET, tolerance: int | None = None) -> Provider:
    """The provider as a source without ``tolerance`` gets it (Linear's 60 s) unless given."""
    cls = get_provider("linear")
    return cls([secret], cls.default_tolerance if tolerance is None else tolerance, {})


def refused(body: bytes, headers: dict[str, str], now: float = NOW, **kw: Any) -> type:
    return refused_by(linear(**kw), body, headers, now)


def test_the_sdk_and_the_gateway_agree_on_each_signed_part_broken_one_way_at_a_time() -> None:
    now_ms = int(time.time() * 1000)
    fresh = body_at(now_ms)
    # well outside the 60 s window: node starts (and reads the clock) seconds later on a busy host
    stale, future = body_at(now_ms - 120_000), body_at(now_ms + 120_000)
    good = linear().sign(fresh)
    cases = {
        "good": (SECRET, fresh, good),
        "body": (SECRET, fresh.replace(b"Ada", b"Eve"), good),
        "signature": (SECRET, fresh, {"linear-signature": "0" * 64}),
        "key": ("another-secret", fresh, good),
        "old": (SECRET, stale, linear().sign(stale)),
        "future": (SECRET, future, linear().sign(future)),
    }
    payload = [{"secret": s, "body": b.decode(), "headers": h} for s, b, h in cases.values()]
    sdk = dict(zip(cases, run_node(LINEAR_SDK, payload), strict=True))
    assert sdk["good"] is True
    assert sdk["body"] == sdk["signature"] == sdk["key"] == "Invalid webhook signature"
    assert sdk["old"] == sdk["future"] == "Invalid webhook timestamp"
    linear().verify(fresh, good)
    gateway_says = {
        name: refused(body, headers, now=time.time(), secret=secret)
        for name, (secret, body, headers) in cases.items()
        if name != "good"
    }
    assert gateway_says == {
        "body": SignatureMismatch,
        "signature": SignatureMismatch,
        "key": SignatureMismatch,
        "old": TimestampOutOfTolerance,
        "future": TimestampOutOfTolerance,
    }


def test_timestamp_window_is_60_seconds_both_ways_by_default() -> None:
    body = body_at(NOW * 1000)
    headers = linear().sign(body)
    assert linear().tolerance == 60  # LinearWebhookClient.verify: |now - webhookTimestamp| <= 60 s
    for skew in (-60, 60):
        linear().verify(body, headers, now=NOW + skew)
    for skew in (-61, 61):
        assert refused(body, headers, now=NOW + skew) is TimestampOutOfTolerance
    assert refused(body, headers, now=NOW + 31, tolerance=30) is TimestampOutOfTolerance
    linear(tolerance=0).verify(body, headers, now=NOW + 3600)  # tolerance 0: no window
    # the header timestamp Linear used to send is not signed: only the body's counts
    linear().verify(body, {**headers, "linear-timestamp": "1"}, now=NOW)


def test_a_sources_own_tolerance_wins_over_linears_60_seconds() -> None:
    """As for every provider (docs: "a source's tolerance always wins"): a receiver whose clock
    drifts may widen the window; it is not silently cut back to 60 s."""
    body = body_at(NOW * 1000)
    headers = linear().sign(body)
    for skew in (-120, 90, 120):
        linear(tolerance=120).verify(body, headers, now=NOW + skew)
    for skew in (-121, 121):
        assert refused(body, headers, now=NOW + skew, tolerance=120) is TimestampOutOfTolerance


def test_malformed_or_missing_parts() -> None:
    no_ts = body_at(None)
    assert refused(no_ts, linear().sign(no_ts)) is MissingSignature
    text_ts = body_at(None).replace(b"{", b'{"webhookTimestamp": "1714557600456", ', 1)
    assert refused(text_ts, linear().sign(text_ts)) is MalformedSignature
    for odd in (b"true", b"1" + b"0" * 400, b"1e400"):
        weird = body_at(None).replace(b"{", b'{"webhookTimestamp": ' + odd + b", ", 1)
        assert refused(weird, linear().sign(weird)) is MalformedSignature
    assert refused(b"[1]", linear().sign(b"[1]")) is MissingSignature
    assert refused(b"not json", linear().sign(b"not json")) is MalformedSignature
    assert refused(SAMPLE, {}) is MissingSignature
    assert refused(SAMPLE, {"linear-signature": "sha256=xyz"}) is MalformedSignature
    assert linear().secret_problem(SECRET) is None
    problem = linear().secret_problem("lin_api_0123456789abcdef")
    assert problem is not None and "API key" in problem
    assert not linear().body_dedup()  # the signed timestamp bounds replays


def test_transform_names_the_type_and_action_in_snake_case() -> None:
    headers = {"linear-delivery": "234d1a4e-b617-4388-90fe-adc3633d6b72"}
    event = linear_transform(Webhook(source="linear", provider="linear", body=SAMPLE,
                                     headers=headers))  # fmt: skip
    assert event.name == "linear/issue.create"
    assert event.id == "linear-234d1a4e-b617-4388-90fe-adc3633d6b72"
    assert event.ts == 1714557600123  # createdAt
    assert event.data["data"]["identifier"] == "ENG-123"
    label = SAMPLE.replace(b'"Issue"', b'"IssueLabel"').replace(b'"create"', b'"issueMention"')
    renamed = linear_transform(Webhook(source="linear", provider="linear", body=label))
    assert (renamed.name, renamed.id) == ("linear/issue_label.issue_mention", None)
    assert linear().event_headers("issue_label.create")["linear-event"] == "IssueLabel"


def test_zero_config_variable_enables_the_route_and_send_signs_the_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = body_at(int(time.time() * 1000))
    headers = {**linear().sign(body), "linear-delivery": "d-1"}  # the dedup id
    zero_config_round_trip(tmp_path, capsys, "linear", SECRET, body, headers, "issue.create")
