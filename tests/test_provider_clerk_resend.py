"""``clerk`` and ``resend``: Svix-signed, checked with the ``svix`` package both ways."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from svix.webhooks import Webhook as SvixWebhook

import gateway
from gateway.config import config_from_env
from gateway.providers import (
    SignatureMismatch,
    TimestampOutOfTolerance,
    VerificationError,
    get_provider,
)
from gateway.webhook import Webhook
from tests.provider_support import zero_config_gateway
from transforms.svix_senders import clerk as clerk_transform
from transforms.svix_senders import resend as resend_transform

SAMPLES = Path(gateway.__file__).parent / "samples"
CLERK = (SAMPLES / "clerk" / "user.created.json").read_bytes()
RESEND = (SAMPLES / "resend" / "email.delivered.json").read_bytes()
SECRET = "whsec_" + base64.b64encode(b"clerk-and-resend-test-key-32byte").decode()
NOW = 1_714_557_600


def svix_headers(
    body: bytes, ts: int, msg_id: str = "msg_2fKq", secret: str = SECRET
) -> dict[str, str]:
    signature = SvixWebhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body.decode())
    return {"svix-id": msg_id, "svix-timestamp": str(ts), "svix-signature": signature}


@pytest.mark.parametrize(("name", "body"), [("clerk", CLERK), ("resend", RESEND)])
def test_signed_by_svix_and_broken_one_way_at_a_time(name: str, body: bytes) -> None:
    provider = get_provider(name)([SECRET], 300, {})
    good = svix_headers(body, NOW)
    provider.verify(body, good, now=NOW)
    other_key = "whsec_" + base64.b64encode(b"another-key-of-thirty-two-bytes!").decode()
    cases = [
        (body + b" ", good),  # body
        (body, {**good, "svix-timestamp": str(NOW + 1)}),  # timestamp
        (body, {**good, "svix-signature": "v1," + base64.b64encode(b"\0" * 32).decode()}),
        (body, svix_headers(body, NOW, secret=other_key)),  # key
        (body, {**good, "svix-id": "msg_other"}),
    ]
    for candidate, headers in cases:
        with pytest.raises(SignatureMismatch):
            provider.verify(candidate, headers, now=NOW)
    for skew in (-301, 301):
        with pytest.raises(TimestampOutOfTolerance):
            provider.verify(body, good, now=NOW + skew)
    assert get_provider(name).secret_problem("sk_live_abc") is not None
    assert get_provider(name).secret_problem(SECRET) is None


def test_transforms() -> None:
    clerk = clerk_transform(Webhook(source="clerk", provider="clerk", body=CLERK, prefix="clerk",
                                    headers={"svix-id": "msg_1"}))  # fmt: skip
    assert (clerk.name, clerk.id) == ("clerk/user.created", "clerk-msg_1")
    resend = resend_transform(Webhook(source="resend", provider="resend", body=RESEND,
                                      prefix="resend", headers={"svix-id": "msg_2"}))  # fmt: skip
    assert (resend.name, resend.id, resend.ts) == (
        "resend/email.delivered",
        "resend-msg_2",
        1714557600123,
    )


def test_zero_config_over_a_real_socket(tmp_path: Path) -> None:
    with zero_config_gateway(
        {"CLERK_WEBHOOK_SECRET": SECRET, "RESEND_WEBHOOK_SECRET": SECRET}, tmp_path
    ) as (_, client, _):
        now = int(time.time())
        for name, body in (("clerk", CLERK), ("resend", RESEND)):
            headers = {**svix_headers(body, now), "content-type": "application/json"}
            response = client.post(f"/webhooks/{name}", content=body, headers=headers)
            assert (response.status_code, response.json()["events"]) == (200, 1)
            stale = {
                **svix_headers(body, now - 3600, "msg_old"),
                "content-type": "application/json",
            }
            old = client.post(f"/webhooks/{name}", content=body, headers=stale)
            assert old.json()["reason"] == "timestamp_out_of_tolerance"


def test_refusals_leak_no_secret() -> None:
    with pytest.raises(VerificationError) as info:
        get_provider("clerk")([SECRET], 300, {}).verify(CLERK, {}, now=NOW)
    assert SECRET not in info.value.reason


def test_each_sender_has_its_own_variable_and_the_standard_one_enables_only_standard() -> None:
    """``STANDARD_WEBHOOKS_SECRET`` alone must not open ``/webhooks/clerk`` and the others."""
    only_standard = config_from_env({"STANDARD_WEBHOOKS_SECRET": SECRET})
    assert [source.name for source in only_standard.sources] == ["standard"]
    for name in ("clerk", "resend", "openai", "replicate"):
        variable = f"{name.upper()}_WEBHOOK_SECRET"
        assert get_provider(name).secret_variable() == variable
        assert [source.name for source in config_from_env({variable: SECRET}).sources] == [name]
