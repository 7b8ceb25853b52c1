"""Issue 16: the backfill command's window arguments, its table, and its log line."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest

from gateway.backfill.cli import COLUMNS, parse_time, window_from_args
from gateway.backfill.run import BackfillReport
from gateway.cli_output import emit_one
from gateway.config import BackfillConfig, ConfigError, parse_duration
from tests.backfill_support import backfill, open_outbox, source_for
from tests.stripe_standin import stripe_api

NOW = 1_790_000_000.0


def test_times_are_durations_ago_iso_times_or_unix_seconds() -> None:
    assert parse_time("2h", NOW) == NOW - 7200
    assert parse_time("90m", NOW) == NOW - 5400
    assert parse_time("2026-01-31T12:00:00Z", NOW) == 1769860800.0
    assert parse_time("2026-01-31T13:00:00+01:00", NOW) == 1769860800.0
    assert parse_time("1769860800", NOW) == 1769860800.0
    with pytest.raises(ConfigError, match="UTC offset"):
        parse_time("2026-01-31T12:00:00", NOW)
    with pytest.raises(ConfigError, match="neither a duration"):
        parse_time("yesterday", NOW)


def test_the_window_ends_now_at_the_latest() -> None:
    window = window_from_args(argparse.Namespace(since="1h", until=None), NOW)
    assert (window.since, window.until) == (NOW - 3600, NOW)
    window = window_from_args(argparse.Namespace(since="3h", until="1h"), NOW)
    assert (window.since, window.until) == (NOW - 10800, NOW - 3600)


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90s", "15m", "2h", "1d", "1w", 30)] == [
        90,
        900,
        7200,
        86400,
        604800,
        30,
    ]
    assert parse_duration("0s") == 0 and parse_duration("15M") == 900
    for bad in ("-1m", "15 minutes", "", -5):
        with pytest.raises(ValueError):
            parse_duration(bad)
    with pytest.raises(ValueError, match="longer than zero"):
        BackfillConfig(every="0s")


def test_the_table_has_one_row_and_the_json_every_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = BackfillReport("stripe", "stripe", NOW - 60, NOW, found=7, duplicates=5, recovered=2)
    report.status = "auth_failed"
    emit_one(argparse.Namespace(output="table"), report.as_dict(), COLUMNS, now=NOW)
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == [
        "SOURCE",
        "PROVIDER",
        "SINCE",
        "FOUND",
        "DUPLICATES",
        "RECOVERED",
        "FILTERED",
        "FAILED",
        "STATUS",
    ]
    assert row.split() == ["stripe", "stripe", "60s", "ago", "7", "5", "2", "0", "0", "auth_failed"]
    emit_one(argparse.Namespace(output="json"), report.as_dict(), COLUMNS, now=NOW)
    assert json.loads(capsys.readouterr().out) == report.as_dict()


def test_each_run_logs_one_line_with_its_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with stripe_api() as api, open_outbox(tmp_path) as outbox:
        api.add_key("rk_test_log")
        api.event("invoice.paid")
        source = source_for("stripe", {"api_key": "inline:rk_test_log", "api_base": api.url})
        with caplog.at_level(logging.INFO, logger="webhook_gateway"):
            backfill(source, outbox)
    (line,) = [r for r in caplog.records if r.getMessage() == "backfill run"]
    fields = line.__dict__["backfill"]
    assert (fields["source"], fields["found"], fields["recovered"]) == ("stripe", 1, 1)
    assert "rk_test_log" not in str(line.__dict__)
