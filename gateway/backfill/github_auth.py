"""GitHub credentials: a token, or a GitHub App (a JWT, and installation tokens made from it).

The App's JWT is RS256 over ``{"iat": now - 60, "exp": now + 540, "iss": app_id}`` (GitHub
allows at most ten minutes and advises back-dating ``iat`` for clock drift), signed with the
``cryptography`` package. The App's own webhook is read with the JWT; a repository or
organization hook with an installation access token
(``POST /app/installations/{installation_id}/access_tokens``), kept until a minute before
it expires.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import datetime

import httpx
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.backfill.run import AuthFailed

JWT_LIFETIME = 540
JWT_BACKDATE = 60


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    """The App's PEM private key; ``ValueError`` saying what is wrong otherwise."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM private key without a passphrase ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("a GitHub App's private key is an RSA key")
    return key


def app_jwt(app_id: int, key: rsa.RSAPrivateKey, now: float | None = None) -> str:
    """A GitHub App JWT (RS256) valid for nine minutes."""
    issued = int(time.time() if now is None else now) - JWT_BACKDATE
    header = _b64url(orjson.dumps({"alg": "RS256", "typ": "JWT"}))
    claims = _b64url(
        orjson.dumps({"iat": issued, "exp": issued + JWT_BACKDATE + JWT_LIFETIME, "iss": app_id})
    )
    signing_input = f"{header}.{claims}".encode()
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{claims}.{_b64url(signature)}"


Send = Callable[[str, str, dict[str, str]], httpx.Response]


class GitHubAuth:
    """The ``Authorization`` header for each request; a token is fetched when first needed."""

    def __init__(
        self,
        *,
        token: str | None = None,
        app_id: int | None = None,
        key: rsa.RSAPrivateKey | None = None,
        installation_id: int | None = None,
    ) -> None:
        self.token = token
        self.app_id = app_id
        self.key = key
        self.installation_id = installation_id
        self._installation_token: tuple[str, float] | None = None

    def jwt(self) -> str:
        if self.app_id is None or self.key is None:
            raise AuthFailed("the App's own webhook needs app_id and private_key")
        return app_jwt(self.app_id, self.key)

    def header(self, send: Send) -> str:
        """The header value; ``send(method, path, headers)`` makes the token request."""
        if self.token:
            return f"Bearer {self.token}"
        if self.installation_id is None:
            return f"Bearer {self.jwt()}"
        cached = self._installation_token
        if cached is None or cached[1] - 60 < time.time():
            cached = self._installation_token = self._fetch(send)
        return f"token {cached[0]}"

    def _fetch(self, send: Send) -> tuple[str, float]:
        path = f"/app/installations/{self.installation_id}/access_tokens"
        response = send("POST", path, {"Authorization": f"Bearer {self.jwt()}"})
        if response.status_code in (401, 403, 404):
            raise AuthFailed(
                f"GitHub refused an installation token for installation {self.installation_id} "
                f"({response.status_code}): {_message(response)}"
            )
        if response.status_code != 201:
            raise AuthFailed(f"installation token request answered {response.status_code}")
        body = response.json()
        expires = datetime.fromisoformat(str(body.get("expires_at", "")).replace("Z", "+00:00"))
        return str(body["token"]), expires.timestamp()


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message", "")) if isinstance(body, dict) else ""
