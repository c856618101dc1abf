"""One milter conversation: which bytes go at each stage, which replies are
awaited, what a milter may answer where."""

import struct

import pytest

from mailsys.milter import protocol as p
from mailsys.milter.conversation import (Conversation, EndOfMessage, Stage, macro_defaults,
                                         macro_lists)
from mailsys.milter.macros import MacroValues

POSTFIX_MACROS = {
    "milter_connect_macros": "j {daemon_name} {daemon_addr} v _",
    "milter_helo_macros": "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    "milter_mail_macros": "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
    "milter_rcpt_macros": "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
    "milter_data_macros": "i",
    "milter_end_of_header_macros": "i",
    "milter_end_of_data_macros": "i",
}


def pkt(code: bytes, payload: bytes = b"") -> p.Packet:
    return p.Packet(code, payload)


def negotiated(actions=0x1FF, protocol=0, lists=b"") -> Conversation:
    conv = Conversation("inet:127.0.0.1:8891", macro_lists(POSTFIX_MACROS))
    assert conv.negotiate()[4:5] == b"O"
    conv.negotiated(pkt(b"O", struct.pack(">III", 6, actions, protocol) + lists))
    return conv


def test_connect_sends_macros_then_command_and_awaits_reply():
    conv = negotiated()
    step = conv.step(Stage.CONNECT, b"payload",
                     {"j": "mx.example", "daemon_name": "mx.example", "v": "mailsys 1",
                      "_": "unknown [192.0.2.1]", "daemon_addr": None})
    macros = b"Cj\x00mx.example\x00{daemon_name}\x00mx.example\x00v\x00mailsys 1\x00" \
             b"_\x00unknown [192.0.2.1]\x00"
    assert step.data == struct.pack(">I", len(macros) + 1) + b"D" + macros \
        + b"\x00\x00\x00\x08Cpayload"
    assert step.expects_reply
    assert conv.receive(pkt(b"c")) == p.Continue()


def test_no_flags_skip_steps_and_nr_flags_skip_replies():
    conv = negotiated(protocol=p.Proto.NOHELO | p.Proto.NR_RCPT | p.Proto.NOBODY)
    assert conv.step(Stage.HELO, b"x\0") is None
    step = conv.step(Stage.RCPT, b"<b@example.org>\0", {"i": "Q1", "rcpt_addr": "b@example.org"})
    assert not step.expects_reply
    assert step.data == pkt_bytes(b"D", b"Ri\x00Q1\x00{rcpt_addr}\x00b@example.org\x00") \
        + pkt_bytes(b"R", b"<b@example.org>\x00")
    with pytest.raises(p.MilterProtocolError):       # no reply was awaited
        conv.receive(pkt(b"c"))
    assert conv.step(Stage.BODY, b"text") is None
    assert conv.step(Stage.EOM, b"").expects_reply   # end of message always answers


def test_milter_symbol_list_replaces_configured_macros():
    conv = negotiated(lists=struct.pack(">I", 2) + b"{mail_addr}\x00")
    step = conv.step(Stage.MAIL, b"<a@example.org>\0", {"i": "Q1", "mail_addr": "a@example.org"})
    assert step.data.startswith(pkt_bytes(b"D", b"M{mail_addr}\x00a@example.org\x00"))


def pkt_bytes(code, payload):
    return struct.pack(">I", len(payload) + 1) + code + payload


def test_accept_in_message_silences_until_next_message():
    conv = negotiated()
    conv.step(Stage.MAIL, b"<a@x>\0")
    assert conv.receive(pkt(b"a")) == p.Accept()
    assert conv.step(Stage.RCPT, b"<b@x>\0") is None
    assert conv.step(Stage.EOM, b"") is None
    conv.end_message()
    assert conv.step(Stage.MAIL, b"<a@x>\0") is not None


def test_accept_at_connect_silences_the_whole_session():
    conv = negotiated()
    conv.step(Stage.CONNECT, b"x")
    conv.receive(pkt(b"a"))
    conv.end_message()
    assert conv.step(Stage.MAIL, b"<a@x>\0") is None
    assert conv.abort() is None


def test_end_of_message_collects_modifications_then_verdict():
    conv = negotiated()
    conv.step(Stage.EOM, b"")
    assert conv.receive(pkt(b"p")) is None
    assert conv.receive(pkt(b"h", b"X-Milter\x00yes\x00")) is None
    assert conv.receive(pkt(b"-", b"<b@example.org>\x00")) is None
    result = conv.receive(pkt(b"c"))
    assert result == EndOfMessage(p.Continue(), (p.AddHeader("X-Milter", "yes"),
                                                 p.DeleteRecipient("<b@example.org>")))


def test_modification_outside_end_of_message_or_without_action_is_an_error():
    conv = negotiated(actions=p.Action.ADDHDRS)
    conv.step(Stage.RCPT, b"<b@x>\0")
    with pytest.raises(p.MilterProtocolError):
        conv.receive(pkt(b"h", b"X\x00y\x00"))
    conv.step(Stage.EOM, b"")
    with pytest.raises(p.MilterProtocolError):
        conv.receive(pkt(b"+", b"<c@x>\x00"))        # ADDRCPT not negotiated


