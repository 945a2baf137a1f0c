"""Every change of network state reaches the hub's observers as an event (events.py)."""

from __future__ import annotations

from greenchat.server.events import KINDS, dumps, loads
from greenchat.server.oper import hash_password


def test_every_kind_of_change_is_observed_as_an_event(make_server, connect):
    server = make_server(opers={"admin": hash_password("pw")})
    seen: list = []
    server.call(lambda: server.server.hub.observe(seen.append))
    op = connect("op", port=server.port).join("#e")
    bob = connect("bob", port=server.port).join("#e")
    op.send(
        "TOPIC #e :hello",
        "MODE #e +o-t+b bob *!*@nowhere",
        "INVITE carol #e",  # nobody called carol: 401, no event
        "PRIVMSG #e :hi",
        "NOTICE bob :psst",
        "AWAY :out",
        "AWAY",
        "SETNAME :Op Erator",
        "MODE op +i",
        "METADATA * SET avatar :op.png",
        "PRIVMSG NickServ :REGISTER s3cret-pw",  # logged in: an account change
        "NICK op2",
    )
    op.sync()
    said = next(e for e in list(seen) if e.kind == "message" and e.text == "hi")
    op.send(f"REDACT #e {said.msgid} :oops")  # as the channel's operator
    carol = connect("carol", port=server.port)
    op.send("RENAME #e #f", "INVITE carol #f", "KICK #f bob :bye", "PART #f")
    op.sync()
    op.send("OPER admin pw")
    op.expect(r" 381 op2 ")
    op.send("WALLOPS :maintenance", "CHGHOST carol ~c new.host", "KILL carol :enough")
    carol.expect_closed()
    bob.send("QUIT :done")
    bob.expect_closed()
    op.sync("last")
    kinds = {event.kind for event in list(seen)}
    assert kinds == set(KINDS), set(KINDS) - kinds
    for event in list(seen):
        assert loads(dumps(event)) == event
    modes = next(e for e in seen if e.kind == "cmode")
    assert modes.changes == (("+", "o", "bob"), ("-", "t", ""), ("+", "b", "*!*@nowhere"))
    quits = [e for e in seen if e.kind == "quit"]
    assert {e.nick for e in quits} == {"carol", "bob"}
