"""IRC command handlers, one module per family, registered in the command table.

Importing this package registers every command.
"""

from greenchat.server.commands import (  # noqa: F401
    accounts,
    channel_ops,
    channels,
    help,
    history,
    info,
    markread,
    messaging,
    metadata,
    monitor,
    multiline,
    oper,
    redact,
    registration,
    sasl,
    services,
    users,
    webirc,
)
from greenchat.server.commands.table import COMMANDS, dispatch

__all__ = ["COMMANDS", "dispatch"]
