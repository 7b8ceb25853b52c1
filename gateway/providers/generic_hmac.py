"""The generic HMAC receiver (provider ``hmac``), configured entirely by the source's options.

For the long tail of senders that sign the raw body (or the body with a timestamp or another
header) with a shared secret and put the digest in one header. Verification options::

    header            the signature header (required)
    algorithm         sha1 | sha256 (default) | sha512
    encoding          hex (default) | base64
    prefix            text before the digest, e.g. "sha256=" (default none)
    separator         splits a header carrying several signatures (default ","; a repeated
                      header arrives joined with ", ")
    timestamp_header  a header with the Unix-seconds timestamp; it must then be signed
    signed_content    template of the signed bytes (default "{body}"), e.g. "{timestamp}.{body}"
                      placeholders: {body}, {timestamp}, {header:Name}, {url} and
                      {form_sorted}; exactly one of {body} and {form_sorted} appears, once
    url               the public URL exactly as configured at the sender, for {url}
                      (Twilio-style schemes sign the URL the sender called, which a gateway
                      behind a proxy or an ingress cannot see)

``{form_sorted}`` is the form-encoded body's parameters sorted by name, each name followed by
its value (Twilio's scheme: ``signed_content = "{url}{form_sorted}"``). It covers every
parameter, so a tampered field fails as a tampered body does.

Options the ``hmac`` transform uses, validated here so that a typo stops the gateway at
start-up::

    name_template     event name, default "{prefix}/{type}"; {dotted.json.path},
                      {dotted.json.path:lower}, {header:Name}, {source}, {prefix}
    id_header         a header whose value is the dedup id, or
    id_path           a dotted JSON path to it
    ts_path           a dotted JSON path to the event time (ISO-8601 or Unix s/ms)
    format            json (default) | form: how the body is parsed

Any other key, or a bad value, is a ``ValueError`` naming the option. A timestamp is checked
against the source's tolerance in both directions.

(The module is not called ``hmac.py``: as a submodule of ``gateway.providers`` it would replace
the standard ``hmac`` module that the package itself imports.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from gateway.providers import (
    DEFAULT_TOLERANCE,
    MalformedSignature,
    MissingSignature,
    Provider,
    SignatureMismatch,
    VerificationError,
    any_signature_matches,
    check_timestamp,
    register_provider,
    signing_time,
)
from gateway.providers.standard import b64decode
from gateway.webhook import PayloadError, Webhook

ALGORITHMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
ENCODINGS = ("hex", "base64")
FORMATS = ("json", "form")
DEFAULT_NAME_TEMPLATE = "{prefix}/{type}"
OPTIONS = (
    "header",
    "algorithm",
    "encoding",
    "prefix",
    "separator",
    "timestamp_header",
    "signed_content",
    "name_template",
    "id_header",
    "id_path",
    "ts_path",
    "format",
    "url",
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)
MAX_TIMESTAMP_DIGITS = 12


@dataclass(frozen=True)
class Part:
    """One piece of a compiled template: literal ``text``, or a placeholder of some ``kind``."""

    kind: str  # text | body | form_sorted | timestamp | url | header | source | prefix | path
    value: str = ""  # the literal text, header name or dotted path
    lower: bool = False  # {path:lower}


def compile_template(template: object, option: str, kinds: frozenset[str]) -> tuple[Part, ...]:
    """Parse ``template`` into parts, allowing only placeholders of ``kinds``.

    ``ValueError`` names ``option`` when the template is not a string, is malformed, or uses a
    placeholder it may not.
    """
    if not isinstance(template, str) or not template:
        raise ValueError(f"hmac option {option} must be a non-empty string")
    try:
        pieces = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"hmac option {option}: {exc}") from None
    parts: list[Part] = []
    for text, field, spec, conversion in pieces:
        if text:
            parts.append(Part("text", text))
        if field is None:
            continue
        if conversion:
            raise ValueError(f"hmac option {option}: conversions (!{conversion}) are not allowed")
        parts.append(_placeholder(field, spec or "", option, kinds))
    return tuple(parts)


def _placeholder(field: str, spec: str, option: str, kinds: frozenset[str]) -> Part:
    if field == "header":
        if not _TOKEN.fullmatch(spec):
            raise ValueError(f"hmac option {option}: write a header as {{header:X-Name}}")
        return Part("header", spec.lower())
    simple = ("body", "form_sorted", "timestamp", "url", "source", "prefix")
    if field in kinds and field in simple and not spec:
        return Part(field)
    if "path" in kinds and spec in ("", "lower"):
        if not field or not all(field.split(".")):
            raise ValueError(f"hmac option {option}: {{{field}}} is not a dotted JSON path")
        return Part("path", field, lower=spec == "lower")
    placeholder = f"{{{field}:{spec}}}" if spec else f"{{{field}}}"
    raise ValueError(f"hmac option {option}: unknown placeholder {placeholder}")


def lookup(payload: Any, path: str) -> Any:
    """The value at a dotted path (digits index lists); ``KeyError`` when there is none."""
    value = payload
    for segment in path.split("."):
        if isinstance(value, Mapping) and segment in value:
            value = value[segment]
        elif (
            isinstance(value, list)
            and segment.isascii()
            and segment.isdigit()
            and int(segment) < len(value)
        ):
            value = value[int(segment)]
        else:
            raise KeyError(path)
    return value


@dataclass(frozen=True)
class HmacScheme:
    """Validated options of one generic HMAC source."""

    header: str
    algorithm: str
    encoding: str
    prefix: str
    separator: str
    timestamp_header: str | None
    signed_content: tuple[Part, ...]
    url: str | None
    id_header: str | None
    id_path: str | None
    format: str

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> HmacScheme:
        """Validate ``options``; ``ValueError`` names the first bad one."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"hmac: unknown option {unknown[0]!r} (known: {', '.join(OPTIONS)})")
        header = _header_option(options, "header")
        if header is None:
            raise ValueError("hmac option header is required (the signature header's name)")
        algorithm = _choice(options, "algorithm", tuple(ALGORITHMS), "sha256")
        encoding = _choice(options, "encoding", ENCODINGS, "hex")
        prefix = _text_option(options, "prefix", allow_empty=True) or ""
        separator = _text_option(options, "separator") or ","
        if separator.strip() and separator.strip() in prefix:
            raise ValueError("hmac option prefix must not contain the separator")
        timestamp_header = _header_option(options, "timestamp_header")
        signed = compile_template(
            options.get("signed_content", "{body}"),
            "signed_content",
            frozenset({"text", "body", "form_sorted", "timestamp", "url", "header"}),
        )
        if sum(part.kind in ("body", "form_sorted") for part in signed) != 1:
            raise ValueError(
                "hmac option signed_content must contain {body} (or {form_sorted}) exactly once"
            )
        url = _text_option(options, "url")
        uses_url = any(part.kind == "url" for part in signed)
        if uses_url and url is None:
            raise ValueError("hmac option signed_content uses {url}: set url (the public URL)")
        if url is not None and not uses_url:
            raise ValueError("hmac option url is only used by {url} in signed_content")
        uses_timestamp = any(part.kind == "timestamp" for part in signed)
        if uses_timestamp and timestamp_header is None:
            raise ValueError("hmac option signed_content uses {timestamp}: set timestamp_header")
        if timestamp_header is not None and not uses_timestamp:
            # An unsigned timestamp can be rewritten by anyone: checking it proves nothing.
            raise ValueError(
                "hmac option timestamp_header is only checked when signed: add {timestamp} "
                "to signed_content"
            )
        compile_template(
            options.get("name_template", DEFAULT_NAME_TEMPLATE),
            "name_template",
            frozenset({"text", "header", "source", "prefix", "path"}),
        )
        id_header = _header_option(options, "id_header")
        id_path = _path_option(options, "id_path")
        if id_header is not None and id_path is not None:
            raise ValueError("hmac options id_header and id_path are exclusive: set one")
        _path_option(options, "ts_path")
        return cls(
            header=header,
            algorithm=algorithm,
            encoding=encoding,
            prefix=prefix,
            separator=separator,
            timestamp_header=timestamp_header,
            signed_content=signed,
            url=url,
            id_header=id_header,
            id_path=id_path,
            format=_choice(options, "format", FORMATS, "json"),
        )


