"""``okta``: event hook requests as Okta's event hook docs describe them (Okta signs nothing and
publishes no receiver library): the hook's authentication secret verbatim in ``Authorization``
on every request, the one-time GET with ``X-Okta-Verification-Challenge`` included.
https://developer.okta.com/docs/concepts/event-hooks/ ("One-time verification request",
"HTTP headers", "Sample event delivery payload")"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

import gateway
from gateway.config import config_from_env
from gateway.providers import MissingSignature, SignatureMismatch, get_provider
from gateway.webhook import PayloadError, Webhook
from tests.provider_support import refused as refused_by
from tests.server import run_gateway
from transforms.okta import okta as okta_transform

BODY = (Path(gateway.__file__).parent / "samples" / "okta" / "user.session.start.json").read_bytes()
SECRET = "okta-hook-9f8e7d6c5b4a"


def refused(headers: dict[str, str], secrets: tuple[str, ...] = (SECRET,), **options: str) -> type:
    return refused_by(get_provider("okta")(list(secrets), 300, options), BODY, headers, None)


def test_the_authentication_header_is_the_only_check() -> None:
    provider = get_provider("okta")([SECRET], 300, {})
    provider.verify(BODY, {"authorization": SECRET})
    provider.verify(BODY + b" ", {"authorization": SECRET})  # the token does not bind the body
    assert provider.body_dedup()  # so a replayed body is dropped by its digest
    assert provider.sign(BODY) == {"authorization": SECRET}
    assert refused({"authorization": SECRET + "x"}) is SignatureMismatch  # key
    assert refused({"authorization": "Bearer " + SECRET}) is SignatureMismatch
    assert refused({}) is MissingSignature
    rotated = get_provider("okta")(["old-secret-1", SECRET], 300, {})
    rotated.verify(BODY, {"authorization": SECRET})
    custom = get_provider("okta")([SECRET], 300, {"header": "X-Okta-Hook-Secret"})
    custom.verify(BODY, {"x-okta-hook-secret": SECRET})
    assert refused({"authorization": SECRET}, header="X-Okta-Hook-Secret") is MissingSignature
    cls = get_provider("okta")
    assert cls.secret_problem(SECRET) is None
    assert "printable ASCII" in str(cls.secret_problem(" padded "))


def test_verification_needs_the_header_and_is_never_stored(tmp_path: Path) -> None:
    env = {"OKTA_WEBHOOK_SECRET": SECRET, "GATEWAY_DATA_DIR": str(tmp_path)}
    config = config_from_env(env)
    config.forwarder.enabled = False
    challenge = {"x-okta-verification-challenge": "Aq2N7Vo2-Yd6hr7mVfzI2rR7nGmMPh9qQ7nuXqaQ"}
    with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        ok = client.get("/webhooks/okta", headers={**challenge, "authorization": SECRET})
        assert (ok.status_code, ok.json()) == (
            200, {"verification": "Aq2N7Vo2-Yd6hr7mVfzI2rR7nGmMPh9qQ7nuXqaQ"}
        )  # fmt: skip
        anonymous = client.get("/webhooks/okta", headers=challenge)
        assert anonymous.status_code == 401 and anonymous.json()["reason"] == "missing_signature"
        wrong = client.get("/webhooks/okta", headers={**challenge, "authorization": "guess"})
        assert wrong.status_code == 401 and wrong.json()["reason"] == "signature_mismatch"
        bare = client.get("/webhooks/okta", headers={"authorization": SECRET})
        assert bare.status_code == 401
        posted = client.post(
            "/webhooks/okta",
            content=BODY,
            headers={"authorization": SECRET, "content-type": "application/json"},
        )
        assert (posted.status_code, posted.json()["events"]) == (200, 1)
        again = client.post("/webhooks/okta", content=BODY, headers={"authorization": SECRET})
        assert again.json()["duplicates"] == 1
        empty = client.post(
            "/webhooks/okta", content=b'{"data": {}}', headers={"authorization": SECRET}
        )
        assert empty.status_code == 400
        metrics = client.get("/metrics").text
        assert 'handshakes_total{provider="okta",source="okta"} 1.0' in metrics
        assert 'events_accepted_total{source="okta"} 1.0' in metrics


def test_transform_one_event_per_log_event() -> None:
    [event] = okta_transform(Webhook(source="okta", provider="okta", body=BODY))
    assert (event.name, event.id, event.ts) == (
        "okta/user.session.start", "okta-f790999f-fe87-467a-9880-6982a583986c", 1522275787777
    )  # fmt: skip
    assert event.data["actor"]["alternateId"] == "admin@example.com"
    payload = json.loads(BODY)
    second = {**payload["data"]["events"][0], "uuid": "u-2", "eventType":
              "user.lifecycle.deactivate", "published": None}  # fmt: skip
    payload["data"]["events"].append(second)
    both = okta_transform(
        Webhook(source="okta", provider="okta", body=json.dumps(payload).encode())
    )
    assert [(e.name, e.id) for e in both] == [
        ("okta/user.session.start", "okta-f790999f-fe87-467a-9880-6982a583986c"),
        ("okta/user.lifecycle.deactivate", "okta-u-2"),
    ]
    assert both[1].ts == 1553705993032  # no published: the delivery's eventTime
    with pytest.raises(PayloadError):
        get_provider("okta")([SECRET], 300, {}).check_payload(
            Webhook(source="okta", provider="okta", body=b'{"data": {"events": [1]}}')
        )
