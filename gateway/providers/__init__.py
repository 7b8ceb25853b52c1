"""The provider interface and registry.

A provider verifies a request on its raw bytes and answers its sender's handshakes. Exceptions::

    VerificationError          any refusal of a request's authenticity (HTTP 401)
    ├── MissingSignature       a required header is absent
    ├── MalformedSignature     a header is present but cannot be parsed
    ├── SignatureMismatch      no signature matches any configured secret
    └── TimestampOutOfTolerance  the signed timestamp is outside the replay window

Providers know nothing of Starlette: they take bytes and a header mapping with lower-cased names
and return plain :class:`Reply` values.
"""

from __future__ import annotations

import hmac
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gateway.webhook import Webhook

DEFAULT_TOLERANCE = 300


class VerificationError(Exception):
    """The request is not authentic. ``reason`` is safe to show the sender."""

    status_code = 401

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def code(self) -> str:
        """A short machine-readable reason, used as a metric label."""
        return _CODES[type(self)]


class MissingSignature(VerificationError):
    """A required signature or timestamp header is absent."""


class MalformedSignature(VerificationError):
    """A signature or timestamp header cannot be parsed."""


class SignatureMismatch(VerificationError):
    """No signature in the request matches any configured secret."""


class TimestampOutOfTolerance(VerificationError):
    """The signed timestamp is too old or too far in the future."""


_CODES: dict[type[VerificationError], str] = {
    VerificationError: "verification_failed",
    MissingSignature: "missing_signature",
    MalformedSignature: "malformed_signature",
    SignatureMismatch: "signature_mismatch",
    TimestampOutOfTolerance: "timestamp_out_of_tolerance",
}


@dataclass(frozen=True)
class Reply:
    """A response a provider asks the gateway to send instead of storing the webhook."""

    status: int = 200
    body: Any = None  # JSON-serializable value, ``bytes`` or ``None`` for an empty body
    headers: Mapping[str, str] = field(default_factory=dict)
    note: str = "handshake answered"  # what the console and the log show


@dataclass(frozen=True)
class Inbound:
    """The request as a provider may need it: method, path and query besides bytes and headers.

    ``path`` is the path the gateway received (``/webhooks/name``), ``query_string`` the raw query.
    """

    method: str
    body: bytes
    headers: Mapping[str, str]
    path: str = ""
    query_string: str = ""
    query: Mapping[str, str] = field(default_factory=dict)


MAX_ECHO = 1024  # longest challenge value echoed back to a sender


def echo_value(value: str | None, what: str) -> str:
    """A challenge value safe to echo: printable ASCII, at most :data:`MAX_ECHO` characters.

    :class:`MalformedSignature` otherwise: a handshake echo must not reflect arbitrary bytes.
    """
    if not value:
        raise MissingSignature(f"{what} is missing")
    if len(value) > MAX_ECHO or not (value.isascii() and value.isprintable()):
        raise MalformedSignature(f"{what} is not printable ASCII of at most {MAX_ECHO} characters")
    return value


def joined_key(*parts: object) -> str | None:
    """``a-b-c`` from non-empty string or integer parts (a composite dedup id), else ``None``."""
    if not all(isinstance(p, str | int) and not isinstance(p, bool) and p != "" for p in parts):
        return None
    return "-".join(str(p) for p in parts)


def text_reply(text: str, note: str, status: int = 200) -> Reply:
    """A ``text/plain`` reply (challenge echoes)."""
    return Reply(status, text.encode(), {"content-type": "text/plain; charset=utf-8"}, note)


def check_timestamp(timestamp: float, tolerance: int | None, now: float | None = None) -> None:
    """Raise :class:`TimestampOutOfTolerance` unless ``timestamp`` is within ``tolerance`` of now.

    Both directions are bounded: a timestamp from the future is as suspect as an old one.
    ``tolerance`` of ``None`` or ``0`` disables the check.
    """
    if not tolerance:
        return
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise TimestampOutOfTolerance(
            f"timestamp {timestamp} is outside the {tolerance}s tolerance window"
        )


