"""The signed identity a company's site hands over when its logged-in customer opens self-care.

A JSON Web Token, checked with PyJWT, either:

- signed with HS256 by a key both sides hold (``JOURNEYS_IDENTITY_KEY``, 32 bytes or more):
  the site's server makes one for its logged-in customer and puts it in the self-care link;
- or an OpenID Connect ID token from the company's identity provider, checked against the
  provider's public keys (``JOURNEYS_IDENTITY_JWKS``: a JWKS file, or its https URL).

Either way the token must name the issuer (``JOURNEYS_IDENTITY_ISSUER``) and the audience
(``JOURNEYS_IDENTITY_AUDIENCE``, default ``journeys``), carry ``iat`` and ``exp``, and live at
most ``JOURNEYS_IDENTITY_MAX_AGE`` seconds (default 300): a short-lived hand-over, not a login.
The customer number is its ``sub`` claim, or the claim ``JOURNEYS_IDENTITY_CLAIM`` names
(an identity provider's ``sub`` is often its own user id). docs/selfcare-identity.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jwt

from engine.errors import SessionError

#: Seconds of clock difference tolerated between the site and this server.
LEEWAY = 30
MIN_KEY_BYTES = 32
#: Public-key algorithms accepted for ID tokens (never "none", never HS* with a public key).
OIDC_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class IdentityError(SessionError):
    """A signed identity that cannot be accepted, or a configuration that cannot work."""


class IdentityUnavailable(IdentityError):
    """The identity provider's keys cannot be read just now: an outage, not a refusal."""


@lru_cache(maxsize=8)
def _client(url: str) -> jwt.PyJWKClient:
    """One client per JWKS URL: it keeps the provider's keys between requests."""
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=600, timeout=5)


@dataclass(frozen=True)
class SignedIdentity:
    issuer: str
    audience: str = "journeys"
    key: bytes | None = None  # HS256, shared with the company's site
    jwks: str | None = None  # OpenID Connect: a JWKS file or its https URL
    claim: str = "sub"
    max_age: int = 300

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> SignedIdentity | None:
        """The configured checker, None when no key is configured (no signed identity is
        accepted then); IdentityError for a configuration that cannot be safe."""
        env = os.environ if env is None else env
        key, jwks = env.get("JOURNEYS_IDENTITY_KEY", ""), env.get("JOURNEYS_IDENTITY_JWKS", "")
        if not key and not jwks:
            return None
        issuer = env.get("JOURNEYS_IDENTITY_ISSUER", "").strip()
        if not issuer:
            raise IdentityError(
                "JOURNEYS_IDENTITY_ISSUER is not set: name the issuer of the signed identities "
                "(the company's site or identity provider, e.g. https://login.example.com)"
            )
        if key and len(key.encode()) < MIN_KEY_BYTES:
            raise IdentityError(
                f"JOURNEYS_IDENTITY_KEY has {len(key.encode())} bytes; it needs at least "
                f"{MIN_KEY_BYTES} (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        age = env.get("JOURNEYS_IDENTITY_MAX_AGE", "300").strip()
        if not (age.isascii() and age.isdigit() and 0 < int(age) <= 3600):
            raise IdentityError(
                f"JOURNEYS_IDENTITY_MAX_AGE={age!r} is not a number of seconds from 1 to 3600"
            )
        return cls(
            issuer=issuer,
            audience=env.get("JOURNEYS_IDENTITY_AUDIENCE", "").strip() or "journeys",
            key=key.encode() if key else None,
            jwks=jwks.strip() or None,
            claim=env.get("JOURNEYS_IDENTITY_CLAIM", "").strip() or "sub",
            max_age=int(age),
        )

    def check(self, token: str, now: float | None = None) -> dict[str, Any]:
        """The proven identity ``{customer_id, by: signed, issuer}`` of a token, or
        IdentityError saying why it is refused (never the token's content)."""
        if not token.isascii() or len(token) > 8000:
            raise IdentityError("the signed identity is not a JSON Web Token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise IdentityError("the signed identity is not a JSON Web Token") from None
        algorithm = header.get("alg")
        key: Any
        if algorithm == "HS256" and self.key:
            key, algorithms = self.key, ["HS256"]
        elif algorithm in OIDC_ALGORITHMS and self.jwks:
            key, algorithms = self._public_key(token), OIDC_ALGORITHMS
        else:
            accepted = (["HS256"] if self.key else []) + (OIDC_ALGORITHMS if self.jwks else [])
            raise IdentityError(
                f"the signed identity uses {algorithm!r}; this server accepts {', '.join(accepted)}"
            )
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "iss", "aud", self.claim]},
            )
        except jwt.ExpiredSignatureError:
            raise IdentityError("the signed identity has expired: open self-care again") from None
        except jwt.InvalidAudienceError:
            raise IdentityError(
                f"the signed identity is not for this server (audience {self.audience!r})"
            ) from None
        except jwt.InvalidIssuerError:
            raise IdentityError(f"the signed identity was not issued by {self.issuer!r}") from None
        except jwt.MissingRequiredClaimError as err:
            raise IdentityError(f"the signed identity has no {err.claim!r} claim") from None
        except jwt.PyJWTError as err:
            raise IdentityError(f"the signed identity is not valid ({err})") from None
        issued, expires = claims["iat"], claims["exp"]
        if not all(isinstance(v, int | float) for v in (issued, expires)):
            raise IdentityError("the signed identity's iat and exp are not times")
        if expires - issued > self.max_age:
            raise IdentityError(
                f"the signed identity lives {int(expires - issued)} s; at most {self.max_age} s "
                "are accepted (a hand-over, not a login)"
            )
        customer = claims[self.claim]
        if not isinstance(customer, str) or not customer.strip() or len(customer) > 200:
            raise IdentityError(f"the signed identity's {self.claim!r} is not a customer number")
        return {"customer_id": customer.strip(), "by": "signed", "issuer": self.issuer}

    def _public_key(self, token: str) -> Any:
        """The provider's key that signed ``token`` (its ``kid``), from the JWKS."""
        source = self.jwks or ""
        try:
            if source.startswith("https://"):
                return _client(source).get_signing_key_from_jwt(token).key
            keys = jwt.PyJWKSet.from_json(Path(source).read_text(encoding="utf-8"))
            kid = jwt.get_unverified_header(token).get("kid")
            for candidate in keys.keys:
                if kid is None or candidate.key_id == kid:
                    return candidate.key
        except jwt.PyJWKClientConnectionError as err:
            raise IdentityUnavailable(
                f"the identity provider's keys cannot be fetched just now ({err}); try again"
            ) from None
        except (OSError, jwt.PyJWTError) as err:
            raise IdentityUnavailable(
                f"the identity provider's keys cannot be read ({type(err).__name__}); "
                "an operator checks JOURNEYS_IDENTITY_JWKS"
            ) from None
        raise IdentityError("the signed identity's key is not among the provider's keys")
