"""Operator passwords: stored only as salted scrypt hashes (sans-IO).

``greenchat-serve --oper NAME:PASSWORD`` hashes the password at start-up;
the plain text is kept nowhere else and never logged. A stored hash reads
``scrypt$<salt hex>$<hash hex>``. Checking costs about 30 ms of CPU on
purpose (that is what makes guessing slow), so the OPER command runs it in
gevent's thread pool rather than on the event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import os

__all__ = ["hash_password", "parse_oper_spec", "verify_password"]

# scrypt cost: 16 MiB of memory and ~30 ms per check. A wrong password also
# costs the guesser its connection (see commands/oper.py).
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=_KEY_BYTES)


def hash_password(password: str) -> str:
    """A new ``scrypt$<salt>$<hash>`` string for ``password``, with a random salt."""
    salt = os.urandom(_SALT_BYTES)
    return f"scrypt${salt.hex()}${_scrypt(password, salt).hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; a malformed hash matches nothing."""
    scheme, _, rest = stored.partition("$")
    salt_hex, _, key_hex = rest.partition("$")
    try:
        salt, key = bytes.fromhex(salt_hex), bytes.fromhex(key_hex)
    except ValueError:
        return False
    if scheme != "scrypt" or not salt or len(key) != _KEY_BYTES:
        return False
    return hmac.compare_digest(_scrypt(password, salt), key)


def parse_oper_spec(spec: str) -> tuple[str, str]:
    """``NAME:PASSWORD`` -> ``(NAME, hash)``; ValueError with a message if malformed."""
    name, sep, password = spec.partition(":")
    if not sep or not name or not password:
        raise ValueError("expected NAME:PASSWORD")
    if any(ch.isspace() for ch in name) or not name.isprintable():
        raise ValueError("the operator name may not contain spaces")
    return name, hash_password(password)