def signing_time(timestamp: int | None) -> int:
    """``timestamp``, or now in Unix seconds: the moment a :meth:`Provider.sign` signs."""
    return int(time.time()) if timestamp is None else timestamp


def any_signature_matches(expected: Sequence[bytes | str], received: Sequence[bytes | str]) -> bool:
    """Constant-time check that any received signature equals any expected one."""
    matched = False
    for want in expected:
        want_b = want.encode() if isinstance(want, str) else want
        for got in received:
            got_b = got.encode() if isinstance(got, str) else got
            matched |= hmac.compare_digest(want_b, got_b)
    return matched


class Provider(ABC):
    """Verifies one sender's requests. Subclass, set ``name``, implement :meth:`verify`.

    The class attributes below describe the provider for ``webhook-gateway providers``, the
    docs table and zero-config mode (see PROVIDERS_HOWTO.md).
    """

    name: ClassVar[str]
    #: what the body must parse as once verified: "json", "form" (Slack) or "bytes" (anything)
    body_kind: ClassVar[str] = "json"
    #: one line: how a request is verified
    verification: ClassVar[str] = ""
    #: one line: the handshakes answered ("none" when there are none)
    handshake_summary: ClassVar[str] = "none"
    #: one line: where the dedup id comes from
    dedup_summary: ClassVar[str] = "none"
    #: each request carries a signed timestamp checked against the tolerance (bounds replays);
    #: providers without one also dedup on a digest of the verified body
    signs_timestamp: ClassVar[bool] = False
    #: the sender wants every answer without a body (Xero): the status alone tells it
    empty_replies: ClassVar[bool] = False
    #: the zero-config variable; ``None`` means ``<NAME>_WEBHOOK_SECRET``; "" means no zero-config
    env_var: ClassVar[str | None] = None
    #: more zero-config variables: option -> variable (``verify_token`` -> META_VERIFY_TOKEN)
    env_options: ClassVar[Mapping[str, str]] = {}
    #: options holding secrets: may be secret references (``env:NAME``), redacted from logs
    secret_options: ClassVar[tuple[str, ...]] = ()
    #: the replay-window column where it is not ``default_tolerance`` seconds or "none"
    window_summary: ClassVar[str] = ""
    #: the replay window (seconds) of a source that sets no ``tolerance``: the sender's own
    #: documented window (Paddle's SDK 5 s, Twitch 10 minutes, most senders 5 minutes)
    default_tolerance: ClassVar[int] = DEFAULT_TOLERANCE
    #: methods besides POST and HEAD the receive route accepts for this provider's handshakes
    handshake_methods: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def secret_variable(cls) -> str | None:
        """The variable that enables ``/webhooks/<name>`` in zero-config mode, or ``None``."""
        if cls.env_var == "":
            return None
        return cls.env_var or f"{cls.name.upper()}_WEBHOOK_SECRET"

    def __init__(
        self,
        secrets: Sequence[str],
        tolerance: int | None = DEFAULT_TOLERANCE,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if not secrets:
            raise ValueError(f"{self.name}: at least one secret is required")
        self.secrets = tuple(secrets)
        self.tolerance = tolerance
        self.options: Mapping[str, Any] = dict(options or {})

    @abstractmethod
    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        """Return if the request is authentic, else raise a :class:`VerificationError`."""

    def verify_request(self, request: Inbound, *, now: float | None = None) -> None:
        """:meth:`verify` with the method, path and query (schemes that sign them override)."""
        self.verify(request.body, request.headers, now=now)

    def pre_verify_reply(self, body: bytes, headers: Mapping[str, str]) -> Reply | None:
        """A reply owed before verification (Slack's ``ssl_check``); ``None`` to continue."""
        return None

    def challenge(self, request: Inbound, *, now: float | None = None) -> Reply | None:
        """Answer an unsigned handshake (a GET challenge), before :meth:`verify_request`.

        Raise a :class:`VerificationError` to refuse it. A request whose method is in
        ``handshake_methods`` and gets ``None`` here is refused as a bad request. Providers whose
        handshake is signed answer it in :meth:`handshake`, after verification.
        """
        if request.method == "POST":
            return self.pre_verify_reply(request.body, request.headers)
        return None

    def body_dedup(self) -> bool:
        """Dedup also on a digest of the verified body: when no signed timestamp bounds replays."""
        return not self.signs_timestamp

    def sign(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        method: str = "POST",
        url: str | None = None,
    ) -> dict[str, str]:
        """Headers (lower-case names) that make ``body`` verify under this provider's first
        secret, as the sender sends them. Raises ``NotImplementedError`` when the gateway
        cannot sign (it holds only a public key)."""
        raise NotImplementedError(
            f"{self.name}: the gateway cannot sign requests for this provider"
        )

    def sign_body(self, body: bytes, *, timestamp: int | None = None) -> bytes:
        """``body`` as the sender sends it signed, for schemes that sign inside the body
        (Mailgun); :meth:`sign` then adds the headers. Unchanged by default."""
        return body

    def event_headers(self, event: str) -> dict[str, str]:
        """Headers besides the signature that name ``event`` (and a fresh delivery id) as the
        sender sends them, for ``webhook-gateway send``; ``{}`` when the body names it."""
        return {}

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        """What is wrong with ``secret``'s format for this provider, or ``None``."""
        return None

    def handshake(self, webhook: Webhook) -> Reply | None:
        """A reply to a verified handshake (a challenge, a ping) that is not a webhook to store."""
        return None

    def accepted_reply(self, webhook: Webhook) -> Reply | None:
        """The answer to a stored webhook when its sender expects a particular one (Discord's
        204, a deferred interaction response); ``None`` for the gateway's JSON receipt."""
        return None

    def check_payload(self, webhook: Webhook) -> None:
        """Raise :class:`gateway.webhook.PayloadError` if the body is not of ``body_kind``."""
        if self.body_kind == "json":
            payload = webhook.json
            if not isinstance(payload, dict):
                from gateway.webhook import PayloadError

                raise PayloadError("body must be a JSON object")
        elif self.body_kind == "form":
            _ = webhook.form

    def delivery_id(self, webhook: Webhook) -> str | None:
        """The sender's id for this delivery or event (for logs and dedup), if it has one."""
        return None

    def replay_key(self, webhook: Webhook) -> str | None:
        """A single-use value of a verified request (Mailgun's signed ``token``): a second
        request with it is a replay, whatever its events. ``None`` when the scheme has none;
        used only when :meth:`body_dedup` is off (a signed timestamp bounds its lifetime)."""
        return None


def _builtin_modules() -> list[str]:
    """Every module of this package: each built-in provider registers itself when imported."""
    import pkgutil

    return [
        f"{__name__}.{info.name}"
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name)
        if not info.name.startswith("_")
    ]


#: the built-in provider modules: a new ``gateway/providers/<name>.py`` is found by itself
BUILTIN_PROVIDER_MODULES: list[str] = _builtin_modules()

# The registry needs Provider, defined above.
from gateway.providers._registry import (  # noqa: E402
    _REGISTRY,  # noqa: F401  (tests swap a class in)
    ENTRY_POINT_GROUP,
    get_provider,
    load_providers,
    provider_names,
    provider_origin,
    register_provider,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "ENTRY_POINT_GROUP",
    "Inbound",
    "MalformedSignature",
    "MissingSignature",
    "Provider",
    "Reply",
    "SignatureMismatch",
    "TimestampOutOfTolerance",
    "VerificationError",
    "any_signature_matches",
    "check_timestamp",
    "echo_value",
    "get_provider",
    "joined_key",
    "load_providers",
    "provider_names",
    "provider_origin",
    "register_provider",
    "signing_time",
    "text_reply",
]
