"""Issue 16: GitHub backfill against a REST API stand-in that redelivers to the real gateway."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.backfill.github_auth import app_jwt
from gateway.config import (
    Config,
    ConfigError,
    ForwarderConfig,
    GatewayConfig,
    InngestConfig,
    SourceConfig,
)
from gateway.receive import Source
from tests.backfill_support import backfill, open_outbox, source_for, stored_event_ids
from tests.eventapi_standin import EventApiStandIn, event_api
from tests.github_standin import App, GitHubStandIn, github_api
from tests.server import ThreadedServer, run_gateway

SECRET = "github-hook-secret"
TOKEN = "github_pat_backfill"
HOOK = "/repos/octo-org/octo-repo/hooks/12345678"


def push(n: int) -> dict[str, object]:
    return {"ref": "refs/heads/main", "after": f"{n:040x}", "repository": {"id": 1296269}}


@pytest.fixture
def eventapi() -> Iterator[EventApiStandIn]:
    with event_api() as api:
        yield api


@pytest.fixture
def gateway(tmp_path: Path, eventapi: EventApiStandIn) -> Iterator[ThreadedServer]:
    config = Config(
        gateway=GatewayConfig(data_dir=str(tmp_path / "data")),
        sources=[SourceConfig(name="github", provider="github", secrets=[f"inline:{SECRET}"])],
        inngest=InngestConfig(base_url=eventapi.url, event_key="inline:test-key"),
        forwarder=ForwarderConfig(backoff_base=0.01, backoff_max=0.05, idle_poll=0.02),
    )
    with run_gateway(config) as server:
        yield server


def github_source(api: GitHubStandIn, **settings: object) -> Source:
    base = {"repository": "octo-org/octo-repo", "hook_id": 12345678, "token": f"inline:{TOKEN}"}
    return source_for(
        "github", {**base, "api_base": api.url, **settings}, secret=f"inline:{SECRET}"
    )


def wait_until(predicate: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_failed_deliveries_are_redelivered_once_and_arrive_through_the_receive_path(
    gateway: ThreadedServer, eventapi: EventApiStandIn, tmp_path: Path
) -> None:
    with github_api(HOOK, f"{gateway.url}/webhooks/github", SECRET) as api:
        api.tokens.add(TOKEN)
        delivered = [api.emit("push", push(i)) for i in range(3)]
        api.secret = "rotated-too-early"  # a secret rotation gone wrong: 401s at the gateway
        failed = [api.emit("push", push(10 + i)) for i in range(2)]
        api.secret = SECRET  # fixed
        assert [d["status_code"] for d in delivered + failed] == [200, 200, 200, 401, 401]
        with open_outbox(tmp_path / "data") as outbox:
            report = backfill(github_source(api), outbox)
            assert report.status == "ok", report.error
            assert (report.found, report.duplicates, report.recovered) == (5, 3, 2)
            attempts = [c for c in api.calls if c.method == "POST"]
            assert sorted(c.path for c in attempts) == sorted(
                f"{HOOK}/deliveries/{d['id']}/attempts" for d in failed
            )
            wanted = {f"github-{d['guid']}" for d in delivered + failed}
            assert wait_until(lambda: set(stored_event_ids(outbox)) == wanted)
            assert wait_until(lambda: len(api.redeliveries()) == 2)
            assert all(d["status_code"] == 200 for d in api.redeliveries())
            again = backfill(github_source(api), outbox)
            assert (again.found, again.duplicates, again.recovered) == (5, 5, 0)
        assert len([c for c in api.calls if c.method == "POST"]) == 2  # never asked twice
        assert eventapi.wait_for_events(5)
        assert sorted(i for i in eventapi.event_ids() if i) == sorted(wanted)  # once each


def test_a_failure_the_outbox_holds_is_not_redelivered(
    gateway: ThreadedServer, tmp_path: Path
) -> None:
    with github_api(HOOK, f"{gateway.url}/webhooks/github", SECRET) as api:
        api.tokens.add(TOKEN)
        delivery = api.emit("push", push(1))
        # the gateway stored it, but GitHub gave up waiting (its 10 s timeout)
        delivery["status_code"], delivery["status"] = 0, "timed out"
        with open_outbox(tmp_path / "data") as outbox:
            report = backfill(github_source(api), outbox)
        assert (report.found, report.duplicates, report.recovered) == (1, 1, 0)
        assert [c.method for c in api.calls] == ["GET", "GET"]  # the list and the delivery


def test_pages_follow_the_link_header_and_stop_before_the_window(tmp_path: Path) -> None:
    with github_api(HOOK, "http://127.0.0.1:9/unused", SECRET) as api:
        api.tokens.add(TOKEN)
        hour_ago = time.time() - 3600
        for i in range(50):  # older than the window: no page of them is needed
            api.deliveries.insert(0, _failed(100 + i, hour_ago - 600))
        for i in range(150):
            api.deliveries.insert(0, _failed(1000 + i, time.time() - 60))
        with open_outbox(tmp_path) as outbox:
            report = backfill(github_source(api), outbox, since=1800, dry_run=True)
        assert (report.found, report.recovered) == (150, 150)
        lists = [c for c in api.calls if c.path == f"{HOOK}/deliveries"]
        assert [c.query.get("cursor") for c in lists] == [None, f"v1_{1050}"]
        assert [c.method for c in api.calls].count("POST") == 0  # a dry run asks nothing


def _failed(n: int, at: float) -> dict[str, object]:
    guid = f"00000000-0000-0000-0000-{n:012d}"
    return {
        "id": n,
        "guid": guid,
        "delivered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
        "redelivery": False,
        "status": "failed to connect",
        "status_code": 0,
        "event": "push",
        "action": None,
        "request": {
            "headers": {"X-GitHub-Event": "push", "X-GitHub-Delivery": guid},
            "payload": push(n),
        },
        "response": {"headers": {}, "payload": None},
    }


def test_bad_token_says_so_and_asks_for_nothing(tmp_path: Path) -> None:
    with github_api(HOOK, "http://127.0.0.1:9/unused", SECRET) as api:
        api.deliveries.insert(0, _failed(7, time.time() - 10))
        with open_outbox(tmp_path) as outbox:
            report = backfill(github_source(api), outbox)
        assert report.status == "auth_failed"
        assert "401" in (report.error or "")
        assert [c.method for c in api.calls] == ["GET"]


def test_retry_after_is_honoured_and_a_long_one_ends_the_run(tmp_path: Path) -> None:
    with github_api(HOOK, "http://127.0.0.1:9/unused", SECRET) as api:
        api.tokens.add(TOKEN)
        api.deliveries.insert(0, _failed(7, time.time() - 10))
        api.rate_limit_next(1, retry_after="0")
        with open_outbox(tmp_path) as outbox:
            report = backfill(github_source(api), outbox, dry_run=True)
            assert report.status == "ok" and report.recovered == 1
            assert [c.status for c in api.calls][:2] == [429, 200]
            api.calls.clear()
            api.rate_limit_next(1, retry_after="3600")
            report = backfill(github_source(api, max_wait="10m"), outbox, dry_run=True)
        assert report.status == "rate_limited"
        assert [c.status for c in api.calls] == [429]  # not sent again before the hour


def test_an_exhausted_primary_limit_waits_for_its_reset(tmp_path: Path) -> None:
    with github_api(HOOK, "http://127.0.0.1:9/unused", SECRET) as api:
        api.tokens.add(TOKEN)
        api.deliveries.insert(0, _failed(7, time.time() - 10))
        api.exhaust(reset_in=7200)
        with open_outbox(tmp_path) as outbox:
            report = backfill(github_source(api, max_wait="1m"), outbox)
        assert report.status == "rate_limited"
        assert "max_wait" in (report.error or "")
        assert [c.status for c in api.calls] == [403]


def _app_key() -> tuple[rsa.RSAPrivateKey, str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, pem, public


def test_app_jwt_verifies_with_pyjwt() -> None:
    key, _, public = _app_key()
    token = app_jwt(4242, key, now=time.time())
    claims = jwt.decode(token, public, algorithms=["RS256"])
    assert claims["iss"] == 4242
    assert 0 < claims["exp"] - claims["iat"] <= 600


def test_the_apps_own_hook_is_read_with_the_app_jwt(tmp_path: Path) -> None:
    _, pem, public = _app_key()
    key_file = tmp_path / "app.pem"
    key_file.write_text(pem)
    with github_api("/app/hook", "http://127.0.0.1:9/unused", SECRET) as api:
        api.app = App(app_id=4242, public_pem=public, installation_id=99)
        api.deliveries.insert(0, _failed(7, time.time() - 10))
        source = source_for(
            "github",
            {"app": True, "app_id": 4242, "private_key": f"file:{key_file}", "api_base": api.url},
        )
        with open_outbox(tmp_path / "data") as outbox:
            report = backfill(source, outbox, dry_run=True)
        assert report.status == "ok", report.error
        assert report.recovered == 1
        assert all(c.authorization.startswith("Bearer ey") for c in api.calls)


def test_a_repository_hook_read_as_an_app_uses_an_installation_token(tmp_path: Path) -> None:
    _, pem, public = _app_key()
    with github_api(HOOK, "http://127.0.0.1:9/unused", SECRET) as api:
        api.app = App(app_id=4242, public_pem=public, installation_id=99)
        api.deliveries.insert(0, _failed(7, time.time() - 10))
        settings = {
            "repository": "octo-org/octo-repo",
            "hook_id": 12345678,
            "app_id": 4242,
            "private_key": "env:APP_KEY",
            "installation_id": 99,
            "api_base": api.url,
        }
        source = source_for("github", settings)
        with open_outbox(tmp_path / "data") as outbox:
            report = backfill(source, outbox, dry_run=True, environ={"APP_KEY": pem})
        assert report.status == "ok", report.error
        assert api.calls[0].path == "/app/installations/99/access_tokens"
        assert all(c.authorization == f"token {api.app.token}" for c in api.calls[1:])
        assert len([c for c in api.calls if "access_tokens" in c.path]) == 1


def test_incomplete_github_settings_are_configuration_errors() -> None:
    from gateway.backfill.runner import build_backfiller

    with pytest.raises(ConfigError, match="hook_id"):
        build_backfiller(source_for("github", {"token": "inline:x"}), {})
    with pytest.raises(ConfigError, match="token, or app_id"):
        build_backfiller(source_for("github", {"repository": "a/b", "hook_id": 1}), {})
    with pytest.raises(ConfigError, match="installation_id"):
        settings = {"repository": "a/b", "hook_id": 1, "app_id": 1, "private_key": "env:K"}
        build_backfiller(source_for("github", settings), {"K": _app_key()[1]})
    with pytest.raises(ConfigError, match="private_key"):
        settings = {"app": True, "app_id": 1, "private_key": "inline:not-a-key"}
        build_backfiller(source_for("github", settings), {})


def test_an_organization_hook_is_read_at_its_own_path(tmp_path: Path) -> None:
    with github_api("/orgs/octo-org/hooks/42", "http://127.0.0.1:9/unused", SECRET) as api:
        api.tokens.add(TOKEN)
        api.deliveries.insert(0, _failed(7, time.time() - 10))
        settings = {"organization": "octo-org", "hook_id": 42, "repository": None}
        with open_outbox(tmp_path) as outbox:
            report = backfill(github_source(api, **settings), outbox, dry_run=True)
        assert (report.status, report.recovered) == ("ok", 1)
        assert {c.path for c in api.calls} == {
            "/orgs/octo-org/hooks/42/deliveries",
            "/orgs/octo-org/hooks/42/deliveries/7",
        }


def test_one_backfiller_serves_run_after_run(tmp_path: Path) -> None:
    """The reconciler keeps one backfiller per source and runs it every period."""
    from gateway.backfill.run import StopToken
    from gateway.backfill.runner import Window, build_backfiller, run_backfill

    with github_api(HOOK, "http://127.0.0.1:9/unused", SECRET) as api:
        api.tokens.add(TOKEN)
        api.deliveries.insert(0, _failed(7, time.time() - 10))
        source = github_source(api)
        backfiller = build_backfiller(source, {})
        with open_outbox(tmp_path) as outbox:
            reports = [
                run_backfill(
                    source,
                    backfiller,
                    outbox,
                    Window(time.time() - 600, time.time()),
                    StopToken(),
                    dry_run=True,
                )
                for _ in range(2)
            ]
        assert [(r.status, r.recovered, r.requests) for r in reports] == [("ok", 1, 2)] * 2
