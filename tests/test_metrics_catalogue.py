"""Issue 5: every metric the issue lists is exported, moves, and carries low-cardinality labels."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import build_gateway, create_app
from gateway.outbox.sqlite import SQLiteOutbox
from gateway.webhook import Webhook
from tests.eventapi_standin import event_api
from tests.helpers import STRIPE_SECRET, fixture, make_config
from tests.server import run_gateway
from tests.signing import stripe_headers

ALLOWED_LABELS = {"source", "provider", "reason", "state", "status_class", "le"}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples(text).items() if n == name and wanted <= ls)


def test_every_listed_metric_moves_with_low_cardinality_labels(tmp_path: Path) -> None:
    customer = fixture("stripe/customer.created.json")
    invoice = fixture("stripe/invoice.paid.json")
    untransformable = json.dumps({"id": "evt_no_type", "object": "event"}).encode()
    with event_api() as api:
        api.poison_names = {"stripe/invoice.paid"}  # 400 from the API: dead-lettered
        with (
            run_gateway(make_config(tmp_path, api.url)) as gw,
            httpx.Client(base_url=gw.url) as c,
        ):

            def post(body: bytes, signed: bool = True) -> int:
                headers = stripe_headers(body, STRIPE_SECRET) if signed else {}
                return c.post("/webhooks/stripe", content=body, headers=headers).status_code

            assert post(customer) == 200
            assert post(customer) == 200  # the provider's retry: a duplicate, not re-sent
            assert post(invoice) == 200
            assert post(untransformable) == 200  # quarantined
            assert post(customer, signed=False) == 401
            oversized = {"x-padding": "p" * 40_000}  # over the 32 KiB header limit
            assert c.post("/webhooks/stripe", content=b"{}", headers=oversized).status_code == 431
            deadline = time.monotonic() + 20
            text = ""
            while time.monotonic() < deadline:
                text = c.get("/metrics").text
                if value(text, "webhook_gateway_dead_letters_total") >= 1:
                    break
                time.sleep(0.05)
    stripe = {"source": "stripe"}
    assert value(text, "webhook_gateway_webhooks_received_total", **stripe) == 5
    assert value(text, "webhook_gateway_webhooks_accepted_total", **stripe) >= 3
    assert value(text, "webhook_gateway_webhooks_rejected_total", **stripe) == 1
    assert value(text, "webhook_gateway_http_refused_total", reason="header_too_large") == 1
    assert value(text, "webhook_gateway_verification_seconds_count", provider="stripe") == 5
    assert value(text, "webhook_gateway_transform_errors_total", **stripe) == 1
    assert value(text, "webhook_gateway_duplicates_skipped_total", **stripe) == 1
    assert value(text, "webhook_gateway_events_forwarded_total") == 1
    assert value(text, "webhook_gateway_forward_attempts_total", status_class="2xx") >= 1
    assert value(text, "webhook_gateway_forward_failures_total", status_class="4xx") >= 1
    assert value(text, "webhook_gateway_batch_events_count") >= 2
    assert value(text, "webhook_gateway_batch_bytes_sum") > 0
    assert value(text, "webhook_gateway_dead_letters_total") == 1
    assert value(text, "webhook_gateway_outbox_dead_letters") == 1
    assert value(text, "webhook_gateway_outbox_quarantined") == 1
    assert value(text, "webhook_gateway_outbox_depth", state="pending") == 0
    # every accept was a durable commit, each timed (the forwarder's writes add more)
    commits = value(text, "webhook_gateway_outbox_commit_seconds_count")
    assert commits >= 4 and value(text, "webhook_gateway_outbox_commit_seconds_sum") > 0
    assert ("webhook_gateway_outbox_oldest_age_seconds", frozenset()) in samples(text)
    assert ("webhook_gateway_event_api_degraded", frozenset()) in samples(text)
    labels = {
        k for (name, ls) in samples(text) if name.startswith("webhook_gateway_") for k, _ in ls
    }
    assert labels <= ALLOWED_LABELS
    # no event id, request id or path ever becomes a label value
    values = {v for (name, ls) in samples(text) for _, v in ls}
    assert not any(v.startswith(("evt_", "stripe-evt")) or "/" in v for v in values)


def test_a_scrape_does_not_count_delivered_rows(tmp_path: Path) -> None:
    # Delivered rows are kept for the whole dedup window: counting them at every scrape of
    # every replica was the scrape's largest cost, for a figure /metrics never exported.
    outbox = SQLiteOutbox(tmp_path / "outbox.sqlite3")
    gateway = build_gateway(make_config(tmp_path), {}, outbox=outbox)
    create_app(gateway)  # registers the outbox collector, as serve does
    for n in range(3):
        body = b'{"id": "evt_%d"}' % n
        outbox.accept(Webhook("stripe", "stripe", body), [body], [f"evt_{n}"], ["stripe/x"])
    delivered = outbox.claim(max_events=2, max_bytes=1 << 20, lease_seconds=30)
    outbox.ack([e.seq for e in delivered])
    assert outbox.stats().delivered == 2  # what `outbox status` and the console show
    statements: list[str] = []
    outbox._read.set_trace_callback(statements.append)  # the outbox's own read connection
    try:
        text = gateway.metrics.render().decode()  # what GET /metrics answers
    finally:
        outbox._read.set_trace_callback(None)
        outbox.close()
    assert value(text, "webhook_gateway_outbox_depth", state="pending") == 1
    assert value(text, "webhook_gateway_outbox_depth", state="leased") == 0
    assert len(statements) == 1 and "FROM events" in statements[0]  # one query per scrape
    assert "'delivered'" not in statements[0]
