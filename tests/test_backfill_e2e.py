"""Issue 16 end to end: webhooks sent while the gateway is down come back through a backfill,
each exactly once at the Event API stand-in; the command's output, exit status and SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import BackfillConfig, SourceConfig
from tests.backfill_support import open_outbox
from tests.eventapi_standin import event_api
from tests.helpers import STRIPE_SECRET, make_config
from tests.server import run_gateway
from tests.stripe_standin import stripe_api

KEY = "rk_test_e2e_events_read"


def write_config(path: Path, data_dir: Path, stripe_url: str, api_url: str, **extra: str) -> Path:
    settings = "".join(f'{k} = "{v}"\n' for k, v in extra.items())
    path.write_text(
        f"""
[gateway]
data_dir = "{data_dir}"

[[sources]]
name = "stripe"
provider = "stripe"
secrets = ["inline:{STRIPE_SECRET}"]

[sources.backfill]
api_key = "env:STRIPE_BACKFILL_KEY"
api_base = "{stripe_url}"
{settings}
[inngest]
base_url = "{api_url}"
event_key = "inline:test-key"
"""
    )
    return path


def test_events_sent_while_down_are_recovered_once_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    with event_api() as api, stripe_api() as stripe:
        stripe.add_key(KEY)
        config = make_config(data, api.url)
        with run_gateway(config) as gw:
            url = f"{gw.url}/webhooks/stripe"
            before = [stripe.emit(url, STRIPE_SECRET, "customer.created") for _ in range(2)]
            assert [status for _, status in before] == [200, 200]
            assert api.wait_for_events(2)
        # the gateway is down: Stripe keeps the events but they do not arrive
        missed = [stripe.emit(url, STRIPE_SECRET, "invoice.paid") for _ in range(3)]
        assert all(status != 200 for _, status in missed)
        assert len(api.event_ids()) == 2

        cfg = write_config(tmp_path / "gateway.toml", data, stripe.url, api.url)
        monkeypatch.setenv("STRIPE_BACKFILL_KEY", KEY)
        with run_gateway(config):  # back up; the backfill runs beside it on the same outbox
            status = main(
                ["backfill", "stripe", "--since", "1h", "-o", "json", "--config", str(cfg)]
            )
            report = json.loads(capsys.readouterr().out)
            assert status == 0
            assert (report["found"], report["duplicates"], report["recovered"]) == (5, 2, 3)
            assert report["status"] == "ok"
            assert api.wait_for_events(5)
            again = main(["backfill", "stripe", "--since", "1h", "--config", str(cfg)])
            table = capsys.readouterr().out
            assert again == 0
            row = table.splitlines()[1].split()
            assert row[:2] == ["stripe", "stripe"]
            assert row[-6:] == ["5", "5", "0", "0", "0", "ok"]
        expected = sorted(f"stripe-{e['id']}" for e, _ in before + missed)
        assert sorted(i for i in api.event_ids() if i) == expected  # each exactly once


def test_a_wrong_key_exits_2_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with stripe_api() as stripe:
        stripe.add_key(KEY)
        stripe.event("invoice.paid")
        cfg = write_config(tmp_path / "g.toml", tmp_path / "data", stripe.url, "http://127.0.0.1:9")
        monkeypatch.setenv("STRIPE_BACKFILL_KEY", "rk_test_wrong")
        (tmp_path / "data").mkdir()
        open_outbox(tmp_path / "data").close()
        assert main(["backfill", "stripe", "--since", "1h", "--config", str(cfg)]) == 2
        captured = capsys.readouterr()
        assert "auth_failed" in captured.out
        assert "refused the API key (401)" in captured.err


def test_unknown_source_and_too_long_window_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write_config(tmp_path / "g.toml", tmp_path / "data", "http://127.0.0.1:9", "http://x")
    monkeypatch.setenv("STRIPE_BACKFILL_KEY", KEY)
    assert main(["backfill", "nope", "--since", "1h", "--config", str(cfg)]) == 2
    assert "no source named 'nope'" in capsys.readouterr().err
    assert main(["backfill", "stripe", "--since", "3d", "--config", str(cfg)]) == 2
    assert "dedup_window" in capsys.readouterr().err


def test_sigterm_stops_a_run_waiting_out_a_rate_limit(tmp_path: Path) -> None:
    with stripe_api() as stripe:
        stripe.add_key(KEY)
        stripe.event("invoice.paid")
        stripe.rate_limit_next(1, retry_after="600")
        cfg = write_config(
            tmp_path / "g.toml", tmp_path / "data", stripe.url, "http://127.0.0.1:9", max_wait="1h"
        )
        open_outbox(tmp_path / "data").close()
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "backfill", "stripe", "--since", "1h", "-o", "json"],
            env={"GATEWAY_CONFIG": str(cfg), "STRIPE_BACKFILL_KEY": KEY, "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while not stripe.requests_to("/v1/events") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert stripe.requests_to("/v1/events"), "the run never asked Stripe"
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 128 + signal.SIGTERM, err
        report = json.loads(out)
        assert report["status"] == "interrupted"
        assert report["recovered"] == 0
        assert [r.status for r in stripe.requests_to("/v1/events")] == [429]  # not sent again


def test_the_source_table_validates_its_durations() -> None:
    with pytest.raises(ValueError, match="duration"):
        SourceConfig(name="s", provider="stripe", backfill=BackfillConfig(every="soon"))


def test_check_validates_the_backfill_table_as_serve_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write_config(
        tmp_path / "g.toml", tmp_path / "data", "http://127.0.0.1:9", "http://x", every="15m"
    )
    # a problem serve would refuse: one line on stderr, exit status 1 (gateway/commands/check.py)
    assert main(["check", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "problem: " in err and "STRIPE_BACKFILL_KEY" in err  # the secret reference is unset
    monkeypatch.setenv("STRIPE_BACKFILL_KEY", KEY)
    assert main(["check", "--config", str(cfg)]) == 0
    assert "backfill every 900s looking back 7200s" in capsys.readouterr().out
