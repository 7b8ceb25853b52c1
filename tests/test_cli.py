"""The command line, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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
    assert main(["outbox", "status", "-o", "json"], env) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["dead"], status["delivered"], status["pending"]) == (1, 1, 0)
    assert status["undelivered"] == 0
    assert main(["outbox", "list", "-o", "json"], env) == 0
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
    held = box.quarantine(hook, "transform raised KeyError", "Traceback: KeyError 'data'")
    broken = box.quarantine(Webhook(source="stripe", provider="stripe", body=b"{}"), "e", "tb")
    assert main(["quarantine", "list", "-o", "json"], env) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [q["webhook_id"] for q in listed] == [held, broken]
    assert "traceback" not in listed[0]
    assert main(["-o", "json", "quarantine", "list", "--traceback"], env) == 0
    detailed = json.loads(capsys.readouterr().out)
    assert [q["traceback"] for q in detailed] == ["Traceback: KeyError 'data'", "tb"]
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


def test_outbox_list_shows_the_backlog_with_states_and_filters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env, box = seeded(tmp_path)
    first, second = (e.seq for e in box.claim(max_events=5, max_bytes=10**6, lease_seconds=5))
    box.release([first], retry_at=2e9, error="event API answered 503: unavailable")
    box.dead_letter(second, "event API: bad data")
    later = box.accept(
        Webhook(source="stripe", provider="stripe", body=b"{}"), [b"{}"], ["z"], ["stripe/e.f"]
    )
    late = Webhook(source="stripe", provider="stripe", body=b"x", received_at=time.time() + 60)
    held = box.quarantine(late, "boom", "tb")
    assert main(["outbox", "list", "-o", "json"], env) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["kind"], r["state"]) for r in rows] == [
        (first, "event", "retrying"),
        (second, "event", "dead"),
        (first + 2, "event", "pending"),
        (held, "webhook", "quarantined"),
    ]
    retrying = rows[0]
    assert {
        k: retrying[k] for k in ("source", "name", "event_id", "attempts", "next_attempt_at")
    } == {
        "source": "stripe",
        "name": "stripe/a.b",
        "event_id": "x",
        "attempts": 1,
        "next_attempt_at": 2e9,
    }
    assert retrying["error"] == "event API answered 503: unavailable"
    assert {"id", "kind", "source", "name", "error", "attempts", "created_at"} <= set(rows[1])
    assert rows[2]["webhook_id"] == later.webhook_id
    assert main(["outbox", "list", "--state", "dead", "-o", "json"], env) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [second]
    assert (
        main(["outbox", "list", "--state", "pending,retrying", "--limit", "1", "-o", "json"], env)
        == 0
    )
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [first]
    assert main(["outbox", "list", "--state", "undelivered", "-o", "json"], env) == 0
    assert [r["state"] for r in json.loads(capsys.readouterr().out)] == ["retrying", "pending"]
    assert main(["outbox", "list", "--state", "quarantined", "-o", "json"], env) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [held]
    assert main(["outbox", "list", "--state", "stuck"], env) == 2
    assert "unknown --state 'stuck'" in capsys.readouterr().err
    assert main(["outbox", "retry", "abc"], env) == 2
    assert "IDs are numbers" in capsys.readouterr().err
    assert main(["outbox", "retry", str(second)], env) == 0  # the id `outbox list` showed
    capsys.readouterr()
    assert main(["outbox", "list", "--state", "all", "-o", "json"], env) == 0
    states = [r["state"] for r in json.loads(capsys.readouterr().out)]
    assert states == ["retrying", "retrying", "pending", "quarantined"]  # the dead one is due
    box.close()


def test_outbox_commands_against_a_running_gateway(tmp_path: Path) -> None:
    import httpx

    from tests.eventapi_standin import event_api
    from tests.helpers import STRIPE_SECRET
    from tests.server import GatewayProcess
    from tests.signing import stripe_headers

    config = tmp_path / "gw.toml"
    config.write_text(
        '[[sources]]\nname = "stripe"\nprovider = "stripe"\n'
        'secrets = ["env:STRIPE_WEBHOOK_SECRET"]\n'
        "[forwarder]\nbackoff_base = 0.05\nbackoff_max = 0.2\nidle_poll = 0.05\n"
    )
    data = tmp_path / "data"
    with event_api() as api:
        env = {
            "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
            "GATEWAY_DATA_DIR": str(data),
            "GATEWAY_CONFIG": str(config),
            "INNGEST_EVENT_API_BASE_URL": api.url,
            "INNGEST_EVENT_KEY": "cli-test-key",
        }
        api.down = True
        gateway = GatewayProcess([], env, tmp_path / "gw.log")
        try:
            gateway.wait_ready()
            template = json.loads(fixture("stripe/customer.created.json"))
            with httpx.Client(base_url=gateway.url, timeout=30) as client:
                for i in range(5):
                    template["id"] = f"evt_cli_{i}"
                    body = json.dumps(template).encode()
                    response = client.post(
                        "/webhooks/stripe",
                        content=body,
                        headers=stripe_headers(body, STRIPE_SECRET),
                    )
                    assert response.status_code == 200
            status = json.loads(cli("outbox", "status", "-o", "json", env=env).stdout)
            assert status["undelivered"] == 5 and status["oldest_pending_age_seconds"] > 0
            api.wait_for(lambda a: len(a.requests) >= 2)  # the forwarder has tried and failed
            listed = cli("outbox", "list", "-o", "json", env=env)
            assert listed.returncode == 0, listed.stderr
            rows = json.loads(listed.stdout)
            assert [r["event_id"] for r in rows] == [f"stripe-evt_cli_{i}" for i in range(5)]
            assert {r["state"] for r in rows} <= {"pending", "retrying", "leased"}
            assert any(r["attempts"] >= 1 and "503" in r["error"] for r in rows)

            api.poison_names = {"stripe/customer.created"}
            api.down = False
            api.wait_for(lambda a: a.statuses().count(400) >= 1)
            deadline = time.monotonic() + 30
            while True:
                dead = json.loads(
                    cli("outbox", "list", "--state", "dead", "-o", "json", env=env).stdout
                )
                if len(dead) == 5 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert len(dead) == 5 and all("event API" in r["error"] for r in dead)
            api.poison_names = set()
            retried = cli("outbox", "retry", str(dead[0]["id"]), env=env)
            assert retried.returncode == 0 and "1 dead-lettered" in retried.stdout
            assert api.wait_for(lambda a: "stripe-evt_cli_0" in a.event_ids())
            assert cli("outbox", "retry", "--all", env=env).returncode == 0
            wanted = {f"stripe-evt_cli_{i}" for i in range(5)}
            assert api.wait_for(lambda a: wanted <= set(a.event_ids()))
            purged = subprocess.run(
                [sys.executable, "-m", "gateway", "outbox", "purge"],
                input="yes\n",
                capture_output=True,
                text=True,
                env={**os.environ, **env},
                timeout=60,
            )
            assert purged.returncode == 0 and "row(s) purged" in purged.stdout  # piped "yes"
            assert cli("outbox", "purge", "--yes", env=env).returncode == 0
            unconfirmed = subprocess.run(
                [sys.executable, "-m", "gateway", "outbox", "purge"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                env={**os.environ, **env},
                timeout=60,
            )
            assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
            status = json.loads(cli("outbox", "status", "-o", "json", env=env).stdout)
            assert (status["undelivered"], status["dead"], status["delivered"]) == (0, 0, 0)
        finally:
            gateway.stop()
    assert sorted(api.event_ids()) == sorted(wanted)


def test_commands_refuse_a_data_dir_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo"
    env = {"GATEWAY_DATA_DIR": str(missing)}
    for argv in (
        ["outbox", "status"],
        ["outbox", "list"],
        ["outbox", "retry", "--all"],
        ["outbox", "purge", "--yes"],
        ["quarantine", "list"],
        ["quarantine", "replay", "--all"],
    ):
        assert main(argv, env) == 2, argv
        err = capsys.readouterr().err
        assert f"data directory {missing} does not exist" in err and "GATEWAY_DATA_DIR" in err
    assert not missing.exists()  # nothing was created on the way
    missing.mkdir()
    assert main(["outbox", "status"], env) == 2
    assert "has no outbox (outbox.sqlite3)" in capsys.readouterr().err
    assert list(missing.iterdir()) == []


def test_replaying_a_webhook_that_is_not_quarantined_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env, box = seeded(tmp_path)
    held = box.quarantine(
        Webhook(source="stripe", provider="stripe", body=fixture("stripe/invoice.paid.json")),
        "transform raised KeyError",
        "tb",
    )
    assert main(["quarantine", "replay", "1"], env) == 1  # webhook 1 was accepted, never held
    assert "webhook 1: not quarantined" in capsys.readouterr().err
    assert main(["quarantine", "replay", "999"], env) == 1
    assert "webhook 999: no such webhook" in capsys.readouterr().err
    assert main(["quarantine", "replay", "abc"], env) == 2
    assert main(["quarantine", "replay", str(held)], env) == 0
    capsys.readouterr()
    assert main(["quarantine", "replay", str(held)], env) == 1  # a second time: already done
    assert f"webhook {held}: not quarantined: it was already replayed" in capsys.readouterr().err
    box.close()


def test_purge_by_state_and_age(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    now = time.time()
    box = SQLiteOutbox(data / "outbox.sqlite3", clock=lambda: now - 10 * 86400)
    old = Webhook(source="stripe", provider="stripe", body=b"{}", received_at=now - 10 * 86400)
    box.accept(old, [b"{}", b"{}"], ["old-a", "old-b"], ["stripe/a.b", "stripe/c.d"])
    a, b = (e.seq for e in box.claim(max_events=5, max_bytes=10**6, lease_seconds=5))
    box.ack([a])
    box.dead_letter(b, "bad")
    old_held = box.quarantine(old, "e", "tb")
    box.close()
    box = SQLiteOutbox(data / "outbox.sqlite3")
    fresh = Webhook(source="stripe", provider="stripe", body=b"{}", received_at=now)
    box.accept(fresh, [b"{}", b"{}"], ["new-a", "new-b"], ["stripe/a.b", "stripe/c.d"])
    c, d = (e.seq for e in box.claim(max_events=5, max_bytes=10**6, lease_seconds=5))
    box.ack([c])
    box.dead_letter(d, "bad")
    new_held = box.quarantine(fresh, "e", "tb")
    env = {"GATEWAY_DATA_DIR": str(data)}

    def ids(state: str) -> set[int]:
        assert main(["outbox", "list", "--state", state, "-o", "json"], env) == 0
        return {row["id"] for row in json.loads(capsys.readouterr().out)}

    assert main(["outbox", "purge", "--older-than", "fortnight", "--yes"], env) == 2
    assert "--older-than 'fortnight'" in capsys.readouterr().err
    assert main(["outbox", "purge", "--state", "pending", "--yes"], env) == 2
    assert "unknown --state 'pending'" in capsys.readouterr().err
    assert main(["outbox", "purge", "--state", "delivered", "--older-than", "7d", "-y"], env) == 0
    assert "1 row(s) purged (delivered events older than 7d)" in capsys.readouterr().out
    assert (ids("delivered"), ids("dead")) == ({c}, {b, d})
    assert (
        main(["outbox", "purge", "--state", "dead,quarantined", "--older-than", "1w", "-y"], env)
        == 0
    )
    capsys.readouterr()
    assert (ids("dead"), ids("quarantined")) == ({d}, {new_held})
    assert old_held not in ids("all")
    assert main(["outbox", "purge", "--state", "quarantined", "--yes"], env) == 0
    assert "quarantined webhooks)" in capsys.readouterr().out
    assert (ids("delivered"), ids("dead"), ids("quarantined")) == ({c}, {d}, set())
    box.close()
