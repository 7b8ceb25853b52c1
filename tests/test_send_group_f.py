"""``webhook-gateway send <name> --sample TYPE`` against a real gateway, for group f's providers
(mailgun, postmark, telegram, lemonsqueezy, xero), each enabled by its zero-config variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.commands.send import sample_names
from gateway.providers import get_provider
from tests.zero_config import zero_config_gateway

#: provider -> (its zero-config variables, the sample sent, the events it makes)
CASES: dict[str, tuple[dict[str, str], str, int]] = {
    "mailgun": ({"MAILGUN_WEBHOOK_SECRET": "mg-signing-key"}, "delivered", 1),
    "postmark": ({"POSTMARK_WEBHOOK_SECRET": "hooks:pa55word"}, "delivery", 1),
    "telegram": ({"TELEGRAM_WEBHOOK_SECRET": "bot-secret_1"}, "message", 1),
    "lemonsqueezy": ({"LEMONSQUEEZY_WEBHOOK_SECRET": "ls-secret"}, "order_created", 1),
    "xero": ({"XERO_WEBHOOK_SECRET": "xero-webhook-key"}, "invoice.updated", 2),
}


@pytest.mark.parametrize("provider", sorted(CASES))
def test_send_a_sample_to_a_running_gateway(
    provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    variables, sample, events = CASES[provider]
    assert sample in sample_names(provider)
    quiet = get_provider(provider).empty_replies  # Xero: every answer without a body
    with zero_config_gateway(variables, tmp_path) as (gw, client, env):
        argv = ["send", provider, "--sample", sample, "--url", gw.url]
        assert main(argv, env) == 0, capsys.readouterr()
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith(f"POST {gw.url}/webhooks/{provider} (")
        stored = f"accepted: {events} event(s) stored, 0 duplicate(s) skipped"
        assert out[1] == "200 OK: " + ("(empty body)" if quiet else stored)
        # sent again (signed afresh): the provider's own event ids make it a duplicate
        assert main(argv, env) == 0, capsys.readouterr()
        again = capsys.readouterr().out.splitlines()[1]
        skipped = f"accepted: 0 event(s) stored, {events} duplicate(s) skipped"
        assert again == "200 OK: " + ("(empty body)" if quiet else skipped)
        metrics = client.get("/metrics").text
    assert f'events_accepted_total{{source="{provider}"}} {events}.0' in metrics
    assert f'duplicates_skipped_total{{source="{provider}"}} {events}.0' in metrics
