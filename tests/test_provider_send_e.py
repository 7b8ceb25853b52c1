"""Group e's providers (sentry, zendesk, pagerduty, bitbucket) end to end: zero-config
``<NAME>_WEBHOOK_SECRET`` enables ``/webhooks/<name>``, ``webhook-gateway send --sample`` signs
the built-in sample as the provider does, a real gateway on a loopback socket accepts it, and
the event reaches the Event API stand-in under the provider's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import config_from_env
from tests.eventapi_standin import event_api
from tests.server import run_gateway

#: provider -> (secret, sample, event name)
CASES = {
    "bitbucket": (
        "Zq8vN3kR7tW1yB4eH6jM9pS2",
        "pullrequest.created",
        "bitbucket/pullrequest.created",
    ),
    "sentry": ("7f1bb3d4a2e34c5d9e8f0a1b2c3d4e5f", "issue.created", "sentry/issue.created"),
    "pagerduty": ("cGFnZXJkdXR5LXNlY3JldA==", "incident.triggered", "pagerduty/incident.triggered"),
    "zendesk": ("HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoI=", "ticket.created", "zendesk/ticket.created"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_zero_config_send_sample_is_accepted_and_forwarded(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret, sample, event_name = CASES[name]
    with event_api() as api:
        env = {f"{name.upper()}_WEBHOOK_SECRET": secret, "GATEWAY_DATA_DIR": str(tmp_path),
               "INNGEST_BASE_URL": api.url, "INNGEST_EVENT_KEY": "test-key"}  # fmt: skip
        config = config_from_env(env)
        assert [s.name for s in config.sources] == [name]
        with run_gateway(config, env) as gw:
            argv = ["send", name, "--sample", sample, "--url", gw.url]
            assert main(argv, env) == 0, capsys.readouterr()
            out = capsys.readouterr().out.splitlines()
            assert out[0].startswith(f"POST {gw.url}/webhooks/{name} ({name}, {sample}, ")
            assert out[1] == "200 OK: accepted: 1 event(s) stored, 0 duplicate(s) skipped"
            wrong = {**env, f"{name.upper()}_WEBHOOK_SECRET": secret[::-1]}
            assert main(argv, wrong) == 1  # signed with another secret: refused
            assert "401 Unauthorized" in capsys.readouterr().out
            assert api.wait_for_events(1)
    assert [event["name"] for event in api.events] == [event_name]
