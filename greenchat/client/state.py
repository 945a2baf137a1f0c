"""What the client knows about its session: nick, account, caps, ISUPPORT, channels and members.

Kept up to date from the server's lines by :meth:`ClientState.apply` (pure:
no I/O), so a user interface can complete nicks and list members.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from greenchat.protocol.casemap import casefold
from greenchat.protocol.message import Message, split_source

__all__ = ["ChannelState", "ClientState"]

_PREFIX_SYMBOLS = "~&@%+"


@dataclass
class ChannelState:
    name: str
    members: dict[str, str] = field(default_factory=dict)  # casefolded nick -> nick
    topic: str = ""

    @property
    def nicks(self) -> list[str]:
        return sorted(self.members.values(), key=casefold)


class ClientState:
    def __init__(self, nick: str) -> None:
        self.reset(nick)

    def reset(self, nick: str) -> None:
        self.nick = nick
        self.account = ""  # logged in to (900), until logged out (901)
        self.caps: set[str] = set()
        self.isupport: dict[str, str] = {}
        self.channels: dict[str, ChannelState] = {}

    def is_me(self, nick: str) -> bool:
        return casefold(nick) == casefold(self.nick)

    def apply(self, msg: Message) -> None:
        """Update the state from one server line (most lines, like PRIVMSG, change nothing)."""
        handler = _HANDLERS.get(msg.command.upper())
        if handler is not None:
            handler(self, msg, split_source(msg.source or "")[0])

    def _on_005(self, msg: Message, _: str) -> None:
        for token in msg.params[1:-1]:
            key, _, value = token.partition("=")
            self.isupport[key.lstrip("-")] = value

    def _on_900(self, msg: Message, _: str) -> None:
        if len(msg.params) > 3:
            self.account = msg.params[2]

    def _on_901(self, msg: Message, _: str) -> None:
        self.account = ""

    def _on_353(self, msg: Message, _: str) -> None:
        channel = self.channels.get(casefold(msg.params[-2]))
        if channel is None:
            return
        for entry in msg.params[-1].split():
            nick = entry.lstrip(_PREFIX_SYMBOLS).split("!", 1)[0]
            channel.members[casefold(nick)] = nick

    def _on_332(self, msg: Message, _: str) -> None:
        channel = self.channels.get(casefold(msg.params[1]))
        if channel is not None:
            channel.topic = msg.params[-1]

    def _on_join(self, msg: Message, nick: str) -> None:
        name = msg.params[0]
        if self.is_me(nick):
            self.channels[casefold(name)] = ChannelState(name)
        channel = self.channels.get(casefold(name))
        if channel is not None:
            channel.members[casefold(nick)] = nick

    def _on_part(self, msg: Message, nick: str) -> None:
        self._leave(msg.params[0], nick)

    def _on_kick(self, msg: Message, _: str) -> None:
        self._leave(msg.params[0], msg.params[1])

    def _leave(self, name: str, nick: str) -> None:
        if self.is_me(nick):
            self.channels.pop(casefold(name), None)
            return
        channel = self.channels.get(casefold(name))
        if channel is not None:
            channel.members.pop(casefold(nick), None)

    def _on_quit(self, msg: Message, nick: str) -> None:
        for channel in self.channels.values():
            channel.members.pop(casefold(nick), None)

    def _on_nick(self, msg: Message, nick: str) -> None:
        new = msg.params[0]
        if self.is_me(nick):
            self.nick = new
        for channel in self.channels.values():
            if channel.members.pop(casefold(nick), None) is not None:
                channel.members[casefold(new)] = new

    def _on_topic(self, msg: Message, _: str) -> None:
        channel = self.channels.get(casefold(msg.params[0]))
        if channel is not None:
            channel.topic = msg.params[-1]


# Commands that change the state, looked up once per line.
_HANDLERS = {
    name[4:].upper(): method
    for name, method in vars(ClientState).items()
    if name.startswith("_on_")
}
