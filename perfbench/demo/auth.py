"""Password hashing and stateless bearer tokens.

Passwords: PBKDF2-HMAC-SHA256 from `hashlib`, stored self-describing as
`pbkdf2_sha256$<iterations>$<salt>$<hash>` (salt and hash in unpadded URL-safe
base64), so a database seeded with one iteration count still verifies after the
default changes.

Tokens: `<user_id>.<expires_unix>.<signature>`, where the signature is
HMAC-SHA256 over `<user_id>.<expires_unix>` with a per-app secret. Nothing is
stored server side; a restart with a new secret invalidates every token.

Every comparison of secret material goes through `hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable

from ..errors import ConfigError

ALGORITHM = "pbkdf2_sha256"
# Real hashing, but cheap enough that seeding 1,000 users takes a fraction of a
# second on two cores (about 0.2 ms per 1,000 iterations here). Production
# systems use hundreds of thousands; a demo that seeds on startup cannot.
DEFAULT_ITERATIONS = 3_000
# A stored hash asking for more than this is treated as invalid rather than run:
# verification must not become a way to burn a core for seconds.
MAX_ITERATIONS = 1_000_000


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, salt: bytes, iterations: int = DEFAULT_ITERATIONS) -> str:
    """Hash `password` with PBKDF2-SHA256 and return the self-describing encoded form.

    >>> hash_password("maple-harbor-42", salt=b"0123456789abcdef", iterations=1000)[:20]
    'pbkdf2_sha256$1000$M'
    """
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ConfigError(f"iterations must be between 1 and {MAX_ITERATIONS}, got {iterations}")
    if len(salt) < 8:
        raise ConfigError(f"salt must be at least 8 bytes, got {len(salt)}")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{ALGORITHM}${iterations}${_b64encode(salt)}${_b64encode(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """True if `password` matches `encoded` (from `hash_password`); False for a
    wrong password or a malformed/unsupported encoding, never an exception."""
    try:
        algorithm, iterations_text, salt_text, hash_text = encoded.split("$")
        iterations = int(iterations_text)
        salt = _b64decode(salt_text)
        expected = _b64decode(hash_text)
    except (ValueError, binascii.Error):
        return False
    if algorithm != ALGORITHM or not 1 <= iterations <= MAX_ITERATIONS:
        return False
    actual = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(actual, expected)


class TokenSigner:
    """Issues and checks HMAC-signed bearer tokens.

    `secret` should be at least 16 random bytes; `ttl` is the lifetime of an issued
    token in seconds; `clock` returns Unix time and exists so tests can move time.

    >>> signer = TokenSigner(b"0" * 32, ttl=60, clock=lambda: 1_000)
    >>> signer.verify(signer.issue(7))
    7
    >>> signer.verify("7.1060.forged") is None
    True
    """

    def __init__(self, secret: bytes, *, ttl: float = 3600.0, clock: Callable[[], float] = time.time):
        if len(secret) < 16:
            raise ConfigError(f"token secret must be at least 16 bytes, got {len(secret)}")
        if ttl <= 0:
            raise ConfigError(f"token ttl must be positive, got {ttl}")
        self._secret = secret
        self._ttl = ttl
        self._clock = clock

    def _sign(self, message: str) -> str:
        return _b64encode(hmac.new(self._secret, message.encode("ascii"), hashlib.sha256).digest())

    def issue(self, user_id: int) -> str:
        """A token for `user_id` that expires `ttl` seconds from now."""
        expires = int(self._clock() + self._ttl)
        message = f"{user_id}.{expires}"
        return f"{message}.{self._sign(message)}"

    def verify(self, token: str) -> int | None:
        """The user id in `token` if its signature is valid and it has not expired, else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        user_text, expires_text, signature = parts
        # isdigit() alone accepts non-ASCII digits; the signature covers the exact
        # text anyway, but the id must parse the same way it was written.
        if not (user_text.isascii() and user_text.isdigit() and expires_text.isascii() and expires_text.isdigit()):
            return None
        if not signature.isascii():
            return None
        expected = self._sign(f"{user_text}.{expires_text}")
        if not hmac.compare_digest(expected, signature):
            return None
        if int(expires_text) <= self._clock():
            return None
        return int(user_text)
