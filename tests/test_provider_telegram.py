"""``telegram``: the secret token header exactly as the Bot API documents it
(https://core.telegram.org/bots/api#setwebhook: ``secret_token`` is sent in
``X-Telegram-Bot-Api-Secret-Token``); Telegram publishes no Python SDK of its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gateway
from gateway.providers import MissingSignature, SignatureMismatch, get_provider
from gateway.webhook import Webhook
from tests.provider_support import refused as refused_at_now
from tests.provider_support import zero_config_gateway
from transforms.telegram import telegram as telegram_transform

BODY = (Path(gateway.__file__).parent / "samples" / "telegram" / "message.json").read_bytes()
TOKEN = "k3Y_9f-2TqzR7vLm0PxW"
HEADER = "x-telegram-bot-api-secret-token"


def refused(headers: dict[str, str], secret: str = TOKEN) -> type:
    return refused_at_now(get_provider("telegram")([secret], 300, {}), BODY, headers)


def test_secret_token_broken_one_way_at_a_time() -> None:
    get_provider("telegram")(["old-token", TOKEN], 300, {}).verify(BODY, {HEADER: TOKEN})
    assert get_provider("telegram")([TOKEN], 300, {}).sign(BODY) == {HEADER: TOKEN}
    assert refused({HEADER: TOKEN[:-1]}) is SignatureMismatch  # token
    assert refused({HEADER: TOKEN + "x"}) is SignatureMismatch
    assert refused({HEADER: TOKEN}, "another-token") is SignatureMismatch  # key
    assert refused({HEADER: "é"}) is SignatureMismatch
    assert refused({}) is MissingSignature
    problem = get_provider("telegram").secret_problem
    assert problem(TOKEN) is None
    assert problem("has space") is not None and problem("x" * 257) is not None


def test_check_names_the_bot_token_pasted_in_place_of_the_secret_token() -> None:
    """The bot token (``<bot id>:<35 characters>``) is the usual mistake: say so, in the
    ``secret #N is ...`` form of the other providers' messages."""
    problem = get_provider("telegram").secret_problem
    bot_token = problem("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw")
    assert bot_token is not None and bot_token.startswith("is the bot token")
    other = problem("has space")
    assert other is not None and other.startswith("is not a setWebhook secret_token")


def update(field: str, item: dict[str, object], ident: int = 7) -> Webhook:
    body = json.dumps({"update_id": ident, field: item}).encode()
    return Webhook(source="telegram", provider="telegram", body=body, received_at=1_700_000_000)


def test_transform_names_the_update_by_its_field() -> None:
    event = telegram_transform(Webhook(source="telegram", provider="telegram", body=BODY))
    assert (event.name, event.id, event.ts) == ("telegram/message.received", "telegram-10000",
                                                1714557600000)  # fmt: skip
    assert event.data == json.loads(BODY)
    cases = {
        "edited_message": ({"date": 1714557600, "edit_date": 1714557660}, 1714557660000),
        "callback_query": ({"id": "4382", "data": "yes"}, 1_700_000_000_000),
        "chat_boost": ({"boost": {"add_date": 1714557600}}, 1714557600000),
        "removed_chat_boost": ({"remove_date": 1714557600}, 1714557600000),
        "poll_answer": ({"poll_id": "1", "option_ids": [0]}, 1_700_000_000_000),
        "some_future_field": ({"date": 1714557600}, 1714557600000),
    }
    names = {}
    for field, (item, ts) in cases.items():
        event = telegram_transform(update(field, item))
        assert event.ts == ts, field
        names[field] = event.name
    assert names == {
        "edited_message": "telegram/message.edited",
        "callback_query": "telegram/callback_query.received",
        "chat_boost": "telegram/chat_boost.updated",
        "removed_chat_boost": "telegram/chat_boost.removed",
        "poll_answer": "telegram/poll_answer.changed",
        "some_future_field": "telegram/some_future_field.received",
    }
    with pytest.raises(ValueError, match="exactly one field"):
        telegram_transform(Webhook(source="t", provider="telegram", body=b'{"update_id": 1}'))


def test_zero_config_over_a_real_socket(tmp_path: Path) -> None:
    with zero_config_gateway({"TELEGRAM_WEBHOOK_SECRET": TOKEN}, tmp_path) as (_, client, _):
        headers = {HEADER: TOKEN, "content-type": "application/json"}
        ok = client.post("/webhooks/telegram", content=BODY, headers=headers)
        assert (ok.status_code, ok.json()["events"]) == (200, 1)
        resent = json.loads(BODY)
        resent["message"]["text"] = "/start again"  # the same update_id: a duplicate
        again = client.post("/webhooks/telegram", content=json.dumps(resent), headers=headers)
        assert again.json()["duplicates"] == 1
        wrong = client.post("/webhooks/telegram", content=BODY, headers={HEADER: "guess"})
        assert wrong.status_code == 401
