"""``webhook-gateway serve`` as a user starts it: the console script, configured from the
environment alone (every provider variable, comma-separated secrets, ``GATEWAY_DATA_DIR``), or
from a file named by ``GATEWAY_CONFIG``; real requests over a real socket.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.eventapi_standin import EventApiStandIn, event_api
from tests.helpers import fixture
from tests.server import GatewayProcess, console_script
from tests.signing import (
    intercom_headers,
    sign_github,
    sign_shopify,
    sign_standard,
    slack_headers,
    stripe_headers,
)

SW_OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_NEW = "whsec_" + "bmV3LXN0YW5kYXJkLXNlY3JldC0xMjM0"
SECRETS = {  # variable -> (old secret, new secret): both configured, comma-separated
    "STRIPE_WEBHOOK_SECRET": ("whsec_old_stripe", "whsec_new_stripe"),
    "SLACK_SIGNING_SECRET": ("old_slack_secret", "new_slack_secret"),
    "INTERCOM_CLIENT_SECRET": ("old_intercom", "new_intercom"),
    "GITHUB_WEBHOOK_SECRET": ("old_github", "new_github"),
    "SHOPIFY_WEBHOOK_SECRET": ("old_shopify", "new_shopify"),
    "STANDARD_WEBHOOKS_SECRET": (SW_OLD, SW_NEW),
}


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without gateway or Inngest settings, plus ``extra``."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INNGEST_", "GATEWAY_")) and k not in SECRETS
    }
    return {**keep, **extra}


@pytest.fixture(scope="module")
def api() -> Iterator[EventApiStandIn]:
    with event_api() as stand_in:
        yield stand_in


def signed_requests(which: int) -> list[tuple[str, bytes, dict[str, str]]]:
    """One genuine request per provider, signed with secret ``which`` (0 old, 1 new)."""
    secret = {var: pair[which] for var, pair in SECRETS.items()}
    stripe_event = json.loads(fixture("stripe/customer.created.json"))
    stripe_event["id"] = f"evt_env_{which}"
    stripe_body = json.dumps(stripe_event).encode()
    slack = json.loads(fixture("slack/app_mention.json"))
    slack["event_id"] = f"Ev_env_{which}"
    slack_body = json.dumps(slack).encode()
    note = json.loads(fixture("intercom/conversation.user.created.json"))
    note["id"] = f"notif_env_{which}"
    note_body = json.dumps(note).encode()
    # a second genuine delivery has its own body: an identical one is a replay (body digest)
    push = fixture("more/github/push.json").replace(b"{", b'{"delivery": %d, ' % which, 1)
    order = fixture("more/shopify/orders.create.json").replace(
        b"{", b'{"delivery": %d, ' % which, 1
    )
    contact = fixture("more/standard/contact.created.json")
    return [
        ("stripe", stripe_body, stripe_headers(stripe_body, secret["STRIPE_WEBHOOK_SECRET"])),
        ("slack", slack_body, slack_headers(slack_body, secret["SLACK_SIGNING_SECRET"])),
        ("intercom", note_body, intercom_headers(note_body, secret["INTERCOM_CLIENT_SECRET"])),
        ("github", push, sign_github(push, secret["GITHUB_WEBHOOK_SECRET"], "push", f"d-{which}")),
        (
            "shopify",
            order,
            sign_shopify(order, secret["SHOPIFY_WEBHOOK_SECRET"], "orders/create", f"w-{which}"),
        ),
        (
            "standard",
            contact,
            sign_standard(contact, secret["STANDARD_WEBHOOKS_SECRET"], f"m{which}"),
        ),
    ]


def test_zero_config_serve_enables_every_provider_from_its_variable(
    tmp_path: Path, api: EventApiStandIn
) -> None:
    data_dir = tmp_path / "state" / "gw"  # does not exist yet
    env = clean_env(
        **{var: ",".join(pair) for var, pair in SECRETS.items()},
        GATEWAY_DATA_DIR=str(data_dir),
        INNGEST_EVENT_API_BASE_URL=api.url,
        INNGEST_EVENT_KEY="serve-env-key",
    )
    before = len(api.events)
    gateway = GatewayProcess([], env, tmp_path / "gw.log", command=console_script())
    try:
        url = gateway.wait_ready()
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").json()["status"] == "ready"
            assert client.head("/webhooks/intercom").status_code == 200
            for which in (0, 1):  # either secret of each rotating pair is accepted
                for source, body, headers in signed_requests(which):
                    response = client.post(f"/webhooks/{source}", content=body, headers=headers)
                    assert response.status_code == 200, (source, response.text)
                    assert response.json()["status"] == "accepted", source
            for source, body, headers in signed_requests(1):
                forged = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                response = client.post(f"/webhooks/{source}", content=body + b" ", headers=forged)
                assert response.status_code == 401, source
                assert response.json()["source"] == source and response.json()["error"]
            response = client.post("/webhooks/twilio", content=b"{}")
            assert (response.status_code, response.json()["source"]) == (404, "twilio")
            assert client.get("/webhooks/stripe").status_code == 405
        assert api.wait_for_events(before + 12, timeout=30)
    finally:
        gateway.stop()
    names = {event["name"] for event in api.events[before:]}
    assert names == {
        "stripe/customer.created",
        "slack/app_mention",
        "intercom/conversation.user.created",
        "github/push",
        "shopify/orders.create",
        "standard/contact.created",
    }
    assert (data_dir / "outbox.sqlite3").is_file()
    log = (tmp_path / "gw.log").read_text()
    for pair in SECRETS.values():
        for secret in pair:
            assert secret not in log


def test_gateway_config_names_the_file_and_data_dir_defaults_to_cwd(
    tmp_path: Path, api: EventApiStandIn
) -> None:
    secret_file = tmp_path / "billing.secret"
    secret_file.write_text("whsec_billing_from_file\n")
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"""
[inngest]
base_url = "{api.url}"
event_key = "env:ACME_EVENT_KEY"

