"""``msgraph`` (validationToken echo, clientState in each item) and ``dropbox`` (GET challenge,
``X-Dropbox-Signature``, checked by Dropbox's documented recipe: see the Dropbox section).

Microsoft Graph signs nothing (the ``clientState`` secret travels in the body), so there is no
library to sign with: the requests are built as
https://learn.microsoft.com/graph/change-notifications-delivery-webhooks describes them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import httpx
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
from tests.provider_support import accepted_once, handshakes, recording, refused
from tests.server import run_gateway
from transforms.dropbox import dropbox as dropbox_transform
from transforms.msgraph import msgraph as msgraph_transform

SAMPLES = Path(gateway.__file__).parent / "samples"
GRAPH = (SAMPLES / "msgraph" / "message.created.json").read_bytes()
CLIENT_STATE = "SecretClientState"  # the sample's clientState, as in Microsoft's example
NOW = 1_714_557_600
#: Graph's validation token as its docs and Q&A show it: spaces and colons, URL-encoded
VALIDATION = "Validation: Testing client application reachability for subscription Request-Id: 522a8e7e-096a-494c-aaf1-ac0dcfca45b7"  # noqa: E501


def graph_body(*items: dict[str, Any]) -> bytes:
    return json.dumps({"value": list(items)}).encode()


# -- Microsoft Graph ----------------------------------------------------------------------------


def test_msgraph_client_state_checked_in_every_item() -> None:
    provider = get_provider("msgraph")(["rotated-out", CLIENT_STATE], 300, {})
    provider.verify(GRAPH, {}, now=NOW)
    item = json.loads(GRAPH)["value"][0]
    lifecycle = {"subscriptionId": "7f10", "clientState": CLIENT_STATE,
                 "lifecycleEvent": "reauthorizationRequired", "tenantId": "84bd"}  # fmt: skip
    provider.verify(graph_body(item, lifecycle), {}, now=NOW)
    # the key: another subscription's clientState
    assert refused(get_provider("msgraph")(["other"], 300, {}), GRAPH) is SignatureMismatch
    # the "signature": one forged item beside a genuine one refuses the whole request
    forged = {**item, "clientState": "SecretClientStatf"}
    assert refused(provider, graph_body(item, forged)) is SignatureMismatch
    assert refused(provider, graph_body({**item, "clientState": "x" * 300})) is SignatureMismatch
    missing = {k: v for k, v in item.items() if k != "clientState"}
    assert refused(provider, graph_body(item, missing)) is MissingSignature
    assert refused(provider, graph_body({**item, "clientState": 7})) is MissingSignature
    # the body: nothing to authenticate
    assert refused(provider, b"not json") is MalformedSignature
    assert refused(provider, b'{"value": []}') is MalformedSignature
    assert refused(provider, b'{"value": ["x"]}') is MalformedSignature
    assert refused(provider, b"[]") is MalformedSignature


def test_msgraph_sign_and_secret_format() -> None:
    provider = get_provider("msgraph")([CLIENT_STATE], 300, {})
    assert provider.sign(GRAPH) == {"content-type": "application/json"}
    with pytest.raises(NotImplementedError, match="clientState"):
        get_provider("msgraph")(["mine"], 300, {}).sign(GRAPH)
    cls = get_provider("msgraph")
    assert cls.secret_problem(CLIENT_STATE) is None
    assert "at most 255" in str(cls.secret_problem("x" * 256))


def test_msgraph_one_event_per_item() -> None:
    webhook = Webhook(source="msgraph", provider="msgraph", body=GRAPH, received_at=NOW)
    [event] = msgraph_transform(webhook)
    assert (event.name, event.id, event.ts) == (
        "msgraph/message.created", "msgraph-lsgTZMr9KwAAA", NOW * 1000
    )  # fmt: skip
    assert event.data["resourceData"]["id"] == "AAMkAGUwNjQ4ZjIxAAA="
    drive = {"subscriptionId": "s-1", "clientState": CLIENT_STATE, "changeType": "updated",
             "resource": "drives/b!AbC/root", "tenantId": "t"}  # fmt: skip
    chat = {"subscriptionId": "s-2", "clientState": CLIENT_STATE, "changeType": "created",
            "resource": "chats('19:abc')/messages('1612289765949')",
            "resourceData": {"@odata.type": "#microsoft.graph.chatMessage"}}  # fmt: skip
    events = [{"subscriptionId": "s-3", "clientState": CLIENT_STATE, "changeType": "deleted",
               "resource": "/me/events/AAkALgAAAAAAHYQDEapmEc2byACqAC"}]  # fmt: skip
    removed = {"subscriptionId": "s-4", "clientState": CLIENT_STATE,
               "lifecycleEvent": "subscriptionRemoved"}  # fmt: skip
    missed = {**removed, "lifecycleEvent": "missed"}
    reauth = {**removed, "lifecycleEvent": "reauthorizationRequired"}
    body = graph_body(drive, chat, *events, removed, missed, reauth)
    out = msgraph_transform(Webhook(source="msgraph", provider="msgraph", body=body))
    assert [e.name for e in out] == [
        "msgraph/root.updated",
        "msgraph/chat_message.created",
        "msgraph/events.deleted",
        "msgraph/subscription.removed",
        "msgraph/subscription.missed",
        "msgraph/subscription.reauthorization_required",
    ]
    # no id from Graph: a created/deleted resource (or a versioned one, @odata.etag) is keyed
    # by subscription, change and a digest of the item, stable on a resend ...
    assert out[1].id is not None and out[1].id.startswith("msgraph-s-2-created-")
    assert out[2].id is not None and out[2].id.startswith("msgraph-s-3-deleted-")
    again = msgraph_transform(Webhook(source="msgraph", provider="msgraph", body=body))
    assert [e.id for e in again] == [e.id for e in out]
    # ... but OneDrive's "updated" and the lifecycle notifications repeat the very same item
    # for every later change (and every reminder): keyed, the next one would be dropped
    assert [out[0].id, out[3].id, out[4].id, out[5].id] == [None, None, None, None]
    huge = graph_body({**drive, "resourceData": {"size": 123456789012345678901234567890}})
    [big] = msgraph_transform(Webhook(source="msgraph", provider="msgraph", body=huge))
    assert big.data["resourceData"]["size"] == 123456789012345678901234567890
    versioned = graph_body({**drive, "resourceData": {"@odata.etag": 'W/"CQAAAB"'}})
    [one] = msgraph_transform(Webhook(source="msgraph", provider="msgraph", body=versioned))
    assert one.id is not None and one.id.startswith("msgraph-s-1-updated-")
    with pytest.raises(PayloadError, match="no value list"):
        get_provider("msgraph")([CLIENT_STATE]).check_payload(
            Webhook(source="msgraph", provider="msgraph", body=b'{"value": 1}')
        )
    with pytest.raises(ValueError, match="changeType or a lifecycleEvent"):
        msgraph_transform(Webhook(source="msgraph", provider="msgraph",
                                  body=graph_body({"clientState": CLIENT_STATE})))  # fmt: skip


def test_msgraph_zero_config_validation_then_notifications(tmp_path: Path) -> None:
    env = {"MSGRAPH_WEBHOOK_SECRET": f"old-state,{CLIENT_STATE}", "GATEWAY_DATA_DIR": str(tmp_path)}
    config = recording(config_from_env(env))
    assert [s.provider for s in config.sources] == ["msgraph"]
    with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        # Graph URL-encodes the token; the answer is the decoded token as text/plain
        answer = client.post(
            "/webhooks/msgraph",
            params={"validationToken": VALIDATION},
            headers={"content-type": "text/plain; charset=utf-8"},
        )
        assert (answer.status_code, answer.text) == (200, VALIDATION)
        assert answer.headers["content-type"].startswith("text/plain")
        assert answer.headers["x-content-type-options"] == "nosniff"
        evil = client.post("/webhooks/msgraph", params={"validationToken": "<b>\n</b>"})
        assert evil.status_code == 401 and evil.json()["reason"] == "malformed_signature"
        get = client.get("/webhooks/msgraph", params={"validationToken": "x"})
        assert get.status_code == 405  # Graph validates with a POST only
        empty = client.post("/webhooks/msgraph", params={"validationToken": ""})
        assert empty.status_code == 401 and empty.json()["reason"] == "missing_signature"
        accepted_once(client, "/webhooks/msgraph", GRAPH, {"content-type": "application/json"})
        forged = GRAPH.replace(CLIENT_STATE.encode(), b"guessed")
        assert client.post("/webhooks/msgraph", content=forged).status_code == 401
        metrics = client.get("/metrics").text
        assert 'handshakes_total{provider="msgraph",source="msgraph"} 1.0' in metrics
    recorded = handshakes(tmp_path, "msgraph")
    assert ("handshake", 200, "Microsoft Graph subscription validation: token echoed") in recorded


# -- Dropbox ------------------------------------------------------------------------------------
# Dropbox's Python SDK has no webhook verifier; the recipe is its reference
# (https://www.dropbox.com/developers/reference/webhooks) and sample app (dropbox/mdwebhook):
# hmac.new(APP_SECRET, request.data, sha256).hexdigest() == X-Dropbox-Signature.

DROPBOX = (SAMPLES / "dropbox" / "list_folder.changed.json").read_bytes()
APP_SECRET = "mz8xkq0v1hdj3ps"


def dropbox_headers(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"x-dropbox-signature": digest, "content-type": "application/json"}


def test_dropbox_signature_broken_one_way_at_a_time() -> None:
    provider = get_provider("dropbox")(["old-secret", APP_SECRET], 300, {})
    provider.verify(DROPBOX, dropbox_headers(DROPBOX))
    assert get_provider("dropbox")([APP_SECRET]).sign(DROPBOX) == {
        "x-dropbox-signature": dropbox_headers(DROPBOX)["x-dropbox-signature"]
    }
    assert refused(provider, DROPBOX + b"\n", dropbox_headers(DROPBOX)) is SignatureMismatch
    assert refused(provider, DROPBOX, dropbox_headers(DROPBOX, "other")) is SignatureMismatch
    zeros = {"x-dropbox-signature": "0" * 64}
    assert refused(provider, DROPBOX, zeros) is SignatureMismatch  # signature
    assert refused(provider, DROPBOX, {"x-dropbox-signature": "sha256=ab"}) is MalformedSignature
    assert refused(provider, DROPBOX, {}) is MissingSignature
    # every later change of the same account is this very body again: no body-digest dedup
    assert not provider.body_dedup()
    with pytest.raises(ValueError, match="unknown option 'header'"):
        get_provider("dropbox")([APP_SECRET], 300, {"header": "X-Other"})


def test_dropbox_transform() -> None:
    webhook = Webhook(source="dropbox", provider="dropbox", body=DROPBOX, received_at=NOW)
    event = dropbox_transform(webhook)
    assert event.name == "dropbox/list_folder.changed"
    assert event.id is None  # the next change of the same account sends the same body
    assert event.ts == NOW * 1000
    assert event.data["list_folder"]["accounts"][0] == "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"
    legacy = Webhook(source="dropbox", provider="dropbox", body=b'{"delta":{"users":[1]}}')
    assert dropbox_transform(legacy).name == "dropbox/delta.changed"
    with pytest.raises(ValueError, match="not a name"):
        dropbox_transform(Webhook(source="d", provider="dropbox", body=b'{"a b": 1}'))


def test_dropbox_zero_config_challenge_then_notifications(tmp_path: Path) -> None:
    env = {"DROPBOX_WEBHOOK_SECRET": APP_SECRET, "GATEWAY_DATA_DIR": str(tmp_path)}
    config = recording(config_from_env(env))
    assert [s.provider for s in config.sources] == ["dropbox"]
    with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        answer = client.get("/webhooks/dropbox", params={"challenge": "abc123XYZ"})
        assert (answer.status_code, answer.text) == (200, "abc123XYZ")
        assert answer.headers["content-type"].startswith("text/plain")
        assert answer.headers["x-content-type-options"] == "nosniff"
        evil = client.get("/webhooks/dropbox", params={"challenge": "<script>\n"})
        assert evil.status_code == 401 and evil.json()["reason"] == "malformed_signature"
        assert client.get("/webhooks/dropbox").status_code == 401  # no challenge
        unsigned = client.post("/webhooks/dropbox", content=DROPBOX)
        assert unsigned.status_code == 401
        metrics = client.get("/metrics").text
        assert 'handshakes_total{provider="dropbox",source="dropbox"} 1.0' in metrics
    recorded = handshakes(tmp_path, "dropbox")
    assert ("handshake", 200, "Dropbox webhook verification: challenge echoed") in recorded


def test_dropbox_same_account_changing_twice_is_two_events(tmp_path: Path) -> None:
    """Dropbox's body only names the account, so the second change of an account sends the
    very same signed body: it must reach the function too (a dedup would lose that change)."""
    env = {"DROPBOX_WEBHOOK_SECRET": APP_SECRET, "GATEWAY_DATA_DIR": str(tmp_path)}
    config = recording(config_from_env(env))
    with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        for _change in range(2):
            posted = client.post(
                "/webhooks/dropbox", content=DROPBOX, headers=dropbox_headers(DROPBOX)
            )
            assert (posted.status_code, posted.json()["events"]) == (200, 1)
        assert 'events_accepted_total{source="dropbox"} 2.0' in client.get("/metrics").text


def test_msgraph_onedrive_root_changing_twice_is_two_events(tmp_path: Path) -> None:
    """OneDrive's notification only names the drive root: the next change sends the very same
    body, which must reach the function too (it runs a delta query each time)."""
    onedrive = graph_body({"subscriptionId": "76222963-cc7b-42d2-882d-8aaa69cb2ba3",
                           "subscriptionExpirationDateTime": "2026-12-05T18:23:45.935Z",
                           "clientState": CLIENT_STATE, "changeType": "updated",
                           "resource": "/me/drive/root",
                           "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95"})  # fmt: skip
    env = {"MSGRAPH_WEBHOOK_SECRET": CLIENT_STATE, "GATEWAY_DATA_DIR": str(tmp_path)}
    config = recording(config_from_env(env))
    with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        for _change in range(2):
            posted = client.post("/webhooks/msgraph", content=onedrive)
            assert (posted.status_code, posted.json()["events"]) == (200, 1)
        assert 'events_accepted_total{source="msgraph"} 2.0' in client.get("/metrics").text
