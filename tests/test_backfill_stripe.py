"""Issue 16: Stripe backfill with the stripe package's real client against an API stand-in."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.backfill.runner import BACKFILL_HEADER
from gateway.config import BackfillConfig, ConfigError
from gateway.receive import Source
from tests.backfill_support import backfill, open_outbox, source_for, stored_event_ids
from tests.stripe_standin import stripe_api

KEY = "rk_test_backfill_events_read"
EXAMPLES = Path(__file__).parent.parent / "examples" / "transforms"


def stripe_source(url: str, **settings: object) -> Source:
    return source_for("stripe", {"api_key": f"inline:{KEY}", "api_base": url, **settings})


def test_lists_the_window_page_by_page_and_stores_each_event_like_a_webhook(
    tmp_path: Path,
) -> None:
    now = int(time.time())
    with stripe_api() as api, open_outbox(tmp_path) as outbox:
        api.add_key(KEY)
        old = api.event("invoice.paid", created=now - 7200)  # before the window
        events = [api.event("invoice.paid", created=now - 60) for _ in range(230)]
        report = backfill(stripe_source(api.url), outbox, since=3600)
        assert report.status == "ok", report.error
        assert (report.found, report.recovered, report.duplicates) == (230, 230, 0)
        stored = stored_event_ids(outbox)
        assert sorted(stored) == sorted(f"stripe-{e['id']}" for e in events)
        assert f"stripe-{old['id']}" not in stored
        # the transform ran as for a webhook: same name, same dedup id, whole event as data
        record = outbox.webhook(outbox.webhooks(limit=1)[0].id)
        assert record is not None
        assert record.events[0].name == "stripe/invoice.paid"
        assert record.webhook.headers[BACKFILL_HEADER] == "stripe-events-api"
        # three pages of 100 with starting_after, the window as created[gte]/created[lte]
        pages = api.requests_to("/v1/events")
        assert len(pages) == 3
        first = dict(pages[0].query)
        assert first["limit"] == "100"
        assert int(first["created[gte]"]) == pytest.approx(now - 3600, abs=5)
        assert int(first["created[lte]"]) == pytest.approx(now, abs=5)
        after = [dict(p.query).get("starting_after") for p in pages]
        assert after == [None, events[-100]["id"], events[-200]["id"]]
        assert len({tuple(p.query) for p in pages}) == 3  # no request sent twice


def test_a_second_run_counts_every_event_as_duplicate_and_stores_nothing(tmp_path: Path) -> None:
    with stripe_api() as api, open_outbox(tmp_path) as outbox:
        api.add_key(KEY)
        for _ in range(5):
            api.event("customer.created")
        source = stripe_source(api.url)
        assert backfill(source, outbox).recovered == 5
        rows = len(outbox.webhooks(limit=100))
        again = backfill(source, outbox)
        assert (again.found, again.duplicates, again.recovered) == (5, 5, 0)
        assert len(outbox.webhooks(limit=100)) == rows  # not even an empty webhook row
        assert len(stored_event_ids(outbox)) == 5


def test_types_are_limited_to_what_the_source_keeps_twenty_per_request(tmp_path: Path) -> None:
    kept = [f"invoice.kind_{i}" for i in range(25)]
    with stripe_api() as api, open_outbox(tmp_path) as outbox:
        api.add_key(KEY)
        api.event("invoice.kind_3")
        api.event("invoice.kind_24")
        api.event("customer.created")  # not kept: never even listed
        report = backfill(stripe_source(api.url, types=kept), outbox)
        assert (report.found, report.recovered) == (2, 2)
        queries = [p.query for p in api.requests_to("/v1/events")]
        assert [[v for k, v in q if k.startswith("types[")] for q in queries] == [
            kept[:20],
            kept[20:],
        ]


def test_events_the_transform_filters_are_counted_not_stored(tmp_path: Path) -> None:
    with stripe_api() as api, open_outbox(tmp_path / "data") as outbox:
        api.add_key(KEY)
        invoice = {"id": "in_1", "object": "invoice", "customer": "cus_1", "amount_paid": 900}
        api.event("invoice.paid", obj={**invoice, "currency": "eur"})
        api.event("charge.refunded")  # the billing transform keeps invoice.*, not charge.*
        source = source_for(
            "stripe",
            {"api_key": f"inline:{KEY}", "api_base": api.url},
            transform="stripe-billing",
            transforms_dir=str(EXAMPLES),
        )
        report = backfill(source, outbox)
        assert (report.found, report.recovered, report.filtered) == (2, 1, 1)
        names = [w.event_names for w in outbox.webhooks(limit=10)]
        assert names == [("stripe/invoice.paid", "stripe/revenue.recorded")]  # its fan-out


def test_dry_run_reports_and_changes_nothing(tmp_path: Path) -> None:
    with stripe_api() as api, open_outbox(tmp_path) as outbox:
        api.add_key(KEY)
        for _ in range(3):
            api.event("invoice.paid")
        report = backfill(stripe_source(api.url), outbox, dry_run=True)
        assert (report.found, report.recovered, report.dry_run) == (3, 3, True)
        assert outbox.webhooks(limit=10) == []


def test_wrong_key_says_so_and_changes_nothing(tmp_path: Path) -> None:
    with stripe_api() as api, open_outbox(tmp_path) as outbox:
        api.add_key("rk_test_other")
        api.event("invoice.paid")
        report = backfill(stripe_source(api.url), outbox)
        assert report.status == "auth_failed"
        assert "401" in (report.error or "")
        assert outbox.webhooks(limit=10) == []


def test_a_key_without_events_read_is_told_which_permission_it_needs(tmp_path: Path) -> None:
    with stripe_api() as api, open_outbox(tmp_path) as outbox:
        api.add_key(KEY, "accounts")
        api.event("invoice.paid")
        report = backfill(stripe_source(api.url), outbox)
        assert report.status == "auth_failed"
        assert "Events: read" in (report.error or "")
        assert outbox.webhooks(limit=10) == []


def test_rate_limits_are_waited_for_as_retry_after_says(tmp_path: Path) -> None:
    with stripe_api() as api, open_outbox(tmp_path) as outbox:
        api.add_key(KEY)
        api.event("invoice.paid")
        api.rate_limit_next(2, retry_after="0")
        report = backfill(stripe_source(api.url), outbox)
        assert report.status == "ok" and report.recovered == 1
        assert [r.status for r in api.requests_to("/v1/events")] == [429, 429, 200]


def test_a_retry_after_beyond_max_wait_stops_the_run_without_retrying(tmp_path: Path) -> None:
    with stripe_api() as api, open_outbox(tmp_path) as outbox:
        api.add_key(KEY)
        api.event("invoice.paid")
        api.rate_limit_next(1, retry_after="3600")
        report = backfill(stripe_source(api.url, max_wait="5m"), outbox)
        assert report.status == "rate_limited"
        assert [r.status for r in api.requests_to("/v1/events")] == [429]
        assert outbox.webhooks(limit=10) == []


def test_connect_lists_each_connected_account_with_stripe_account(tmp_path: Path) -> None:
    with stripe_api() as api, open_outbox(tmp_path) as outbox:
        api.add_key(KEY, "events", "accounts")
        for account in ("acct_1AAA", "acct_2BBB"):
            api.add_account(account)
            api.event("account.updated", account=account)
        api.event("invoice.paid")  # the platform's own: not a Connect endpoint's
        report = backfill(stripe_source(api.url, connect=True), outbox)
        assert (report.found, report.recovered) == (2, 2)
        sent = [r.headers.get("stripe-account") for r in api.requests_to("/v1/events")]
        assert sent == ["acct_1AAA", "acct_2BBB"]
        accounts = {
            outbox.webhook(w.id).webhook.json["account"]  # type: ignore[union-attr]
            for w in outbox.webhooks(limit=10)
        }
        assert accounts == {"acct_1AAA", "acct_2BBB"}


def test_explicit_accounts_need_no_accounts_permission(tmp_path: Path) -> None:
    with stripe_api() as api, open_outbox(tmp_path) as outbox:
        api.add_key(KEY)
        api.event("account.updated", account="acct_9ZZZ")
        report = backfill(stripe_source(api.url, accounts=["acct_9ZZZ"]), outbox)
        assert report.recovered == 1
        assert api.requests_to("/v1/accounts") == []


def test_a_window_beyond_the_dedup_window_is_refused(tmp_path: Path) -> None:
    from gateway.backfill.runner import Window, check_window

    now = time.time()
    with pytest.raises(ConfigError, match="dedup_window"):
        check_window(Window(now - 3 * 86400, now), 86400)
    check_window(Window(now - 3600, now), 86400)


def test_missing_api_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="api_key"):
        source = source_for("stripe", {})
        from gateway.backfill.runner import build_backfiller

        build_backfiller(source, {})
    assert BackfillConfig(every="15m").every_seconds == 900
