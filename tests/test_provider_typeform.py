"""``typeform``: ``Typeform-Signature`` computed as Typeform's "Secure your webhooks" page does
(https://www.typeform.com/developers/webhooks/secure-your-webhooks/: ``"sha256=" +``
base64 HMAC-SHA256 of the raw body with the webhook's secret). ``@typeform/api-client`` has no
verifier to sign with."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

import gateway
from gateway.providers import MalformedSignature, MissingSignature, SignatureMismatch, get_provider
from gateway.webhook import Webhook
from tests.provider_support import refused, zero_config_round_trip
from transforms.typeform import typeform as typeform_transform

SAMPLES = Path(gateway.__file__).parent / "samples" / "typeform"
BODY = (SAMPLES / "form_response.submitted.json").read_bytes()
SECRET = "5f0c1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b"
TYPEFORM = get_provider("typeform")([SECRET], 300, {})


def recipe(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """``'sha256=' + Base64.strict_encode64(OpenSSL::HMAC.digest('sha256', secret, body))``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"typeform-signature": "sha256=" + base64.b64encode(digest).decode()}


def test_signature_broken_one_way_at_a_time() -> None:
    good = recipe(BODY)
    TYPEFORM.verify(BODY, good)
    assert TYPEFORM.sign(BODY) == good
    assert refused(TYPEFORM, BODY.replace(b"laura@", b"mallory@"), good) is SignatureMismatch
    zeros = "sha256=" + base64.b64encode(bytes(32)).decode()
    assert refused(TYPEFORM, BODY, {"typeform-signature": zeros}) is SignatureMismatch
    assert refused(TYPEFORM, BODY, recipe(BODY, "another-secret")) is SignatureMismatch  # key
    hex_digest = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert refused(TYPEFORM, BODY, {"typeform-signature": hex_digest}) is MalformedSignature
    bare = {"typeform-signature": good["typeform-signature"].removeprefix("sha256=")}
    assert refused(TYPEFORM, BODY, bare) is MalformedSignature
    assert refused(TYPEFORM, BODY, {}) is MissingSignature
    assert TYPEFORM.body_dedup()  # no signed timestamp: a replayed body is a duplicate
    assert TYPEFORM.secret_problem(SECRET) is None


def test_transform_submitted_and_partial_responses() -> None:
    event = typeform_transform(Webhook(source="typeform", provider="typeform", body=BODY))
    assert event.name == "typeform/form_response.submitted"
    assert event.id == "typeform-01HWX3T1N4GZQ8J6K2R7V5B9CD"
    assert event.ts == 1714557600000
    assert event.data["form_response"]["form_id"] == "lT4Z3j"
    partial = json.loads(BODY)
    partial["event_type"] = "form_response_partial"
    del partial["form_response"]["submitted_at"]
    body = json.dumps(partial).encode()
    event = typeform_transform(Webhook(source="typeform", provider="typeform", body=body))
    assert event.name == "typeform/form_response.partial"
    assert event.ts == 1714557492000  # landed_at
    with pytest.raises(ValueError, match="event_type"):
        typeform_transform(Webhook(source="typeform", provider="typeform", body=b"{}"))


def test_zero_config_variable_enables_the_route_and_send_signs_the_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zero_config_round_trip(
        tmp_path, capsys, "typeform", SECRET, BODY, recipe(BODY), "form_response.submitted"
    )
