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
    mode              hmac (default) | token (the header holds a static token) | basic
                      (Authorization: Basic, secrets are user:password) | ed25519 | ecdsa
                      (secrets are public keys: PEM, base64 DER, or raw hex/base64 ed25519)
    key_encoding      text (default) | hex | base64: how the HMAC secret is written
    key_prefix        text removed from each secret before decoding (e.g. "whsec_")
    signature_key     the header is packed key/value pairs ("t=..,v1=.." or "ts=..;h1=..");
                      the signatures are the values of this key
    timestamp_key     the packed key holding the signed timestamp
    pair_separator    between packed pairs (default ","); kv_separator inside one ("=")
    timestamp_format  unix (default) | ms | iso (ISO-8601 with an offset)

More placeholders of signed_content: {method} (the request method) and {path} (the path and
query the gateway received).

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
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from gateway.providers import (
    DEFAULT_TOLERANCE,
    Inbound,
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
from gateway.providers.schemes import (
    ALGORITHMS,
    KEY_ENCODINGS,
    TIMESTAMP_FORMATS,
    PublicKey,
    basic_auth_matches,
    decode_key,
    decode_signature,
    hmac_digests,
    load_public_key,
    parse_packed,
    parse_timestamp,
    public_signature_matches,
    token_matches,
)
from gateway.webhook import PayloadError, Webhook

MODES = ("hmac", "token", "basic", "ed25519", "ecdsa")
PUBLIC_KEY_MODES = ("ed25519", "ecdsa")
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
    "mode",
    "key_encoding",
    "key_prefix",
    "signature_key",
    "timestamp_key",
    "pair_separator",
    "kv_separator",
    "timestamp_format",
)
_SIGNED_KINDS = frozenset(
    {"text", "body", "form_sorted", "timestamp", "url", "header", "method", "url_path"}
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)
MAX_TIMESTAMP_DIGITS = 12


