"""Configuration: a TOML file validated with pydantic, or the zero-config environment mode.

Secrets are references, never required inline: ``env:NAME`` reads an environment variable,
``file:/path`` reads a file (a mounted Kubernetes Secret), ``inline:value`` is allowed for
local experiments. A variable or file may hold several comma-separated secrets (rotation).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_DATA_DIR = "./.webhook-gateway"
#: Inngest Cloud takes events up to 256 KiB on every plan (3 MiB on paid plans and the
#: open-source server): a body the gateway accepts by default can become an event it can send.
DEFAULT_MAX_EVENT_BYTES = 256 * 1024
DEFAULT_BODY_LIMIT = DEFAULT_MAX_EVENT_BYTES
DEFAULT_CONSOLE_HOST = "127.0.0.1"
DEFAULT_CONSOLE_PORT = 8081

#: zero-config mode's original variables -> (source name, provider); every named provider is
#: enabled by its own variable (``Provider.secret_variable``: ``<NAME>_WEBHOOK_SECRET`` unless
#: it declares another), see :func:`zero_config_variables`
ENV_SOURCES: dict[str, tuple[str, str]] = {
    "STRIPE_WEBHOOK_SECRET": ("stripe", "stripe"),
    "SLACK_SIGNING_SECRET": ("slack", "slack"),
    "INTERCOM_CLIENT_SECRET": ("intercom", "intercom"),
    "GITHUB_WEBHOOK_SECRET": ("github", "github"),
    "SHOPIFY_WEBHOOK_SECRET": ("shopify", "shopify"),
    "STANDARD_WEBHOOKS_SECRET": ("standard", "standard"),
}


#: providers that serve many senders: a source's event prefix defaults to its name, not theirs
SOURCE_NAMED_PROVIDERS = frozenset({"standard", "hmac"})


class ConfigError(Exception):
    """The configuration is invalid; the message names the bad key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def resolve_secret(reference: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Resolve ``env:NAME``, ``file:PATH`` or ``inline:VALUE`` to its comma-separated secrets."""
    raw = resolve_secret_text(reference, environ)
    secrets = [part.strip() for part in raw.split(",") if part.strip()]
    if not secrets:
        raise ConfigError(f"secret reference {reference!r} resolves to nothing")
    return secrets


def resolve_secret_text(reference: str, environ: Mapping[str, str] | None = None) -> str:
    """The whole text a secret reference names, not split at commas (a database URL may list
    several hosts), with surrounding whitespace trimmed."""
    env = os.environ if environ is None else environ
    kind, sep, target = reference.partition(":")
    if not sep:
        raise ConfigError(f"secret reference {reference!r} must start with env:, file: or inline:")
    if kind == "env":
        if target not in env or not env[target].strip():
            raise ConfigError(f"environment variable {target} (secret reference) is not set")
        raw = env[target]
    elif kind == "file":
        try:
            raw = Path(target).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"secret file {target}: {exc.strerror}") from None
    elif kind == "inline":
        raw = target
    else:
        raise ConfigError(f"secret reference {reference!r}: unknown kind {kind!r}")
    if not raw.strip():
        raise ConfigError(f"secret reference {reference!r} resolves to nothing")
    return raw.strip()


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str | float) -> float:
    """Seconds in ``"90s"``, ``"15m"``, ``"2h"``, ``"7d"``, ``"2w"`` (a bare number is seconds);
    ``ValueError`` for anything else, a negative number included."""
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"duration {text!r} is negative")
        return float(text)
    match = _DURATION.match(text.lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 2h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


class BackfillConfig(_Model):
    """Recovering missed webhooks from the provider's own API (docs/backfill.md).

    Stripe uses ``api_key`` (and ``types``, ``accounts``, ``connect``); GitHub uses ``hook_id``
    with one of ``repository``, ``organization`` or ``app``, and ``token`` or ``app_id`` +
    ``private_key`` (+ ``installation_id`` for repository and organization hooks).
    """

    every: str | None = None  # reconcile this often inside serve; None: the CLI only
    lookback: str = "2h"  # how far back each reconciliation looks
    max_wait: str = "5m"  # longest rate-limit wait before a run gives up
    api_base: str | None = None  # the provider's API origin (GitHub Enterprise, stand-ins)
    # Stripe
    api_key: str | None = None  # a secret reference: a restricted key with "Events: read"
    types: list[str] = Field(default_factory=list)  # event types the transform keeps; []: all
    accounts: list[str] = Field(default_factory=list)  # Connect: acct_... (Stripe-Account)
    connect: bool = False  # Connect endpoint: backfill every connected account
    # GitHub
    repository: str | None = Field(default=None, pattern=r"^[\w.-]+/[\w.-]+$")
    organization: str | None = Field(default=None, pattern=r"^[\w.-]+$")
    app: bool = False  # the GitHub App's own webhook
    hook_id: int | None = Field(default=None, gt=0)
    token: str | None = None  # a secret reference
    app_id: int | None = Field(default=None, gt=0)
    private_key: str | None = None  # a secret reference: the App's PEM private key
    installation_id: int | None = Field(default=None, gt=0)

    @field_validator("every", "lookback", "max_wait")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) <= 0:
            raise ValueError(f"duration {value!r} must be longer than zero")
        return value

    @model_validator(mode="after")
    def _one_hook(self) -> BackfillConfig:
        kinds = [k for k in ("repository", "organization", "app") if getattr(self, k)]
        if len(kinds) > 1:
            raise ValueError(f"give only one of repository, organization, app (got {kinds})")
        return self

    @property
    def every_seconds(self) -> float | None:
        return parse_duration(self.every) if self.every else None

    @property
    def lookback_seconds(self) -> float:
        return parse_duration(self.lookback)

    @property
    def max_wait_seconds(self) -> float:
        return parse_duration(self.max_wait)


class SourceConfig(_Model):
    """One receiving endpoint: ``POST /webhooks/{name}``."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    provider: str
    secrets: list[str] = Field(default_factory=list, description="secret references")
    tolerance: int | None = Field(default=300, ge=0)
    body_limit: int = Field(default=DEFAULT_BODY_LIMIT, gt=0)
    transform: str | None = None  # registered name or module:function; default: provider's
    prefix: str | None = None  # event-name prefix; default: see event_prefix
    options: dict[str, Any] = Field(default_factory=dict)  # provider-specific settings
    backfill: BackfillConfig | None = None  # recover missed webhooks (docs/backfill.md)

    @property
    def event_prefix(self) -> str:
        """``prefix``; else the source's name for a many-sender provider, else the provider."""
        if self.prefix:
            return self.prefix
        name = self.provider_name
        return self.name if name in SOURCE_NAMED_PROVIDERS else name

    @property
    def provider_name(self) -> str:
        """The provider's registered name: ``provider``, or the ``name`` of the class a
        ``package.module:Class`` reference names."""
        if ":" not in self.provider:
            return self.provider
        from gateway.providers import get_provider

        return get_provider(self.provider).name

    def resolved_secrets(self, environ: Mapping[str, str] | None = None) -> list[str]:
        out: list[str] = []
        for ref in self.secrets:
            out.extend(resolve_secret(ref, environ))
        return out


class InngestConfig(_Model):
    """Where events go; unset fields follow the Inngest SDK's environment variables."""

    event_key: str | None = None  # a secret reference
    base_url: str | None = None
    dev: bool | None = None
    env: str | None = None  # branch environment, sent as x-inngest-env


DATABASE_URL_VARIABLE = "GATEWAY_DATABASE_URL"


class OutboxConfig(_Model):
    """The durable store: an embedded SQLite file, or a PostgreSQL database shared by replicas."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
    # postgres: a secret reference to a libpq URL (postgresql://user:pass@host/db?sslmode=...)
    url: str = f"env:{DATABASE_URL_VARIABLE}"
    pool_size: int = Field(default=4, ge=1, le=100)  # postgres: connections for claims and reads
    statement_timeout: float = Field(default=10.0, gt=0)  # postgres: seconds per statement
    connect_timeout: float = Field(default=5.0, gt=0)  # postgres: seconds to connect
    migrate: Literal["auto", "off"] = "auto"  # postgres: apply schema migrations at start
    listen: bool = True  # postgres: LISTEN for other replicas' wake-ups (off behind PgBouncer)
    durability: Literal["power_loss", "process_crash"] = "power_loss"
    compression: Literal["zlib", "none"] = "zlib"  # stored bodies and payloads
    encryption_key: str | None = None  # a secret reference; comma-separated keys rotate
    dedup_window: float = Field(default=86400.0, ge=0)
    retention: float = Field(default=3 * 86400.0, gt=0)  # delivered rows are kept this long


class ForwarderConfig(_Model):
    """Batching and retries towards the Event API."""

    enabled: bool = True
    max_batch_bytes: int = Field(default=512 * 1024, gt=0)
    max_batch_events: int = Field(default=1000, gt=0, le=5000)
    max_event_bytes: int = Field(default=DEFAULT_MAX_EVENT_BYTES, gt=0)
    request_timeout: float = Field(default=10.0, gt=0)
    backoff_base: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=10.0, gt=0)
    lease_seconds: float = Field(default=60.0, gt=0)
    idle_poll: float = Field(default=0.2, gt=0)
    batch_linger: float = Field(default=0.02, ge=0)  # after a small batch, wait to fill the next
    shutdown_deadline: float = Field(default=20.0, ge=0)


class GatewayConfig(_Model):
    """Process-wide settings."""

    data_dir: str = DEFAULT_DATA_DIR
    transforms_dir: str | None = None
    strict_names: bool = False  # names breaking prefix/noun.verb are errors, not warnings
    transform_timeout: float = Field(default=5.0, gt=0)
    log_level: str = "info"
    log_bodies: bool = False  # payload bodies in debug logs only when this is set


class HttpConfig(_Model):
    """The public port's limits against slow or oversized requests (docs/configuration.md)."""

    max_header_bytes: int = Field(default=32 * 1024, ge=1024)  # request line and headers
    max_header_count: int = Field(default=100, gt=0)
    header_timeout: float = Field(default=10.0, gt=0)  # connection (or first byte) to head's end
    body_timeout: float = Field(default=30.0, gt=0)  # head's end to the body's last byte
    keep_alive_timeout: int = Field(default=5, gt=0)  # seconds idle between requests
    max_connections: int = Field(default=1000, gt=0)  # lowered to the fd limit's room


class ConsoleToken(_Model):
    """One console credential: a secret reference and what it may do."""

    secret: str  # a secret reference; comma-separated values are several tokens (rotation)
    scope: Literal["read", "write"] = "read"


class ConsoleConfig(_Model):
    """The inspection console on its own admin port (docs/console.md)."""

    enabled: bool = False
    host: str = DEFAULT_CONSOLE_HOST
    port: int = Field(default=DEFAULT_CONSOLE_PORT, ge=0, le=65535)
    tokens: list[ConsoleToken] = Field(default_factory=list)
    record_rejected: bool = True  # keep refused requests (with their reason) while enabled
    rejected_retention: float = Field(default=7 * 86400.0, gt=0)  # seconds
    rejected_max: int = Field(default=10000, gt=0)  # rows kept, newest first
    rejected_body_bytes: int = Field(default=2048, ge=0)  # body bytes kept per refused request
    rejected_header_bytes: int = Field(default=8192, ge=0)  # header bytes kept per request
    rejected_header_value_bytes: int = Field(default=512, ge=0)  # bytes kept per header value
    rejected_max_bytes: int = Field(default=8 * 1024 * 1024, gt=0)  # headers+bodies kept, total

    def resolved_tokens(self, environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
        """``(token, scope)`` pairs; :class:`ConfigError` when enabled without any."""
        out: list[tuple[str, str]] = []
        for i, token in enumerate(self.tokens):
            try:
                out.extend((value, token.scope) for value in resolve_secret(token.secret, environ))
            except ConfigError as exc:
                raise ConfigError(f"console.tokens[{i}].secret: {exc}") from None
        if self.enabled and not out:
            raise ConfigError(
                "console.enabled is true but no token is configured: add [[console.tokens]]"
                ' (secret = "env:NAME", scope = "read" or "write") or set'
                " GATEWAY_CONSOLE_TOKEN / GATEWAY_CONSOLE_WRITE_TOKEN"
            )
        return out


class Config(_Model):
    """The whole configuration."""

    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    inngest: InngestConfig = Field(default_factory=InngestConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    forwarder: ForwarderConfig = Field(default_factory=ForwarderConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        seen: set[str] = set()
        for source in sources:
            if source.name in seen:
                raise ValueError(f"two sources are named {source.name!r}")
            seen.add(source.name)
        return sources

    def source(self, name: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.name == name), None)


def _format_errors(exc: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration in {origin}:"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"  {key}: {err['msg']}")
    return "\n".join(lines)


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a TOML file; ``GATEWAY_DATA_DIR`` overrides ``gateway.data_dir``.

    A relative ``data_dir`` or ``transforms_dir`` written in the file is relative to the file's
    directory, so the file means the same whatever directory the gateway is started from (the
    default ``data_dir`` and ``GATEWAY_DATA_DIR`` stay relative to the working directory).
    """
    env = os.environ if environ is None else environ
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, str(path))) from None
    _anchor_paths(config.gateway, Path(path).parent)
    if env.get("GATEWAY_DATA_DIR"):
        config.gateway.data_dir = env["GATEWAY_DATA_DIR"]
    return config


def _anchor_paths(gateway: GatewayConfig, base: Path) -> None:
    """Make the directories the file sets relative to ``base`` (the file's directory)."""
    if "data_dir" in gateway.model_fields_set and not Path(gateway.data_dir).is_absolute():
        gateway.data_dir = str(base / gateway.data_dir)
    if gateway.transforms_dir and not Path(gateway.transforms_dir).is_absolute():
        gateway.transforms_dir = str(base / gateway.transforms_dir)


def zero_config_variables() -> dict[str, tuple[str, ...]]:
    """Provider name -> the variables that enable it, first wins: its declared variable, then
    the generic ``<NAME>_WEBHOOK_SECRET`` when that differs (``SLACK_WEBHOOK_SECRET`` works too).
    """
    from gateway.providers import get_provider, provider_names

    out: dict[str, tuple[str, ...]] = {}
    first = [name for name, _ in ENV_SOURCES.values()]  # the original order, then by name
    for name in sorted(
        provider_names(), key=lambda n: (n not in first, first.index(n) if n in first else 0, n)
    ):
        declared = get_provider(name).secret_variable()
        if declared is None:
            continue
        generic = f"{name.upper()}_WEBHOOK_SECRET"
        out[name] = (declared,) if declared == generic else (declared, generic)
    return out


def _env_source(name: str, variable: str, env: Mapping[str, str]) -> SourceConfig:
    from gateway.providers import get_provider

    options = {
        option: env[var].strip()
        for option, var in get_provider(name).env_options.items()
        if env.get(var, "").strip()
    }
    return SourceConfig(name=name, provider=name, secrets=[f"env:{variable}"], options=options)


def config_from_env(environ: Mapping[str, str] | None = None) -> Config:
    """Zero-config mode: each provider secret variable that is set enables its source."""
    env = os.environ if environ is None else environ
    sources = []
    for name, variables in zero_config_variables().items():
        variable = next((v for v in variables if env.get(v, "").strip()), None)
        if variable is not None:
            sources.append(_env_source(name, variable, env))
    gateway = GatewayConfig(data_dir=env.get("GATEWAY_DATA_DIR") or DEFAULT_DATA_DIR)
    if env.get("GATEWAY_TRANSFORMS_DIR"):
        gateway.transforms_dir = env["GATEWAY_TRANSFORMS_DIR"]
    outbox = OutboxConfig()
    if env.get(DATABASE_URL_VARIABLE, "").strip():
        outbox.backend = "postgres"  # the URL is read through outbox.url's default reference
    return Config(gateway=gateway, sources=sources, outbox=outbox, console=console_from_env(env))


def console_from_env(environ: Mapping[str, str]) -> ConsoleConfig:
    """Zero-config console: ``GATEWAY_CONSOLE_PORT`` enables it; tokens from two variables."""
    variables: tuple[tuple[str, Literal["read", "write"]], ...] = (
        ("GATEWAY_CONSOLE_TOKEN", "read"),
        ("GATEWAY_CONSOLE_WRITE_TOKEN", "write"),
    )
    tokens = [
        ConsoleToken(secret=f"env:{var}", scope=scope)
        for var, scope in variables
        if environ.get(var, "").strip()
    ]
    port_text = environ.get("GATEWAY_CONSOLE_PORT", "").strip()
    if not port_text:
        return ConsoleConfig(tokens=tokens)
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"GATEWAY_CONSOLE_PORT={port_text!r} is not a port number")
    host = environ.get("GATEWAY_CONSOLE_HOST", "").strip() or DEFAULT_CONSOLE_HOST
    return ConsoleConfig(enabled=True, host=host, port=int(port_text), tokens=tokens)
