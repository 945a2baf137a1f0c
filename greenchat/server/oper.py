"""Operator passwords: stored only as salted scrypt hashes (sans-IO).

``greenchat-serve --oper NAME:PASSWORD`` hashes the password at start-up;
the plain text is kept nowhere else and never logged. A stored hash reads
``scrypt$<salt hex>$<hash hex>``. Checking costs about 30 ms of CPU on
purpose (that is what makes guessing slow), so the OPER command runs it in
gevent's thread pool rather than on the event loop.
"""

from __future__ import annotations

from greenchat.store.credentials import hash_password, verify_password

__all__ = ["hash_password", "parse_oper_spec", "verify_password"]


def parse_oper_spec(spec: str) -> tuple[str, str]:
    """``NAME:PASSWORD`` -> ``(NAME, hash)``; ValueError with a message if malformed."""
    name, sep, password = spec.partition(":")
    if not sep or not name or not password:
        raise ValueError("expected NAME:PASSWORD")
    if any(ch.isspace() for ch in name) or not name.isprintable():
        raise ValueError("the operator name may not contain spaces")
    return name, hash_password(password)
