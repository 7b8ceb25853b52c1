"""A failing, invalid, hanging or badly named transform, end to end over a real socket.

A raising or invalid transform quarantines the verified webhook (error and traceback kept in the
SQLite file) and answers 200; ``webhook-gateway quarantine list|replay`` shows it and, once the
plugin file is fixed, re-runs it so its events reach the Event API. A hanging transform is cut
off without stalling other requests. Names breaking the convention are logged and counted, or
quarantined under ``strict_names``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.cli import main
from gateway.config import load_config
from tests.eventapi_standin import EventApiStandIn, event_api
from tests.helpers import INTERCOM_SECRET, STRIPE_SECRET, fixture
from tests.server import run_gateway
from tests.signing import intercom_headers, stripe_headers

BROKEN = """
from gateway import Event, transform

@transform("orders")
def orders(webhook):
    raise RuntimeError("bug in the orders transform")

@transform("notes")
def notes(webhook):
    return {"name": "inngest/function.failed", "data": {}}
"""
FIXED = """
from gateway import Event, transform
from transforms.intercom import intercom
from transforms.stripe import stripe

@transform("orders")
def orders(webhook):
    return stripe(webhook)

@transform("notes")
def notes(webhook):
    return intercom(webhook)
"""
SLOW = """
import time
from gateway import Event, transform

@transform("slow")
def slow(webhook):
    time.sleep(2)
    return Event(name="stripe/customer.created", data={})

@transform("odd")
def odd(webhook):
    return Event(name="stripe/CustomerCreated", id="stripe-odd-" + webhook.json["id"], data={})
"""


@pytest.fixture(scope="module")
def api() -> Iterator[EventApiStandIn]:
    with event_api() as stand_in:
        yield stand_in


def write_config(tmp_path: Path, api_url: str, plugin: str, **gateway: object) -> Path:
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "shop.py").write_text(plugin)
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in gateway.items())
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
[gateway]
data_dir = "{tmp_path / "data"}"
transforms_dir = "{plugins}"
{extra}
[inngest]
base_url = "{api_url}"
event_key = "inline:test-key"

[forwarder]
backoff_base = 0.01
backoff_max = 0.05
idle_poll = 0.02

[[sources]]
name = "stripe"
provider = "stripe"
secrets = ["inline:{STRIPE_SECRET}"]
transform = "{"orders" if "orders" in plugin else "slow"}"

[[sources]]
name = "intercom"
provider = "intercom"
secrets = ["inline:{INTERCOM_SECRET}"]
transform = "{"notes" if "notes" in plugin else "odd"}"

[[sources]]
name = "plain"
provider = "stripe"
secrets = ["inline:{STRIPE_SECRET}"]
"""
    )
    return path


def stripe_body(event_id: str) -> bytes:
    event = json.loads(fixture("stripe/customer.created.json"))
    event["id"] = event_id
    return json.dumps(event).encode()


