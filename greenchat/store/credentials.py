"""What is stored for a password, and checking one (sans-IO, CPU-bound).

Passwords are kept as salted scrypt hashes (``scrypt$<salt hex>$<hash hex>``),
checked in constant time, beside the SCRAM-SHA-256 keys that let a client log
in with SCRAM without the server ever seeing the password (scramp derives
them). Hashing costs tens of milliseconds on purpose: the server runs it in
gevent's thread pool, never on the event loop. Nothing here logs anything.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from scramp import ScramMechanism

from greenchat.store.base import Credentials

__all__ = ["SCRAM", "hash_password", "make_credentials", "verify_password"]

# scrypt cost: 16 MiB of memory and ~30 ms per check.
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32
SCRAM = ScramMechanism("SCRAM-SHA-256")
SCRAM_ITERATIONS = 4096  # RFC 7677's minimum, as most servers and clients use


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


def make_credentials(password: str, iterations: int = SCRAM_ITERATIONS) -> Credentials:
    """Everything to store for ``password``: its hash and its SCRAM keys."""
    salt, stored_key, server_key, count = SCRAM.make_auth_info(password, iteration_count=iterations)
    return Credentials(hash_password(password), salt, stored_key, server_key, count)