def test_skip_only_in_body_with_skip_negotiated():
    conv = negotiated(protocol=p.Proto.SKIP)
    conv.step(Stage.BODY, b"chunk")
    assert conv.receive(pkt(b"s")) == p.Skip()
    assert conv.step(Stage.BODY, b"more") is None
    conv = negotiated()
    conv.step(Stage.BODY, b"chunk")
    with pytest.raises(p.MilterProtocolError):
        conv.receive(pkt(b"s"))


def test_negotiation_refuses_what_was_not_offered():
    conv = Conversation("m", {}, actions=p.Action.ADDHDRS)
    with pytest.raises(p.MilterProtocolError):
        conv.negotiated(pkt(b"O", struct.pack(">III", 6, 0x3, 0)))
    conv = Conversation("m", {})
    with pytest.raises(p.MilterProtocolError):
        conv.negotiated(pkt(b"O", struct.pack(">III", 7, 0, 0)))
    with pytest.raises(p.MilterProtocolError):
        conv.negotiated(pkt(b"c"))


def test_abort_and_quit_bytes():
    conv = negotiated()
    assert conv.abort() == b"\x00\x00\x00\x01A"
    assert conv.quit() == b"\x00\x00\x00\x01Q"


def test_macro_defaults_fill_macros_without_a_value():
    # milter_macro_defaults (Postfix 3.1): a listed macro with no value of
    # its own takes its default; one with a value keeps it.
    lists = dict(POSTFIX_MACROS, milter_connect_macros="j {foo} bar {daemon_addr}")
    conv = Conversation("inet:127.0.0.1:8891", macro_lists(lists),
                        macro_defaults=macro_defaults("foo=1, {bar = two words} j=other"))
    conv.negotiated(pkt(b"O", struct.pack(">III", 6, 0x1FF, 0)))
    step = conv.step(Stage.CONNECT, b"x", {"j": "mx.example", "daemon_addr": None})
    assert step.data.startswith(pkt_bytes(
        b"D", b"Cj\x00mx.example\x00{foo}\x001\x00bar\x00two words\x00"))


def test_macro_defaults_syntax():
    assert macro_defaults("") == {}
    assert macro_defaults("{foo}=1 {bar}=2 baz=3") == {"foo": "1", "bar": "2", "baz": "3"}
    assert macro_defaults("a=1,b=2 {c = x, y} { d=}") == {"a": "1", "b": "2", "c": "x, y", "d": ""}
    for bad in ("novalue", "{a=1", "=1"):
        with pytest.raises(ValueError):
            macro_defaults(bad)


def test_unknown_command_goes_to_milters_of_protocol_3_and_later():
    conv = negotiated()
    step = conv.step(Stage.UNKNOWN, b"FOO bar\x00", {})
    # The stage's macros go even when there are none (Postfix 3.7.11, seen live).
    assert step.data == pkt_bytes(b"D", b"U") + pkt_bytes(b"U", b"FOO bar\x00")
    assert step.expects_reply
    assert conv.receive(pkt(b"r")) == p.Reject()
    assert negotiated(protocol=p.Proto.NOUNKNOWN).step(Stage.UNKNOWN, b"FOO\x00") is None
    for version, data in ((2, False), (3, False), (4, True)):
        old = Conversation("inet:127.0.0.1:8891", macro_lists(POSTFIX_MACROS))
        old.negotiated(pkt(b"O", struct.pack(">III", version, 0x1FF, 0)))
        assert (old.step(Stage.UNKNOWN, b"FOO\x00") is not None) is (version >= 3)
        assert (old.step(Stage.DATA, b"") is not None) is data


def test_macro_values_are_worked_out_once_and_only_when_asked():
    calls = []

    def host():
        calls.append(1)
        return "example.com"
    values = MacroValues({"i": "Q1", "mail_host": host, "mail_mailer": lambda: None})
    conv = negotiated(lists=struct.pack(">I", 2) + b"i\x00")
    conv.step(Stage.MAIL, b"<a@example.com>\x00", values)
    assert calls == []
    conv = negotiated()
    step = conv.step(Stage.MAIL, b"<a@example.com>\x00", values)
    assert step.data.startswith(pkt_bytes(b"D", b"Mi\x00Q1\x00{mail_host}\x00example.com\x00"))
    assert values["mail_host"] == "example.com" and calls == [1]
    assert values.updated({"i": "Q2"})["i"] == "Q2" and values["i"] == "Q1"


def test_unknown_command_macros_come_from_their_parameter():
    lists = dict(POSTFIX_MACROS, milter_unknown_command_macros="{client_addr} i")
    conv = Conversation("inet:127.0.0.1:8891", macro_lists(lists))
    conv.negotiated(pkt(b"O", struct.pack(">III", 6, 0x1FF, 0)))
    step = conv.step(Stage.UNKNOWN, b"FOO\x00", {"client_addr": "192.0.2.1", "i": None})
    assert step.data == pkt_bytes(b"D", b"U{client_addr}\x00192.0.2.1\x00") \
        + pkt_bytes(b"U", b"FOO\x00")