def _text_option(options: Mapping[str, Any], key: str, *, allow_empty: bool = False) -> str | None:
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or (not value and not allow_empty):
        raise ValueError(f"hmac option {key} must be a non-empty string")
    return value


def _header_option(options: Mapping[str, Any], key: str) -> str | None:
    value = _text_option(options, key)
    if value is not None and not _TOKEN.fullmatch(value):
        raise ValueError(f"hmac option {key} is not a valid header name: {value!r}")
    return None if value is None else value.lower()


def _path_option(options: Mapping[str, Any], key: str) -> str | None:
    value = _text_option(options, key)
    if value is not None and not all(value.split(".")):
        raise ValueError(f"hmac option {key} is not a dotted JSON path: {value!r}")
    return value


def _choice(options: Mapping[str, Any], key: str, allowed: Sequence[str], default: str) -> str:
    value = options.get(key, default)
    if value not in allowed:
        raise ValueError(f"hmac option {key} must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


def sorted_form(body: bytes) -> bytes:
    """Twilio's canonical form: each distinct name in order, followed by each of its values.

    ``SignatureMismatch`` when the body is not a UTF-8 form: it cannot have been signed so.
    """
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise SignatureMismatch("body is not a UTF-8 form, so its signature cannot match") from None
    values: dict[str, set[str]] = {}
    for key, value in pairs:
        values.setdefault(key, set()).add(value)
    return "".join(k + v for k in sorted(values) for v in sorted(values[k])).encode()


@register_provider
class HmacProvider(Provider):
    """Any sender signing requests with one HMAC header, described by options."""

    name = "hmac"
    body_kind = "bytes"  # json or form per the format option: checked by check_payload

    def __init__(
        self,
        secrets: Sequence[str],
        tolerance: int | None = DEFAULT_TOLERANCE,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(secrets, tolerance, options)
        self.scheme = HmacScheme.from_options(self.options)
        self._digest_size = ALGORITHMS[self.scheme.algorithm]().digest_size

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        scheme = self.scheme
        value = headers.get(scheme.header)
        if not value:
            raise MissingSignature(f"{scheme.header} header is missing")
        received = self._signatures(value)
        timestamp: str | None = None
        if scheme.timestamp_header is not None:
            timestamp = headers.get(scheme.timestamp_header)
            if not timestamp:
                raise MissingSignature(f"{scheme.timestamp_header} header is missing")
            if not (timestamp.isascii() and timestamp.isdigit()):
                raise MalformedSignature(f"{scheme.timestamp_header} is not an integer")
            if len(timestamp) > MAX_TIMESTAMP_DIGITS:
                raise MalformedSignature(f"{scheme.timestamp_header} is out of range")
        content = self._content(body, headers, timestamp)
        digest = ALGORITHMS[scheme.algorithm]
        expected = [hmac.new(s.encode(), content, digest).digest() for s in self.secrets]
        if not any_signature_matches(expected, received):
            raise SignatureMismatch(f"{scheme.header} does not match any configured secret")
        if timestamp is not None:
            check_timestamp(int(timestamp), self.tolerance, now)

    def sign(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        method: str = "POST",
        url: str | None = None,
    ) -> dict[str, str]:
        """The signature header the options describe (and the timestamp header, if signed).

        ``NotImplementedError`` when ``signed_content`` covers another header: its value is the
        sender's to choose.
        """
        scheme = self.scheme
        headers: dict[str, str] = {}
        ts: str | None = None
        if scheme.timestamp_header is not None:
            ts = headers[scheme.timestamp_header] = str(signing_time(timestamp))
        try:
            content = self._content(body, headers, ts)
        except VerificationError as exc:  # a signed header the sender chooses, a body not a form
            raise NotImplementedError(f"hmac: cannot sign: {exc.reason}") from None
        mac = hmac.new(self.secrets[0].encode(), content, ALGORITHMS[scheme.algorithm]).digest()
        encoded = mac.hex() if scheme.encoding == "hex" else base64.b64encode(mac).decode()
        headers[scheme.header] = scheme.prefix + encoded
        headers["content-type"] = (
            "application/json" if scheme.format == "json" else "application/x-www-form-urlencoded"
        )
        return headers

    def _signatures(self, value: str) -> list[bytes]:
        scheme = self.scheme
        items = value.split(scheme.separator)
        found: list[bytes] = []
        for item in (i.strip() for i in items):
            if not item.startswith(scheme.prefix):
                continue
            encoded = item[len(scheme.prefix) :]
            try:
                raw = bytes.fromhex(encoded) if scheme.encoding == "hex" else b64decode(encoded)
            except ValueError:
                continue
            if len(raw) == self._digest_size:
                found.append(raw)
        if not found:
            shape = f"{scheme.prefix}<{scheme.encoding} {scheme.algorithm}>"
            raise MalformedSignature(f"{scheme.header} has no signature shaped {shape}")
        return found

    def _content(self, body: bytes, headers: Mapping[str, str], timestamp: str | None) -> bytes:
        chunks: list[bytes] = []
        for part in self.scheme.signed_content:
            if part.kind == "body":
                chunks.append(body)
            elif part.kind == "form_sorted":
                chunks.append(sorted_form(body))
            elif part.kind == "url":
                chunks.append(str(self.scheme.url).encode())
            elif part.kind == "timestamp":
                chunks.append(str(timestamp).encode())
            elif part.kind == "header":
                value = headers.get(part.value)
                if value is None:
                    raise MissingSignature(f"{part.value} header (signed) is missing")
                try:
                    # The receiver decodes header bytes as Latin-1; this restores them.
                    chunks.append(value.encode("latin-1"))
                except UnicodeEncodeError:
                    raise MalformedSignature(f"{part.value} header is not Latin-1") from None
            else:
                chunks.append(part.value.encode())
        return b"".join(chunks)

    def payload(self, webhook: Webhook) -> dict[str, Any]:
        """The body parsed per the ``format`` option."""
        if self.scheme.format == "form":
            return dict(webhook.form)
        payload = webhook.json
        if not isinstance(payload, dict):
            raise PayloadError("body must be a JSON object")
        return payload

    def check_payload(self, webhook: Webhook) -> None:
        self.payload(webhook)

    def delivery_id(self, webhook: Webhook) -> str | None:
        scheme = self.scheme
        if scheme.id_header is not None:
            return webhook.header(scheme.id_header) or None
        if scheme.id_path is not None:
            try:
                value = lookup(self.payload(webhook), scheme.id_path)
            except KeyError:
                return None
            if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
                return str(value)
        return None
