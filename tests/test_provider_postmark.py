"""``postmark``: Basic credentials as Postmark sends them for a webhook's HTTP Auth (RFC 7617,
built with httpx's ``BasicAuth``); Postmark's SDKs configure webhooks but verify nothing."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

import gateway
from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
    get_provider,
)
from gateway.webhook import Webhook
from tests.provider_support import refused as refused_at_now
from tests.provider_support import zero_config_gateway
from transforms.postmark import postmark as postmark_transform

BODY = (Path(gateway.__file__).parent / "samples" / "postmark" / "delivery.json").read_bytes()
CREDENTIALS = "postmark-hooks:Xq8v2Lr7pT4w"


def basic(credentials: str = CREDENTIALS) -> dict[str, str]:
    user, _, password = credentials.partition(":")
    request = httpx.Request("POST", "https://gw.example.com/webhooks/postmark")
    sent = next(httpx.BasicAuth(user, password).auth_flow(request))
    return {"authorization": sent.headers["authorization"]}


def refused(headers: dict[str, str], secret: str = CREDENTIALS) -> type:
    return refused_at_now(get_provider("postmark")([secret], 300, {}), BODY, headers)


def test_basic_credentials_broken_one_way_at_a_time() -> None:
    provider = get_provider("postmark")(["old:pair", CREDENTIALS], 300, {})
    provider.verify(BODY, basic())
    assert get_provider("postmark")([CREDENTIALS], 300, {}).sign(BODY) == basic()
    assert refused(basic("postmark-hooks:wrong")) is SignatureMismatch  # password
    assert refused(basic("someone:Xq8v2Lr7pT4w")) is SignatureMismatch  # user
    assert refused(basic(), "postmark-hooks:another") is SignatureMismatch  # key
    assert refused({"authorization": "Bearer Xq8v2Lr7pT4w"}) is MalformedSignature
    assert refused({"authorization": "Basic not*base64"}) is MalformedSignature
    assert refused({}) is MissingSignature
    problem = get_provider("postmark").secret_problem("no-colon")
    # read after `check`'s "secret #N ": it says what is wrong, then what is expected
    assert problem == "is not user:password (the Basic-auth credentials set on the webhook)"
    assert get_provider("postmark").secret_problem(CREDENTIALS) is None


def test_transform_names_ids_and_times() -> None:
    event = postmark_transform(Webhook(source="postmark", provider="postmark", body=BODY))
    assert event.name == "postmark/message.delivered"
    assert event.id == (
        "postmark-Delivery-00000000-0000-0000-0000-000000000000-john@example.com"
        "-2024-05-01T10:00:00.1234567-04:00"
    )
    assert event.ts == 1714572000123
    assert event.data == json.loads(BODY)
    bounce = {"RecordType": "Bounce", "ID": 42, "MessageID": "m-1", "Email": "a@example.com",
              "BouncedAt": "2024-05-01T10:00:00Z", "Type": "HardBounce"}  # fmt: skip
    opened = {"RecordType": "Open", "MessageID": "m-1", "Recipient": "a@example.com",
              "ReceivedAt": "2024-05-01T10:05:00Z", "FirstOpen": False}  # fmt: skip
    inbound = {"MessageID": "in-1", "FromFull": {"Email": "b@example.com"},
               "Date": "Wed, 1 May 2024 10:00:00 +0000"}  # fmt: skip
    found = [
        postmark_transform(Webhook(source="p", provider="postmark", body=json.dumps(p).encode()))
        for p in (bounce, opened, inbound)
    ]
    assert [(e.name, e.ts) for e in found] == [
        ("postmark/message.bounced", 1714557600000),
        ("postmark/message.opened", 1714557900000),
        ("postmark/inbound.received", 1714557600000),
    ]
    assert found[1].id == "postmark-Open-m-1-a@example.com-2024-05-01T10:05:00Z"
    traced = Webhook(source="p", provider="postmark", body=BODY,
                     headers={"x-pm-webhook-trace-id": "3c1e5b2a-trace"})  # fmt: skip
    assert postmark_transform(traced).id == "postmark-3c1e5b2a-trace"
    assert found[2].id == "postmark-Inbound-in-1"


def test_zero_config_over_a_real_socket(tmp_path: Path) -> None:
    user, _, password = CREDENTIALS.partition(":")
    with zero_config_gateway({"POSTMARK_WEBHOOK_SECRET": CREDENTIALS}, tmp_path) as (_, client, _):
        headers = {"content-type": "application/json"}
        auth = httpx.BasicAuth(user, password)
        ok = client.post("/webhooks/postmark", content=BODY, headers=headers, auth=auth)
        assert (ok.status_code, ok.json()["events"]) == (200, 1)
        again = client.post("/webhooks/postmark", content=BODY, headers=headers, auth=auth)
        assert again.json()["duplicates"] == 1
        anonymous = client.post("/webhooks/postmark", content=BODY, headers=headers)
        assert anonymous.status_code == 401
        wrong = httpx.BasicAuth(user, "guess")
        assert (
            client.post("/webhooks/postmark", content=BODY, headers=headers, auth=wrong).status_code
            == 401
        )