def test_quarantined_webhooks_are_listed_and_replayed_once_fixed(
    tmp_path: Path, api: EventApiStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, api.url, BROKEN)
    cli_env = {"GATEWAY_CONFIG": str(path)}
    body = stripe_body("evt_quarantine_1")
    note = fixture("intercom/conversation.user.created.json")
    with run_gateway(load_config(path, {})) as gw, httpx.Client(base_url=gw.url) as client:
        raised = client.post(
            "/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
        )
        invalid = client.post(
            "/webhooks/intercom", content=note, headers=intercom_headers(note, INTERCOM_SECRET)
        )
        for response in (raised, invalid):  # 2xx: the provider must not retry a bug forever
            assert response.status_code == 200
            assert response.json()["status"] == "quarantined"
        forged = client.post("/webhooks/stripe", content=body, headers={"Stripe-Signature": "x"})
        assert forged.status_code == 401  # verification still comes first
    ids = sorted([raised.json()["webhook_id"], invalid.json()["webhook_id"]])

    with sqlite3.connect(tmp_path / "data" / "outbox.sqlite3") as db:
        stored = dict(db.execute("SELECT source, detail FROM webhooks WHERE status='quarantined'"))
    assert "Traceback" in stored["stripe"] and "bug in the orders transform" in stored["stripe"]

    assert main(["quarantine", "list", "-o", "json"], cli_env) == 0
    listed = {entry["source"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert sorted(entry["webhook_id"] for entry in listed.values()) == ids
    assert "RuntimeError: bug in the orders transform" in listed["stripe"]["error"]
    assert "reserved" in listed["intercom"]["error"]
    assert listed["stripe"]["bytes"] == len(body)

    assert main(["quarantine", "replay", "--all"], cli_env) == 1  # still broken: kept
    assert capsys.readouterr().err.count("still failing") == 2

    (tmp_path / "plugins" / "shop.py").write_text(FIXED)
    assert main(["quarantine", "replay", "--all"], cli_env) == 0
    out = capsys.readouterr().out
    assert all(f"webhook {i}: 1 event(s) queued" in out for i in ids)
    assert main(["quarantine", "list", "-o", "json"], cli_env) == 0
    assert json.loads(capsys.readouterr().out) == []

    before = len(api.events)
    with run_gateway(load_config(path, {})):  # the forwarder sends what the replay queued
        assert api.wait_for_events(before + 2)
    sent = {event["name"]: event for event in api.events[before:]}
    assert sent["stripe/customer.created"]["id"] == "stripe-evt_quarantine_1"
    assert sent["intercom/conversation.user.created"]["data"] == json.loads(note)


def test_a_hanging_transform_is_cut_off_without_stalling_the_server(
    tmp_path: Path, api: EventApiStandIn
) -> None:
    path = write_config(tmp_path, api.url, SLOW, transform_timeout=0.3)
    body = stripe_body("evt_slow_1")
    other = stripe_body("evt_while_slow")
    with run_gateway(load_config(path, {})) as gw, httpx.Client(base_url=gw.url) as client:
        slow: list[httpx.Response] = []
        started = threading.Thread(
            target=lambda: slow.append(
                httpx.post(
                    f"{gw.url}/webhooks/stripe",
                    content=body,
                    headers=stripe_headers(body, STRIPE_SECRET),
                    timeout=30,
                )
            )
        )
        started.start()
        # While the transform hangs, probes and other sources are answered.
        assert client.get("/healthz").status_code == 200
        response = client.post(
            "/webhooks/plain", content=other, headers=stripe_headers(other, STRIPE_SECRET)
        )
        assert response.status_code == 200 and response.json()["status"] == "accepted"
        started.join(timeout=30)
        [hung] = slow
        assert hung.status_code == 200 and hung.json()["status"] == "quarantined"
        held = gw.config.app.state.gateway.outbox.quarantined()  # type: ignore[attr-defined]
        [(_, webhook, error)] = held
        assert "timed out after 0.3s" in error and webhook.body == body


@pytest.mark.parametrize("strict", [False, True])
def test_names_breaking_the_convention_warn_or_quarantine(
    tmp_path: Path, api: EventApiStandIn, strict: bool, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(tmp_path, api.url, SLOW, strict_names=strict)
    note = fixture("intercom/conversation.user.created.json")
    with (
        caplog.at_level(logging.WARNING, logger="webhook_gateway"),
        run_gateway(load_config(path, {})) as gw,
        httpx.Client(base_url=gw.url) as client,
    ):
        response = client.post(
            "/webhooks/intercom", content=note, headers=intercom_headers(note, INTERCOM_SECRET)
        )
        assert response.status_code == 200
        metrics = client.get("/metrics").text
    warned = 'webhook_gateway_event_name_warnings_total{source="intercom"} 1.0' in metrics
    if strict:
        assert response.json()["status"] == "quarantined" and not warned
        assert 'webhook_gateway_transform_errors_total{source="intercom"} 1.0' in metrics
    else:
        assert response.json()["status"] == "accepted" and warned
        assert any("stripe/CustomerCreated" in record.getMessage() for record in caplog.records)