@dataclass(frozen=True)
class Part:
    """One piece of a compiled template: literal ``text``, or a placeholder of some ``kind``."""

    kind: str  # text body form_sorted timestamp url method url_path header source prefix path
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
    simple = ("body", "form_sorted", "timestamp", "url", "source", "prefix", "method")
    if field in kinds and field in simple and not spec:
        return Part(field)
    if field == "path" and "url_path" in kinds and not spec:
        return Part("url_path")  # {path} in signed content: the request's path and query
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
    mode: str = "hmac"
    key_encoding: str = "text"
    key_prefix: str = ""
    signature_key: str | None = None
    timestamp_key: str | None = None
    pair_separator: str = ","
    kv_separator: str = "="
    timestamp_format: str = "unix"

    @property
    def signs_timestamp(self) -> bool:
        """Whether requests carry a signed timestamp checked against the tolerance."""
        return self.timestamp_header is not None or self.timestamp_key is not None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> HmacScheme:
        """Validate ``options``; ``ValueError`` names the first bad one."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"hmac: unknown option {unknown[0]!r} (known: {', '.join(OPTIONS)})")
        mode = _choice(options, "mode", MODES, "hmac")
        header = _header_option(options, "header")
        if header is None and mode == "basic":
            header = "authorization"
        if header is None:
            raise ValueError("hmac option header is required (the signature header's name)")
        if mode in ("token", "basic"):
            static = {"signed_content", "timestamp_header", "signature_key", "timestamp_key"}
            bad = sorted(static & set(options))
            if bad:
                raise ValueError(f"hmac option {bad[0]} does not apply to mode {mode}")
        signature_key = _text_option(options, "signature_key")
        timestamp_key = _text_option(options, "timestamp_key")
        if timestamp_key is not None and signature_key is None:
            raise ValueError("hmac option timestamp_key needs signature_key (a packed header)")
        algorithm = _choice(options, "algorithm", tuple(ALGORITHMS), "sha256")
        encoding = _choice(options, "encoding", ENCODINGS, "hex")
        prefix = _text_option(options, "prefix", allow_empty=True) or ""
        separator = _text_option(options, "separator") or ","
        if separator.strip() and separator.strip() in prefix:
            raise ValueError("hmac option prefix must not contain the separator")
        timestamp_header = _header_option(options, "timestamp_header")
        if timestamp_header is not None and timestamp_key is not None:
            raise ValueError("hmac options timestamp_header and timestamp_key are exclusive")
        signed = compile_template(
            options.get("signed_content", "{body}"), "signed_content", _SIGNED_KINDS
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
        has_timestamp = timestamp_header is not None or timestamp_key is not None
        if uses_timestamp and not has_timestamp:
            raise ValueError("hmac option signed_content uses {timestamp}: set timestamp_header")
        if has_timestamp and not uses_timestamp:
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
            mode=mode,
            key_encoding=_choice(options, "key_encoding", KEY_ENCODINGS, "text"),
            key_prefix=_text_option(options, "key_prefix") or "",
            signature_key=signature_key,
            timestamp_key=timestamp_key,
            pair_separator=_text_option(options, "pair_separator") or ",",
            kv_separator=_text_option(options, "kv_separator") or "=",
            timestamp_format=_choice(options, "timestamp_format", TIMESTAMP_FORMATS, "unix"),
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
    """Any sender signing requests in one header, described by options.

    A named provider built on these pieces subclasses this class with a ``preset`` of options;
    a source may then set only the options named in ``user_options``.
    """

    name = "hmac"
    body_kind = "bytes"  # json or form per the format option: checked by check_payload
    env_var: ClassVar[str | None] = ""  # needs options: no zero-config mode
    verification = "whatever the options describe (HMAC, token, Basic, ed25519, ECDSA)"
    window_summary = "`tolerance` (300 s) when a `timestamp_header` is signed, else body digest"
    dedup_summary = "`id_header` / `id_path`; body digest unless a timestamp is signed"
    preset: ClassVar[Mapping[str, Any]] = {}
    user_options: ClassVar[tuple[str, ...] | None] = None  # None: every option
    #: the body is a JSON array of event objects (HubSpot, SendGrid): one event per item
    array_body: ClassVar[bool] = False

    def __init__(
        self,
        secrets: Sequence[str],
        tolerance: int | None = DEFAULT_TOLERANCE,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        given = dict(options or {})
        if self.user_options is not None:
            extra = sorted(set(given) - set(self.user_options))
            if extra:
                allowed = ", ".join(self.user_options) or "none"
                raise ValueError(f"{self.name}: unknown option {extra[0]!r} (allowed: {allowed})")
        super().__init__(secrets, tolerance, {**self.preset, **given})
        try:
            self.scheme = HmacScheme.from_options(
                {k: v for k, v in self.options.items() if k not in self.secret_options}
            )
        except ValueError as exc:
            if self.name == "hmac":
                raise
            hint = f" ({self.env_options['url']})" if "url" in self.env_options else ""
            raise ValueError(
                str(exc).replace("hmac option", f"{self.name} option") + hint
            ) from None
        scheme = self.scheme
        self._digest_size = ALGORITHMS[scheme.algorithm]().digest_size
        self._keys: list[bytes] = []
        self._public: list[PublicKey] = []
        for i, secret in enumerate(self.secrets, start=1):
            try:
                if scheme.mode in PUBLIC_KEY_MODES:
                    self._public.append(load_public_key(secret, scheme.mode, scheme.key_prefix))
                elif scheme.mode == "hmac":
                    self._keys.append(decode_key(secret, scheme.key_encoding, scheme.key_prefix))
            except ValueError as exc:
                raise ValueError(f"{self.name}: secret #{i}: {exc}") from None

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        if not cls.preset:
            return None  # the generic source: the key's form depends on its options
        preset = dict(cls.preset)
        if "{url}" in str(preset.get("signed_content", "")):
            preset.setdefault("url", "https://example.com/")  # the key's form does not need it
        scheme = HmacScheme.from_options(preset)
        try:
            if scheme.mode in PUBLIC_KEY_MODES:
                load_public_key(secret, scheme.mode, scheme.key_prefix)
            elif scheme.mode == "hmac":
                decode_key(secret, scheme.key_encoding, scheme.key_prefix)
            elif scheme.mode == "basic" and ":" not in secret:
                return "is not user:password (the Basic-auth credentials set on the webhook)"
        except ValueError as exc:
            return f"{cls.name}: {exc}"
        return None

    def body_dedup(self) -> bool:
        return not self.scheme.signs_timestamp

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        self.verify_request(Inbound("POST", body, headers), now=now)

    def verify_request(self, request: Inbound, *, now: float | None = None) -> None:
        scheme = self.scheme
        value = request.headers.get(scheme.header)
        if not value:
            raise MissingSignature(f"{scheme.header} header is missing")
        if scheme.mode == "token":
            if not token_matches(self.secrets, value.removeprefix(scheme.prefix)):
                raise SignatureMismatch(f"{scheme.header} does not match any configured token")
            return
        if scheme.mode == "basic":
            if not basic_auth_matches(self.secrets, value):
                raise SignatureMismatch("the Basic credentials match no configured user:password")
            return
        packed = None
        if scheme.signature_key is not None:
            packed = parse_packed(value, scheme.pair_separator, scheme.kv_separator)
            value = scheme.separator.join(packed.get(scheme.signature_key, []))
        received = self._signatures(value)
        timestamp = self._timestamp(request.headers, packed)
        content = self._content(request, timestamp)
        if scheme.mode in PUBLIC_KEY_MODES:
            matched = public_signature_matches(self._public, received, content)
        else:
            matched = any_signature_matches(
                hmac_digests(self._keys, scheme.algorithm, content), received
            )
        if not matched:
            raise SignatureMismatch(f"{scheme.header} does not match any configured secret")
        if timestamp is not None:
            what = scheme.timestamp_header or str(scheme.timestamp_key)
            seconds = parse_timestamp(timestamp, scheme.timestamp_format, what)
            check_timestamp(seconds, self.tolerance, now)

    def _timestamp(
        self, headers: Mapping[str, str], packed: Mapping[str, list[str]] | None
    ) -> str | None:
        scheme = self.scheme
        if scheme.timestamp_key is not None and packed is not None:
            values = packed.get(scheme.timestamp_key, [])
            if len(values) != 1 or not values[0]:
                raise MalformedSignature(
                    f"{scheme.header} must hold exactly one {scheme.timestamp_key}="
                )
            timestamp = values[0]
        elif scheme.timestamp_header is not None:
            timestamp = headers.get(scheme.timestamp_header, "")
            if not timestamp:
                raise MissingSignature(f"{scheme.timestamp_header} header is missing")
        else:
            return None
        what = scheme.timestamp_header or str(scheme.timestamp_key)
        parse_timestamp(timestamp, scheme.timestamp_format, what)  # malformed before any HMAC
        return timestamp

    def _signatures(self, value: str) -> list[bytes]:
        scheme = self.scheme
        found: list[bytes] = []
        for item in (i.strip() for i in value.split(scheme.separator)):
            if not item.startswith(scheme.prefix):
                continue
            raw = decode_signature(item[len(scheme.prefix) :], scheme.encoding)
            if raw is None:
                continue
            if scheme.mode == "ecdsa" or (
                len(raw) == (64 if scheme.mode == "ed25519" else self._digest_size)
            ):
                found.append(raw)
        if not found:
            kind = scheme.algorithm if scheme.mode == "hmac" else scheme.mode
            shape = f"{scheme.prefix}<{scheme.encoding} {kind}>"
            raise MalformedSignature(f"{scheme.header} has no signature shaped {shape}")
        return found

    def _content(self, request: Inbound, timestamp: str | None) -> bytes:
        chunks: list[bytes] = []
        for part in self.scheme.signed_content:
            if part.kind == "body":
                chunks.append(request.body)
            elif part.kind == "form_sorted":
                chunks.append(sorted_form(request.body))
            elif part.kind == "url":
                chunks.append(str(self.scheme.url).encode())
            elif part.kind == "timestamp":
                chunks.append(str(timestamp).encode())
            elif part.kind == "method":
                chunks.append(request.method.encode())
            elif part.kind == "url_path":
                query = f"?{request.query_string}" if request.query_string else ""
                chunks.append((request.path + query).encode("latin-1", "replace"))
            elif part.kind == "header":
                value = request.headers.get(part.value)
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

    def sign(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        method: str = "POST",
        url: str | None = None,
    ) -> dict[str, str]:
        """The headers this scheme's sender sends for ``body`` (HMAC, token and Basic modes)."""
        scheme = self.scheme
        if scheme.mode in PUBLIC_KEY_MODES:
            raise NotImplementedError(f"{self.name}: the gateway holds only a public key")
        if scheme.mode == "token":
            return {scheme.header: scheme.prefix + self.secrets[0]}
        if scheme.mode == "basic":
            return {scheme.header: "Basic " + base64.b64encode(self.secrets[0].encode()).decode()}
        at = signing_time(timestamp)
        stamp = {
            "unix": str(at),
            "ms": str(at * 1000),
            "iso": datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z"),
        }[scheme.timestamp_format]
        target = urlsplit(url or scheme.url or "")
        request = Inbound(method, body, {}, target.path, target.query)
        headers: dict[str, str] = {}
        for part in scheme.signed_content:
            if part.kind == "header":
                raise NotImplementedError(f"{self.name}: signing needs the {part.value} header")
        try:
            content = self._content(request, stamp)
        except VerificationError as exc:  # a body that is not the form the options name
            raise NotImplementedError(f"{self.name}: cannot sign: {exc.reason}") from None
        mac = hmac_digests(self._keys[:1], scheme.algorithm, content)[0]
        encoded = mac.hex() if scheme.encoding == "hex" else base64.b64encode(mac).decode()
        signature = scheme.prefix + encoded
        if scheme.signature_key is not None:
            pairs = [f"{scheme.signature_key}{scheme.kv_separator}{signature}"]
            if scheme.timestamp_key is not None:
                pairs.insert(0, f"{scheme.timestamp_key}{scheme.kv_separator}{stamp}")
            headers[scheme.header] = scheme.pair_separator.join(pairs)
        else:
            headers[scheme.header] = signature
            if scheme.timestamp_header is not None:
                headers[scheme.timestamp_header] = stamp
        return headers

    def payload(self, webhook: Webhook) -> dict[str, Any]:
        """The body parsed per the ``format`` option."""
        if self.scheme.format == "form":
            return dict(webhook.form)
        payload = webhook.json
        if not isinstance(payload, dict):
            raise PayloadError("body must be a JSON object")
        return payload

    def check_payload(self, webhook: Webhook) -> None:
        if self.array_body:
            items = webhook.json
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise PayloadError("body must be a JSON array of objects")
            return
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
