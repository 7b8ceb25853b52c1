"""``notion`` (the unsigned verification_token handshake, ``X-Notion-Signature``) and ``trello``
(HEAD check, ``X-Trello-Webhook`` over the body and the callback URL).

Notion requests are signed, and the gateway's signatures checked, with Notion's own SDK
(``@notionhq/client``: ``signWebhookPayload`` / ``verifyWebhookSignature``, run through
tests/npm_sdk.py). Trello has no official SDK with a verifier: its requests are signed as
Trello's guide computes them (URL beside the recipe).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

import gateway
from gateway.cli import main
from gateway.config import config_from_env, load_config
from gateway.providers import (
    Inbound,
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
    get_provider,
)
from gateway.webhook import Webhook
from tests.eventapi_standin import event_api
from tests.npm_sdk import run_node
from tests.provider_support import accepted_once, handshakes, recording, refused
from tests.server import run_gateway
from transforms.notion import notion as notion_transform
from transforms.trello import name_of as trello_name
from transforms.trello import trello as trello_transform

SAMPLES = Path(gateway.__file__).parent / "samples"
NOW = 1_714_557_600

# -- Notion -------------------------------------------------------------------------------------
# https://developers.notion.com/reference/webhooks: "X-Notion-Signature: sha256=" + hex
# HMAC-SHA256 of the request body keyed by the subscription's verification_token; signed here
# by the SDK's signWebhookPayload.

NOTION = (SAMPLES / "notion" / "page.created.json").read_bytes()
TOKEN = "secret_tMrlL1qK5vuQAh1b6cZGhFChZTSYJlce98V0pYn7yBl"  # the docs' example token


NOTION_SDK = """
import { signWebhookPayload, verifyWebhookSignature } from "@notionhq/client";
async function main({ sign, verify }) {
  const signed = [];
  for (const { body, token } of sign) {
    const raw = Buffer.from(body, "base64");
    signed.push(await signWebhookPayload({ body: raw, verificationToken: token }));
  }
  const verified = [];
  for (const { body, token, signature } of verify) {
    verified.push(await verifyWebhookSignature({
      body: Buffer.from(body, "base64"), signature, verificationToken: token }));
  }
  return { signed, verified };
}
"""


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def notion_sdk(
    sign: Sequence[tuple[bytes, str]], verify: Sequence[tuple[bytes, str, str]] = ()
) -> tuple[list[str], list[bool]]:
    """Signatures by ``signWebhookPayload`` and verdicts of ``verifyWebhookSignature``."""
    out = run_node(NOTION_SDK, {
        "sign": [{"body": b64(body), "token": token} for body, token in sign],
        "verify": [{"body": b64(b), "token": t, "signature": s} for b, t, s in verify],
    })  # fmt: skip
    return out["signed"], out["verified"]


def notion_headers(body: bytes, token: str = TOKEN) -> dict[str, str]:
    """The headers Notion sends, signed by Notion's SDK."""
    [signature], _ = notion_sdk([(body, token)])
    return {"x-notion-signature": signature, "content-type": "application/json"}


def test_notion_signature_broken_one_way_at_a_time() -> None:
    provider = get_provider("notion")(["secret_old", TOKEN], 300, {})
    unicode_body = NOTION.replace(b"Quantify Labs", "Café ☕ Labs".encode())
    (good, unicode_sig, other_key), _ = notion_sdk(
        [(NOTION, TOKEN), (unicode_body, TOKEN), (NOTION, "secret_x")]
    )
    provider.verify(NOTION, {"x-notion-signature": good})
    provider.verify(unicode_body, {"x-notion-signature": unicode_sig})
    # the gateway's own signature passes Notion's verifier (and a tampered body does not)
    mine = get_provider("notion")([TOKEN]).sign(NOTION)["x-notion-signature"]
    _, verdicts = notion_sdk([], [(NOTION, TOKEN, mine), (NOTION + b" ", TOKEN, mine)])
    assert (mine, verdicts) == (good, [True, False])
    assert refused(provider, NOTION + b" ", {"x-notion-signature": good}) is SignatureMismatch
    assert refused(provider, NOTION, {"x-notion-signature": other_key}) is SignatureMismatch
    zeros = {"x-notion-signature": "sha256=" + "0" * 64}
    assert refused(provider, NOTION, zeros) is SignatureMismatch  # signature
    assert refused(provider, NOTION, {"x-notion-signature": "md5=ab"}) is MalformedSignature
    assert refused(provider, NOTION, {}) is MissingSignature
    webhook = Webhook(source="notion", provider="notion", body=NOTION)
    assert provider.delivery_id(webhook) == "367cba44-b6f3-4c92-81e7-6a2e9659efd4"
    assert provider.body_dedup()  # no signed timestamp
    cls = get_provider("notion")
    assert cls.secret_problem(TOKEN) is None
    assert "Notion API token" in str(cls.secret_problem("ntn_1234567890abcdef"))


