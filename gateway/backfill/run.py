"""One backfill run: its window, its counts, and the errors that end it early.

Exceptions::

    BackfillError            the run stopped; ``status`` says why
    ├── AuthFailed           the provider refused the credentials: nothing was changed
    ├── RateLimited          the provider's rate limit outlasts the run's patience
    └── Interrupted          SIGTERM (or shutdown) asked the run to stop
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any


class BackfillError(Exception):
    """The run could not go on; the message says why in the operator's terms."""

    status = "error"


class AuthFailed(BackfillError):
    """The provider refused the credentials or their scope."""

    status = "auth_failed"


class RateLimited(BackfillError):
    """The provider asked to wait longer than the run may (``max_wait``)."""

    status = "rate_limited"


class Interrupted(BackfillError):
    """Asked to stop (SIGTERM, gateway shutdown) between two requests."""

    status = "interrupted"


@dataclass
class BackfillReport:
    """What one run found and did, per provider item (a Stripe event, a GitHub delivery GUID).

    ``found``: items the provider listed in the window; ``duplicates``: already received
    (held by the outbox, or delivered successfully according to GitHub); ``recovered``: stored
    now (Stripe) or redelivered at the gateway's request (GitHub) — in a dry run, what would
    be; ``filtered``: the source's transform keeps nothing of it; ``failed``: could not be
    recovered (the reason is logged).
    """

    source: str
    provider: str
    since: float
    until: float
    dry_run: bool = False
    found: int = 0
    duplicates: int = 0
    recovered: int = 0
    filtered: int = 0
    failed: int = 0
    status: str = "ok"  # ok, auth_failed, rate_limited, interrupted, error
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    requests: int = 0  # requests made to the provider's API

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def finish(self, error: BackfillError | None = None) -> BackfillReport:
        if error is not None:
            self.status, self.error = error.status, str(error)
        self.finished_at = time.time()
        return self


class StopToken:
    """Set by SIGTERM or shutdown; waits (rate limits) end early when it is set."""

    def __init__(self, event: threading.Event | None = None) -> None:
        self.event = event or threading.Event()

    def set(self) -> None:
        self.event.set()

    def check(self) -> None:
        if self.event.is_set():
            raise Interrupted("stopped before the run finished (SIGTERM or shutdown)")

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` unless asked to stop; :class:`Interrupted` when asked."""
        if seconds > 0 and self.event.wait(seconds):
            self.check()
        self.check()
