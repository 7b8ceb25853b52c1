"""The Event API client against the real stand-in over loopback HTTP, and target resolution."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest

from gateway import __version__
from gateway.config import ConfigError, InngestConfig
from gateway.eventapi import (
    CLOUD_ORIGIN,
    DEV_KEY,
    DEV_ORIGIN,
    BadRequest,
    EventApiClient,
    EventApiTarget,
    InvalidTarget,
    MissingEventKey,
    NetworkError,
    RateLimited,
    SendError,
    SendResult,
    ServerError,
    TooLarge,
    Unauthorized,
    UnexpectedAnswer,
    batch_size,
    encode_batch,
    event_id_seed,
    parse_retry_after,
    resolve_target,
)
from tests.eventapi_standin import EventApiStandIn, event_api, seeded_ulid

T = TypeVar("T")
KEY = "test-event-key-123"
SEED = event_id_seed(1, 1_700_000_000.0)


@pytest.fixture
def api() -> Iterator[EventApiStandIn]:
    with event_api() as stand_in:
        yield stand_in


def payload(name: str, **data: object) -> bytes:
    return json.dumps({"name": name, "data": data}, separators=(",", ":")).encode()


def with_client(
    target: EventApiTarget,
    use: Callable[[EventApiClient], Awaitable[T]],
    *,
    timeout: float = 10.0,
) -> T:
    async def go() -> T:
        client = EventApiClient(target, timeout=timeout)
        try:
            return await use(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def target_for(api: EventApiStandIn, key: str = KEY, env: str | None = None) -> EventApiTarget:
    return resolve_target(InngestConfig(base_url=api.url, event_key=f"inline:{key}", env=env), {})


def send(api: EventApiStandIn, payloads: list[bytes], key: str = KEY) -> SendResult:
    return with_client(target_for(api, key), lambda c: c.send(payloads, seed=SEED))


def send_error(api: EventApiStandIn, payloads: list[bytes], key: str = KEY) -> SendError:
    with pytest.raises(SendError) as info:
        send(api, payloads, key)
    return info.value


# -- requests ---------------------------------------------------------------------------------


def test_batch_is_the_stored_bytes_joined_with_the_contract_headers(api: EventApiStandIn) -> None:
    payloads = [b'{"name":"s/a.b","data":{"k":"\xc3\xa9"}, "id":"x1"}', payload("s/c.d", n=1)]
    target = target_for(api, env="feature-branch")
    result = with_client(target, lambda c: c.send(payloads, seed=SEED))

    [request] = api.requests
    assert request.path == f"/e/{KEY}"
    assert request.body == encode_batch(payloads) == b"[" + b",".join(payloads) + b"]"
    assert len(request.body) == batch_size(payloads)
    assert api.raw_events == payloads  # byte-identical, not re-serialized
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"webhook-gateway/{__version__}"
    assert request.headers["x-inngest-sdk"] == f"webhook-gateway:v{__version__}"
    assert request.headers["x-inngest-env"] == "feature-branch"
    assert request.headers["x-inngest-event-id-seed"] == SEED
    assert "authorization" not in request.headers
    # the server's internal ids, derived from the seed and each event's index
    assert result.ids == [seeded_ulid(SEED, 1), seeded_ulid(SEED, 2)] == api.ids


def test_no_env_header_without_a_branch_and_custom_user_agent(api: EventApiStandIn) -> None:
    target = target_for(api)
    with_client(target, lambda c: c.send([payload("s/a.b")], seed=SEED))
    assert "x-inngest-env" not in api.requests[0].headers

    async def custom(_: EventApiClient) -> SendResult:
        client = EventApiClient(target, user_agent="acme-gw/2")
        try:
            return await client.send([payload("s/a.b")], seed=SEED)
        finally:
            await client.aclose()

    with_client(target, custom)
    assert api.requests[1].headers["user-agent"] == "acme-gw/2"


def test_one_pooled_connection_is_reused(api: EventApiStandIn) -> None:
    async def three(client: EventApiClient) -> None:
        for i in range(3):
            await client.send([payload("s/a.b", i=i)], seed=SEED)

    with_client(target_for(api), three)
    assert len(api.requests) == 3
    assert len({r.peer for r in api.requests}) == 1  # one keep-alive connection


def test_same_seed_gives_same_internal_ids(api: EventApiStandIn) -> None:
    first = send(api, [payload("s/a.b"), payload("s/c.d")])
    again = send(api, [payload("s/a.b"), payload("s/c.d")])
    assert first.ids == again.ids
    other = with_client(
        target_for(api), lambda c: c.send([payload("s/a.b")], seed=event_id_seed(2, 1.7e9))
    )
    assert other.ids[0] not in first.ids


def test_event_id_seed_format_and_stability() -> None:
    seed = event_id_seed(42, 1_700_000_000.123, b"stripe-evt_1")
    millis, entropy = seed.split(",")
    assert millis == "1700000000123"
    assert len(base64.b64decode(entropy, validate=True)) == 10
    assert seed == event_id_seed(42, 1_700_000_000.123, b"stripe-evt_1")
    assert seed != event_id_seed(43, 1_700_000_000.123, b"stripe-evt_1")
    assert seed != event_id_seed(42, 1_700_000_000.123, b"stripe-evt_2")


# -- outcomes ---------------------------------------------------------------------------------


def test_ok(api: EventApiStandIn) -> None:
    result = send(api, [payload("s/a.b"), payload("s/c.d")])
    assert len(result.ids) == 2
    assert [e["name"] for e in api.events] == ["s/a.b", "s/c.d"]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_a_server_error(api: EventApiStandIn, status: int) -> None:
    api.fail_next(1, status, error="upstream trouble")
    exc = send_error(api, [payload("s/a.b")])
    assert isinstance(exc, ServerError)
    assert (exc.status, exc.status_class, exc.error) == (status, "5xx", "upstream trouble")
    assert api.events == []


def test_unexpected_status_is_transient(api: EventApiStandIn) -> None:
    api.fail_next(1, 302)
    exc = send_error(api, [payload("s/a.b")])
    assert isinstance(exc, ServerError) and exc.status == 302
    assert "unexpected status" in str(exc)


@pytest.mark.parametrize(
    ("status", "body", "content_type", "why"),
    [
        (200, b"<html><body>Welcome to nginx!</body></html>", "text/html", "not a JSON object"),
        (200, b"", "text/plain", "not a JSON object"),
        (204, b"", "application/json", "not a JSON object"),
        (200, b'{"ok": true}', "application/json", "no ids"),
        (200, b'["a"]', "application/json", "not a JSON object"),
        (200, b'{"ids": ["01H"], "status": 200}', "application/json", "1 ids for 2 events"),
        (202, b'{"ids": "01H,01J"}', "application/json", "no ids"),
    ],
)
def test_a_2xx_that_is_not_the_event_apis_answer_is_not_accepted(
    api: EventApiStandIn, status: int, body: bytes, content_type: str, why: str
) -> None:
    api.answer_next(1, status, body, content_type)
    exc = send_error(api, [payload("s/a.b"), payload("s/c.d")])
    assert isinstance(exc, UnexpectedAnswer) and isinstance(exc, ServerError)
    assert exc.status == status
    assert why in str(exc)
    assert "not the Event API's answer" in str(exc)


def test_a_400_that_is_not_the_event_apis_json_is_not_a_bad_event(api: EventApiStandIn) -> None:
    # A proxy's HTML 400 says nothing about the events: never isolate or dead-letter on it.
    api.answer_next(1, 400, b"<html>400 Bad Request</html>", "text/html")
    exc = send_error(api, [payload("s/a.b")])
    assert isinstance(exc, UnexpectedAnswer) and not isinstance(exc, BadRequest)
    assert exc.status == 400


@pytest.mark.parametrize(
    ("header", "expected"), [("7", 7.0), ("0.5", 0.5), (None, None), ("soon", None)]
)
def test_429_parses_retry_after(api: EventApiStandIn, header: str | None, expected: float) -> None:
    api.rate_limit_next(1, retry_after=header)
    exc = send_error(api, [payload("s/a.b")])
    assert isinstance(exc, RateLimited)
    assert exc.retry_after == expected
    assert exc.status == 429


def test_429_with_an_http_date(api: EventApiStandIn) -> None:
    api.rate_limit_next(1, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")  # in the past
    exc = send_error(api, [payload("s/a.b")])
    assert isinstance(exc, RateLimited) and exc.retry_after == 0.0


def test_parse_retry_after() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(" 3 ") == 3.0
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412500.0) == 0.0
    assert parse_retry_after("nan") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


def test_413_is_too_large(api: EventApiStandIn) -> None:
    api.max_body_bytes = 100
    exc = send_error(api, [payload("s/a.b", pad="x" * 200)])
    assert isinstance(exc, TooLarge)
    assert (exc.status, exc.accepted) == (413, 0)


def test_oversize_400_is_too_large_with_the_accepted_prefix(api: EventApiStandIn) -> None:
    api.max_event_bytes = 100
    exc = send_error(api, [payload("s/a.b"), payload("s/big.one", pad="x" * 200), payload("s/c")])
    assert isinstance(exc, TooLarge)
    assert exc.status == 400
    assert exc.error.startswith("Event is over the max size")
    assert exc.accepted == 1 and exc.accepted_ids == api.ids


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, "Event key not found"), (403, "Event key disabled"), (404, "not found")],
)
def test_key_refused_is_unauthorized(api: EventApiStandIn, status: int, error: str) -> None:
    api.fail_next(1, status, error=error)
    exc = send_error(api, [payload("s/a.b")])
    assert isinstance(exc, Unauthorized)
    assert (exc.status, exc.error) == (status, error)
    assert KEY not in str(exc)


def test_unknown_key_is_unauthorized(api: EventApiStandIn) -> None:
    api.valid_keys = {"another-key"}
    exc = send_error(api, [payload("s/a.b")])
    assert isinstance(exc, Unauthorized)
    assert str(exc) == "event API answered 401: Event key not found"


def test_400_lists_the_events_accepted_before_the_bad_one(api: EventApiStandIn) -> None:
    api.poison_names = {"s/poison"}
    events = [payload("s/a"), payload("s/b"), payload("s/poison"), payload("s/c")]
    exc = send_error(api, events)
    assert isinstance(exc, BadRequest)
    assert exc.error == "event s/poison is invalid"
    assert exc.accepted == 2 and exc.accepted_ids == api.ids
    assert [e["name"] for e in api.events] == ["s/a", "s/b"]


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (b'{"name":"","data":{}}', "event name is empty"),
        (b'{"name":"inngest/x","data":{}}', "event name is reserved for internal use: inngest/x"),
        (b'{"name":"s/a","data":"text"}', "cannot unmarshal string"),
        (b'{"name":"s/a","data":{},"ts":1}', "timestamp is before Jan 1, 1980"),
    ],
)
def test_400_on_the_first_event_accepts_nothing(
    api: EventApiStandIn, event: bytes, error: str
) -> None:
    exc = send_error(api, [event, payload("s/ok")])
    assert isinstance(exc, BadRequest)
    assert error in exc.error
    assert exc.accepted == 0  # the server answers "ids": [""]
    assert api.requests[0].response["ids"] == [""]
    assert api.events == []


def test_dropped_connection_is_a_network_error(api: EventApiStandIn) -> None:
    api.drop_next(1)
    exc = send_error(api, [payload("s/a.b")])
    assert isinstance(exc, NetworkError)
    assert (exc.status, exc.status_class) == (0, "network")
    assert KEY not in str(exc)


def test_timeout_is_a_network_error() -> None:
    # A socket that listens but never answers: the client times out.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        target = EventApiTarget(origin=f"http://127.0.0.1:{port}", event_key=KEY)
        with pytest.raises(NetworkError, match="Timeout") as info:
            with_client(target, lambda c: c.send([payload("s/a")], seed=SEED), timeout=0.2)
    assert KEY not in str(info.value)


# -- where events go --------------------------------------------------------------------------

E = "http://event-api.example"
B = "http://base.example"
C = "http://configured.example"


@pytest.mark.parametrize(
    ("config", "env", "dev_flag", "origin", "key", "dev"),
    [
        # cloud by default
        ({}, {"INNGEST_EVENT_KEY": "k1"}, False, CLOUD_ORIGIN, "k1", False),
        # dev mode: flag, config, INNGEST_DEV truthy or a URL
        ({}, {}, True, DEV_ORIGIN, DEV_KEY, True),
        ({"dev": True}, {}, False, DEV_ORIGIN, DEV_KEY, True),
        ({}, {"INNGEST_DEV": "1"}, False, DEV_ORIGIN, DEV_KEY, True),
        ({}, {"INNGEST_DEV": "true"}, False, DEV_ORIGIN, DEV_KEY, True),
        (
            {},
            {"INNGEST_DEV": "http://dev.local:9999"},
            False,
            "http://dev.local:9999",
            DEV_KEY,
            True,
        ),
        # INNGEST_DEV "0", "false", "" mean cloud
        ({}, {"INNGEST_DEV": "0", "INNGEST_EVENT_KEY": "k1"}, False, CLOUD_ORIGIN, "k1", False),
        ({}, {"INNGEST_DEV": "false", "INNGEST_EVENT_KEY": "k1"}, False, CLOUD_ORIGIN, "k1", False),
        ({}, {"INNGEST_DEV": "", "INNGEST_EVENT_KEY": "k1"}, False, CLOUD_ORIGIN, "k1", False),
        # explicit config beats the environment; the flag beats both
        (
            {"dev": False},
            {"INNGEST_DEV": "1", "INNGEST_EVENT_KEY": "k1"},
            False,
            CLOUD_ORIGIN,
            "k1",
            False,
        ),
        ({"dev": False}, {}, True, DEV_ORIGIN, DEV_KEY, True),
        # origin: config > INNGEST_EVENT_API_BASE_URL > INNGEST_BASE_URL > INNGEST_DEV URL
        ({}, {"INNGEST_BASE_URL": B, "INNGEST_EVENT_KEY": "k1"}, False, B, "k1", False),
        (
            {},
            {"INNGEST_BASE_URL": B, "INNGEST_EVENT_API_BASE_URL": E, "INNGEST_EVENT_KEY": "k1"},
            False,
            E,
            "k1",
            False,
        ),
        (
            {},
            {"INNGEST_BASE_URL": B, "INNGEST_DEV": "http://dev.local:9999"},
            False,
            B,
            DEV_KEY,
            True,
        ),
        (
            {"base_url": C},
            {"INNGEST_EVENT_API_BASE_URL": E, "INNGEST_EVENT_KEY": "k1"},
            False,
            C,
            "k1",
            False,
        ),
        # key: config reference > INNGEST_EVENT_KEY; a dev server still gets a real key if set
        (
            {"event_key": "env:MY_KEY"},
            {"MY_KEY": "mk, old", "INNGEST_EVENT_KEY": "k1"},
            False,
            CLOUD_ORIGIN,
            "mk",
            False,
        ),
        ({"event_key": "inline:ik"}, {}, False, CLOUD_ORIGIN, "ik", False),
        ({}, {"INNGEST_DEV": "1", "INNGEST_EVENT_KEY": " k1 "}, False, DEV_ORIGIN, "k1", True),
    ],
)
def test_target_precedence(
    config: dict[str, object],
    env: dict[str, str],
    dev_flag: bool,
    origin: str,
    key: str,
    dev: bool,
) -> None:
    target = resolve_target(InngestConfig.model_validate(config), env, dev_flag=dev_flag)
    assert (target.origin, target.event_key, target.dev) == (origin, key, dev)
    assert target.url == f"{origin}/e/{key}"
    assert target.redacted_url == f"{origin}/e/***"


def test_branch_env_header_source() -> None:
    from_env = resolve_target(InngestConfig(), {"INNGEST_DEV": "1", "INNGEST_ENV": "pr-12"})
    assert from_env.env == "pr-12"
    configured = resolve_target(InngestConfig(env="main"), {"INNGEST_ENV": "pr-12"}, dev_flag=True)
    assert configured.env == "main"
    assert resolve_target(InngestConfig(), {}, dev_flag=True).env is None


def test_cloud_without_a_key_is_a_clear_error() -> None:
    with pytest.raises(MissingEventKey, match="set INNGEST_EVENT_KEY") as info:
        resolve_target(InngestConfig(), {})
    assert "--dev" in str(info.value)
    with pytest.raises(MissingEventKey):
        resolve_target(InngestConfig(dev=False), {"INNGEST_DEV": "1", "INNGEST_EVENT_KEY": " "})


def test_a_missing_key_reference_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="NOPE"):
        resolve_target(InngestConfig(event_key="env:NOPE"), {})


@pytest.mark.parametrize(
    ("config", "env", "name"),
    [
        ({"base_url": "inn.gs"}, {}, "base_url"),
        ({}, {"INNGEST_EVENT_API_BASE_URL": "ftp://x"}, "INNGEST_EVENT_API_BASE_URL"),
        ({}, {"INNGEST_BASE_URL": "localhost:8288"}, "INNGEST_BASE_URL"),
    ],
)
def test_an_origin_that_is_not_a_url_is_refused(
    config: dict[str, str], env: dict[str, str], name: str
) -> None:
    with pytest.raises(InvalidTarget, match=name):
        resolve_target(InngestConfig.model_validate(config), {"INNGEST_EVENT_KEY": "k", **env})


def test_the_key_never_shows_in_repr_or_redacted_url() -> None:
    target = resolve_target(InngestConfig(base_url=C + "/"), {"INNGEST_EVENT_KEY": KEY})
    assert KEY not in repr(target) and KEY not in target.redacted_url
    assert target.url == f"{C}/e/{KEY}"  # a trailing slash is not doubled
