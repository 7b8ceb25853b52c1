"""The webhook a transform sees: every documented field, and nothing in it can be changed."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.webhook import PayloadError, Webhook


def make() -> Webhook:
    return Webhook(
        source="shop",
        provider="shopify",
        body=b'{"id": 1}',
        headers={"X-Shopify-Topic": "orders/create"},
        query={"tenant": "a"},
        received_at=1_700_000_000.25,
        options={"k": "v"},
        prefix="shop",
    )


def test_exposes_the_documented_fields() -> None:
    webhook = make()
    assert (webhook.source, webhook.provider, webhook.prefix) == ("shop", "shopify", "shop")
    assert webhook.body == b'{"id": 1}' and webhook.json == {"id": 1}
    assert webhook.header("x-shopify-topic") == webhook.headers["x-shopify-topic"]
    assert webhook.query["tenant"] == "a" and webhook.options["k"] == "v"
    assert webhook.received_at_ms == 1_700_000_000_250
    form = Webhook(source="s", provider="slack", body=b"command=%2Fdeploy&text=now")
    assert form.form == {"command": "/deploy", "text": "now"}
    with pytest.raises(PayloadError):
        _ = Webhook(source="s", provider="stripe", body=b"{not json").json


@pytest.mark.parametrize("field", ["source", "provider", "body", "received_at", "prefix"])
def test_attributes_cannot_be_set(field: str) -> None:
    webhook = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(webhook, field, "changed")


@pytest.mark.parametrize("mapping", ["headers", "query", "options"])
def test_mappings_are_read_only(mapping: str) -> None:
    value = getattr(make(), mapping)
    with pytest.raises(TypeError):
        value["x-new"] = "1"
