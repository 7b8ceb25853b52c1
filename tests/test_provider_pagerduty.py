"""``pagerduty``: PagerDuty's PyPI and npm libraries (``pagerduty``, ``pdpyras``,
``@pagerduty/pdjs``) are API clients without a webhook verifier, so requests are signed with the
recipe of PagerDuty's docs and checked with the verifier those docs print ("Verifying
Signatures" on https://developer.pagerduty.com/docs/, source
https://github.com/PagerDuty/developer-docs/blob/main/docs/webhooks/04-Signatures.md):
``v1=`` + hex HMAC-SHA256 of the body, one per secret, comma-separated."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

import gateway
from gateway.config import config_from_env
from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
    get_provider,
)
from gateway.webhook import PayloadError, Webhook
from tests.provider_support import refused as refused_by
from transforms.pagerduty import pagerduty as pagerduty_transform

SAMPLE = Path(gateway.__file__).parent / "samples" / "pagerduty" / "incident.triggered.json"
BODY = SAMPLE.read_bytes()
SECRET = "ZHVtbXktcGFnZXJkdXR5LXN1YnNjcmlwdGlvbi1zZWNyZXQtMTIzNDU2Nzg5MA=="
OLD_SECRET = "cGFnZXJkdXR5LW9sZC1zdWJzY3JpcHRpb24tc2VjcmV0"
NOW = 1_714_557_600


def signature(body: bytes, secret: str = SECRET) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def documented_verify(key: str, payload: str, signatures: str) -> bool:
    """PagerDuty's own Python example (``PagerDutyVerifier.verify``), as printed in its docs."""
    byte_key = key.encode("ASCII")
    signed = "v1=" + hmac.new(byte_key, payload.encode(), hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(signed, item) for item in signatures.split(","))


def refused(body: bytes, header: str | None, secret: str = SECRET) -> type:
    headers = {} if header is None else {"x-pagerduty-signature": header}
    return refused_by(get_provider("pagerduty")([secret], 300, {}), body, headers)


def test_signature_broken_one_way_at_a_time() -> None:
    provider = get_provider("pagerduty")([SECRET], 300, {})
    signed = provider.sign(BODY)["x-pagerduty-signature"]
    assert signed == signature(BODY)
    assert documented_verify(SECRET, BODY.decode(), signed)
    provider.verify(BODY, {"x-pagerduty-signature": signed}, now=NOW)
    assert refused(BODY + b" ", signed) is SignatureMismatch  # body
    assert refused(BODY, signed, secret="another-secret") is SignatureMismatch  # key
    assert refused(BODY, "v1=" + "0" * 64) is SignatureMismatch  # signature
    assert refused(BODY, "v2=" + "0" * 64) is MalformedSignature  # no v1 signature
    assert refused(BODY, "v1=not-hex") is MalformedSignature
    assert refused(BODY, None) is MissingSignature


def test_any_matching_signature_is_accepted_while_secrets_rotate() -> None:
    """PagerDuty sends one ``v1`` per secret during a rotation; the gateway may hold several."""
    both = f"{signature(BODY, OLD_SECRET)},{signature(BODY)}"
    assert documented_verify(SECRET, BODY.decode(), both)
    get_provider("pagerduty")([SECRET], 300, {}).verify(BODY, {"x-pagerduty-signature": both})
    rolled = get_provider("pagerduty")(["a-newer-secret", OLD_SECRET], 300, {})
    rolled.verify(BODY, {"x-pagerduty-signature": signature(BODY, OLD_SECRET)})
    assert refused(BODY, f"{signature(BODY, 'x')},{signature(BODY, 'y')}") is SignatureMismatch


def test_dedup_id_payload_check_and_transform() -> None:
    provider = get_provider("pagerduty")([SECRET], 300, {})
    assert not provider.signs_timestamp and provider.body_dedup()  # no signed timestamp
    webhook = Webhook(source="pagerduty", provider="pagerduty", body=BODY, received_at=NOW)
    assert provider.delivery_id(webhook) == "5ac64822-4adc-4fda-ade0-410becf0de4f"
    event = pagerduty_transform(webhook)
    assert (event.name, event.id, event.ts) == (
        "pagerduty/incident.triggered", "pagerduty-5ac64822-4adc-4fda-ade0-410becf0de4f",
        NOW * 1000 + 123,
    )  # fmt: skip
    assert event.data["event"]["data"]["title"] == "A little bump in the road"
    ping = (b'{"event":{"id":"01DEN","event_type":"pagey.ping","resource_type":"pagey",'
            b'"occurred_at":null,"data":{"message":"Hello from your friend Pagey!"}}}')  # fmt: skip
    made = pagerduty_transform(Webhook(source="pagerduty", provider="pagerduty", body=ping,
                                       received_at=NOW))  # fmt: skip
    assert (made.name, made.id, made.ts) == ("pagerduty/pagey.ping", "pagerduty-01DEN", NOW * 1000)
    with pytest.raises(PayloadError, match="event object"):
        provider.check_payload(Webhook(source="pagerduty", provider="pagerduty", body=b"{}"))


def test_zero_config() -> None:
    [source] = config_from_env({"PAGERDUTY_WEBHOOK_SECRET": SECRET}).sources
    assert (source.name, source.provider) == ("pagerduty", "pagerduty")
