"""The standard, github, shopify and hmac transforms, field by field, on realistic fixtures."""

from __future__ import annotations

import dataclasses
import importlib
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from gateway.config import SourceConfig
from gateway.events import Event, follows_convention
from gateway.plugins import TransformError, TransformFunc, marked_functions
from gateway.providers import get_provider
from gateway.transform_runner import run_transform
from gateway.webhook import Webhook
from tests.helpers import fixture
from transforms.hmac import hmac_event

RECEIVED = 1_700_000_000.5
RECEIVED_MS = 1_700_000_000_500


def builtin(name: str) -> TransformFunc:
    """The transform ``transforms/<name>.py`` registers, found as the plugin loader finds it."""
    [(registered, func)] = marked_functions(importlib.import_module(f"transforms.{name}"))
    assert registered == name
    return func


def run(
    name: str, body: bytes, headers: dict[str, str], *, source: str | None = None, prefix: str = ""
) -> list[Event]:
    """Run a built-in as the gateway does; names must follow the source's convention."""
    source = source or name
    webhook = Webhook(
        source=source, provider=name, body=body, headers=headers, received_at=RECEIVED
    )
    outcome = run_transform(builtin(name), webhook, prefix=prefix or source, strict_names=True)
    for event in outcome.events:
        assert follows_convention(event.name, prefix or source)
    return outcome.events


# -- GitHub ------------------------------------------------------------------------------------


def github_headers(event: str, delivery: str = "72d3162e-cc78-11e3-81ab-4c9367dc0958") -> dict:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-GitHub-Hook-ID": "1"}


def test_github_pull_request_opened() -> None:
    body = fixture("more/github/pull_request.opened.json")
    [event] = run("github", body, github_headers("pull_request"))
    assert event.name == "github/pull_request.opened"
    assert event.id == "github-72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert event.ts == RECEIVED_MS
    assert event.v is None
    assert event.data == json.loads(body)
    assert event.data["pull_request"]["head"]["sha"] == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def test_github_push_has_no_action() -> None:
    body = fixture("more/github/push.json")
    [event] = run("github", body, github_headers("push", "d-push"))
    assert (event.name, event.id) == ("github/push", "github-d-push")
    assert event.data["ref"] == "refs/heads/main"
    assert event.data["commits"][0]["modified"] == ["README.md"]


def test_github_form_encoded_delivery_maps_like_json() -> None:
    payload = fixture("more/github/pull_request.opened.json")
    form = urlencode({"payload": payload.decode()}).encode()
    [from_json] = run("github", payload, github_headers("pull_request"))
    [from_form] = run("github", form, github_headers("pull_request"))
    assert from_form == from_json


def test_github_ping_is_not_an_event() -> None:
    assert run("github", fixture("more/github/ping.json"), github_headers("ping")) == []


def test_github_without_delivery_or_event_header() -> None:
    body = fixture("more/github/push.json")
    [event] = run("github", body, {"X-GitHub-Event": "push"})
    assert event.id is None
    with pytest.raises(TransformError, match="X-GitHub-Event"):
        run("github", body, {})


# -- Shopify -----------------------------------------------------------------------------------


def shopify_headers(topic: str = "orders/create", **overrides: str | None) -> dict[str, str]:
    headers: dict[str, str | None] = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": "jsmith.myshopify.com",
        "X-Shopify-API-Version": "2024-07",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "X-Shopify-Triggered-At": "2024-07-17T14:55:13.123456789Z",
        **overrides,
    }
    return {k: v for k, v in headers.items() if v is not None}


def test_shopify_orders_create() -> None:
    body = fixture("more/shopify/orders.create.json")
    [event] = run("shopify", body, shopify_headers())
    assert event.name == "shopify/orders.create"
    assert event.id == "shopify-98880550-7158-44d4-b7cd-2c97c8a091b5"  # X-Shopify-Event-Id
    assert event.ts == 1721228113123  # nanoseconds truncated to ms
    assert event.v == "2024-07"
    assert event.data == {**json.loads(body), "shop_domain": "jsmith.myshopify.com"}
    assert event.data["id"] == 820982911946154508  # beyond 2**53, kept exact
    assert event.data["line_items"][0]["sku"] == "IPOD2008PINK"


