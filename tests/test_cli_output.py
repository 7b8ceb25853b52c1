"""What people read: tables with relative ages, ``-o json``, help texts, global options."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import pytest

from gateway.cli import build_parser, main
from gateway.cli_output import Column, duration, relative, render_table
from gateway.outbox.sqlite import SQLiteOutbox
from gateway.webhook import Webhook
from tests.helpers import read_table
from tests.test_cli import ROOT, cli


def test_durations_and_relative_times_read_like_kubectl() -> None:
    assert [duration(s) for s in (0, 45, 119, 312, 600, 2520, 11100, 72000, 190000, 3.5e6)] == [
        "0s",
        "45s",
        "119s",
        "5m12s",
        "10m",
        "42m",
        "3h5m",
        "20h",
        "2d4h",
        "40d",
    ]
    assert relative(1000.0, now=1300.0) == "5m ago"
    assert relative(1030.0, now=1000.0) == "in 30s"
    assert relative(None, now=1000.0) == "-"


def test_tables_align_columns_and_cut_long_text() -> None:
    columns = [
        Column("ID", "id", "number"),
        Column("NAME", "name"),
        Column("AGE", "at", "age"),
        Column("ERROR", "error", width=10),
    ]
    rows = [
        {"id": 7, "name": "stripe/invoice.paid", "at": 940.0, "error": None},
        {"id": 1234, "name": "x", "at": 1000.0, "error": "a\nvery long error message"},
    ]
    text = render_table(columns, rows, now=1000.0)
    assert text.splitlines() == [
        "ID    NAME                 AGE      ERROR",
        "   7  stripe/invoice.paid  60s ago  -",
        "1234  x                    0s ago   a very lo…",
    ]
    assert read_table(text) == [
        {"ID": "7", "NAME": "stripe/invoice.paid", "AGE": "60s ago", "ERROR": "-"},
        {"ID": "1234", "NAME": "x", "AGE": "0s ago", "ERROR": "a very lo…"},
    ]


def _seed(tmp_path: Path) -> tuple[dict[str, str], SQLiteOutbox]:
    data = tmp_path / "data"
    box = SQLiteOutbox(data / "outbox.sqlite3")
    now = time.time()
    hook = Webhook(source="stripe", provider="stripe", body=b"{}", received_at=now - 300)
    box.accept(
        hook, [b"{}", b"{}", b"{}"], ["a", "b", "c"], ["stripe/a.b", "stripe/c.d", "stripe/e.f"]
    )
    first, second, _ = (e.seq for e in box.claim(max_events=5, max_bytes=10**6, lease_seconds=5))
    box.release([first], retry_at=now + 90, error="event API answered 503: unavailable")
    box.dead_letter(second, "event API: bad data")
    box.quarantine(
        Webhook(source="shop", provider="hmac", body=b"x" * 42, received_at=now - 7200),
        "transform raised KeyError: 'id'",
        "Traceback (most recent call last):\nKeyError: 'id'",
    )
    return {"GATEWAY_DATA_DIR": str(data)}, box


def test_outbox_status_and_list_print_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env, box = _seed(tmp_path)
    assert main(["outbox", "status"], env) == 0
    [status] = read_table(capsys.readouterr().out)
    assert status["PENDING"] == "0" and status["RETRYING"] == "1" and status["LEASED"] == "1"
    assert (status["DEAD"], status["QUARANTINED"], status["DELIVERED"]) == ("1", "1", "0")
    assert re.fullmatch(r"\d+s", status["OLDEST PENDING"])  # accepted moments ago
    assert status["OUTBOX"] == env["GATEWAY_DATA_DIR"]  # the data directory, or the database

    assert main(["outbox", "list"], env) == 0
    rows = read_table(capsys.readouterr().out)
    by_state = {row["STATE"]: row for row in rows}
    assert [row["KIND"] for row in rows] == ["webhook", "event", "event", "event"]
    assert by_state["quarantined"]["AGE"] == "120m ago" and by_state["quarantined"]["ID"] == "2"
    retrying = by_state["retrying"]
    assert retrying["NAME"] == "stripe/a.b" and retrying["ATTEMPTS"] == "1"
    assert re.fullmatch(r"in \d\ds", retrying["NEXT"]) and re.fullmatch(
        r"\d+s ago", retrying["AGE"]
    )
    assert retrying["ERROR"] == "event API answered 503: unavailable"
    assert by_state["dead"]["NEXT"] == "-" and by_state["dead"]["ERROR"] == "event API: bad data"
    assert by_state["leased"]["NEXT"].startswith("in ")

    assert main(["outbox", "list", "--state", "delivered"], env) == 0
    captured = capsys.readouterr()
    assert read_table(captured.out) == [] and captured.out.startswith("ID  KIND")
    assert "No outbox rows found" in captured.err
    box.close()


def test_quarantine_list_and_transforms_print_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env, box = _seed(tmp_path)
    assert main(["quarantine", "list"], env) == 0
    [row] = read_table(capsys.readouterr().out)
    assert row == {
        "ID": "2",
        "SOURCE": "shop",
        "PROVIDER": "hmac",
        "RECEIVED": "120m ago",
        "BYTES": "42",
        "ERROR": "transform raised KeyError: 'id'",
    }
    assert main(["quarantine", "list", "--traceback"], env) == 0
    out = capsys.readouterr().out
    assert "--- webhook 2 ---\nTraceback (most recent call last):\nKeyError: 'id'" in out
    box.close()

    plugins = {"GATEWAY_TRANSFORMS_DIR": str(ROOT / "examples" / "transforms")}
    assert main(["transforms"], plugins) == 0
    listed = {r["NAME"]: r["ORIGIN"] for r in read_table(capsys.readouterr().out)}
    assert listed["stripe"] == "builtin (transforms.stripe)"
    assert listed["stripe-billing"].endswith("examples/transforms/stripe_billing.py")
    assert main(["transforms", "-o", "json"], plugins) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"name": "stripe", "origin": "builtin (transforms.stripe)"} in rows


def test_global_options_go_before_or_after_the_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, box = _seed(tmp_path)
    box.close()
    config = tmp_path / "gw.toml"
    config.write_text(f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n')
    orders = [
        ["outbox", "status", "--config", str(config), "-o", "json"],
        ["--config", str(config), "-o", "json", "outbox", "status"],
        ["--config", str(config), "outbox", "--output", "json", "status"],
        ["-o", "json", "outbox", "status", "--config", str(config)],
    ]
    for argv in orders:
        assert main(argv, {}) == 0, argv
        assert json.loads(capsys.readouterr().out)["dead"] == 1
    assert main(["-o", "table", "outbox", "status", "--config", str(config)], {}) == 0
    assert read_table(capsys.readouterr().out)[0]["DEAD"] == "1"


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _parsers(child, (*path, name))
    return found


def test_every_option_has_help_and_every_command_an_example() -> None:
    parsers = _parsers(build_parser())
    assert {p for p, _ in parsers} >= {("outbox", "status"), ("quarantine", "replay"), ("serve",)}
    for path, parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (path, action.dest)
        text = parser.format_help()
        assert "\nexamples:\n  " in text, path
        leaf = path and not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
        if leaf:
            assert f"webhook-gateway {' '.join(path)}" in text.split("examples:")[1], path


def test_errors_name_no_internal_variables() -> None:
    for argv in (["outbox"], ["quarantine"], []):
        result = cli(*argv)
        assert result.returncode == 2
        assert "_cmd" not in result.stderr and "command" not in result.stderr.split("error:")[1]
        assert "COMMAND" in result.stderr
    help_text = cli("outbox", "--help").stdout
    assert "outbox_cmd" not in help_text and "status" in help_text and "purge" in help_text


def test_markdown_output_before_the_command_only_for_providers() -> None:
    before = cli("-o", "markdown", "providers")
    after = cli("providers", "-o", "markdown")
    assert before.returncode == after.returncode == 0, before.stderr
    assert before.stdout == after.stdout
    assert before.stdout.startswith("| provider | zero-config variable |")
    refused = cli("-o", "markdown", "outbox", "status")
    assert refused.returncode == 2
    assert "-o markdown is only an output of 'providers'" in refused.stderr


def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    """``webhook-gateway providers | head -1``: the closed pipe ends the command quietly."""
    import subprocess
    import sys

    with subprocess.Popen(
        [sys.executable, "-m", "gateway", "providers", "-o", "markdown"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before the first line is written
        stderr = proc.stderr.read().decode()
        proc.wait(timeout=60)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert proc.returncode == 141  # 128 + SIGPIPE, as a shell reports a piped command
