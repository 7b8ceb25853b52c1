"""``xero``: ``x-xero-signature`` computed as Xero's webhook guide and its OpenAPI description
(XeroAPI/Xero-OpenAPI ``xero-webhooks.yaml``: base64 HMAC-SHA256 of the raw body with the webhook
key) say; Xero's SDKs are API clients without a webhook verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

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
from transforms.xero import xero as xero_transform

BODY = (Path(gateway.__file__).parent / "samples" / "xero" / "invoice.updated.json").read_bytes()
KEY = "OSd0eLlVIY9ZhViEqlDUh4+6n6M+Lo+eDaEJheJ6OCCgWwIz2D3JIAU6jPMipHRbgKTLz2uJ+xiACXGDBLrgdA=="
INTENT = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"FMLHZNKCVK"}'


def signed(body: bytes, key: str = KEY) -> dict[str, str]:
    digest = hmac.new(key.encode(), body, hashlib.sha256).digest()
    return {"x-xero-signature": base64.b64encode(digest).decode(),
            "content-type": "application/json"}  # fmt: skip


def refused(body: bytes, headers: dict[str, str], key: str = KEY) -> type:
    return refused_at_now(get_provider("xero")([key], 300, {}), body, headers)


def test_signature_broken_one_way_at_a_time() -> None:
    get_provider("xero")(["old-key", KEY], 300, {}).verify(BODY, signed(BODY))
    assert get_provider("xero")([KEY], 300, {}).sign(BODY) == {
        "x-xero-signature": signed(BODY)["x-xero-signature"]
    }
    assert refused(BODY.replace(b"UPDATE", b"CREATE", 1), signed(BODY)) is SignatureMismatch
    zero = base64.b64encode(b"\0" * 32).decode()
    assert refused(BODY, {"x-xero-signature": zero}) is SignatureMismatch  # signature
    assert refused(BODY, signed(BODY), "another-key") is SignatureMismatch  # key
    assert refused(BODY, {"x-xero-signature": "!!"}) is MalformedSignature
    assert refused(BODY, {}) is MissingSignature


def test_one_event_per_item() -> None:
    invoice, contact = xero_transform(Webhook(source="xero", provider="xero", body=BODY))
    assert (invoice.name, contact.name) == ("xero/invoice.updated", "xero/contact.created")
    assert invoice.id == "xero-717f2bfc-c6d4-41fd-b238-3f2f0c0cf777-UPDATE-2024-05-01T10:00:00.123"
    assert (invoice.ts, contact.ts) == (1714557600123, 1714557601456)
    item = json.loads(BODY)["events"][0]
    assert invoice.data == {**item, "firstEventSequence": 1, "lastEventSequence": 2}
    credit = {"events": [{**item, "eventCategory": "CREDITNOTE", "eventType": "CREATE",
                          "eventDateUtc": "2025-12-02T00:44:09.923"}]}  # fmt: skip
    [event] = xero_transform(Webhook(source="x", provider="xero", body=json.dumps(credit).encode()))
    assert (event.name, event.ts) == ("xero/credit_note.created", 1764636249923)


def test_intent_to_receive_over_a_real_socket(tmp_path: Path) -> None:
    with zero_config_gateway({"XERO_WEBHOOK_SECRET": KEY}, tmp_path) as (_, client, _):
        right = client.post("/webhooks/xero", content=INTENT, headers=signed(INTENT))
        assert (right.status_code, right.content) == (200, b"")
        wrong = client.post("/webhooks/xero", content=INTENT, headers=signed(INTENT, "not-it"))
        assert (wrong.status_code, wrong.content) == (401, b"")  # no body in any answer
        assert wrong.headers["x-request-id"]
        events = client.post("/webhooks/xero", content=BODY, headers=signed(BODY))
        assert (events.status_code, events.content) == (200, b"")
        again = client.post("/webhooks/xero", content=BODY, headers=signed(BODY))
        assert (again.status_code, again.content) == (200, b"")
        bad = b'{"events": {"not": "a list"}}'
        assert client.post("/webhooks/xero", content=bad, headers=signed(bad)).status_code == 400
        metrics = client.get("/metrics").text
        assert 'handshakes_total{provider="xero",source="xero"} 1.0' in metrics
        assert 'events_accepted_total{source="xero"} 2.0' in metrics
        assert 'duplicates_skipped_total{source="xero"} 2.0' in metrics
        # the empty answers still count their refusals: the wrong signature and the bad body
        assert 'rejected_total{provider="xero",reason="signature_mismatch",source="xero"} 1.0' in (
            metrics
        )
        assert 'rejected_total{provider="xero",reason="invalid_payload",source="xero"} 1.0' in (
            metrics
        )
