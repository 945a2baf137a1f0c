"""IRC command handlers, one module per family, registered in the command table.

Importing this package registers every command.
"""

from greenchat.server.commands import channels, messaging, registration, users  # noqa: F401
from greenchat.server.commands.table import COMMANDS, dispatch

__all__ = ["COMMANDS", "dispatch"]
