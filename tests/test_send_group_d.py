"""``webhook-gateway send <name> --sample <type>`` for group d's providers (WorkOS, Paddle,
Square, Calendly): each sample, signed by ``send`` from the zero-config variables alone, is
accepted by a real gateway on a loopback socket and stored as the expected event."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import config_from_env
from tests.eventapi_standin import event_api
from tests.server import run_gateway

#: provider -> (sample, event name, zero-config variables)
SENDS: dict[str, tuple[str, str, dict[str, str]]] = {
    "calendly": (
        "invitee.created",
        "calendly/invitee.created",
        {"CALENDLY_WEBHOOK_SECRET": "3b4f9c1e7a2d8f60b5c4e3d2a1f0e9d8"},
    ),
    "paddle": (
        "transaction.completed",
        "paddle/transaction.completed",
        {"PADDLE_WEBHOOK_SECRET": "pdl_ntfset_01hxa3kqn1z8w6v4t2r0p8n6m4_h7Kq2vXz9PbWm4Ry8TcN3sLd"},
    ),
    "square": (
        "payment.created",
        "square/payment.created",
        {  # the URL signed is the configured public one, not the gateway's loopback address
            "SQUARE_WEBHOOK_SECRET": "Ibxx_5AKakO-3qeNVR61Dw",
            "SQUARE_WEBHOOK_URL": "https://hooks.example.com/webhooks/square",
        },
    ),
    "workos": (
        "dsync.user.created",
        "workos/dsync.user.created",
        {"WORKOS_WEBHOOK_SECRET": "wh_secret_5nUq7tX2dWcV8bYe"},
    ),
}


@pytest.mark.parametrize("name", sorted(SENDS))
def test_send_sample_is_accepted_by_a_zero_config_gateway(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample, event_name, variables = SENDS[name]
    with event_api() as api:
        env = {**variables, "GATEWAY_DATA_DIR": str(tmp_path), "INNGEST_BASE_URL": api.url,
               "INNGEST_EVENT_KEY": "test-key"}  # fmt: skip
        with run_gateway(config_from_env(env), env) as gw:
            assert main(["send", name, "--sample", sample, "--url", gw.url], env) == 0
            out = capsys.readouterr().out.splitlines()
            assert out[0].startswith(f"POST {gw.url}/webhooks/{name} ({name}, {sample}, ")
            assert out[1] == "200 OK: accepted: 1 event(s) stored, 0 duplicate(s) skipped"
            assert api.wait_for_events(1)
    [event] = api.events
    assert event["name"] == event_name
