"""``openai`` and ``replicate``: Standard Webhooks senders, checked with each one's own SDK.

The gateway's ``sign()`` output is verified by ``openai``'s ``webhooks.verify_signature`` and by
``replicate``'s ``Webhooks.validate``; requests signed by the ``standardwebhooks`` package are
verified by the gateway.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from pathlib import Path

import openai
import pytest
import standardwebhooks
from replicate.webhook import Webhooks, WebhookSigningSecret

import gateway
from gateway.cli import main
from gateway.providers import (
    MissingSignature,
    SignatureMismatch,
    TimestampOutOfTolerance,
    get_provider,
)
from gateway.webhook import Webhook
from tests.provider_support import zero_config_gateway
from transforms.svix_senders import openai as openai_transform
from transforms.svix_senders import replicate as replicate_transform

SAMPLES = Path(gateway.__file__).parent / "samples"
OPENAI = (SAMPLES / "openai" / "response.completed.json").read_bytes()
REPLICATE = (SAMPLES / "replicate" / "prediction.succeeded.json").read_bytes()
SECRET = "whsec_" + base64.b64encode(b"openai-and-replicate-test-key-32").decode()
OTHER = "whsec_" + base64.b64encode(b"another-key-of-thirty-two-bytes!").decode()
NOW = 1_714_557_600
SENDERS = [("openai", OPENAI), ("replicate", REPLICATE)]


def standard_headers(body: bytes, ts: int, msg_id: str = "wh_685342e6c53c", secret: str = SECRET
                     ) -> dict[str, str]:  # fmt: skip
    signature = standardwebhooks.Webhook(secret).sign(
        msg_id, datetime.fromtimestamp(ts, UTC), body.decode()
    )
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def sdk_accepts(name: str, body: bytes, headers: dict[str, str], secret: str) -> bool:
    """Whether the sender's own SDK accepts the request (with the wall clock: sign with now)."""
    try:
        if name == "openai":
            client = openai.OpenAI(api_key="sk-test", webhook_secret=secret)
            client.webhooks.verify_signature(body, headers)
        else:
            Webhooks.validate(headers=headers, body=body.decode(),
                              secret=WebhookSigningSecret(key=secret), tolerance=300)  # fmt: skip
    except (openai.InvalidWebhookSignatureError, ValueError):
        return False
    return True


@pytest.mark.parametrize(("name", "body"), SENDERS)
def test_the_gateways_signature_passes_the_senders_sdk(name: str, body: bytes) -> None:
    provider = get_provider(name)([SECRET], 300, {})
    now = int(time.time())
    signed = provider.sign(body, timestamp=now)
    assert set(signed) >= {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert sdk_accepts(name, body, signed, SECRET)
    assert not sdk_accepts(name, body + b" ", signed, SECRET)
    assert not sdk_accepts(name, body, signed, OTHER)
    provider.verify(body, signed, now=now)


@pytest.mark.parametrize(("name", "body"), SENDERS)
def test_signed_by_standardwebhooks_and_broken_one_way_at_a_time(name: str, body: bytes) -> None:
    provider = get_provider(name)([SECRET], 300, {})
    good = standard_headers(body, NOW)
    provider.verify(body, good, now=NOW)
    broken = [
        (body + b" ", good),  # body
        (body, {**good, "webhook-timestamp": str(NOW + 1)}),  # timestamp
        (body, {**good, "webhook-signature": "v1," + base64.b64encode(b"\0" * 32).decode()}),
        (body, standard_headers(body, NOW, secret=OTHER)),  # key
        (body, {**good, "webhook-id": "wh_other"}),  # message id
    ]
    for candidate, headers in broken:
        with pytest.raises(SignatureMismatch):
            provider.verify(candidate, headers, now=NOW)
    for skew in (-301, 301):
        with pytest.raises(TimestampOutOfTolerance):
            provider.verify(body, good, now=NOW + skew)
    with pytest.raises(MissingSignature):
        provider.verify(body, {}, now=NOW)
    assert get_provider(name).secret_problem("sk-proj-abc") is not None
    assert get_provider(name).secret_problem(SECRET) is None


def test_transforms_name_id_and_time() -> None:
    headers = {"webhook-id": "wh_1"}
    event = openai_transform(Webhook(source="openai", provider="openai", body=OPENAI,
                                     prefix="openai", headers=headers))  # fmt: skip
    assert (event.name, event.id, event.ts) == (
        "openai/response.completed",
        "openai-wh_1",
        1_750_287_018_000,
    )
    assert event.data["data"]["id"] == "resp_685343a1381c819085d44c354e1b330e"
    event = replicate_transform(Webhook(source="replicate", provider="replicate", body=REPLICATE,
                                        prefix="replicate", headers=headers))  # fmt: skip
    completed = int(datetime(2024, 5, 1, 10, 0, 0, 123000, UTC).timestamp() * 1000)
    assert (event.name, event.id, event.ts) == (
        "replicate/prediction.succeeded",
        "replicate-wh_1",
        completed,
    )
    training = REPLICATE.replace(b"/v1/predictions/", b"/v1/trainings/").replace(
        b'"succeeded"', b'"processing"'
    )
    event = replicate_transform(Webhook(source="replicate", provider="replicate", body=training,
                                        prefix="replicate", headers=headers))  # fmt: skip
    assert event.name == "replicate/training.processing"
    with pytest.raises(ValueError, match="status"):
        replicate_transform(Webhook(source="replicate", provider="replicate", body=b"{}",
                                    prefix="replicate", headers=headers))  # fmt: skip


def test_zero_config_over_a_real_socket(tmp_path: Path) -> None:
    with zero_config_gateway(
        {"OPENAI_WEBHOOK_SECRET": SECRET, "REPLICATE_WEBHOOK_SECRET": SECRET}, tmp_path
    ) as (_, client, _):
        now = int(time.time())
        for name, body in SENDERS:
            headers = {**standard_headers(body, now), "content-type": "application/json"}
            response = client.post(f"/webhooks/{name}", content=body, headers=headers)
            assert (response.status_code, response.json()["events"]) == (200, 1)
            again = client.post(f"/webhooks/{name}", content=body, headers=headers)
            assert again.json()["duplicates"] == 1  # the same webhook-id is a retry
            forged = {**headers, "webhook-signature": "v1," + "A" * 44}
            refused = client.post(f"/webhooks/{name}", content=body, headers=forged)
            assert (refused.status_code, refused.json()["reason"]) == (401, "signature_mismatch")


@pytest.mark.parametrize(
    ("name", "sample"), [("openai", "response.completed"), ("replicate", "prediction.succeeded")]
)
def test_send_sample_to_a_zero_config_gateway(
    name: str, sample: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with zero_config_gateway({f"{name.upper()}_WEBHOOK_SECRET": SECRET}, tmp_path) as (
        gw,
        client,
        env,
    ):
        assert main(["send", name, "--sample", sample, "--url", gw.url], env) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith(f"POST {gw.url}/webhooks/{name} ({name}, {sample}, ")
        assert out[1] == "200 OK: accepted: 1 event(s) stored, 0 duplicate(s) skipped"
        assert f'events_accepted_total{{source="{name}"}} 1.0' in client.get("/metrics").text
