"""Metrics move as expected; logs are JSON lines without secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from pathlib import Path

import httpx

from gateway.logs import configure_logging, log_fields
from tests.eventapi_standin import event_api
from tests.helpers import SLACK_SECRET, STRIPE_SECRET, fixture, make_config
from tests.server import GatewayProcess, run_gateway
from tests.signing import slack_headers, stripe_headers


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return 0.0


def test_metrics_across_accept_reject_forward_retry(tmp_path: Path) -> None:
    with event_api() as api:
        api.fail_next(1, 503)
        with run_gateway(make_config(tmp_path, api.url)) as gw, httpx.Client(base_url=gw.url) as c:
            body = fixture("stripe/customer.created.json")
            assert (
                c.post(
                    "/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
                ).status_code
                == 200
            )
            assert (
                c.post(
                    "/webhooks/stripe", content=body, headers={"Stripe-Signature": "t=1,v1=00"}
                ).status_code
                == 401
            )
            assert c.post("/webhooks/nope", content=b"{}").status_code == 404
            deadline = time.monotonic() + 20
            text = ""
            while time.monotonic() < deadline:
                text = c.get("/metrics").text
                if metric(text, "webhook_gateway_events_forwarded_total") >= 1:
                    break
                time.sleep(0.05)
    assert metric(text, "webhook_gateway_webhooks_received_total", source="stripe") == 2
    assert metric(text, "webhook_gateway_webhooks_accepted_total", source="stripe") == 1
    assert (
        metric(
            text,
            "webhook_gateway_webhooks_rejected_total",
            source="stripe",
            reason="signature_mismatch",
        )
        == 1
    )
    assert (
        metric(
            text,
            "webhook_gateway_webhooks_rejected_total",
            source="_unknown",
            reason="unknown_source",
        )
        == 1
    )
    assert metric(text, "webhook_gateway_events_accepted_total", source="stripe") == 1
    assert metric(text, "webhook_gateway_events_forwarded_total") == 1
    assert metric(text, "webhook_gateway_forward_attempts_total", status_class="5xx") == 1
    assert metric(text, "webhook_gateway_forward_failures_total", status_class="5xx") == 1
    assert metric(text, "webhook_gateway_forward_attempts_total", status_class="2xx") == 1
    assert metric(text, "webhook_gateway_batch_events_count") == 2
    assert metric(text, "webhook_gateway_verification_seconds_count", provider="stripe") == 2
    assert metric(text, "webhook_gateway_outbox_depth", state="pending") == 0
    assert "webhook_gateway_outbox_oldest_age_seconds" in text
    # low-cardinality labels only: the unknown source name never becomes a label value
    assert 'source="nope"' not in text


def test_logs_are_json_and_never_contain_secrets(tmp_path: Path) -> None:
    stream = io.StringIO()
    config = make_config(tmp_path, None)
    configure_logging("debug", [STRIPE_SECRET, SLACK_SECRET, "test-key"], stream=stream)
    try:
        with run_gateway(config) as gw, httpx.Client(base_url=gw.url) as c:
            body = fixture("stripe/invoice.paid.json")
            c.post("/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET))
            c.post("/webhooks/stripe", content=body, headers={"Stripe-Signature": "t=1,v1=0"})
            slack = fixture("slack/message.json")
            c.post("/webhooks/slack", content=slack, headers=slack_headers(slack, SLACK_SECRET))
            # a mistake that would log a secret is scrubbed all the same
            logging.getLogger("webhook_gateway").warning(f"oops {STRIPE_SECRET}")
    finally:
        for name in ("webhook_gateway", "uvicorn", "uvicorn.error"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is valid JSON
    requests = [r for r in records if r["msg"] == "webhook"]
    assert {r["outcome"] for r in requests} >= {"accepted", "signature_mismatch"}
    accepted = next(r for r in requests if r["outcome"] == "accepted")
    assert accepted["source"] == "stripe" and accepted["provider"] == "stripe"
    assert accepted["provider_event_id"] == "evt_1OA9vC2eZvKYlo2C5lW6Yl8R"
    assert accepted["request_id"] and accepted["latency_ms"] >= 0
    text = stream.getvalue()
    for secret in (STRIPE_SECRET, SLACK_SECRET):
        assert secret not in text
    assert "oops [redacted]" in text
    assert "jennyrosen@example.com" not in text  # bodies stay out unless log_bodies is set
    signature = stripe_headers(body, STRIPE_SECRET)["Stripe-Signature"].split("v1=")[1]
    assert signature not in text


def test_bodies_logged_only_when_enabled_at_debug(tmp_path: Path) -> None:
    stream = io.StringIO()
    config = make_config(tmp_path, None)
    config.gateway.log_bodies = True
    configure_logging("debug", [STRIPE_SECRET], stream=stream)
    try:
        with run_gateway(config) as gw, httpx.Client(base_url=gw.url) as c:
            body = fixture("stripe/invoice.paid.json")
            c.post("/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET))
    finally:
        for name in ("webhook_gateway", "uvicorn", "uvicorn.error"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
    records = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    [logged] = [r for r in records if r["msg"] == "webhook body"]
    assert logged["level"] == "debug" and "jennyrosen@example.com" in logged["body"]


def test_the_fast_webhook_line_matches_the_logging_path_and_is_scrubbed() -> None:
    stream = io.StringIO()
    log = configure_logging("info", [STRIPE_SECRET], stream=stream)
    try:
        fields = {"request_id": "r1", "source": "stripe", "status": 200, "oops": STRIPE_SECRET}
        log_fields(log, logging.INFO, "webhook", fields)
        log.info("webhook", extra=fields)
        log_fields(log, logging.DEBUG, "webhook", fields)  # below the level: nothing

        async def in_a_loop() -> str:
            log_fields(log, logging.INFO, "webhook", {"n": 1})
            log_fields(log, logging.INFO, "webhook", {"n": 2})
            written = stream.getvalue()  # buffered until the loop's next iteration
            await asyncio.sleep(0)
            return written

        before_iteration = asyncio.run(in_a_loop())
    finally:
        for name in ("webhook_gateway", "uvicorn", "uvicorn.error"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
    fast, slow, *looped = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert fast.pop("ts") > 0 and slow.pop("ts") > 0
    assert (
        fast
        == slow
        == {
            "level": "info",
            "logger": "webhook_gateway",
            "msg": "webhook",
            "request_id": "r1",
            "source": "stripe",
            "status": 200,
            "oops": "[redacted]",
        }
    )
    assert [line["n"] for line in looped] == [1, 2]
    assert before_iteration.count("\n") == 2  # the loop's lines were written together, later


def test_served_log_lines_carry_no_terminal_escape_codes(tmp_path: Path) -> None:
    """uvicorn's own lines (``Uvicorn running on ...``) as ``serve`` writes them: plain JSON,
    without the ``color_message`` copy full of ANSI colour codes that uvicorn attaches."""
    env = {"STRIPE_WEBHOOK_SECRET": STRIPE_SECRET, "GATEWAY_DATA_DIR": str(tmp_path / "data")}
    proc = GatewayProcess(["--dev"], env, tmp_path / "gateway.log")
    try:
        proc.wait_ready()
    finally:
        proc.stop()
    text = proc.log_path.read_text()
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    running = [r for r in records if r["msg"].startswith("Uvicorn running on")]
    assert running and running[0]["logger"] == "uvicorn.error"
    for record in records:
        assert "color_message" not in record, record
    assert "\x1b" not in text and "\\u001b" not in text