def test_notion_verification_request_is_noted_not_trusted(caplog: pytest.LogCaptureFixture) -> None:
    provider = get_provider("notion")(["pending"], 300, {})
    body = json.dumps({"verification_token": TOKEN}).encode()
    with caplog.at_level(logging.WARNING, logger="gateway.providers.notion"):
        reply = provider.challenge(Inbound("POST", body, {}))
    assert reply is not None and reply.status == 200
    assert TOKEN in reply.note and "NOTION_WEBHOOK_SECRET" in reply.note
    assert "unsigned" in reply.note and "once Notion accepts it" in reply.note  # may be forged
    assert TOKEN in caplog.text
    known = get_provider("notion")([TOKEN]).challenge(Inbound("POST", body, {}))
    assert known is not None and TOKEN not in known.note and "already" in known.note
    # an event mentioning the key, or a huge body, is no handshake: it must be signed
    event = json.dumps({"type": "page.created", "verification_token": TOKEN}).encode()
    assert provider.challenge(Inbound("POST", event, {})) is None
    assert provider.challenge(Inbound("POST", body + b" " * 5000, {})) is None
    with pytest.raises(MalformedSignature):
        provider.challenge(Inbound("POST", b'{"verification_token": "<x>\\n"}', {}))


def test_notion_transform() -> None:
    event = notion_transform(Webhook(source="notion", provider="notion", body=NOTION))
    assert (event.name, event.id, event.ts) == (
        "notion/page.created", "notion-367cba44-b6f3-4c92-81e7-6a2e9659efd4", 1733442934285
    )  # fmt: skip
    assert event.data["entity"] == {"id": "153104cd-477e-809d-8dc4-ff2d96ae3090", "type": "page"}
    updated = {**json.loads(NOTION), "type": "data_source.schema_updated"}
    body = json.dumps(updated).encode()
    assert notion_transform(Webhook(source="n", provider="notion", body=body)).name == (
        "notion/data_source.schema_updated"
    )
    with pytest.raises(ValueError, match=r"page\.created"):
        notion_transform(Webhook(source="n", provider="notion", body=b'{"type": "x"}'))


def test_notion_zero_config_handshake_then_events(tmp_path: Path) -> None:
    env = {"NOTION_WEBHOOK_SECRET": TOKEN, "GATEWAY_DATA_DIR": str(tmp_path)}
    config = recording(config_from_env(env))
    assert [s.provider for s in config.sources] == ["notion"]
    verification = json.dumps({"verification_token": "secret_N3wT0ken"}).encode()
    with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        answer = client.post("/webhooks/notion", content=verification,
                             headers={"content-type": "application/json"})  # fmt: skip
        assert answer.status_code == 200
        accepted_once(client, "/webhooks/notion", NOTION, notion_headers(NOTION))
        assert client.post("/webhooks/notion", content=NOTION).status_code == 401
        metrics = client.get("/metrics").text
        assert 'handshakes_total{provider="notion",source="notion"} 1.0' in metrics
    notes = [m for reason, status, m in handshakes(tmp_path, "notion") if reason == "handshake"]
    assert len(notes) == 1 and "secret_N3wT0ken" in notes[0]


