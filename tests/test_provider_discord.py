"""``discord``: requests signed with PyNaCl (the library Discord's own ``discord-interactions``
package verifies with), cross-checked with ``discord_interactions.verify_key``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from discord_interactions import verify_key
from nacl.signing import SigningKey

import gateway
from gateway.config import config_from_env
from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    Provider,
    SignatureMismatch,
    TimestampOutOfTolerance,
    get_provider,
)
from gateway.webhook import Webhook
from tests.provider_support import refused as refused_by
from tests.server import run_gateway
from transforms.discord import discord as discord_transform

BODY = Path(gateway.__file__).parent / "samples" / "discord" / "application.authorized.json"
BODY_BYTES = BODY.read_bytes()
KEY = SigningKey(bytes(range(32)))
PUBLIC = KEY.verify_key.encode().hex()
OTHER = SigningKey(bytes(range(1, 33))).verify_key.encode().hex()
NOW = 1_729_262_573


def signed(body: bytes, ts: int, key: SigningKey = KEY) -> dict[str, str]:
    signature = key.sign(str(ts).encode() + body).signature.hex()
    return {"x-signature-ed25519": signature, "x-signature-timestamp": str(ts),
            "content-type": "application/json"}  # fmt: skip


def provider(public: str = PUBLIC) -> Provider:
    return get_provider("discord")([public], 300, {})


def refused(body: bytes, headers: dict[str, str], now: float = NOW, key: str = PUBLIC) -> type:
    return refused_by(provider(key), body, headers, now)


def test_signature_agrees_with_discord_interactions_and_breaks_one_way_at_a_time() -> None:
    good = signed(BODY_BYTES, NOW)
    assert verify_key(BODY_BYTES, good["x-signature-ed25519"], str(NOW), PUBLIC)
    provider().verify(BODY_BYTES, good, now=NOW)
    assert refused(BODY_BYTES + b" ", good) is SignatureMismatch  # body
    assert not verify_key(BODY_BYTES + b" ", good["x-signature-ed25519"], str(NOW), PUBLIC)
    later = {**good, "x-signature-timestamp": str(NOW + 1)}
    assert refused(BODY_BYTES, later) is SignatureMismatch  # timestamp
    flipped = ("1" if good["x-signature-ed25519"][0] == "0" else "0") + good["x-signature-ed25519"][
        1:
    ]
    assert refused(BODY_BYTES, {**good, "x-signature-ed25519": flipped}) is SignatureMismatch
    assert refused(BODY_BYTES, good, key=OTHER) is SignatureMismatch  # key
    assert not verify_key(BODY_BYTES, good["x-signature-ed25519"], str(NOW), OTHER)
    for skew in (-301, 301):
        assert refused(BODY_BYTES, good, now=NOW + skew) is TimestampOutOfTolerance
    provider().verify(BODY_BYTES, good, now=NOW + 299)
    assert refused(BODY_BYTES, {**good, "x-signature-ed25519": "zz"}) is MalformedSignature
    assert refused(BODY_BYTES, {"x-signature-timestamp": str(NOW)}) is MissingSignature
    no_ts = {"x-signature-ed25519": good["x-signature-ed25519"]}
    assert refused(BODY_BYTES, no_ts) is MissingSignature
    rotated = get_provider("discord")([OTHER, PUBLIC], 300, {})
    rotated.verify(BODY_BYTES, good, now=NOW)


def test_the_gateway_cannot_sign_and_checks_the_key_format() -> None:
    with pytest.raises(NotImplementedError, match="public key"):
        provider().sign(BODY_BYTES)
    cls = get_provider("discord")
    assert cls.secret_problem(PUBLIC) is None
    assert cls.secret_problem(PUBLIC.upper()) is None
    for bad in ("MTA1NjQ.bot.token", PUBLIC[:-2], "g" * 64):
        problem = cls.secret_problem(bad)
        assert problem is not None and "64 hex characters" in problem and bad not in problem


def test_pings_answered_only_when_signed_events_stored_with_204(tmp_path: Path) -> None:
    env = {"DISCORD_WEBHOOK_SECRET": PUBLIC, "GATEWAY_DATA_DIR": str(tmp_path)}
    config = config_from_env(env)
    config.forwarder.enabled = False
    [source] = config.sources
    assert (source.name, source.provider) == ("discord", "discord")
    events_ping = b'{"version": 1, "application_id": "1234560123453231555", "type": 0}'
    interactions_ping = json.dumps(
        {"id": "1296869245212033024", "application_id": "1234560123453231555", "type": 1,
         "token": "aW50ZXJhY3Rpb246MTI5Njg2OTI0NTIxMjAzMzAyNA", "version": 1}
    ).encode()  # fmt: skip
    command = json.dumps(
        {"id": "1296869245212033025", "application_id": "1234560123453231555", "type": 2,
         "token": "aW50ZXJhY3Rpb246MTI5Njg2OTI0NTIxMjAzMzAyNQ", "version": 1,
         "data": {"id": "1", "name": "ping", "type": 1}}
    ).encode()  # fmt: skip
    with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        now = int(time.time())
        ping = client.post(
            "/webhooks/discord", content=events_ping, headers=signed(events_ping, now)
        )
        assert (ping.status_code, ping.content) == (204, b"")
        pong = client.post(
            "/webhooks/discord", content=interactions_ping, headers=signed(interactions_ping, now)
        )
        assert (pong.status_code, pong.json()) == (200, {"type": 1})
        forged = signed(interactions_ping, now, SigningKey(bytes(32)))
        assert (
            client.post("/webhooks/discord", content=interactions_ping, headers=forged).status_code
            == 401
        )
        unsigned = client.post("/webhooks/discord", content=events_ping)
        assert unsigned.status_code == 401
        event = client.post(
            "/webhooks/discord", content=BODY_BYTES, headers=signed(BODY_BYTES, now)
        )
        assert (event.status_code, event.content) == (204, b"")
        deferred = client.post("/webhooks/discord", content=command, headers=signed(command, now))
        assert (deferred.status_code, deferred.json()) == (200, {"type": 5})
        metrics = client.get("/metrics").text
        assert 'handshakes_total{provider="discord",source="discord"} 2.0' in metrics
        assert 'events_accepted_total{source="discord"} 2.0' in metrics


def test_transform_of_events_and_interactions() -> None:
    event = discord_transform(Webhook(source="discord", provider="discord", body=BODY_BYTES))
    assert event.name == "discord/application.authorized"
    assert (
        event.id == "discord-APPLICATION_AUTHORIZED-2024-10-18T14:42:53.064834-111178765189277770"
    )
    assert event.ts == 1729262573064
    assert event.data["event"]["data"]["user"]["username"] == "nelly"
    lobby = json.dumps(
        {"version": 1, "type": 1, "event": {"type": "LOBBY_MESSAGE_CREATE",
         "timestamp": "2024-10-18T18:41:21.109604", "data": {"id": "139"}}}
    ).encode()  # fmt: skip
    message = discord_transform(Webhook(source="discord", provider="discord", body=lobby))
    assert (message.name, message.id) == (
        "discord/lobby_message.create",
        "discord-LOBBY_MESSAGE_CREATE-2024-10-18T18:41:21.109604-139",
    )
    command = b'{"id":"1296869245212033025","type":2,"token":"t","data":{"name":"ping"}}'
    interaction = discord_transform(Webhook(source="discord", provider="discord", body=command))
    assert (interaction.name, interaction.id) == (
        "discord/interaction.application_command",
        "discord-1296869245212033025",
    )
    assert interaction.ts == (1296869245212033025 >> 22) + 1_420_070_400_000
