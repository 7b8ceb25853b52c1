"""GitHub: list a hook's deliveries and ask GitHub to redeliver the failed ones.

GitHub keeps each hook's deliveries (for some days) and redelivers one on request; the
redelivery arrives signed, with its original ``X-GitHub-Delivery`` GUID, through the normal
receive path. Endpoints (REST API version 2022-11-28), by kind of hook:

- repository: ``/repos/{owner}/{repo}/hooks/{hook_id}/deliveries``
- organization: ``/orgs/{org}/hooks/{hook_id}/deliveries``
- GitHub App: ``/app/hook/deliveries`` (with the App's JWT)

each with ``/{delivery_id}`` (the request's headers and payload) and
``POST /{delivery_id}/attempts`` (redeliver; 202). Lists are newest first, ``per_page=100``,
with the next page's cursor in the ``Link`` header.

A GUID counts as failed when none of its attempts in the window got a 2xx. For each, the
delivery's own request goes through the source's transform: when the outbox already holds
its events (the gateway stored it but GitHub saw a timeout) or the transform keeps nothing,
nothing is asked of GitHub. Otherwise the latest attempt is redelivered, once.

Rate limits: after an answer with ``x-ratelimit-remaining: 0`` the next request waits for
``x-ratelimit-reset``; a 403/429 with ``Retry-After`` (or with no requests remaining) is sent
again after that wait. Only refused requests are sent again; a redelivery that got any other
answer (or none) is counted as failed and never repeated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import httpx
import orjson

from gateway.backfill.github_auth import GitHubAuth, load_private_key
from gateway.backfill.run import AuthFailed, BackfillError, RateLimited, StopToken
from gateway.backfill.runner import Intake, Window
from gateway.config import BackfillConfig, ConfigError, resolve_secret

DEFAULT_API = "https://api.github.com"
API_VERSION = "2022-11-28"
PER_PAGE = 100
MAX_REFUSALS = 5  # rate-limit refusals of one request before the run gives up
SECONDARY_WAIT = 60.0  # GitHub: wait at least a minute when a limit gives no time
_ORIGIN = "github-deliveries-api"


def _delivered_at(delivery: Mapping[str, Any]) -> float:
    text = str(delivery.get("delivered_at") or "")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def rate_limit_wait(response: httpx.Response, now: float) -> float | None:
    """Seconds to wait before sending a refused request again; None when it was not refused."""
    if response.status_code not in (403, 429):
        return None
    headers = response.headers
    retry = headers.get("retry-after", "").strip()
    if retry.isdigit():
        return float(retry)
    if headers.get("x-ratelimit-remaining") == "0":
        reset = headers.get("x-ratelimit-reset", "")
        return max(0.0, float(reset) - now) + 1 if reset.isdigit() else SECONDARY_WAIT
    return SECONDARY_WAIT if response.status_code == 429 else None


class GitHubBackfill:
    """One hook's deliveries in a window, and redeliveries of what failed."""

    def __init__(
        self,
        hook_path: str,
        auth: GitHubAuth,
        *,
        api_base: str | None = None,
        max_wait: float = 300.0,
        timeout: float = 30.0,
    ) -> None:
        self.hook_path = hook_path
        self.auth = auth
        self.base = (api_base or DEFAULT_API).rstrip("/")
        self.max_wait = max_wait
        self.timeout = timeout
        self.http = self._client()
        self.requests = 0
        self._waited = 0.0
        self._reset_at: float | None = None  # when the exhausted rate limit resets
        self._stop = StopToken()

    @classmethod
    def from_config(
        cls, config: BackfillConfig, environ: Mapping[str, str], where: str
    ) -> GitHubBackfill:
        if config.app:
            path = "/app/hook"
        elif config.hook_id is None or not (config.repository or config.organization):
            raise ConfigError(
                f"{where}: give hook_id and repository (owner/repo) or organization, or app = true"
            )
        elif config.repository:
            path = f"/repos/{config.repository}/hooks/{config.hook_id}"
        else:
            path = f"/orgs/{config.organization}/hooks/{config.hook_id}"

        def secret(key: str, ref: str) -> str:
            try:
                return resolve_secret(ref, environ)[0]
            except ConfigError as exc:
                raise ConfigError(f"{where}.{key}: {exc}") from None

        if config.token:
            if config.app:
                raise ConfigError(f"{where}: the App's own webhook needs app_id and private_key")
            auth = GitHubAuth(token=secret("token", config.token))
        elif config.app_id and config.private_key:
            try:
                key = load_private_key(secret("private_key", config.private_key))
            except ValueError as exc:
                raise ConfigError(f"{where}.private_key: {exc}") from None
            if not config.app and config.installation_id is None:
                raise ConfigError(
                    f"{where}.installation_id: a repository or organization hook read as a "
                    "GitHub App needs the App's installation id"
                )
            auth = GitHubAuth(
                app_id=config.app_id,
                key=key,
                installation_id=None if config.app else config.installation_id,
            )
        else:
            raise ConfigError(f"{where}: give token, or app_id and private_key (secret references)")
        return cls(path, auth, api_base=config.api_base, max_wait=config.max_wait_seconds)

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base,
            timeout=self.timeout,
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "webhook-gateway-backfill",
            },
        )

    def run(self, window: Window, intake: Intake, stop: StopToken) -> None:
        """One run; the reconciler calls it again each period (fresh counters and client)."""
        self._stop = stop
        self.requests, self._waited = 0, 0.0
        if self.http.is_closed:
            self.http = self._client()
        try:
            attempts: dict[str, list[dict[str, Any]]] = {}
            for delivery in self._deliveries(window):
                guid = delivery.get("guid")
                if isinstance(guid, str) and guid:
                    attempts.setdefault(guid, []).append(delivery)
            for guid, tries in attempts.items():
                stop.check()
                intake.report.found += 1
                if any(200 <= int(t.get("status_code") or 0) < 300 for t in tries):
                    intake.count("duplicate")  # GitHub delivered it: the gateway has it
                else:
                    latest = max(tries, key=lambda t: int(t.get("id") or 0))
                    intake.count(self._recover(guid, latest, intake))
        finally:
            intake.report.requests = self.requests
            self.http.close()

    def _deliveries(self, window: Window) -> Iterator[dict[str, Any]]:
        url: str | None = f"{self.hook_path}/deliveries?per_page={PER_PAGE}"
        while url is not None:
            response = self._request("GET", url)
            self._raise_for(response, "list the hook's deliveries")
            page = response.json()
            if not isinstance(page, list):
                raise BackfillError("GitHub answered the deliveries list with something else")
            oldest = window.until
            for delivery in page:
                at = _delivered_at(delivery)
                oldest = min(oldest, at)
                if window.since <= at <= window.until:
                    yield delivery
            url = self._next(response) if page and oldest >= window.since else None

    def _next(self, response: httpx.Response) -> str | None:
        target = response.links.get("next", {}).get("url")
        if not target:
            return None
        if not target.startswith(self.base + "/"):
            raise BackfillError(f"GitHub's next-page link leaves {self.base}: {target}")
        return target[len(self.base) :]

    def _recover(self, guid: str, delivery: Mapping[str, Any], intake: Intake) -> str:
        """``duplicate``, ``filtered`` or ``failed`` without asking GitHub, else redeliver."""
        path = f"{self.hook_path}/deliveries/{delivery['id']}"
        response = self._request("GET", path)
        if response.status_code != 200:
            self._raise_for(response, "read a delivery")
            return "failed"
        request = (response.json() or {}).get("request") or {}
        headers = {str(k).lower(): str(v) for k, v in (request.get("headers") or {}).items()}
        headers["content-type"] = "application/json"
        headers.setdefault("x-github-delivery", guid)
        webhook = intake.webhook(orjson.dumps(request.get("payload") or {}), headers, _ORIGIN)
        outcome = intake.transform(webhook, guid)
        if outcome is not None:
            verdict = intake.classify(outcome, guid)
            if verdict != "new":
                return verdict
        # new, or the transform fails: redelivered, the receive path quarantines it as usual
        if intake.dry_run:
            return "new"
        answer = self._request("POST", f"{path}/attempts")
        if answer.status_code in (200, 201, 202):
            return "new"
        self._raise_for(answer, "ask for a redelivery")
        intake.log.warning(
            "backfill: GitHub refused a redelivery",
            extra={"source": intake.source.name, "item": guid, "status": answer.status_code},
        )
        return "failed"

    def _raise_for(self, response: httpx.Response, doing: str) -> None:
        """Stop the run on credentials refused; other errors of a list are errors too."""
        status = response.status_code
        if status == 401:
            raise AuthFailed(f"GitHub refused the credentials (401) to {doing}")
        if status == 403:
            raise AuthFailed(
                f"GitHub refused to {doing} (403): the token or App needs the Webhooks "
                '"read and write" permission on this hook'
            )
        if status == 404 and doing.startswith("list"):
            raise BackfillError(
                f"GitHub answered 404 to {self.hook_path}/deliveries: no such hook, or the "
                "credentials cannot see it"
            )
        if status >= 400 and doing.startswith("list"):
            raise BackfillError(f"GitHub answered {status} when asked to {doing}")

    def _send(self, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
        self._stop.check()
        if self._reset_at is not None and self._reset_at > time.time():
            self._pause(self._reset_at - time.time() + 1, "rate limit exhausted")
        self.requests += 1
        try:
            response = self.http.request(method, path, headers=headers)
        except httpx.HTTPError as exc:
            raise BackfillError(f"GitHub API unreachable: {exc!r}") from None
        remaining = response.headers.get("x-ratelimit-remaining")
        reset = response.headers.get("x-ratelimit-reset", "")
        self._reset_at = float(reset) if remaining == "0" and reset.isdigit() else None
        return response

    def _request(self, method: str, path: str) -> httpx.Response:
        """Send once; again only after a rate-limit refusal, having waited as told."""
        for _ in range(MAX_REFUSALS):
            headers = {"Authorization": self.auth.header(self._send)}
            response = self._send(method, path, headers)
            wait = rate_limit_wait(response, time.time())
            if wait is None:
                return response
            self._reset_at = None
            self._pause(wait, f"{response.status_code} rate limited")
        raise RateLimited(f"GitHub refused {method} {path} {MAX_REFUSALS} times (rate limit)")

    def _pause(self, seconds: float, why: str) -> None:
        if self._waited + seconds > self.max_wait:
            raise RateLimited(
                f"GitHub asks to wait {seconds:.0f}s ({why}); the run may wait "
                f"{self.max_wait:.0f}s in all (max_wait)"
            )
        self._waited += seconds
        self._stop.wait(seconds)
