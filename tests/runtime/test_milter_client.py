"""MilterSession against a real milter on loopback (tests/integration/milter_peer.py,
written from the protocol description without mailsys.milter), one that is down
and one that never answers."""

from __future__ import annotations

import functools
import os
import runpy
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio
from structlog.testing import capture_logs

from mailsys.ipc.codec import decode, encode
from mailsys.ipc.proto.cleanup import CleanupRequest
from mailsys.milter import protocol as p
from mailsys.milter.edits import MilterMessage
from mailsys.runtime.milter import (DEFAULT_REJECT_REPLY, REJECT_REPLY, TEMPFAIL_REPLY,
                                    MilterSession, MilterSettings, MilterSpec, _parse)
from mailsys.milter.conversation import macro_lists
from mailsys.smtp import Reply

pytestmark = pytest.mark.timeout(30)

MilterPeer = runpy.run_path(str(Path(__file__).parents[1] / "integration" / "milter_peer.py"))["MilterPeer"]

MACROS = macro_lists({"milter_connect_macros": "j {daemon_name} v _",
                      "milter_mail_macros": "i {mail_addr}", "milter_rcpt_macros": "i {rcpt_addr}",
                      "milter_data_macros": "i", "milter_end_of_data_macros": "i"})


def trio_test(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return trio.run(functools.partial(fn, *args, **kwargs))
    return wrapper


def settings(*endpoints: str, default_action="tempfail", timeout=5.0) -> MilterSettings:
    base = MilterSpec("", timeout, timeout, timeout, default_action, 6)
    return MilterSettings(tuple(_parse(e, base, "smtpd_milters") for e in endpoints), MACROS,
                          "mx.example")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONNECT_MACROS = {"j": "mx.example", "daemon_name": "mx.example", "v": "mailsys 0.1.0",
                  "_": "unknown [127.0.0.1]"}


def test_per_milter_settings_override_main_cf():
    s = settings("inet:127.0.0.1:1, default_action=accept, command_timeout=7s, protocol=4")
    spec = s.milters[0]
    assert (spec.endpoint, spec.default_action, spec.command_timeout, spec.protocol) == \
        ("inet:127.0.0.1:1", "accept", 7.0, 4)
    with capture_logs() as logs:
        spec = settings("inet:127.0.0.1:1, default_action=bounce").milters[0]
    assert spec.default_action == "tempfail"
    assert "bad default_action" in logs[0]["event"]


@pytest.mark.parametrize("action,expected", [
    ("tempfail", TEMPFAIL_REPLY), ("reject", DEFAULT_REJECT_REPLY), ("accept", None),
    ("quarantine", "hold")])
@trio_test
async def test_milter_down_answers_its_default_action(action, expected):
    port = free_port()
    session = MilterSession(settings(f"inet:127.0.0.1:{port}", default_action=action), Path("/"))
    with capture_logs() as logs:
        verdict = await session.connect("unknown", "127.0.0.1", 4000, CONNECT_MACROS)
        later = await session.rcpt(("<b@example.org>",), {})
    await session.aclose()
    assert logs[0]["event"] == f"connect to Milter service inet:127.0.0.1:{port}: Connection refused"
    assert logs[0]["log_level"] == "warning"
    for v in (verdict, later):
        if expected is None:
            assert v is None
        elif expected == "hold":
            assert v.kind == "hold"
        else:
            assert v.kind == "reply" and v.reply == expected


@pytest.mark.parametrize("action,expected", [
    ("tempfail", TEMPFAIL_REPLY), ("reject", DEFAULT_REJECT_REPLY), ("accept", None),
    ("quarantine", None)])
@trio_test
async def test_a_command_milters_are_not_told_of_gets_the_refusal_they_stand_by(action, expected):
    # Postfix's milter_other_event() (VRFY): 3.7.11 answered "VRFY
    # root@localhost" with "451 4.7.1 Service unavailable - try again later"
    # when its milter was down with the tempfail default action.
    session = MilterSession(settings(f"inet:127.0.0.1:{free_port()}", default_action=action),
                            Path("/"))
    assert session.other_event() is None               # nothing failed yet
    with capture_logs():
        await session.connect("unknown", "127.0.0.1", 4000, CONNECT_MACROS)
    assert session.other_event() == expected
    await session.aclose()


@trio_test
async def test_conversation_with_a_real_milter():
    peer = MilterPeer(rcpt={"bad@example.org": "r", "busy@example.org": "y452 4.3.1 Slow down",
                            "odd@example.org": "y550 no enhanced code"},
                      eom_add=[("X-Milter", "seen")],
                      eom_swap_rcpt=("b@example.org", "c@example.org"))
    with peer.running() as port:
        session = MilterSession(settings(f"inet:127.0.0.1:{port}"), Path("/"))
        assert await session.connect("unknown", "127.0.0.1", 4000, CONNECT_MACROS) is None
        assert await session.helo("client.example", {}) is None
        assert await session.mail(("<a@example.org>", "SIZE=10"), {"mail_addr": "a@example.org"}) is None
        v = await session.rcpt(("<bad@example.org>",), {"rcpt_addr": "bad@example.org"})
        assert v.reply == REJECT_REPLY == Reply(550, "5.7.1", "Command rejected")
        v = await session.rcpt(("<busy@example.org>",), {})
        assert v.reply == Reply(452, "4.3.1", "Slow down")
        v = await session.rcpt(("<odd@example.org>",), {})
        assert v.reply == Reply(550, None, "no enhanced code")
        assert await session.rcpt(("<b@example.org>",), {"i": "QID1", "rcpt_addr": "b@example.org"}) is None
        assert await session.data({"i": "QID1"}) is None
        msg = MilterMessage.parse(b"Subject: hi\r\nFrom: a@example.org\r\n\r\nline\r\n")
        outcome = await session.message(msg, {"i": "QID1"})
        await session.abort()
        await session.aclose()
    assert outcome.verdict is None and outcome.changed
    assert outcome.message.content() == (b"Subject: hi\r\nFrom: a@example.org\r\n"
                                         b"X-Milter: seen\r\n\r\nline\r\n")
    assert outcome.envelope.deleted == ("<b@example.org>",)
    assert [a.address for a in outcome.envelope.added] == ["<c@example.org>"]
    codes = [c for c, _ in peer.seen]
    assert codes[:3] == [b"O", b"D", b"C"]
    assert peer.seen[2][1] == b"[127.0.0.1]\x004\x0f\xa0127.0.0.1\x00"
    assert peer.macros(b"C") == {"j": "mx.example", "{daemon_name}": "mx.example",
                                 "v": "mailsys 0.1.0", "_": "unknown [127.0.0.1]"}
    assert peer.macros(b"R") == {"i": "QID1", "{rcpt_addr}": "b@example.org"}
    assert (b"M", b"<a@example.org>\x00SIZE=10\x00") in peer.seen
    assert peer.headers() == [("Subject", "hi"), ("From", "a@example.org")]
    assert (b"B", b"line\r\n") in peer.seen
    assert codes[-2:] == [b"A", b"Q"]


@trio_test
async def test_end_of_message_reject_keeps_no_changes_and_later_milters_are_not_asked():
    first = MilterPeer(eom="y554 5.7.1 Spam", eom_add=[("X-A", "1")])
    second = MilterPeer()
    with first.running() as p1, second.running() as p2:
        session = MilterSession(settings(f"inet:127.0.0.1:{p1}", f"inet:127.0.0.1:{p2}"), Path("/"))
        await session.connect("host.example", "127.0.0.1", 1, {})
        await session.mail(("<a@x>",), {})
        outcome = await session.message(MilterMessage.parse(b"A: b\r\n\r\n"), {})
        await session.aclose()
    assert outcome.verdict.reply == Reply(554, "5.7.1", "Spam")
    assert not outcome.changed
    assert b"E" not in [c for c, _ in second.seen] and b"M" in [c for c, _ in second.seen]


@trio_test
async def test_silent_milter_times_out_to_default_action():
    async def silent(stream):
        await stream.receive_some(100)      # the OPTNEG
        await stream.send_all(p.encode(p.ReplyCode.OPTNEG,
                                       b"\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00\x00\x00"))
        await trio.sleep(10)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        session = MilterSession(settings(f"inet:127.0.0.1:{port}", timeout=0.3), Path("/"))
        with capture_logs() as logs:
            verdict = await session.connect("h", "127.0.0.1", 1, {})
            again = await session.mail(("<a@x>",), {})
        await session.aclose()
        nursery.cancel_scope.cancel()
    assert verdict.reply == TEMPFAIL_REPLY and again.reply == TEMPFAIL_REPLY
    assert [e["event"] for e in logs] == [
        f"milter inet:127.0.0.1:{port}: can't read SMFIC_CONNECT reply packet header: "
        "Connection timed out"]


@pytest.mark.parametrize("behaviour,warning", [
    ("close", "can't read SMFIC_MAIL reply packet header: Application error"),
    ("garbage", "unexpected filter response (unknown filter reply) after event SMFIC_MAIL"),
    ("header", "unexpected filter response SMFIR_ADDHEADER after event SMFIC_MAIL")])
@trio_test
async def test_broken_milter_is_logged_as_postfix_logs_it(behaviour, warning):
    # Postfix 3.7.11's warnings for these, seen live (the third by analogy).
    async def broken(stream):
        data = b""
        while True:
            chunk = await stream.receive_some(1000)
            if not chunk:
                return
            data += chunk
            while data[4:5] == b"D":        # the macros before a command
                data = data[4 + int.from_bytes(data[:4], "big"):]
            if data[4:5] == b"O":
                await stream.send_all(p.encode(p.ReplyCode.OPTNEG,
                                               b"\x00\x00\x00\x06\x00\x00\x01\xff\x00\x00\x00\x00"))
            elif b"M<a@x>" in data:
                if behaviour == "close":
                    await stream.aclose()
                    return
                await stream.send_all(p.encode(b"Z") if behaviour == "garbage"
                                      else p.encode(b"h", b"X\x00y\x00"))
                await trio.sleep(5)
            elif data[4:5] == b"C":
                await stream.send_all(p.encode(b"c"))
            data = b""

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, broken, 0,
                                                          host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        session = MilterSession(settings(f"inet:127.0.0.1:{port}"), Path("/"))
        with capture_logs() as logs:
            assert await session.connect("h", "127.0.0.1", 1, {}) is None
            verdict = await session.mail(("<a@x>",), {})
        await session.aclose()
        nursery.cancel_scope.cancel()
    assert verdict.reply == TEMPFAIL_REPLY
    assert [e["event"] for e in logs] == [f"milter inet:127.0.0.1:{port}: {warning}"]


def test_custom_replies_one_line_several_lines_and_stray_line_ends():
    from mailsys.runtime.milter import _custom_reply
    assert _custom_reply(550, "5.7.1 Go away") == Reply(550, "5.7.1", "Go away")
    assert _custom_reply(451, "try later") == Reply(451, None, "try later")
    multi = _custom_reply(550, "5.7.1 one\r\n550-5.7.1 two\r\n550 5.7.1 three")
    assert multi.render() == b"550-5.7.1 one\r\n550-5.7.1 two\r\n550 5.7.1 three\r\n"
    assert _custom_reply(554, "5.7.1 bad\nline").render() == b"554 5.7.1 bad line\r\n"


@trio_test
async def test_unix_socket_milter_relative_to_the_queue_directory(tmp_path):
    # "unix:private/milter" names a socket under queue_directory, as Postfix's do.
    seen = []

    async def answer(stream):
        decoder = p.PacketDecoder()
        while data := await stream.receive_some(1000):
            decoder.feed(data)
            while (packet := decoder.next_packet()) is not None:
                seen.append(packet.code)
                if packet.code == b"O":
                    await stream.send_all(p.encode(p.ReplyCode.OPTNEG, b"\0\0\0\x06" + b"\0" * 8))
                elif packet.code == b"M":
                    await stream.send_all(p.encode(b"y", b"550 5.7.1 unix says no\0"))
                elif packet.code not in (b"D", b"Q"):
                    await stream.send_all(p.encode(b"c"))

    (tmp_path / "private").mkdir()
    path = str(tmp_path / "private" / "milter")
    sock = trio.socket.socket(trio.socket.AF_UNIX)
    await sock.bind(path)
    sock.listen()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, answer, [trio.SocketListener(sock)])
        session = MilterSession(settings("unix:private/milter"), tmp_path)
        assert await session.connect("h", "127.0.0.1", 1, {}) is None
        verdict = await session.mail(("<a@x>",), {})
        await session.aclose()
        nursery.cancel_scope.cancel()
    assert verdict.reply == Reply(550, "5.7.1", "unix says no")
    assert [code for code in seen if code != b"D"][:3] == [b"O", b"C", b"M"]


