"""``webhook-gateway send``: a signed test webhook, made as the source's provider makes it.

The body is a payload file (sent byte for byte) or a built-in sample
(``gateway/samples/<provider>/<type>.json`` or ``.form``). The source's first configured secret
signs it through :meth:`gateway.providers.Provider.sign`, the same code path the provider's
verifier is tested against. Providers that name the event in a header (GitHub, Shopify) get it
from ``--event``, else from the sample type or the payload file's name.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

from gateway.commands.common import load, parse_headers
from gateway.commands.serve import DEFAULT_PORT
from gateway.config import ConfigError

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
SAMPLE_SUFFIXES = (".json", ".form")
#: body fields that carry the sender's dedup id (Stripe ``evt_``, Intercom ``notif_``, Slack
#: ``event_id`` and ``trigger_id``): a sample gets fresh ones on each send
ID_FIELDS = ("id", "event_id", "trigger_id")
#: signed timestamps inside the body (Linear's ``webhookTimestamp``, Unix ms): set to now
MS_TIME_FIELDS = ("webhookTimestamp",)


def _sample_dir(provider: str) -> Traversable:
    return resources.files("gateway").joinpath("samples", provider)


def sample_names(provider: str) -> list[str]:
    """The built-in sample types of ``provider`` (``invoice.paid``, ...), sorted."""
    folder = _sample_dir(provider)
    if not folder.is_dir():
        return []
    return sorted(
        entry.name.rsplit(".", 1)[0]
        for entry in folder.iterdir()
        if entry.name.endswith(SAMPLE_SUFFIXES)
    )


def read_sample(provider: str, kind: str) -> bytes:
    """The bytes of one built-in sample; ConfigError lists the provider's samples otherwise."""
    folder = _sample_dir(provider)
    for suffix in SAMPLE_SUFFIXES:
        entry = folder.joinpath(kind + suffix)
        if entry.is_file():
            return entry.read_bytes()
    known = ", ".join(sample_names(provider)) or "none"
    raise ConfigError(f"send: no sample {kind!r} for provider {provider} (samples: {known})")


def _refresh(payload: dict[str, Any]) -> bool:
    """New values for the id fields of ``payload`` (prefixes kept); whether any changed."""
    changed = False
    for key in ID_FIELDS:
        value = payload.get(key)
        if isinstance(value, str) and value:
            head, sep, _ = value.rpartition("_")
            payload[key] = f"{head}{sep}{uuid.uuid4().hex}"
            changed = True
    for key in MS_TIME_FIELDS:
        if isinstance(payload.get(key), int | float) and not isinstance(payload[key], bool):
            payload[key] = int(time.time() * 1000)
            changed = True
    return changed


def fresh_ids(body: bytes) -> bytes:
    """A sample with new values in its id fields, so that no send is dropped as a duplicate.

    JSON: the top-level fields (``evt_1OA9vC...`` becomes ``evt_<32 hex>``; a signed
    ``webhookTimestamp`` becomes now, or the sender's replay window would refuse it). A form: its
    fields, and those of the JSON object in its ``payload`` field (Slack interactions).
    """
    if body.lstrip()[:1] == b"{":
        payload = orjson.loads(body)
        return orjson.dumps(payload, option=orjson.OPT_INDENT_2) if _refresh(payload) else body
    pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    fields = dict(pairs)
    changed = _refresh(fields)
    inner = fields.get("payload")
    if inner and inner.lstrip().startswith("{"):
        nested = orjson.loads(inner)
        if isinstance(nested, dict) and _refresh(nested):
            fields["payload"] = orjson.dumps(nested).decode()
            changed = True
    return urlencode(list(fields.items())).encode() if changed else body


def target_url(url: str | None, source: str) -> str:
    """``--url`` as given when it has a path, else ``<url>/webhooks/<source>``."""
    base = url or DEFAULT_URL
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"send: --url {base!r} is not an http(s) URL")
    if parts.path.strip("/"):
        return base
    return f"{base.rstrip('/')}/webhooks/{source}"


def _body(args: argparse.Namespace, provider: str) -> tuple[bytes, str]:
    """The body to send and the event type it stands for."""
    if args.payload_file and args.sample:
        raise ConfigError("send: give a PAYLOAD_FILE or --sample TYPE, not both")
    if args.sample:
        return fresh_ids(read_sample(provider, args.sample)), args.sample
    if not args.payload_file:
        known = ", ".join(sample_names(provider)) or "none"
        raise ConfigError(
            f"send: give a PAYLOAD_FILE or --sample TYPE (samples for {provider}: {known})"
        )
    path = Path(args.payload_file)
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"send: cannot read {path}: {exc.strerror}") from None
    return body, path.name.rsplit(".", 1)[0]


def describe(status: int, phrase: str, text: str) -> tuple[str, bool]:
    """One line (the status and what the gateway said), and whether the webhook went through."""
    try:
        answer: Any = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        answer = None
    if isinstance(answer, dict) and answer.get("status") == "accepted":
        reason = (
            f"accepted: {answer.get('events')} event(s) stored, "
            f"{answer.get('duplicates')} duplicate(s) skipped"
        )
    elif isinstance(answer, dict) and answer.get("status") == "quarantined":
        reason = (
            f"quarantined as webhook {answer.get('webhook_id')}: the transform failed "
            "(see 'webhook-gateway quarantine list --traceback')"
        )
    elif isinstance(answer, dict) and "error" in answer:
        reason = str(answer["error"])
    else:
        reason = " ".join(text.split())[:300] or "(empty body)"
    ok = 200 <= status < 300 and not (isinstance(answer, dict) and "webhook_id" in answer)
    return f"{status} {phrase}: {reason}", ok


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import httpx

    from gateway.app import build_provider

    config = load(args, environ)
    source = config.source(args.source)
    if source is None:
        known = ", ".join(s.name for s in config.sources) or "none"
        raise ConfigError(f"send: no source {args.source!r} is configured (sources: {known})")
    provider, _ = build_provider(config.sources.index(source), source, environ)
    body, event = _body(args, provider.name)
    url = target_url(args.url, source.name)
    try:
        body = provider.sign_body(body)
        headers = provider.sign(body, url=url)
    except NotImplementedError as exc:
        raise ConfigError(f"send: {exc}") from None
    headers.update(provider.event_headers(args.event or event))
    # a provider's signature headers need not name the body's type: say it as senders do
    json_body = body.lstrip()[:1] in (b"{", b"[")
    headers.setdefault(
        "content-type", "application/json" if json_body else "application/x-www-form-urlencoded"
    )
    headers.update(parse_headers(args.header))
    print(f"POST {url} ({provider.name}, {event}, {len(body)} bytes)")
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=args.timeout)
    except httpx.HTTPError as exc:
        raise ConfigError(f"send: cannot reach {url}: {exc}") from None
    line, ok = describe(response.status_code, response.reason_phrase, response.text)
    print(line)
    return 0 if ok else 1
