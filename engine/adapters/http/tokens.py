"""Self-care tokens: what opens a customer's own session, and the secret they are signed with."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

TOKEN_LIFETIME = 7 * 24 * 3600  # a self-care link stays valid a week


class Tokens:
    """Self-care tokens: an HMAC of the session id and an expiry; nothing stored, unguessable."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def issue(self, session_id: str, now: float | None = None) -> str:
        expires = int((now or time.time()) + TOKEN_LIFETIME)
        return f"{expires}.{self._sign(session_id, expires)}"

    def check(self, token: str, session_id: str, now: float | None = None) -> bool:
        expires_text, _, signature = token.partition(".")
        # ASCII only: "²".isdigit() is true but int("²") fails, and compare_digest refuses
        # non-ASCII text; a malformed token is simply not valid (401/403), never a 500.
        if not (Tokens.looks_like(token) and len(expires_text) <= 12):
            return False
        if int(expires_text) < (now or time.time()):
            return False
        return hmac.compare_digest(signature, self._sign(session_id, int(expires_text)))

    @staticmethod
    def looks_like(credential: str) -> bool:
        """Whether a credential has the shape of a session token (which it opens, if any,
        only the path can tell)."""
        expires, _, signature = credential.partition(".")
        return (
            credential.isascii()
            and expires.isdigit()
            and len(signature) == 40
            and signature.isalnum()
        )

    def _sign(self, session_id: str, expires: int) -> str:
        return hmac.new(
            self.secret, f"{session_id}.{expires}".encode(), hashlib.sha256
        ).hexdigest()[:40]


def server_secret(home: Path) -> bytes:
    """JOURNEYS_SECRET, or a secret made once and kept in the data folder (mode 0600)."""
    configured = os.environ.get("JOURNEYS_SECRET")
    if configured:
        return configured.encode()
    path = home / "secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip().encode()