def test_shopify_fallbacks() -> None:
    body = fixture("more/shopify/orders.create.json")
    headers = shopify_headers(
        "app/uninstalled",
        **{"X-Shopify-Event-Id": None, "X-Shopify-Triggered-At": None},
    )
    [event] = run("shopify", body, headers)
    assert event.name == "shopify/app.uninstalled"
    assert event.id == "shopify-b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"  # X-Shopify-Webhook-Id
    assert event.ts == RECEIVED_MS
    for bad in ("yesterday", "2024-07-17T14:55:13", "1900-01-01T00:00:00Z"):
        [late] = run("shopify", body, shopify_headers(**{"X-Shopify-Triggered-At": bad}))
        assert late.ts == RECEIVED_MS
    bare = shopify_headers(
        **{
            "X-Shopify-Webhook-Id": None,
            "X-Shopify-Event-Id": None,
            "X-Shopify-API-Version": None,
            "X-Shopify-Shop-Domain": None,
        }
    )
    [plain] = run("shopify", body, bare)
    assert plain.id is None and plain.v is None
    assert plain.data == json.loads(body)


def test_shopify_gdpr_payload_keeps_its_own_shop_domain() -> None:
    body = fixture("more/shopify/customers.data_request.json")
    headers = shopify_headers("customers/data_request", **{"X-Shopify-Shop-Domain": "other"})
    [event] = run("shopify", body, headers)
    assert event.name == "shopify/customers.data_request"
    assert event.data == json.loads(body)


# -- Standard Webhooks -------------------------------------------------------------------------


