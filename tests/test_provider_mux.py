"""``mux``: ``Mux-Signature: t=..,v1=..`` cross-checked with ``webhooks.unwrap`` of
``@mux/mux-node`` (npm; Mux's Python SDK has no webhook verifier) through tests/npm_sdk.py."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

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
from transforms.mux import mux as mux_transform

SAMPLE = (Path(gateway.__file__).parent / "samples" / "mux" / "video.asset.ready.json").read_bytes()
SECRET = "okhlm6l4r0ljv6fa0h0o9vn0c2qevd1a"
NOW = 1_714_557_600

#: each case unwrapped by the SDK: the event's id, or the SDK's error message
MUX_SDK = """
import Mux from "@mux/mux-node";
async function main(cases) {
  const mux = new Mux({ tokenId: "unused", tokenSecret: "unused" });
  const results = [];
  for (const { secret, body, headers } of cases) {
    try {
      results.push((await mux.webhooks.unwrap(body, headers, secret)).id);
    } catch (error) {
      results.push(error.message);
    }
  }
  return results;
}
"""


def mux(secret: str = SECRET) -> Provider:
    return get_provider("mux")([secret], 300, {})


def signed(body: bytes, ts: int, secret: str = SECRET) -> dict[str, str]:
    """As Mux's guide: hex HMAC-SHA256 of ``{t}.{body}``
    (https://www.mux.com/docs/core/verify-webhook-signatures)."""
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"mux-signature": f"t={ts},v1={digest}"}


def refused(body: bytes, headers: dict[str, str], now: float = NOW, secret: str = SECRET) -> type:
    return refused_by(mux(secret), body, headers, now)


def test_the_sdk_and_the_gateway_agree_on_each_signed_part_broken_one_way_at_a_time() -> None:
    now = int(time.time())
    good = mux().sign(SAMPLE, timestamp=now)
    assert good == signed(SAMPLE, now)
    rotated = {"mux-signature": f"{good['mux-signature']},v1={'0' * 64}"}
    cases = {
        "good": (SECRET, SAMPLE, good),
        "rotated": (SECRET, SAMPLE, rotated),
        "body": (SECRET, SAMPLE.replace(b"Production", b"Staging"), good),
        "timestamp": (
            SECRET,
            SAMPLE,
            {"mux-signature": good["mux-signature"].replace(f"t={now}", f"t={now - 1}")},
        ),
        "signature": (SECRET, SAMPLE, signed(SAMPLE, now, "other")),
        "key": ("other", SAMPLE, good),
        "old": (SECRET, SAMPLE, signed(SAMPLE, now - 301)),
    }
    payload = [{"secret": s, "body": b.decode(), "headers": h} for s, b, h in cases.values()]
    sdk = dict(zip(cases, run_node(MUX_SDK, payload), strict=True))
    event_id = "3a56ac3d-33da-4366-855b-f592d898409d"
    assert sdk["good"] == sdk["rotated"] == event_id
    mismatch = "No signatures found matching the expected signature for payload."
    assert sdk["body"] == sdk["timestamp"] == sdk["signature"] == sdk["key"] == mismatch
    assert sdk["old"] == "Webhook timestamp is too old"
    for name in ("good", "rotated"):
        mux().verify(SAMPLE, cases[name][2])
    gateway_says = {
        name: refused(body, headers, now=time.time(), secret=secret)
        for name, (secret, body, headers) in cases.items()
        if name not in ("good", "rotated")
    }
    assert gateway_says == {
        "body": SignatureMismatch,
        "timestamp": SignatureMismatch,
        "signature": SignatureMismatch,
        "key": SignatureMismatch,
        "old": TimestampOutOfTolerance,
    }


def test_timestamp_window_both_directions_and_malformed_headers() -> None:
    headers = signed(SAMPLE, NOW)
    for skew in (-300, 300):
        mux().verify(SAMPLE, headers, now=NOW + skew)
    # the SDK refuses only old timestamps; the gateway also refuses ones from the future
    for skew in (-301, 301):
        assert refused(SAMPLE, headers, now=NOW + skew) is TimestampOutOfTolerance
    assert refused(SAMPLE, {}) is MissingSignature
    assert refused(SAMPLE, {"mux-signature": f"v1={'0' * 64}"}) is MalformedSignature  # no t=
    assert refused(SAMPLE, {"mux-signature": f"t={NOW}"}) is MalformedSignature  # no v1=
    assert refused(SAMPLE, {"mux-signature": f"t=soon,v1={'0' * 64}"}) is MalformedSignature
    assert mux().secret_problem(SECRET) is None
    assert not mux().body_dedup()


def test_transform_on_the_sample() -> None:
    event = mux_transform(Webhook(source="mux", provider="mux", body=SAMPLE))
    assert event.name == "mux/video.asset.ready"
    assert event.id == "mux-3a56ac3d-33da-4366-855b-f592d898409d"
    assert event.ts == 1714557600000
    assert event.data["data"]["status"] == "ready"


def test_zero_config_variable_enables_the_route_and_send_signs_the_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = mux().sign(SAMPLE)  # the redelivery is a duplicate by the event id
    zero_config_round_trip(tmp_path, capsys, "mux", SECRET, SAMPLE, headers, "video.asset.ready")