@trio_test
async def test_a_conversation_handed_over_goes_on_where_it_was():
    # smtpd's half (connect .. DATA) then cleanup's (header .. end of
    # message) on a duplicate of the same connection, the state crossing
    # as a CleanupRequest would carry it: the milter sees one conversation,
    # with the macro list it asked for (SETSYMLIST is not in the peer, so
    # the configured one) and SMFIP flags as negotiated.
    peer = MilterPeer(eom_add=[("X-Milter", "seen")], protocol=0x800)
    with peer.running() as port:
        smtpd = MilterSession(settings(f"inet:127.0.0.1:{port}"), Path("/"))
        assert await smtpd.connect("unknown", "127.0.0.1", 4000, CONNECT_MACROS) is None
        assert await smtpd.mail(("<a@example.org>",), {"i": "Q1"}) is None
        assert await smtpd.rcpt(("<b@example.org>",), {"i": "Q1"}) is None
        assert await smtpd.data({"i": "Q1"}) is None
        states, fds, where = smtpd.handoff()
        assert len(states) == len(fds) == 1 and where == [0]
        request = decode(encode(CleanupRequest("Q1", "a@example.org", (), b"", 0.0,
                                               milters=states)))
        cleanup = MilterSession.adopted(settings(), request.milters, [os.dup(fds[0])], {})
        outcome = await cleanup.message(MilterMessage.parse(b"Subject: hi\r\n\r\nline\r\n"),
                                        {"i": "Q1"})
        await cleanup.release()
        await smtpd.abort()
        await smtpd.aclose()
    assert request.milters[0].protocol & p.Proto.RCPT_REJ
    assert outcome.verdict is None and outcome.message.content().endswith(
        b"X-Milter: seen\r\n\r\nline\r\n")
    codes = [c for c, _ in peer.seen]
    assert codes == [b"O", b"D", b"C", b"D", b"M", b"D", b"R", b"D", b"T", b"D", b"L", b"D",
                     b"N", b"D", b"B", b"D", b"E", b"A", b"Q"]
    assert peer.connections == 1 and peer.macros(b"E") == {"i": "Q1"}