# -- Trello -------------------------------------------------------------------------------------
# https://developer.atlassian.com/cloud/trello/guides/rest-api/webhooks/ (Webhook Signatures):
# base64 HMAC-SHA1, keyed by the app secret, of the body followed by the callbackURL exactly as
# given when the webhook was created.

TRELLO = (SAMPLES / "trello" / "card.update.json").read_bytes()
TRELLO_SECRET = "4f9a0c2e7b1d3a5c8e0f2a4b6c8d0e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d"
CALLBACK = "https://hooks.example.com/webhooks/trello?board=roadmap"


def trello_headers(body: bytes, url: str = CALLBACK, secret: str = TRELLO_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body + url.encode(), hashlib.sha1).digest()
    return {"x-trello-webhook": base64.b64encode(digest).decode(),
            "content-type": "application/json"}  # fmt: skip


def test_trello_signature_broken_one_way_at_a_time() -> None:
    provider = get_provider("trello")(["old", TRELLO_SECRET], 300, {"url": CALLBACK})
    provider.verify(TRELLO, trello_headers(TRELLO))
    unicode_body = TRELLO.replace(b"Ship the webhook gateway", "Café ☕ déploiement".encode())
    provider.verify(unicode_body, trello_headers(unicode_body))  # the raw UTF-8 bytes are signed
    signer = get_provider("trello")([TRELLO_SECRET], 300, {"url": CALLBACK})
    assert signer.sign(TRELLO) == {"x-trello-webhook": trello_headers(TRELLO)["x-trello-webhook"]}
    assert refused(provider, TRELLO + b" ", trello_headers(TRELLO)) is SignatureMismatch  # body
    other_url = trello_headers(TRELLO, "https://hooks.example.com/webhooks/trello")
    assert refused(provider, TRELLO, other_url) is SignatureMismatch  # the signed URL
    wrong_key = trello_headers(TRELLO, secret="0" * 64)
    assert refused(provider, TRELLO, wrong_key) is SignatureMismatch  # key
    zeros = {"x-trello-webhook": base64.b64encode(b"\0" * 20).decode()}
    assert refused(provider, TRELLO, zeros) is SignatureMismatch  # signature
    assert refused(provider, TRELLO, {"x-trello-webhook": "not base64!"}) is MalformedSignature
    assert refused(provider, TRELLO, {}) is MissingSignature
    webhook = Webhook(source="trello", provider="trello", body=TRELLO)
    assert provider.delivery_id(webhook) == "66f2b3c4d5e6f7a8b9c0d1e2"
    with pytest.raises(ValueError, match="TRELLO_WEBHOOK_URL"):
        get_provider("trello")([TRELLO_SECRET], 300, {})
    cls = get_provider("trello")
    assert cls.secret_problem(TRELLO_SECRET) is None
    assert "API key" in str(cls.secret_problem("0123456789abcdef0123456789abcdef"))


#: Trello's server as its guide describes it: "Because of certain defaults in the crypto
#: utilities in node, the payloads that we sign are treated as binary strings, not utf-8" --
#: Node's ``binary`` (latin1) encoding keeps the low 8 bits of each UTF-16 code unit.
TRELLO_NODE = """
import { createHmac } from "node:crypto";
async function main({ secret, body, url }) {
  return createHmac("sha1", secret).update(body + url, "binary").digest("base64");
}
"""


def test_trello_non_ascii_body_signed_as_trellos_node_server_signs_it() -> None:
    provider = get_provider("trello")([TRELLO_SECRET], 300, {"url": CALLBACK})
    # an en dash (Trello's own example), accents and an emoji (a UTF-16 surrogate pair)
    body = TRELLO.replace(b"Ship the webhook gateway", "Q3 \u2013 Café ☕ 🚀".encode())
    text = body.decode()
    signature = run_node(TRELLO_NODE, {"secret": TRELLO_SECRET, "body": text, "url": CALLBACK})
    provider.verify(body, {"x-trello-webhook": signature})
    # still bound to the body, the URL and the key
    assert refused(provider, body.replace(b"Q3", b"Q4"), {"x-trello-webhook": signature}) is (
        SignatureMismatch
    )
    other = run_node(TRELLO_NODE, {"secret": TRELLO_SECRET, "body": text, "url": CALLBACK + "x"})
    assert refused(provider, body, {"x-trello-webhook": other}) is SignatureMismatch
    wrong = run_node(TRELLO_NODE, {"secret": "0" * 64, "body": text, "url": CALLBACK})
    assert refused(provider, body, {"x-trello-webhook": wrong}) is SignatureMismatch


