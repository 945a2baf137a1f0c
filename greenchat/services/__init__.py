"""Services: NickServ and ChanServ, pseudo-users spoken to by PRIVMSG.

``SERVICES`` maps each service's casefolded nick to it; the server holds it as
``server.services`` (the command modules look services up there, never import
them: services import the command table), messaging.py hands a PRIVMSG to one of
them instead of to a user, and their nicks can never be taken.
"""

from greenchat.protocol.casemap import casefold
from greenchat.services.base import Service
from greenchat.services.chanserv import CHANSERV
from greenchat.services.nickserv import NICKSERV

__all__ = ["SERVICES", "Service"]

SERVICES: dict[str, Service] = {casefold(s.nick): s for s in (NICKSERV, CHANSERV)}