def test_clerk_user_created_named_after_its_source() -> None:
    body = fixture("more/standard/clerk.user.created.json")
    headers = {"svix-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "svix-timestamp": "1654012592"}
    [event] = run("standard", body, headers, source="clerk")
    assert event.name == "clerk/user.created"
    assert event.id == "clerk-msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    assert event.ts == 1654012591835  # Clerk's timestamp is already in ms
    assert event.data == json.loads(body)
    assert event.data["data"]["id"] == "user_29w83sxmDNGwOuEthce5gg56FcC"
    assert event.data["instance_id"] == "ins_29w83sxmDNGwOuEthce5gg56FcC"


def test_zero_config_standard_source_and_iso_timestamp() -> None:
    body = fixture("more/standard/contact.created.json")
    [event] = run("standard", body, {"webhook-id": "msg_1", "webhook-svix-id": "ignored"})
    assert event.name == "standard/contact.created"
    assert event.id == "standard-msg_1"
    assert event.ts == 1667507170344  # 2022-11-03T20:26:10.344522Z
    assert event.data["data"]["id"] == "1f81eb52-5198-4599-803e-771906343485"


@pytest.mark.parametrize(
    ("timestamp", "ts"),
    [
        (1654012591, 1654012591000),  # seconds
        (1654012591835, 1654012591835),  # milliseconds
        ("2022-11-03T20:26:10Z", 1667507170000),
        ("2022-11-03T20:26:10", RECEIVED_MS),  # no zone: not trusted
        ("not a time", RECEIVED_MS),
        (True, RECEIVED_MS),
        (12, RECEIVED_MS),  # 1970: outside what the Event API accepts
        (None, RECEIVED_MS),
    ],
)
def test_standard_timestamps(timestamp: Any, ts: int) -> None:
    body = json.dumps({"type": "email.sent", "timestamp": timestamp, "data": {}}).encode()
    [event] = run("standard", body, {"webhook-id": "msg_t"}, source="resend")
    assert (event.name, event.ts) == ("resend/email.sent", ts)


def test_standard_prefix_comes_from_the_config_file() -> None:
    """``prefix`` names the events and their ids; without one, the source's name does."""
    body = fixture("more/standard/clerk.user.created.json")
    headers = {"svix-id": "msg_p"}
    config = SourceConfig(name="standard", provider="standard", prefix="clerk")
    webhook = Webhook(
        source="standard",
        provider="standard",
        body=body,
        headers=headers,
        received_at=RECEIVED,
        prefix=config.event_prefix,
    )
    outcome = run_transform(builtin("standard"), webhook, prefix=config.event_prefix)
    assert [(e.name, e.id) for e in outcome.events] == [("clerk/user.created", "clerk-msg_p")]
    assert not outcome.convention_warnings
    unset = SourceConfig(name="resend", provider="standard")
    assert unset.event_prefix == "resend"
    assert SourceConfig(name="billing", provider="stripe").event_prefix == "stripe"
    assert SourceConfig(name="linear", provider="hmac").event_prefix == "linear"


@pytest.mark.parametrize("body", [b'{"data": {}}', b'{"type": ""}', b'{"type": 5}', b"[]"])
def test_standard_without_a_type_is_quarantined(body: bytes) -> None:
    with pytest.raises(TransformError, match=r"type|JSON object"):
        run("standard", body, {"webhook-id": "msg_x"})


# -- Generic HMAC ------------------------------------------------------------------------------


def hmac_run(
    name: str, options: dict[str, Any], headers: dict[str, str] | None = None, source: str = ""
) -> Event:
    body = fixture(f"more/hmac/{name}")
    get_provider("hmac")(["k"], 300, options)  # the options are valid for the provider too
    webhook = Webhook(
        source=source or name.split(".")[0],
        provider="hmac",
        body=body,
        headers=headers or {},
        received_at=RECEIVED,
    )
    event = hmac_event(webhook, options)
    assert event.data == json.loads(body)
    return event


def test_hmac_linear() -> None:
    options = {
        "header": "Linear-Signature",
        "name_template": "linear/{type:lower}.{action}",
        "id_header": "Linear-Delivery",
        "ts_path": "webhookTimestamp",
    }
    headers = {"Linear-Delivery": "234d1a4e-b617-4388-90fe-adc3633d6b72", "Linear-Event": "Issue"}
    event = hmac_run("linear.issue.create.json", options, headers)
    assert event.name == "linear/issue.create"
    assert event.id == "linear-234d1a4e-b617-4388-90fe-adc3633d6b72"
    assert event.ts == 1721228113612


def test_hmac_typeform() -> None:
    options = {
        "header": "Typeform-Signature",
        "encoding": "base64",
        "prefix": "sha256=",
        "name_template": "typeform/{event_type}",
        "id_path": "event_id",
        "ts_path": "form_response.submitted_at",
    }
    event = hmac_run("typeform.form_response.json", options)
    assert event.name == "typeform/form_response"
    assert event.id == "typeform-01EK4R5PFZZP6C8H14RTP4YW6C"
    assert event.ts == 1601108629000  # 2020-09-26T08:23:49Z


def test_hmac_pagerduty_nested_paths() -> None:
    options = {
        "header": "X-PagerDuty-Signature",
        "prefix": "v1=",
        "name_template": "pagerduty/{event.event_type}",
        "id_path": "event.id",
        "ts_path": "event.occurred_at",
    }
    event = hmac_run("pagerduty.incident.triggered.json", options)
    assert event.name == "pagerduty/incident.triggered"
    assert event.id == "pagerduty-01DEN8N2NBJ6K3X7WQWQ1D0ZMT"
    assert event.ts == 1601664322169


def test_hmac_header_in_the_name_and_list_index() -> None:
    options = {
        "header": "X-Signature",
        "name_template": "lemonsqueezy/{header:X-Event-Name}",
        "id_path": "meta.webhook_id",
    }
    event = hmac_run("lemonsqueezy.order_created.json", options, {"X-Event-Name": "order_created"})
    assert event.name == "lemonsqueezy/order_created"
    assert event.id == "lemonsqueezy-7cb3e3b4-0a0e-4c9f-b5d1-4e6c1a2b3c4d"
    assert event.ts == RECEIVED_MS
    indexed = {"header": "X-Sig", "name_template": "pd/{event.data.assignees.0.id:lower}"}
    assert hmac_run("pagerduty.incident.triggered.json", indexed).name == "pd/ptuxl6g"


def test_hmac_timestamp_header_and_source_placeholder() -> None:
    options = {
        "header": "X-Signature",
        "encoding": "base64",
        "timestamp_header": "X-Request-Timestamp",
        "signed_content": "v0:{timestamp}:{body}",
        "name_template": "{source}/job.{status:lower}",
        "id_path": "jobId",
    }
    event = hmac_run(
        "pyannote.job.succeeded.json", options, {"X-Request-Timestamp": "1721228113"}, "pyannote"
    )
    assert event.name == "pyannote/job.succeeded"
    assert event.id == "pyannote-3c8a89a5-dcc6-4edb-a75d-ffd64739674d"
    assert event.ts == 1721228113000


def test_hmac_defaults_and_form_bodies() -> None:
    webhook = Webhook(
        source="acme",
        provider="hmac",
        body=b'{"type": "invoice.paid", "id": 7}',
        received_at=RECEIVED,
    )
    event = hmac_event(webhook, {"header": "X-Sig"})
    assert (event.name, event.id, event.ts) == ("acme/invoice.paid", None, RECEIVED_MS)
    form = Webhook(
        source="sms",
        provider="hmac",
        body=b"MessageSid=SM1&SmsStatus=delivered",
        received_at=RECEIVED,
    )
    options = {"header": "X-Sig", "format": "form", "name_template": "sms/message.{SmsStatus}",
               "id_path": "MessageSid"}  # fmt: skip
    event = hmac_event(form, options)
    assert (event.name, event.id) == ("sms/message.delivered", "sms-SM1")
    assert event.data == {"MessageSid": "SM1", "SmsStatus": "delivered"}


def test_hmac_prefix_names_the_default_event_and_its_id() -> None:
    webhook = Webhook(
        source="acme-prod",
        provider="hmac",
        body=b'{"type": "invoice.paid", "id": "inv_7"}',
        received_at=RECEIVED,
        prefix="acme",
    )
    event = hmac_event(webhook, {"header": "X-Sig", "id_path": "id"})
    assert (event.name, event.id) == ("acme/invoice.paid", "acme-inv_7")
    both = hmac_event(webhook, {"header": "X-Sig", "name_template": "{prefix}/{source}.{type}"})
    assert both.name == "acme/acme-prod.invoice.paid"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"name_template": "acme/{kind}"}, "no 'kind'"),
        ({"name_template": "acme/{data}"}, "not a non-empty string"),
        ({"name_template": "acme/{header:X-Missing}"}, "X-Missing"),
        ({"id_path": "nope"}, "no 'nope'"),
        ({"id_path": "data"}, "not a non-empty string"),
    ],
)
def test_hmac_missing_fields_quarantine_rather_than_misname(
    options: dict[str, str], match: str
) -> None:
    webhook = Webhook(source="acme", provider="hmac", body=b'{"type": "a", "data": {"x": 1}}')
    with pytest.raises(TransformError, match=match):
        run_transform(lambda w: hmac_event(w, {"header": "X-Sig", **options}), webhook,
                      prefix="acme")  # fmt: skip