[[sources]]
name = "billing"
provider = "stripe"
secrets = ["file:{secret_file}"]
tolerance = 60
body_limit = 4096

[[sources]]
name = "marketplace"
provider = "stripe"
secrets = ["env:MARKETPLACE_STRIPE_SECRET"]

[[sources]]
name = "standard"
provider = "standard"
prefix = "clerk"
secrets = ["env:STANDARD_WEBHOOKS_SECRET"]
"""
    )
    env = clean_env(
        GATEWAY_CONFIG=str(config),
        ACME_EVENT_KEY="acme-key",
        MARKETPLACE_STRIPE_SECRET="whsec_market",
        STANDARD_WEBHOOKS_SECRET=SW_OLD,
    )
    before = len(api.events)
    gateway = GatewayProcess([], env, tmp_path / "gw.log", command=console_script(), cwd=tmp_path)
    try:
        url = gateway.wait_ready()
        with httpx.Client(base_url=url, timeout=10) as client:
            event = json.loads(fixture("stripe/invoice.paid.json"))
            for source, secret in (
                ("billing", "whsec_billing_from_file"),
                ("marketplace", "whsec_market"),
            ):
                event["id"] = f"evt_cfg_{source}"
                body = json.dumps(event).encode()
                response = client.post(
                    f"/webhooks/{source}", content=body, headers=stripe_headers(body, secret)
                )
                assert response.status_code == 200, response.text
            stale = stripe_headers(body, "whsec_billing_from_file", t=int(time.time()) - 120)
            response = client.post("/webhooks/billing", content=body, headers=stale)
            assert response.json()["reason"] == "timestamp_out_of_tolerance"  # tolerance = 60
            stale = stripe_headers(body, "whsec_market", t=int(time.time()) - 120)
            response = client.post("/webhooks/marketplace", content=body, headers=stale)
            assert response.status_code == 200  # the default 300 s window (a duplicate here)
            wrong = stripe_headers(body, "whsec_billing_from_file")
            assert (
                client.post("/webhooks/marketplace", content=body, headers=wrong).status_code == 401
            )
            big = b'{"pad": "' + b"x" * 5000 + b'"}'
            response = client.post(
                "/webhooks/billing", content=big, headers=stripe_headers(big, "whsec_x")
            )
            assert response.status_code == 413
            contact = fixture("more/standard/contact.created.json")
            response = client.post(
                "/webhooks/standard", content=contact, headers=sign_standard(contact, SW_OLD, "m_c")
            )
            assert response.status_code == 200, response.text
            assert client.post("/webhooks/stripe", content=b"{}").status_code == 404
        assert api.wait_for_events(before + 3, timeout=30)
    finally:
        gateway.stop()
    sent = {event["name"]: event for event in api.events[before:]}
    assert set(sent) == {"stripe/invoice.paid", "clerk/contact.created"}
    assert sent["clerk/contact.created"]["id"] == "clerk-m_c"
    assert (tmp_path / ".webhook-gateway" / "outbox.sqlite3").is_file()
