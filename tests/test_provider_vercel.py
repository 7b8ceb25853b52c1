"""``vercel``: ``x-vercel-signature`` computed as Vercel's "Securing webhooks" recipe does
(https://vercel.com/docs/webhooks/webhooks-api#securing-webhooks: hex HMAC-SHA1 of the raw body
with the webhook's secret or the integration's client secret). Neither ``@vercel/sdk`` (npm) nor
``vercel`` (PyPI) has a webhook verifier to sign with."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

import gateway
from gateway.providers import MalformedSignature, MissingSignature, SignatureMismatch, get_provider
from gateway.webhook import Webhook
from tests.provider_support import refused, zero_config_round_trip
from transforms.vercel import vercel as vercel_transform

SAMPLE = Path(gateway.__file__).parent / "samples" / "vercel" / "deployment.created.json"
BODY = SAMPLE.read_bytes()
SECRET = "Wz8kQd3nR5tYp1Lm7Hs9Vb2Xc4Fg6Jk0"
VERCEL = get_provider("vercel")([SECRET], 300, {})


def recipe(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """``crypto.createHmac('sha1', secret).update(rawBody).digest('hex')``, as Vercel's docs."""
    return {"x-vercel-signature": hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}


def test_signature_broken_one_way_at_a_time() -> None:
    good = recipe(BODY)
    VERCEL.verify(BODY, good)
    assert VERCEL.sign(BODY) == good
    assert refused(VERCEL, BODY.replace(b"production", b"preview"), good) is SignatureMismatch
    assert refused(VERCEL, BODY, {"x-vercel-signature": "0" * 40}) is SignatureMismatch
    assert refused(VERCEL, BODY, recipe(BODY, "another-secret")) is SignatureMismatch  # key
    sha256 = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert refused(VERCEL, BODY, {"x-vercel-signature": sha256}) is MalformedSignature
    assert refused(VERCEL, BODY, {"x-vercel-signature": "sha1=zz"}) is MalformedSignature
    assert refused(VERCEL, BODY, {}) is MissingSignature
    assert VERCEL.body_dedup()  # no signed timestamp: a replayed body is a duplicate
    assert VERCEL.secret_problem(SECRET) is None


def test_transform_on_the_sample() -> None:
    event = vercel_transform(Webhook(source="vercel", provider="vercel", body=BODY))
    assert event.name == "vercel/deployment.created"
    assert event.id == "vercel-uE7rcy7R9ZryX0GwUjpVvzeH"
    assert event.ts == 1714557600123
    assert event.data["payload"]["deployment"]["id"] == "dpl_89qyp1cskzkLrVicDaZoDbjyHuDJ"
    upgraded = BODY.replace(b'"deployment.created"', b'"integration-configuration.removed"')
    other = vercel_transform(Webhook(source="vercel", provider="vercel", body=upgraded))
    assert other.name == "vercel/integration_configuration.removed"
    with pytest.raises(ValueError, match="type string"):
        vercel_transform(Webhook(source="vercel", provider="vercel", body=b'{"id": "x"}'))


def test_zero_config_variable_enables_the_route_and_send_signs_the_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zero_config_round_trip(
        tmp_path, capsys, "vercel", SECRET, BODY, recipe(BODY), "deployment.created"
    )
