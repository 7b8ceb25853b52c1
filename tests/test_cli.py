"""The command line, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.outbox.sqlite import SQLiteOutbox
from gateway.webhook import Webhook
from tests.helpers import FIXTURES, fixture

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("INNGEST_", "GATEWAY_"))}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=60,
    )


def test_serve_in_cloud_mode_without_key_refuses_to_start(tmp_path: Path) -> None:
    result = cli(
        "serve",
        "--port",
        "0",
        env={"STRIPE_WEBHOOK_SECRET": "whsec_x", "GATEWAY_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "no Inngest event key" in result.stderr and "INNGEST_EVENT_KEY" in result.stderr


def test_serve_with_bad_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text('[[sources]]\nname = "s"\nprovider = "stripe"\ntolerence = 5\n')
    result = cli("serve", "--config", str(config))
    assert result.returncode == 2
    assert "sources.0.tolerence" in result.stderr


def test_serve_with_broken_plugin_fails_at_start(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text("def oops(:\n")
    result = cli(
        "serve",
        "--dev",
        env={"GATEWAY_TRANSFORMS_DIR": str(plugins), "GATEWAY_DATA_DIR": str(tmp_path / "d")},
    )
    assert result.returncode == 2
    assert "broken.py" in result.stderr and "SyntaxError" in result.stderr


def test_serve_with_missing_secret_variable(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text('[[sources]]\nname = "s"\nprovider = "stripe"\nsecrets = ["env:NOPE_X"]\n')
    result = cli("serve", "--dev", "--config", str(config))
    assert result.returncode == 2 and "NOPE_X" in result.stderr


def test_check_and_transforms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
        "GATEWAY_TRANSFORMS_DIR": str(ROOT / "examples" / "transforms"),
    }
    assert main(["check"], env) == 0
    out = capsys.readouterr().out
    assert "source stripe: provider stripe, transform stripe" in out and "configuration OK" in out
    assert main(["transforms"], env) == 0
    out = capsys.readouterr().out
    assert "stripe-billing" in out and "builtin (transforms.stripe)" in out


def test_preview_prints_events(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preview", "stripe", str(FIXTURES / "stripe/invoice.paid.json")], {}) == 0
    [event] = json.loads(capsys.readouterr().out)
    assert event["name"] == "stripe/invoice.paid"
    assert event["id"] == "stripe-evt_1OA9vC2eZvKYlo2C5lW6Yl8R"
    env = {"GATEWAY_TRANSFORMS_DIR": str(ROOT / "examples" / "transforms")}
    args = [
        "preview",
        "stripe",
        str(FIXTURES / "stripe/invoice.paid.json"),
        "--transform",
        "stripe-billing",
        "--header",
        "X-Test: 1",
    ]
    assert main(args, env) == 0
    names = [e["name"] for e in json.loads(capsys.readouterr().out)]
    assert names == ["stripe/invoice.paid", "stripe/revenue.recorded"]


def test_preview_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["preview", "nope", str(FIXTURES / "stripe/invoice.paid.json")], {}) == 2
    assert "unknown source 'nope'" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"no": "type"}')
    assert main(["preview", "stripe", str(bad)], {}) == 1
    assert "transform raised" in capsys.readouterr().err


def seeded(tmp_path: Path) -> tuple[dict[str, str], SQLiteOutbox]:
    data = tmp_path / "data"
    box = SQLiteOutbox(data / "outbox.sqlite3")
    hook = Webhook(source="stripe", provider="stripe", body=b"{}", received_at=1.0)
    box.accept(
        hook,
        [b'{"name":"stripe/a.b"}', b'{"name":"stripe/c.d"}'],
        ["x", "y"],
        ["stripe/a.b", "stripe/c.d"],
    )
    return {"GATEWAY_DATA_DIR": str(data)}, box


def test_outbox_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env, box = seeded(tmp_path)
    good, bad = (e.seq for e in box.claim(max_events=5, max_bytes=10**6, lease_seconds=5))
    box.ack([good])
    box.dead_letter(bad, "event API: bad data")
    assert main(["outbox", "status"], env) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["dead"], status["delivered"], status["pending"]) == (1, 1, 0)
    assert status["undelivered"] == 0
    assert main(["outbox", "list"], env) == 0
    [letter] = json.loads(capsys.readouterr().out)
    assert (letter["id"], letter["error"]) == (bad, "event API: bad data")
    assert main(["outbox", "retry"], env) == 2
    assert main(["outbox", "retry", str(good)], env) == 2  # delivered, not dead
    assert "not dead-lettered events" in capsys.readouterr().err
    assert main(["outbox", "retry", str(bad)], env) == 0
    assert "1 dead-lettered event(s) queued" in capsys.readouterr().out
    stats = box.stats()
    assert stats.pending + stats.retrying == 1 and stats.dead == 0
    assert main(["outbox", "purge"], env) == 2  # no terminal to confirm on
    assert "--yes" in capsys.readouterr().err
    assert main(["outbox", "purge", "--yes"], env) == 0
    assert box.stats().delivered == 0
    box.close()


def test_quarantine_list_and_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env, box = seeded(tmp_path)
    hook = Webhook(source="stripe", provider="stripe", body=fixture("stripe/invoice.paid.json"))
    held = box.quarantine(hook, "transform raised KeyError", "tb")
    broken = box.quarantine(Webhook(source="stripe", provider="stripe", body=b"{}"), "e", "tb")
    assert main(["quarantine", "list"], env) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [q["webhook_id"] for q in listed] == [held, broken]
    assert main(["quarantine", "replay", str(held)], env) == 0
    assert f"webhook {held}: 1 event(s) queued" in capsys.readouterr().out
    assert main(["quarantine", "replay", "--all"], env) == 1  # the empty body still fails
    assert "still failing" in capsys.readouterr().err
    names = [e.name for e in box.claim(max_events=10, max_bytes=10**6, lease_seconds=5)]
    assert names == ["stripe/a.b", "stripe/c.d", "stripe/invoice.paid"]
    box.close()


def test_version_and_help() -> None:
    result = cli("--version")
    assert result.returncode == 0 and "webhook-gateway 0.1.0" in result.stdout
    result = cli("serve", "--help")
    assert "--port" in result.stdout and "--dev" in result.stdout