def test_hmac_builtin_without_options_uses_the_defaults() -> None:
    body = b'{"type": "ticket.closed", "id": "t_1"}'
    [event] = run("hmac", body, {}, source="helpdesk")
    assert (event.name, event.id, event.ts) == ("helpdesk/ticket.closed", None, RECEIVED_MS)


@pytest.mark.skipif(
    "options" not in {f.name for f in dataclasses.fields(Webhook)},
    reason="the receiver does not attach the source's options to Webhook yet",
)
def test_hmac_builtin_reads_the_source_options_from_the_webhook() -> None:
    body = fixture("more/hmac/typeform.form_response.json")
    options = {"header": "Typeform-Signature", "name_template": "typeform/{event_type}",
               "id_path": "event_id"}  # fmt: skip
    webhook = Webhook(source="typeform", provider="hmac", body=body, options=options)  # type: ignore[call-arg]
    [event] = run_transform(builtin("hmac"), webhook, prefix="typeform").events
    assert (event.name, event.id) == (
        "typeform/form_response",
        "typeform-01EK4R5PFZZP6C8H14RTP4YW6C",
    )


def test_hmac_time_beyond_a_float_falls_back_to_the_receive_time() -> None:
    """A 400-digit ``ts_path`` integer is no time: the event keeps the receive time."""
    body = b'{"type": "invoice.paid", "at": 1' + b"0" * 400 + b"}"
    webhook = Webhook(source="acme", provider="hmac", body=body, received_at=RECEIVED)
    event = hmac_event(webhook, {"header": "X-Sig", "ts_path": "at"})
    assert (event.name, event.ts) == ("acme/invoice.paid", RECEIVED_MS)
