"""Capabilities that change a command or two, and what their CAP LS values say.

The ones that shape many replies live with what they shape (REDACTION in hub.py,
the history ones in history.py); these are read by a handler each:

* ``draft/no-implicit-names``: a JOIN gets no NAMES reply (commands/channels.py);
* ``draft/pre-away``: AWAY before registration, and ``AWAY *`` (commands/users.py);
* ``draft/extended-isupport``: the ISUPPORT command, before registration too, its
  005 lines in a ``draft/isupport`` batch (commands/info.py);
* ``draft/languages``: English, the only one, and honest about it (LANGUAGE);
* ``draft/multiline``: a BATCH of lines from a client is one message
  (commands/multiline.py), delivered as a batch or, to clients without it, as its lines;
* ``draft/channel-rename``: RENAME as it is; for clients without it a PART of the old
  name and a JOIN of the new (hub.py, commands/channel_ops.py);
* ``sts``: with a TLS listener, a plain connection is told its port and a TLS one
  how long to keep to TLS (:func:`sts_value`, ``--sts-duration``).
"""

from __future__ import annotations

__all__ = [
    "CHANNEL_RENAME",
    "EXTENDED_ISUPPORT",
    "ISUPPORT_BATCH",
    "LANGUAGES",
    "LANGUAGES_CAP",
    "MULTILINE",
    "MULTILINE_MAX_BYTES",
    "MULTILINE_MAX_LINES",
    "NO_IMPLICIT_NAMES",
    "PRE_AWAY",
    "STS",
    "has_multiline",
    "languages_value",
    "multiline_value",
    "sts_value",
]

CHANNEL_RENAME = "draft/channel-rename"
MULTILINE = "draft/multiline"
MULTILINE_MAX_BYTES = 4096  # of a multiline message's text, its lines added up
MULTILINE_MAX_LINES = 100
NO_IMPLICIT_NAMES = "draft/no-implicit-names"
PRE_AWAY = "draft/pre-away"
EXTENDED_ISUPPORT = "draft/extended-isupport"
ISUPPORT_BATCH = "draft/isupport"
LANGUAGES_CAP = "draft/languages"
LANGUAGES = ("en",)  # every message is English: nothing else is offered
STS = "sts"


def multiline_value() -> str:
    return f"max-bytes={MULTILINE_MAX_BYTES},max-lines={MULTILINE_MAX_LINES}"


def has_multiline(caps: frozenset[str]) -> bool:
    """A client that gets multiline batches: it asked for draft/multiline and batch."""
    return MULTILINE in caps and "batch" in caps


def languages_value() -> str:
    """``<how many a client may ask for>,<codes>``: ``1,en``."""
    return ",".join((str(len(LANGUAGES)), *LANGUAGES))


def sts_value(secure: bool, tls_port: int, duration: int) -> str:
    """What ``sts`` says: on a plain connection the TLS port to reconnect to (a duration
    there means nothing); on a TLS one how long to keep to TLS (0: no pinning)."""
    return f"duration={duration}" if secure else f"port={tls_port}"
