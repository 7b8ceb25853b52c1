"""Twilio-style signing through the generic HMAC receiver, cross-checked with ``twilio``.

Twilio signs the public URL followed by the form parameters sorted by name (HMAC-SHA1 with the
auth token, base64) in ``X-Twilio-Signature``; the ``twilio`` package's ``RequestValidator``
is the reference implementation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from gateway.config import load_config
from gateway.providers import SignatureMismatch, VerificationError, get_provider
from gateway.providers.generic_hmac import sorted_form
from gateway.webhook import Webhook
from tests.eventapi_standin import event_api
from tests.helpers import fixture
from tests.server import run_gateway
from transforms.hmac import hmac as hmac_transform

TOKEN = "12345abcdef67890fedcba0987654321"
URL = "https://hooks.example.com/webhooks/twilio?tenant=acme"
TWILIO = {
    "header": "X-Twilio-Signature",
    "algorithm": "sha1",
    "encoding": "base64",
    "signed_content": "{url}{form_sorted}",
    "url": URL,
    "format": "form",
    "name_template": "twilio/message.{SmsStatus:lower}",
    "id_path": "MessageSid",
}
BODY = fixture("more/hmac/twilio.sms.received.form")


def provider(*secrets: str, **overrides: Any) -> Any:
    return get_provider("hmac")(list(secrets) or [TOKEN], 300, {**TWILIO, **overrides})


def twilio_signature(body: bytes, url: str = URL, token: str = TOKEN) -> str:
    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    return str(RequestValidator(token).compute_signature(url, params))


def test_twilio_signature_from_the_twilio_package_verifies() -> None:
    signature = twilio_signature(BODY)
    assert RequestValidator(TOKEN).validate(URL, dict(parse_qsl(BODY.decode())), signature)
    provider().verify(BODY, {"x-twilio-signature": signature})
    # rotation: the old and the new auth token are both accepted
    provider("old-token", TOKEN).verify(BODY, {"x-twilio-signature": signature})


@pytest.mark.parametrize(
    ("body", "headers_for"),
    [
        (BODY.replace(b"Body=Hello", b"Body=Hullo"), lambda: twilio_signature(BODY)),
        (BODY + b"&Extra=1", lambda: twilio_signature(BODY)),
        (BODY, lambda: twilio_signature(BODY, url=URL.replace("acme", "other"))),
        (BODY, lambda: twilio_signature(BODY, token="another-token")),
        (b"\xff\xfe=not-utf8", lambda: twilio_signature(BODY)),
        (b"a=1&&&=&", lambda: twilio_signature(BODY)),
    ],
    ids=["tampered-field", "added-field", "other-url", "wrong-token", "not-utf8", "not-a-form"],
)
def test_twilio_forgeries_are_refused(body: bytes, headers_for: Any) -> None:
    with pytest.raises(VerificationError) as info:
        provider().verify(body, {"x-twilio-signature": headers_for()})
    assert isinstance(info.value, SignatureMismatch)
    assert info.value.status_code == 401
    assert TOKEN not in info.value.reason


class MultiValued(dict[str, str]):
    """A form with repeated fields, shaped like Flask's MultiDict as ``twilio`` reads it."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]


def test_sorted_form_matches_twilio_for_repeated_and_blank_fields() -> None:
    pairs = [("b", "2"), ("a", ""), ("b", "1"), ("c", "ü &")]
    body = urlencode(pairs).encode()
    assert sorted_form(body) == "ab1b2cü &".encode()
    # the twilio package signs the same canonical string for a multi-valued field
    validator = RequestValidator(TOKEN)
    expected = validator.compute_signature(
        URL, MultiValued([("b", "2"), ("a", ""), ("b", "1"), ("c", "ü &")])
    )
    provider(url=URL).verify(body, {"x-twilio-signature": expected})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": None}, "uses {url}: set url"),
        ({"signed_content": "{form_sorted}"}, "url is only used by {url}"),
        ({"signed_content": "{url}{form_sorted}{body}"}, "exactly once"),
        ({"signed_content": "{url}"}, "exactly once"),
        ({"url": ""}, "url must be a non-empty string"),
    ],
)
def test_twilio_style_options_are_validated(options: dict[str, Any], message: str) -> None:
    merged = {k: v for k, v in {**TWILIO, **options}.items() if v is not None}
    with pytest.raises(ValueError, match=f"hmac option .*{message}"):
        get_provider("hmac")([TOKEN], 300, merged)


def test_twilio_event_name_and_id_from_the_form() -> None:
    webhook = Webhook(
        source="twilio",
        provider="hmac",
        body=BODY,
        headers={"x-twilio-signature": twilio_signature(BODY)},
        options=TWILIO,
        prefix="twilio",
    )
    result = hmac_transform(webhook)
    events = result if isinstance(result, list) else [result]
    assert len(events) == 1 and events[0] is not None
    event = events[0]
    assert event.name == "twilio/message.received"
    assert event.id == "twilio-SM1f0e8ae6ade43cb3c0ce4525424e404f"
    assert event.data["Body"] == "Hello from Twilio! 👋 & more"


def test_twilio_source_from_a_config_file_over_a_real_socket(tmp_path: Path) -> None:
    """The documented config block, loaded from TOML, accepts Twilio and refuses a forgery."""
    (tmp_path / "token").write_text(TOKEN)
    with event_api() as api:
        toml = f"""
[gateway]
data_dir = "{tmp_path / "data"}"

[[sources]]
name = "twilio"
provider = "hmac"
secrets = ["file:{tmp_path / "token"}"]

[sources.options]
header = "X-Twilio-Signature"
algorithm = "sha1"
encoding = "base64"
signed_content = "{{url}}{{form_sorted}}"
url = "{URL}"
format = "form"
name_template = "twilio/message.{{SmsStatus:lower}}"
id_path = "MessageSid"

[inngest]
base_url = "{api.url}"
event_key = "inline:test-key"

[forwarder]
backoff_base = 0.01
backoff_max = 0.05
idle_poll = 0.02
"""
        path = tmp_path / "gateway.toml"
        path.write_text(toml)
        config = load_config(str(path), {})
        form = {"content-type": "application/x-www-form-urlencoded"}
        with run_gateway(config) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
            forged = client.post(
                "/webhooks/twilio",
                content=BODY,
                headers={**form, "x-twilio-signature": twilio_signature(BODY, token="nope")},
            )
            assert forged.status_code == 401
            assert forged.json()["reason"] == "signature_mismatch"
            genuine = client.post(
                "/webhooks/twilio",
                content=BODY,
                headers={**form, "x-twilio-signature": twilio_signature(BODY)},
            )
            assert genuine.status_code == 200, genuine.text
            assert genuine.json()["events"] == 1
            assert api.wait_for_events(1)
            (event,) = api.events
            assert event["name"] == "twilio/message.received"
            assert event["id"] == "twilio-SM1f0e8ae6ade43cb3c0ce4525424e404f"
            assert event["data"]["From"] == "+14155550199"
