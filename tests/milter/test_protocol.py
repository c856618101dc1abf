"""The milter wire format: bytes written out by hand from the protocol
description (4-byte length, command byte, payload), fed whole and byte by byte."""

import struct

import pytest
from hypothesis import given, strategies as st

from mailsys.milter import protocol as p


def pkt(code: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload) + 1) + code + payload


def test_optneg_bytes():
    assert p.optneg(6, 0x1FF, 0x1FFFFF) == b"\x00\x00\x00\x0dO" + \
        b"\x00\x00\x00\x06" + b"\x00\x00\x01\xff" + b"\x00\x1f\xff\xff"


def test_connect_inet_and_unknown():
    assert p.connect("mx.example", "4", 25, "192.0.2.1") == pkt(
        b"C", b"mx.example\x004\x00\x19192.0.2.1\x00")
    assert p.connect("unknown", "U", 0, "") == pkt(b"C", b"unknown\x00U")


def test_macro_packet_names_the_command_it_precedes():
    data = p.macros(p.Command.RCPT, (("i", "4F2A1C"), ("{rcpt_addr}", "b@example.org")))
    assert data == pkt(b"D", b"Ri\x004F2A1C\x00{rcpt_addr}\x00b@example.org\x00")


def test_body_is_cut_at_chunk_size():
    body = b"x" * (p.CHUNK_SIZE + 10)
    chunks = p.body_chunks(body)
    assert [len(c) - 5 for c in chunks] == [p.CHUNK_SIZE, 10]
    assert all(c[4:5] == b"B" for c in chunks)
    assert p.body_chunks(b"") == []


@pytest.mark.parametrize("step", [None, 1, 3])
def test_decoder_any_split(step):
    stream = pkt(b"c") + pkt(b"h", b"X-A\x00v\x00") + pkt(b"y", b"550 5.7.1 no\x00")
    dec = p.PacketDecoder()
    got = []
    pieces = [stream] if step is None else [stream[i:i + step] for i in range(0, len(stream), step)]
    for piece in pieces:
        dec.feed(piece)
        while (packet := dec.next_packet()) is not None:
            got.append(p.parse_reply(packet))
    assert got == [p.Continue(), p.AddHeader("X-A", "v"), p.CustomReply(550, "5.7.1 no")]


def test_decoder_refuses_oversized_and_empty_lengths():
    dec = p.PacketDecoder(max_packet=100)
    dec.feed(struct.pack(">I", 101) + b"b")
    with pytest.raises(p.MilterProtocolError):
        dec.next_packet()
    dec = p.PacketDecoder()
    dec.feed(b"\x00\x00\x00\x00")
    with pytest.raises(p.MilterProtocolError):
        dec.next_packet()


@pytest.mark.parametrize("raw,event", [
    (pkt(b"a"), p.Accept()), (pkt(b"r"), p.Reject()), (pkt(b"t"), p.Tempfail()),
    (pkt(b"d"), p.Discard()), (pkt(b"s"), p.Skip()), (pkt(b"p"), p.Progress()),
    (pkt(b"4"), p.Shutdown()), (pkt(b"f"), p.Shutdown()),
    (pkt(b"i", b"\x00\x00\x00\x02X-B\x00w\x00"), p.InsertHeader(2, "X-B", "w")),
    (pkt(b"m", b"\x00\x00\x00\x01Subject\x00\x00"), p.ChangeHeader(1, "Subject", "")),
    (pkt(b"+", b"<c@example.org>\x00"), p.AddRecipient("<c@example.org>")),
    (pkt(b"2", b"<c@example.org>\x00NOTIFY=NEVER\x00"),
     p.AddRecipient("<c@example.org>", "NOTIFY=NEVER")),
    (pkt(b"-", b"<b@example.org>\x00"), p.DeleteRecipient("<b@example.org>")),
    (pkt(b"e", b"<s@example.org>\x00"), p.ChangeSender("<s@example.org>")),
    (pkt(b"b", b"new\r\nbody\r\n"), p.ReplaceBody(b"new\r\nbody\r\n")),
    (pkt(b"q", b"spam\x00"), p.Quarantine("spam")),
    (pkt(b"y", b"421 4.7.0 go away\x00"), p.CustomReply(421, "4.7.0 go away")),
])
def test_each_reply(raw, event):
    dec = p.PacketDecoder()
    dec.feed(raw)
    assert p.parse_reply(dec.next_packet()) == event


@pytest.mark.parametrize("raw", [
    pkt(b"h", b"X-A\x00"),                      # value missing
    pkt(b"h", b"X-A\x00v"),                     # not NUL-terminated
    pkt(b"i", b"\x00\x00"),                     # index cut short
    pkt(b"y", b"250 fine\x00"),                 # not a 4XX/5XX
    pkt(b"y", b"55\x00"),
    pkt(b"Z"),                                  # no such reply
])
def test_malformed_replies(raw):
    dec = p.PacketDecoder()
    dec.feed(raw)
    with pytest.raises(p.MilterProtocolError):
        p.parse_reply(dec.next_packet())


def test_optneg_reply_with_symbol_lists():
    payload = struct.pack(">III", 6, 0x01, 0x1000) + struct.pack(">I", 3) + b"{rcpt_addr} i\x00" \
        + struct.pack(">I", 0) + b"j\x00"
    neg = p.parse_optneg(payload)
    assert neg.version == 6 and neg.actions == p.Action.ADDHDRS
    assert neg.protocol == p.Proto.NR_CONN
    assert neg.symlists == ((p.MacroStage.ENVRCPT, ("{rcpt_addr}", "i")),
                            (p.MacroStage.CONNECT, ("j",)))
    with pytest.raises(p.MilterProtocolError):
        p.parse_optneg(struct.pack(">III", 6, 0, 0) + struct.pack(">I", 9) + b"j\x00")


@given(st.lists(st.tuples(st.sampled_from(list(p.ReplyCode)), st.binary(max_size=50)), max_size=8),
       st.integers(1, 7))
def test_framing_round_trip(packets, step):
    stream = b"".join(p.encode(code, payload) for code, payload in packets)
    dec = p.PacketDecoder()
    out = []
    for i in range(0, len(stream), step):
        dec.feed(stream[i:i + step])
        while (packet := dec.next_packet()) is not None:
            out.append((packet.code, packet.payload))
    assert out == [(code.value, payload) for code, payload in packets]


@given(st.binary(max_size=200))
def test_parse_reply_raises_only_protocol_errors(payload):
    for code in p.ReplyCode:
        try:
            p.parse_reply(p.Packet(code.value, payload))
        except p.MilterProtocolError:
            pass