def test_trello_transform() -> None:
    event = trello_transform(Webhook(source="trello", provider="trello", body=TRELLO))
    assert (event.name, event.id, event.ts) == (
        "trello/card.update", "trello-66f2b3c4d5e6f7a8b9c0d1e2", 1790253296789
    )  # fmt: skip
    assert event.data["action"]["data"]["listAfter"]["name"] == "In Progress"
    assert [trello_name(t) for t in ("createCard", "addMemberToCard", "commentCard")] == [
        "trello/card.create", "trello/member_to_card.add", "trello/card.comment"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="camel case"):
        trello_name("Update card")


def test_trello_zero_config_head_check_then_actions(tmp_path: Path) -> None:
    env = {"TRELLO_WEBHOOK_SECRET": TRELLO_SECRET, "TRELLO_WEBHOOK_URL": CALLBACK,
           "GATEWAY_DATA_DIR": str(tmp_path)}  # fmt: skip
    config = recording(config_from_env(env))
    assert [(s.provider, s.options) for s in config.sources] == [("trello", {"url": CALLBACK})]
    with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        assert client.head("/webhooks/trello", params={"board": "roadmap"}).status_code == 200
        accepted_once(client, "/webhooks/trello?board=roadmap", TRELLO, trello_headers(TRELLO))
        assert client.post("/webhooks/trello", content=TRELLO).status_code == 401


# -- webhook-gateway send, for the group's four providers ----------------------------------------

SEND_SOURCES = {
    "msgraph": ("msgraph", "SecretClientState", {}, "message.created", "msgraph/message.created"),
    "dropbox": ("dropbox", "mz8xkq0v1hdj3ps", {}, "list_folder.changed",
                "dropbox/list_folder.changed"),
    "notion": ("notion", TOKEN, {}, "page.created", "notion/page.created"),
    "trello": ("trello", TRELLO_SECRET, {"url": CALLBACK}, "card.update", "trello/card.update"),
}  # fmt: skip


def test_send_delivers_each_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``send <name> --sample <type>`` signs the sample as the provider does; a real gateway
    verifies and stores it, and the forwarder delivers the transform's event."""
    lines = [
        f'[gateway]\ndata_dir = "{tmp_path / "data"}"\nstrict_names = true\n',
        "[forwarder]\nbackoff_base = 0.01\nbackoff_max = 0.05\nidle_poll = 0.02\n",
    ]
    for name, (provider, secret, options, _, _) in SEND_SOURCES.items():
        lines.append(f'[[sources]]\nname = "{name}"\nprovider = "{provider}"\n'
                     f"secrets = [{json.dumps('inline:' + secret)}]\n")  # fmt: skip
        lines += [f"[sources.options]\n{k} = {json.dumps(v)}\n" for k, v in options.items()]
    with event_api() as api:
        lines.append(f'[inngest]\nbase_url = "{api.url}"\nevent_key = "inline:test-key"\n')
        path = tmp_path / "gateway.toml"
        path.write_text("\n".join(lines))
        with run_gateway(load_config(path, {})) as gw:
            for name, (_, _, _, sample, _) in SEND_SOURCES.items():
                argv = ["send", name, "--sample", sample, "--url", gw.url, "--config", str(path)]
                assert main(argv, {}) == 0, capsys.readouterr()
                out = capsys.readouterr().out.splitlines()
                assert out[1] == "200 OK: accepted: 1 event(s) stored, 0 duplicate(s) skipped"
            assert api.wait_for_events(len(SEND_SOURCES))
    assert sorted(e["name"] for e in api.events) == sorted(v[4] for v in SEND_SOURCES.values())
