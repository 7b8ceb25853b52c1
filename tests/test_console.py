"""The inspection console over real loopback HTTP: auth, pages, recording, replay."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.app import build_gateway
from gateway.config import ConfigError, ConsoleConfig, config_from_env
from gateway.console.masking import MASK, mask_headers, scrub
from gateway.console.recording import housekeep
from gateway.outbox import Rejection
from gateway.outbox.sqlite import SQLiteOutbox
from tests.console_support import (
    FLAKY,
    READ_TOKEN,
    WRITE_TOKEN,
    Running,
    console_config,
    run_console,
    stripe_event,
    wait_until,
)
from tests.eventapi_standin import EventApiStandIn, event_api
from tests.helpers import STRIPE_SECRET
from tests.signing import stripe_headers


@pytest.fixture
def api() -> Iterator[EventApiStandIn]:
    with event_api() as standin:
        yield standin


@pytest.fixture
def running(tmp_path: Path, api: EventApiStandIn) -> Iterator[Running]:
    with run_console(console_config(tmp_path, api.url, rejected_body_bytes=64)) as gw:
        yield gw


def basic(token: str, user: str = "ops") -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


# -- auth ------------------------------------------------------------------------------


def test_no_credentials_get_401_with_a_login_prompt(running: Running) -> None:
    with running.client(token=None) as client:
        page = client.get("/console")
        api = client.get("/console/api/overview")
    assert page.status_code == 401
    assert page.headers["www-authenticate"].startswith('Basic realm="webhook-gateway console"')
    assert "console credentials required" in page.text
    assert api.status_code == 401 and api.json()["error"].startswith("console credentials")


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer not-a-token"},
        basic("not-a-token"),
        {"authorization": f"Bearer {READ_TOKEN}x"},
        {"authorization": "Basic !!!"},
        {"authorization": f"Token {READ_TOKEN}"},
    ],
    ids=["wrong-bearer", "wrong-basic", "longer", "bad-base64", "unknown-scheme"],
)
def test_wrong_credentials_get_401(running: Running, headers: dict[str, str]) -> None:
    with running.client(token=None) as client:
        response = client.get("/console/api/overview", headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "error": "console credentials not accepted: unknown token",
        "status": 401,
    }
    metrics = running.gateway.metrics.render().decode()
    assert 'webhook_gateway_console_auth_failures_total{reason="invalid"} 1.0' in metrics


@pytest.mark.parametrize("token", [READ_TOKEN, WRITE_TOKEN])
def test_bearer_and_basic_tokens_open_every_page(running: Running, token: str) -> None:
    with running.client(token=None) as client:
        for headers in ({"authorization": f"Bearer {token}"}, basic(token, user="anyone")):
            overview = client.get("/console", headers=headers)
            assert overview.status_code == 200, overview.text
            assert "Overview" in overview.text
            assert overview.headers["x-frame-options"] == "DENY"
            assert "script-src 'self'" in overview.headers["content-security-policy"]
            assert client.get("/console/webhooks", headers=headers).status_code == 200
            css = client.get("/console/static/console.css", headers=headers)
            js = client.get("/console/static/console.js", headers=headers)
            assert css.status_code == js.status_code == 200
            assert "svg.chart" in css.text and "data-confirm" in js.text
            root = client.get("/", headers=headers)
            assert root.status_code == 307 and root.headers["location"] == "/console"
    scope = "write" if token == WRITE_TOKEN else "read"
    with running.client(token) as client:
        assert f"{scope} access" in client.get("/console").text


def test_the_public_port_has_no_console(running: Running) -> None:
    for path in ("/console", "/console/api/overview", "/console/static/console.js"):
        response = httpx.get(
            running.public + path, headers={"authorization": f"Bearer {READ_TOKEN}"}
        )
        assert response.status_code == 404
        assert response.json()["error"] == "not found"


def test_unknown_console_paths_are_404(running: Running) -> None:
    with running.client() as client:
        assert client.get("/console/nope").status_code == 404
        assert client.get("/console/webhooks/999999").status_code == 404
        assert client.get("/console/rejected/999999").status_code == 404
        bad = client.get("/console/api/webhooks", params={"status": "bogus"})
    assert bad.status_code == 400 and "status must be one of" in bad.json()["error"]


# -- refused requests ------------------------------------------------------------------


def test_refused_requests_are_kept_with_reason_masked_and_truncated(running: Running) -> None:
    body = stripe_event(1) + b" " * 200
    forged = running.send_stripe(
        body, secret="whsec_wrong", extra={"X-Debug-Echo": f"see {STRIPE_SECRET} here"}
    )
    assert forged.status_code == 401
    stale = httpx.post(
        f"{running.public}/webhooks/stripe",
        content=b"{}",
        headers={**stripe_headers(b"{}", STRIPE_SECRET, t=1), "authorization": "Bearer abc"},
    )
    assert stale.status_code == 401
    assert httpx.post(f"{running.public}/webhooks/nosuch", content=b"x").status_code == 404
    with running.client() as client:
        listed = client.get("/console/api/webhooks", params={"status": "rejected"}).json()
        rows = listed["webhooks"]
        assert [r["source"] for r in rows] == ["(unknown)", "stripe", "stripe"]  # aggregated
        assert rows[1]["summary"].startswith("401 timestamp")
        assert rows[2]["summary"].startswith("401 signature_mismatch")
        page = client.get(rows[2]["url"])
    assert page.status_code == 200
    assert "signature_mismatch" in page.text
    assert f"{len(body)} bytes, first 64 kept (truncated)" in page.text
    assert STRIPE_SECRET not in page.text  # scrubbed even in an unrelated header
    assert "see •••• here" in page.text
    assert "t=" not in page.text.split("stripe-signature")[1][:100]  # the signature is masked
    [kept] = [r for r in running.gateway.outbox.rejections() if r.reason == "signature_mismatch"]
    assert kept.headers["stripe-signature"] == MASK  # never stored unmasked
    assert len(kept.body) == 64 and kept.body_size == len(body)
    [stale_kept] = running.gateway.outbox.rejections(query="timestamp")
    assert stale_kept.headers["authorization"] == MASK


def test_rejections_are_bounded_by_count_and_retention(tmp_path: Path) -> None:
    config = ConsoleConfig(rejected_max=2, rejected_retention=100.0)
    with SQLiteOutbox(tmp_path / "outbox.sqlite3") as outbox:
        outbox.record_rejection(Rejection("stripe", "stripe", 1.0, 401, "old", "m"))
        for n in range(3):
            outbox.record_rejection(Rejection("stripe", "stripe", 1000.0 + n, 401, f"r{n}", "m"))

        async def run() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(
                housekeep(outbox, config, stop, clock=lambda: 1050.0, flush_every=0.01)
            )
            for _ in range(3000):
                if [r.reason for r in outbox.rejections()] == ["r2", "r1"]:
                    break
                await asyncio.sleep(0.01)
            stop.set()
            await task

        asyncio.run(run())
        assert [r.reason for r in outbox.rejections()] == ["r2", "r1"]


def test_rejections_are_not_recorded_when_switched_off(tmp_path: Path) -> None:
    config = console_config(tmp_path, None, record_rejected=False)
    with run_console(config) as gw:
        assert gw.send_stripe(stripe_event(1), secret="whsec_wrong").status_code == 401
        gw.flush()
        assert gw.gateway.outbox.rejections() == []


# -- lists, search, detail -------------------------------------------------------------


def test_search_by_provider_event_id_name_and_status(
    running: Running, api: EventApiStandIn
) -> None:
    for n in range(3):
        assert running.send_stripe(stripe_event(n, f"invoice.paid{n}")).status_code == 200
    assert api.wait_for_events(3)
    assert running.send_stripe(stripe_event(9), secret="whsec_wrong").status_code == 401
    assert wait_until(lambda: len(running.gateway.outbox.webhooks(outcome="delivered")) == 3)
    with running.client() as client:

        def ids(**params: str) -> list[tuple[str, str]]:
            rows = client.get("/console/api/webhooks", params=params).json()["webhooks"]
            return [(r["kind"], r["status"]) for r in rows]

        assert ids(q="evt_console_1") == [("webhook", "delivered")]
        assert ids(q="invoice.paid2") == [("webhook", "delivered")]
        assert ids(status="rejected") == [("rejected", "rejected")]
        assert ids(status="delivered", source="stripe") == [("webhook", "delivered")] * 3
        assert ids(source="slack") == []
        assert ids() == [("rejected", "rejected")] + [("webhook", "delivered")] * 3
        html = client.get("/console/webhooks", params={"q": "evt_console_1"}).text
    assert "stripe/invoice.paid1" in html and "stripe/invoice.paid2" not in html


def test_detail_shows_masked_headers_pretty_body_events_and_attempts(
    running: Running, api: EventApiStandIn
) -> None:
    body = stripe_event(5)
    response = running.send_stripe(body, extra={"Cookie": "session=abc123", "X-Trace": "t-1"})
    assert response.status_code == 200
    assert api.wait_for_events(1)
    [summary] = running.gateway.outbox.webhooks()
    assert wait_until(lambda: running.gateway.outbox.webhooks()[0].outcome == "delivered")
    with running.client() as client:
        page = client.get(f"/console/webhooks/{summary.id}").text
        overview = client.get("/console/api/overview").json()
    assert "stripe/customer.created" in page and "stripe-evt_console_5" in page
    assert "&#34;id&#34;: &#34;cus_5&#34;" in page  # the body, pretty-printed
    assert "session=abc123" not in page and "t-1" in page
    assert page.count(MASK) >= 2  # stripe-signature and cookie
    assert 'class="attempt delivering" data-outcome="delivered" data-status="200"' in page
    assert 'Delivered by attempt 1: the Event API answered <b class="answer">200</b>' in page
    assert STRIPE_SECRET not in page
    stripe = next(s for s in overview["sources"] if s["name"] == "stripe")
    assert stripe["accepted"] == 1
    assert overview["outbox"]["delivered"] == 1 and overview["event_api"] == "ok"
    assert sum(b["accepted"] for b in overview["activity"]) == 1
    assert len(overview["activity"]) == 60


def test_overview_counts_per_source(running: Running) -> None:
    running.send_stripe(stripe_event(1))
    running.send_stripe(stripe_event(2), secret="whsec_wrong")
    running.send_stripe(stripe_event(3), source="flaky")
    with running.client() as client:
        page = client.get("/console")
        data = client.get("/console/api/overview").json()
    by_name = {s["name"]: s for s in data["sources"]}
    assert (by_name["stripe"]["accepted"], by_name["stripe"]["rejected"]) == (1, 1)
    assert by_name["flaky"]["quarantined"] == 1
    assert by_name["slack"] == {**by_name["slack"], "accepted": 0, "rejected": 0}
    assert data["outbox"]["quarantined"] == 1
    [refusal] = data["recent_refusals"]
    assert refusal["summary"].startswith("401 signature_mismatch")
    assert f'href="{refusal["url"]}"' in page.text
    assert page.status_code == 200 and "<svg" in page.text and 'data-rejected="1"' in page.text
    assert "<title>Overview · webhook-gateway console</title>" in page.text
    assert page.text.count('id="recent-refusals"') == 1


# -- replay and retry ------------------------------------------------------------------


def dead_letter(running: Running, api: EventApiStandIn) -> int:
    api.poison_names = {"stripe/customer.created"}
    assert running.send_stripe(stripe_event(7)).status_code == 200
    assert wait_until(lambda: running.gateway.outbox.webhooks(outcome="dead") != [])
    [dead] = running.gateway.outbox.webhooks(outcome="dead")
    return dead.id


def test_read_tokens_cannot_replay_or_retry(running: Running, api: EventApiStandIn) -> None:
    webhook_id = dead_letter(running, api)
    with running.client(READ_TOKEN) as client:
        page = client.get(f"/console/webhooks/{webhook_id}").text
        refused = client.post(f"/console/webhooks/{webhook_id}/retry")
        refused_json = client.post(
            f"/console/webhooks/{webhook_id}/retry", headers={"accept": "application/json"}
        )
    assert "Retrying needs a token with the write scope" in page and 'id="retry-all"' not in page
    assert refused.status_code == 403 and "write scope" in refused.text
    assert refused_json.status_code == 403
    assert "read scope" in refused_json.json()["error"]
    assert running.gateway.outbox.stats().dead == 1


def test_retry_a_dead_letter_delivers_it(running: Running, api: EventApiStandIn) -> None:
    webhook_id = dead_letter(running, api)
    [event] = running.gateway.outbox.webhook(webhook_id).events  # type: ignore[union-attr]
    api.poison_names = set()
    with running.client(WRITE_TOKEN) as client:
        page = client.get(f"/console/webhooks/{webhook_id}").text
        assert 'id="retry-all"' in page and "Poison" not in page
        response = client.post(f"/console/webhooks/{webhook_id}/events/{event.seq}/retry")
        assert response.status_code == 303
        assert response.headers["location"] == f"/console/webhooks/{webhook_id}?done=retried&n=1"
        assert api.wait_for(lambda a: "stripe-evt_console_7" in a.event_ids())
        again = client.post(
            f"/console/webhooks/{webhook_id}/retry", headers={"accept": "application/json"}
        )
        assert again.status_code == 409 and "no dead-lettered events" in again.json()["error"]
        assert wait_until(
            lambda: running.gateway.outbox.webhook(webhook_id).summary.outcome == "delivered"  # type: ignore[union-attr]
        )
        done = client.get(response.headers["location"]).text
    assert "1 dead-lettered event(s) queued for delivery again." in done
    history = [a.outcome for a in running.gateway.outbox.webhook(webhook_id).events[0].history]  # type: ignore[union-attr]
    assert history == ["dead", "requeued", "delivered"]


def test_attempts_show_the_event_apis_status_and_latency(
    running: Running, api: EventApiStandIn
) -> None:
    webhook_id = dead_letter(running, api)  # the stand-in answers 400 for a poisoned name
    api.poison_names = set()
    with running.client(WRITE_TOKEN) as client:
        assert client.post(f"/console/webhooks/{webhook_id}/retry").status_code == 303
        assert wait_until(
            lambda: running.gateway.outbox.webhook(webhook_id).summary.outcome == "delivered"  # type: ignore[union-attr]
        )
        page = client.get(f"/console/webhooks/{webhook_id}").text
    [event] = running.gateway.outbox.webhook(webhook_id).events  # type: ignore[union-attr]
    assert [(a.outcome, a.status) for a in event.history] == [
        ("dead", 400),
        ("requeued", None),
        ("delivered", 200),
    ]
    assert all(a.latency_ms is not None and a.latency_ms > 0 for a in event.history if a.status)
    assert 'data-outcome="dead" data-status="400"' in page
    assert 'data-outcome="delivered" data-status="200"' in page
    assert page.count(" ms</td>") == 2  # the two requests' latencies; the re-queue has none
    assert "Delivered by attempt 2" in page  # the re-queue is not an attempt


def test_the_list_pages_through_a_time_range(running: Running) -> None:
    for n in range(5):
        assert running.send_stripe(stripe_event(n)).status_code == 200
    with running.client() as client:

        def page(**params: str) -> tuple[list[int], bool]:
            body = client.get("/console/api/webhooks", params=params).json()
            return [r["id"] for r in body["webhooks"]], body["more"]

        everything, more = page()
        assert len(everything) == 5 and not more
        first, more = page(limit="2")
        assert (first, more) == (everything[:2], True)
        assert page(limit="2", page="2") == (everything[2:4], True)
        assert page(limit="2", page="3") == (everything[4:], False)
        rows = client.get("/console/api/webhooks").json()["webhooks"]
        times = {r["id"]: r["received_at"] for r in rows}
        # [second oldest, newest): ids 1..3 of 0..4 (newest first: 3, 2, 1)
        since, until = times[everything[3]], times[everything[0]]
        assert page(**{"from": str(since), "to": str(until)})[0] == everything[1:4]
        assert page(range="1h")[0] == everything and page(range="15m", to="1")[0] == []
        html = client.get("/console/webhooks", params={"limit": "2"}).text
        assert 'id="older"' in html and 'id="newer"' not in html and "page 1" in html
        older = html.split('id="older"')[0].rsplit('href="', 1)[1].split('"')[0]
        assert "to=" in older and "page=2" in older  # later pages keep the first page's end
        second = client.get(older.replace("&amp;", "&"))
        assert second.status_code == 200 and 'id="newer"' in second.text
        bad = client.get("/console/api/webhooks", params={"from": "yesterday"})
        assert bad.status_code == 400 and "YYYY-MM-DDTHH:MM" in bad.json()["error"]
        deep = client.get("/console/api/webhooks", params={"page": "100000"})
        assert deep.status_code == 400 and "narrow the time range" in deep.json()["error"]


def test_bulk_retry_and_replay_act_on_the_filtered_selection_and_land_on_a_get_page(
    running: Running, api: EventApiStandIn
) -> None:
    api.poison_names = {"stripe/customer.created", "stripe/invoice.paid"}
    assert running.send_stripe(stripe_event(1)).status_code == 200
    assert running.send_stripe(stripe_event(2, "invoice.paid")).status_code == 200
    assert wait_until(lambda: len(running.gateway.outbox.webhooks(outcome="dead")) == 2)
    FLAKY["fail"] = True
    try:
        for n in (3, 4):
            assert running.send_stripe(stripe_event(n), source="flaky").status_code == 200
        api.poison_names = set()
        with running.client(READ_TOKEN) as reader:
            refused = reader.post("/console/webhooks/retry", data={"status": "dead"})
            assert refused.status_code == 403
            assert 'id="bulk-retry"' not in reader.get("/console/webhooks").text
        with running.client(WRITE_TOKEN) as client:
            listed = client.get("/console/webhooks", params={"status": "dead"}).text
            assert 'id="bulk-retry"' in listed and 'id="bulk-replay"' not in listed
            # the selection: dead webhooks whose event names match "invoice"
            form = {"status": "dead", "q": "invoice", "range": "1h"}
            retried = client.post("/console/webhooks/retry", data=form)
            assert retried.status_code == 303
            location = retried.headers["location"]
            assert location.startswith("/console/webhooks?") and "q=invoice" in location
            landed = client.get(location)
            assert "1 dead-lettered event(s) of 1 webhook(s) queued" in landed.text
            assert api.wait_for(lambda a: "stripe-evt_console_2" in a.event_ids())
            assert [w.id for w in running.gateway.outbox.webhooks(outcome="dead")] != []
            assert "stripe-evt_console_1" not in api.event_ids()  # outside the selection
            # replay: one still fails, then the fix lets the rest through
            still = client.post(
                "/console/webhooks/replay",
                data={"status": "quarantined"},
                headers={"accept": "application/json"},
            )
            assert still.json() == {
                "status": "replayed",
                "webhooks": 2,
                "events": 0,
                "failed": 2,
                "left": 0,
            }
            FLAKY["fail"] = False
            replayed = client.post("/console/webhooks/replay", data={"source": "flaky"})
            assert replayed.status_code == 303
            notice = client.get(replayed.headers["location"]).text
            assert "Replayed 2 quarantined webhook(s)" in notice and "2 event(s) queued" in notice
            assert api.wait_for(
                lambda a: {"flaky-evt_console_3", "flaky-evt_console_4"} <= set(a.event_ids())
            )
    finally:
        FLAKY["fail"] = True
    assert running.gateway.outbox.stats().quarantined == 0


def test_a_bulk_replay_stops_starting_transforms_at_its_time_limit(
    tmp_path: Path, api: EventApiStandIn
) -> None:
    """No budget: one transform runs, the rest wait for the next click, and the page says so."""
    config = console_config(tmp_path, api.url)
    FLAKY["fail"] = True
    try:
        with run_console(config, bulk_seconds=0.0) as running:
            for n in (1, 2, 3):
                response = running.send_stripe(stripe_event(n), source="flaky")
                assert response.json()["status"] == "quarantined"
            FLAKY["fail"] = False
            with running.client(WRITE_TOKEN) as client:
                first = client.post("/console/webhooks/replay", data={"source": "flaky"})
                notice = client.get(first.headers["location"]).text
                assert "Replayed 1 quarantined webhook(s)" in notice
                assert "2 more were not tried within the time limit" in notice
                assert running.gateway.outbox.stats().quarantined == 2
                for _ in range(2):
                    client.post("/console/webhooks/replay", data={"source": "flaky"})
            assert running.gateway.outbox.stats().quarantined == 0
    finally:
        FLAKY["fail"] = True


def test_basic_auth_posts_need_a_same_origin_header(running: Running, api: EventApiStandIn) -> None:
    webhook_id = dead_letter(running, api)
    url = f"/console/webhooks/{webhook_id}/retry"
    with running.client(token=None) as client:
        missing = client.post(url, headers=basic(WRITE_TOKEN))
        foreign = client.post(url, headers={**basic(WRITE_TOKEN), "origin": "https://evil.test"})
        referer = client.post(url, headers={**basic(WRITE_TOKEN), "referer": "http://evil.test/"})
        assert missing.status_code == foreign.status_code == referer.status_code == 403
        assert "cross-site request refused" in foreign.text
        assert running.gateway.outbox.stats().dead == 1
        page = f"{running.console}/console/webhooks/{webhook_id}"
        same = client.post(url, headers={**basic(WRITE_TOKEN), "referer": page})
        assert same.status_code == 303
    assert running.gateway.outbox.stats().dead == 0
    metrics = running.gateway.metrics.render().decode()
    assert 'webhook_gateway_console_auth_failures_total{reason="cross_site"} 3.0' in metrics


def test_replay_a_quarantined_webhook(running: Running, api: EventApiStandIn) -> None:
    FLAKY["fail"] = True
    try:
        response = running.send_stripe(stripe_event(3), source="flaky")
        assert response.json()["status"] == "quarantined"
        webhook_id = response.json()["webhook_id"]
        with running.client(WRITE_TOKEN) as client:
            page = client.get(f"/console/webhooks/{webhook_id}").text
            assert "transform raised KeyError" in page and 'id="replay"' in page
            still = client.post(f"/console/webhooks/{webhook_id}/replay")
            assert still.status_code == 303  # a GET page: reloading it re-submits nothing
            location = still.headers["location"]
            assert location.startswith(f"/console/webhooks/{webhook_id}?flash=")
            failed = client.get(location)
            assert failed.status_code == 200 and "the transform still fails" in failed.text
            assert "the transform still fails" not in client.get(location).text  # shown once
            FLAKY["fail"] = False
            fixed = client.post(
                f"/console/webhooks/{webhook_id}/replay", headers={"accept": "application/json"}
            )
            assert fixed.status_code == 200, fixed.text
            assert fixed.json() == {"status": "replayed", "webhook_id": webhook_id, "events": 1}
            assert api.wait_for(lambda a: "flaky-evt_console_3" in a.event_ids())
            twice = client.post(f"/console/webhooks/{webhook_id}/replay")
            assert twice.status_code == 409 and "not quarantined" in twice.text
    finally:
        FLAKY["fail"] = True
    assert running.gateway.outbox.stats().quarantined == 0


# -- configuration ---------------------------------------------------------------------


def test_enabled_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    config = console_config(tmp_path, None)
    config.console.tokens = []
    with pytest.raises(ConfigError, match="no token is configured"):
        build_gateway(config, {})


def test_zero_config_environment_enables_the_console() -> None:
    env = {"GATEWAY_CONSOLE_PORT": "9091", "GATEWAY_CONSOLE_WRITE_TOKEN": "w-token"}
    console = config_from_env(env).console
    assert (console.enabled, console.port, console.host) == (True, 9091, "127.0.0.1")
    assert console.resolved_tokens(env) == [("w-token", "write")]
    assert config_from_env({}).console.enabled is False
    with pytest.raises(ConfigError, match="GATEWAY_CONSOLE_PORT"):
        config_from_env({"GATEWAY_CONSOLE_PORT": "eighty"})
    with pytest.raises(ConfigError, match="no token"):
        config_from_env({"GATEWAY_CONSOLE_PORT": "9091"}).console.resolved_tokens({})


def test_console_tokens_are_redacted_from_logs(tmp_path: Path) -> None:
    gateway = build_gateway(console_config(tmp_path, None), {})
    try:
        assert READ_TOKEN in gateway.secrets and WRITE_TOKEN in gateway.secrets
    finally:
        gateway.outbox.close()


# -- masking ---------------------------------------------------------------------------


def test_masking_covers_signatures_credentials_and_configured_secrets() -> None:
    headers = {
        "stripe-signature": "t=1,v1=abc",
        "x-slack-signature": "v0=abc",
        "x-hub-signature-256": "sha256=abc",
        "webhook-signature": "v1,abc",
        "x-shopify-hmac-sha256": "abc",
        "authorization": "Bearer abc",
        "cookie": "a=b",
        "x-my-api-key": "k",
        "linear-signature": "abc",
        "x-custom-sig": "abc",
        "content-type": "application/json",
        "x-echo": "the secret is s3cr3t-value!",
    }
    masked = mask_headers(headers, ["s3cr3t-value"], extra=["X-Custom-Sig"])
    assert {k for k, v in masked.items() if v == MASK} == set(headers) - {"content-type", "x-echo"}
    assert masked["content-type"] == "application/json"
    assert masked["x-echo"] == f"the secret is {MASK}!"
    assert scrub("abc", ["ab"]) == "abc"  # too short to be a secret worth masking text for
