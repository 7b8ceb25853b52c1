"""``webhook-gateway send <name> --sample <type>`` for every provider with samples that the gateway
can sign: each enabled by its zero-config variable alone, against a real gateway on a loopback
socket, every sample accepted (or answered, for handshakes), its events forwarded to the Event
API stand-in under the provider's name, and a send signed with another secret refused."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.cli import main
from gateway.commands.send import read_sample, sample_names
from gateway.config import config_from_env
from gateway.providers import get_provider, provider_names
from tests.eventapi_standin import event_api
from tests.provider_support import SECRETS, other_secret, zero_config_variables
from tests.server import run_gateway

#: provider -> sample -> the event names it makes (empty: a handshake, answered and not stored)
EVENTS: dict[str, dict[str, list[str]]] = {
    "bitbucket": {
        "pullrequest.created": ["bitbucket/pullrequest.created"],
        "repo.push": ["bitbucket/repo.push"],
    },
    "calendly": {"invitee.created": ["calendly/invitee.created"]},
    "clerk": {"user.created": ["clerk/user.created"]},
    "docusign": {"envelope.completed": ["docusign/envelope.completed"]},
    "dropbox": {"list_folder.changed": ["dropbox/list_folder.changed"]},
    "github": {
        "ping": [],
        "pull_request.opened": ["github/pull_request.opened"],
        "push": ["github/push"],
    },
    "gitlab": {"merge_request.open": ["gitlab/merge_request.open"]},
    "hubspot": {
        "contact.creation": ["hubspot/contact.creation", "hubspot/contact.property_change"]
    },
    "intercom": {
        "conversation.user.created": ["intercom/conversation.user.created"],
        "ping": [],
    },
    "lemonsqueezy": {"order_created": ["lemonsqueezy/order.created"]},
    "linear": {"issue.create": ["linear/issue.create"]},
    "mailgun": {"delivered": ["mailgun/message.delivered"]},
    "meta": {"messages.changed": ["meta/messages.changed"]},
    "mux": {"video.asset.ready": ["mux/video.asset.ready"]},
    "notion": {"page.created": ["notion/page.created"]},
    "okta": {"user.session.start": ["okta/user.session.start"]},
    "openai": {"response.completed": ["openai/response.completed"]},
    "paddle": {"transaction.completed": ["paddle/transaction.completed"]},
    "pagerduty": {"incident.triggered": ["pagerduty/incident.triggered"]},
    "postmark": {"delivery": ["postmark/message.delivered"]},
    "replicate": {"prediction.succeeded": ["replicate/prediction.succeeded"]},
    "resend": {"email.delivered": ["resend/email.delivered"]},
    "sentry": {"issue.created": ["sentry/issue.created"]},
    "shopify": {
        "customers.data_request": ["shopify/customers.data_request"],
        "orders.create": ["shopify/orders.create"],
    },
    "slack": {
        "app_mention": ["slack/app_mention"],
        "block_actions": ["slack/block_actions"],
        "message": ["slack/message"],
        "slash_command": ["slack/command.invoked"],
    },
    "square": {"payment.created": ["square/payment.created"]},
    "standard": {
        "contact.created": ["standard/contact.created"],
        "user.created": ["standard/user.created"],
    },
    "stripe": {
        "checkout.session.completed": ["stripe/checkout.session.completed"],
        "customer.created": ["stripe/customer.created"],
        "invoice.paid": ["stripe/invoice.paid"],
    },
    "telegram": {"message": ["telegram/message.received"]},
    "trello": {"card.update": ["trello/card.update"]},
    "twilio": {"message.received": ["twilio/message.received"]},
    "twitch": {"channel.follow": ["twitch/channel.follow"]},
    "typeform": {"form_response.submitted": ["typeform/form_response.submitted"]},
    "vercel": {"deployment.created": ["vercel/deployment.created"]},
    "workos": {"dsync.user.created": ["workos/dsync.user.created"]},
    "x": {"tweet.create": ["x/tweet.create"]},
    "xero": {"invoice.updated": ["xero/contact.created", "xero/invoice.updated"]},
    "zendesk": {"ticket.created": ["zendesk/ticket.created"]},
    "zoom": {"meeting.started": ["zoom/meeting.started"]},
}
#: providers whose sample, sent again, is a new event: ``send`` gives it a fresh id (an ``id``
#: field, or a message id header it makes), or the provider keeps no dedup id (dropbox: every
#: notification is new); the others' ids come from the sample itself, so a second send is a
#: duplicate
FRESH_ON_RESEND = frozenset(
    {"clerk", "dropbox", "intercom", "linear", "mux", "notion", "openai", "paddle", "replicate",
     "resend", "slack", "square", "standard", "stripe", "twitch", "typeform", "vercel", "workos",
     "zendesk"}
)  # fmt: skip
#: with samples, but ``send`` cannot sign them: the gateway holds only a public key (discord,
#: sendgrid), signs nothing (msgraph), has no zero-config variable (hmac, in tests/test_send.py)
NOT_SENT = frozenset({"discord", "sendgrid", "msgraph", "hmac"})


def test_every_provider_with_samples_is_sent_or_said_why_not() -> None:
    with_samples = {name for name in provider_names() if sample_names(name)}
    assert with_samples == set(EVENTS) | NOT_SENT
    assert set(EVENTS) <= set(SECRETS)
    for name, samples in EVENTS.items():
        assert sorted(samples) == sample_names(name), name
    public_keys = {
        "discord": Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex(),
        "sendgrid": base64.b64encode(
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        ).decode(),
        "msgraph": SECRETS["msgraph"],
    }
    for name, secret in public_keys.items():
        provider = get_provider(name)([secret], 300, {})
        with pytest.raises(NotImplementedError):
            provider.sign(read_sample(name, sample_names(name)[0]))


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_send_every_sample_to_a_zero_config_gateway(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quiet = get_provider(name).empty_replies  # Xero: every answer without a body
    with event_api() as api:
        env = {**zero_config_variables(name), "GATEWAY_DATA_DIR": str(tmp_path),
               "INNGEST_BASE_URL": api.url, "INNGEST_EVENT_KEY": "test-key"}  # fmt: skip
        config = config_from_env(env)
        assert [s.name for s in config.sources] == [name]
        config.gateway.strict_names = True
        stored = duplicates = 0
        with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
            for sample, names in EVENTS[name].items():
                argv = ["send", name, "--sample", sample, "--url", gw.url]
                for attempt in ("first", "again"):
                    assert main(argv, env) == 0, capsys.readouterr()
                    out = capsys.readouterr().out.splitlines()
                    assert out[0].startswith(f"POST {gw.url}/webhooks/{name} ({name}, {sample}, ")
                    new = len(names) if attempt == "first" or name in FRESH_ON_RESEND else 0
                    reply = (
                        f"accepted: {new} event(s) stored, {len(names) - new} duplicate(s) skipped"
                    )
                    if quiet:
                        reply = "(empty body)"
                    elif not names:
                        reply = '{"ok":true}'
                    assert out[1] == f"200 OK: {reply}", out
                    stored, duplicates = stored + new, duplicates + len(names) - new
            wrong = {**env, **zero_config_variables(name, other_secret(SECRETS[name]))}
            first = next(iter(EVENTS[name]))
            assert main(["send", name, "--sample", first, "--url", gw.url], wrong) == 1
            assert "401 Unauthorized" in capsys.readouterr().out
            assert api.wait_for_events(stored)
            metrics = client.get("/metrics").text
    assert f'events_accepted_total{{source="{name}"}} {stored}.0' in metrics
    if duplicates:
        assert f'duplicates_skipped_total{{source="{name}"}} {duplicates}.0' in metrics
    fresh = 2 if name in FRESH_ON_RESEND else 1
    expected = sorted(event for names in EVENTS[name].values() for event in names * fresh)
    assert sorted(event["name"] for event in api.events) == expected
