"""The named ``twilio`` provider, cross-checked with the ``twilio`` package's RequestValidator."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator

import gateway
from gateway.providers import (
    Inbound,
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
    VerificationError,
    get_provider,
)
from gateway.providers.twilio import TwilioProvider
from gateway.webhook import Webhook
from tests.provider_support import zero_config_gateway
from transforms.twilio import twilio as twilio_transform

TOKEN = "12345abcdef67890fedcba0987654321"
BASE = "https://hooks.example.com/webhooks/twilio"
FORM = (Path(gateway.__file__).parent / "samples" / "twilio" / "message.received.form").read_bytes()
JSON = b'{"type":"com.twilio.messaging.message.delivered","id":"EZ1","time":"2024-05-01T10:00:00Z"}'


def provider(*tokens: str, url: str = BASE) -> TwilioProvider:
    made = get_provider("twilio")(list(tokens) or [TOKEN], 300, {"url": url})
    assert isinstance(made, TwilioProvider)
    return made


def form_signature(
    url: str, body: bytes = FORM, token: str = TOKEN, algorithm: str | None = None
) -> str:
    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    return str(RequestValidator(token).compute_signature(url, params, algorithm))


def request(body: bytes, signature: str, query: str = "", **headers: str) -> Inbound:
    return Inbound(
        "POST", body, {"x-twilio-signature": signature, **headers}, "/webhooks/twilio", query
    )


def refused(inbound: Inbound, p: TwilioProvider | None = None) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        (p or provider()).verify_request(inbound)
    assert TOKEN not in info.value.reason
    return info.value


def test_form_webhooks_with_and_without_the_port_as_twilio_validates() -> None:
    params = dict(parse_qsl(FORM.decode()))
    for signed_url in (BASE, "https://hooks.example.com:443/webhooks/twilio"):
        signature = form_signature(signed_url)
        assert RequestValidator(TOKEN).validate(BASE, params, signature)
        provider().verify_request(request(FORM, signature))
        # configured with the port, signed without (and the reverse): accepted alike
        provider(url="https://hooks.example.com:443/webhooks/twilio").verify_request(
            request(FORM, signature)
        )
    provider("old-token", TOKEN).verify_request(request(FORM, form_signature(BASE)))
    signed = provider().sign(FORM)
    assert RequestValidator(TOKEN).validate(BASE, params, signed["x-twilio-signature"])


def test_query_string_comes_from_the_request() -> None:
    url = BASE + "?tenant=acme"
    signature = form_signature(url)
    provider().verify_request(request(FORM, signature, "tenant=acme"))
    assert type(refused(request(FORM, signature, "tenant=other"))) is SignatureMismatch


def test_json_webhooks_by_body_sha256() -> None:
    digest = hashlib.sha256(JSON).hexdigest()
    url = f"{BASE}?bodySHA256={digest}"
    signature = str(RequestValidator(TOKEN).compute_signature(url, {}))
    assert RequestValidator(TOKEN).validate(url, JSON.decode(), signature)
    provider().verify_request(request(JSON, signature, f"bodySHA256={digest}"))
    tampered = JSON.replace(b"EZ1", b"EZ2")
    assert not RequestValidator(TOKEN).validate(url, tampered.decode(), signature)
    assert type(refused(request(tampered, signature, f"bodySHA256={digest}"))) is SignatureMismatch
    other = hashlib.sha256(tampered).hexdigest()  # a fresh hash in an unsigned URL
    assert type(refused(request(tampered, signature, f"bodySHA256={other}"))) is SignatureMismatch
    assert type(refused(request(JSON, signature))) is SignatureMismatch  # no hash: not a form


def test_each_signed_part_broken_one_way_at_a_time() -> None:
    signature = form_signature(BASE)
    cases = [
        request(FORM.replace(b"Body=Hello", b"Body=Hullo"), signature),  # body
        request(FORM + b"&Extra=1", signature),  # an added field
        request(FORM, form_signature(BASE + "x")),  # url
        request(FORM, form_signature(BASE)[:-4] + "AAA="),  # signature
        request(FORM, form_signature(BASE, token="another-token")),  # key
    ]
    for inbound in cases:
        assert type(refused(inbound)) is SignatureMismatch
    assert type(refused(request(FORM, ""))) is MissingSignature
    assert type(refused(request(FORM, "not base64!"))) is MalformedSignature


def test_shared_key_hmac_sha256_from_the_settings_header() -> None:
    settings = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    signature = form_signature(BASE, algorithm="HMAC_SHA256")
    inbound = request(FORM, signature, **{"x-twilio-webhooks-signature-settings": settings})
    provider().verify_request(inbound)
    as_sha1 = request(FORM, signature)
    assert type(refused(as_sha1)) is MalformedSignature  # a SHA-256 digest is no SHA-1 one


def test_url_option_is_required() -> None:
    with pytest.raises(ValueError, match="TWILIO_WEBHOOK_URL"):
        get_provider("twilio")([TOKEN], 300, {})
    with pytest.raises(ValueError, match="unknown option"):
        get_provider("twilio")([TOKEN], 300, {"url": BASE, "header": "x"})


def test_transform_names_ids_and_times() -> None:
    webhook = Webhook(source="twilio", provider="twilio", body=FORM, received_at=1_700_000_000.0,
                      headers={"I-Twilio-Idempotency-Token": "a1b2-c3"})  # fmt: skip
    event = twilio_transform(webhook)
    assert (event.name, event.id, event.ts) == (
        "twilio/message.received", "twilio-a1b2-c3", 1_700_000_000_000
    )  # fmt: skip
    assert event.data["Body"] == "Hello from Twilio! 👋 & more"
    call = Webhook(source="twilio", provider="twilio", body=b"CallSid=CA1&CallStatus=in-progress")
    assert (twilio_transform(call).name, twilio_transform(call).id) == (
        "twilio/call.in_progress", "twilio-CA1-in_progress"
    )  # fmt: skip
    streamed = twilio_transform(Webhook(source="twilio", provider="twilio", body=JSON))
    assert (streamed.name, streamed.ts) == ("twilio/message.delivered", 1714557600000)


def test_zero_config_over_a_real_socket_with_idempotency_dedup(tmp_path: Path) -> None:
    url = "http://hooks.example.com/webhooks/twilio"
    with zero_config_gateway(
        {"TWILIO_WEBHOOK_SECRET": TOKEN, "TWILIO_WEBHOOK_URL": url}, tmp_path
    ) as (_, client, _):
        headers = {"x-twilio-signature": form_signature(url),
                   "i-twilio-idempotency-token": "tok-1",
                   "content-type": "application/x-www-form-urlencoded"}  # fmt: skip
        first = client.post("/webhooks/twilio", content=FORM, headers=headers)
        assert (first.status_code, first.json()["events"]) == (200, 1)
        retry = client.post("/webhooks/twilio", content=FORM, headers=headers)
        assert (retry.json()["events"], retry.json()["duplicates"]) == (0, 1)
        forged = client.post("/webhooks/twilio", content=FORM + b"&x=1", headers=headers)
        assert (forged.status_code, forged.json()["reason"]) == (401, "signature_mismatch")
