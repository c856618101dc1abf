"""DATA bodies: the only end is CRLF.CRLF; dot-unstuffing; bare LF modes; size limit.

Every case runs whole, one byte at a time, in 3-byte steps, and with
trailing pipelined commands after the body.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from _smtp_testlib import HOST, QID, run

from mailsys.smtp import DataChunk, DataRejected, EndOfData, Noop
from mailsys.smtp._body import DataReader

START = b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
STEPS = [None, 1, 3]


def body_of(payload: bytes, step=None, **kw):
    res = run(START + payload, step=step, **kw)
    return res


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("payload,content", [
    (b".\r\n", b""),
    (b"a\r\n.\r\n", b"a\r\n"),
    (b"..\r\n.\r\n", b".\r\n"),
    (b"...\r\n.\r\n", b"..\r\n"),
    (b"..x\r\n.y\r\n.\r\n", b".x\r\ny\r\n"),
    (b"a\r\n..\r\nb\r\n.\r\n", b"a\r\n.\r\nb\r\n"),
    (b"a\r\n\r\n.\r\n", b"a\r\n\r\n"),
    (b"a\x00b\r\n.\r\n", b"a\x00b\r\n"),           # embedded NUL passes
    (b"caf\xc3\xa9 \xff\r\n.\r\n", b"caf\xc3\xa9 \xff\r\n"),
    (b"no final newline.\r\n.\r\n", b"no final newline.\r\n"),
])
def test_content_and_unstuffing(payload, content, step):
    res = body_of(payload + b"NOOP\r\n", step=step)
    assert res.body == content
    assert res.of(EndOfData) == [EndOfData(len(content), False)]
    assert res.of(Noop) == [Noop()]                 # trailing command read after the body
    assert res.codes == [250, 250, 354, 250, 250]


SMUGGLING = [
    b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r", b"\n.\r",
    b"\r.\n", b"\r\n\x00.\r\n", b"\r\n.\x00\r\n", b"\r\n .\r\n", b"\r\n.\r\r\n",
]


@pytest.mark.parametrize("mode", ["normalize", "reject", "no"])
@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("fake_end", SMUGGLING)
def test_smuggling_never_ends_the_message(fake_end, step, mode):
    # The second message hides behind a fake end of data; it must stay content.
    payload = (b"Subject: one\r\n\r\nfirst" + fake_end +
               b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
               b"smuggled\r\n.\r\nQUIT\r\n")
    res = body_of(payload, step=step, forbid_bare_newline=mode)
    ends = res.of(EndOfData) + res.of(DataRejected)
    assert len(ends) == 1
    assert len(res.events) == 3 + 1 + 1 + 1  # mail rcpt data, one chunk, end, quit
    assert b"evil@example.com" in res.body and b"smuggled" in res.body
    assert res.replies[-1] == "221 2.0.0 Bye"
    assert [e.address for e in res.events[:2]] == ["a@example.com", "b@example.com"]


@pytest.mark.parametrize("step", STEPS)
def test_bare_lf_normalize(step):
    res = body_of(b"a\nb\r\n.c\n..d\n.\r\n.\r\n", step=step)
    # bare LF is a line end: stored as CRLF, and the dot after it is unstuffed
    assert res.body == b"a\r\nb\r\nc\r\n.d\r\n\r\n"
    assert res.of(EndOfData)[0].bare_lf
    assert res.replies[-1] == f"250 2.0.0 Ok: queued as {QID}"


@pytest.mark.parametrize("step", STEPS)
def test_bare_lf_reject_reads_to_end_then_rejects(step):
    res = body_of(b"a\nb\r\n.\r\nNOOP\r\n", step=step, forbid_bare_newline="reject")
    rejected = res.of(DataRejected)
    assert len(rejected) == 1 and rejected[0].reason == "bare <LF> received"
    assert res.replies[-2:] == [f"550 5.5.2 {HOST} Error: bare <LF> received", "250 2.0.0 Ok"]
    assert res.conn.command_stats() == "mail=1 rcpt=1 data=0/1 noop=1 commands=3/4"


def test_bare_lf_reject_code_521_hangs_up():
    res = body_of(b"a\nb\r\n.\r\nNOOP\r\n", forbid_bare_newline="reject", bare_newline_reject_code=521)
    assert res.replies[-1] == f"521 5.5.2 {HOST} Error: bare <LF> received"
    assert res.conn.closed


@pytest.mark.parametrize("step", STEPS)
def test_bare_lf_no_passes_unchanged(step):
    res = body_of(b"a\nb\r\n.c\n.d\r\n.\r\n", step=step, forbid_bare_newline="no")
    assert res.body == b"a\nb\r\nc\n.d\r\n"
    assert res.of(EndOfData)[0].bare_lf


def test_crlf_only_body_has_no_bare_lf_flag():
    res = body_of(b"a\r\nb\r\n.\r\n", forbid_bare_newline="reject")
    assert res.of(EndOfData) == [EndOfData(6, False)]


def test_bare_cr_is_content():
    res = body_of(b"a\rb\r\n.\r\n", forbid_bare_newline="reject")
    assert res.body == b"a\rb\r\n"


@pytest.mark.parametrize("step", [None, 1, 1000])
def test_message_too_big_read_to_end_then_rejected(step):
    big = (b"x" * 98 + b"\r\n") * 30        # 3000 bytes
    res = body_of(big + b".\r\nNOOP\r\n", step=step, message_size_limit=1000)
    rejected = res.of(DataRejected)
    assert len(rejected) == 1 and rejected[0].reason == "message file too big"
    assert res.replies[-2:] == ["552 5.3.4 Error: message file too big", "250 2.0.0 Ok"]
    assert len(res.body) <= 1000
    assert res.conn.command_stats() == "mail=1 rcpt=1 data=0/1 noop=1 commands=3/4"


def test_size_exactly_at_limit_is_accepted():
    res = body_of(b"x" * 98 + b"\r\n.\r\n", message_size_limit=100)
    assert res.of(EndOfData) == [EndOfData(100)]


def test_large_body_comes_in_large_chunks():
    line = b"y" * 998 + b"\r\n"
    body = line * 100                       # 100 KB in one read: one event, no per-line work
    conn = run(START).conn
    conn.receive_data(body)
    first = conn.next_event()
    assert isinstance(first, DataChunk) and len(first.data) == len(body) - 2
    conn.receive_data(b".\r\n")
    assert conn.next_event() == DataChunk(b"\r\n")
    assert conn.next_event() == EndOfData(len(body))


def test_reader_hands_out_whole_buffers():
    reader = DataReader("normalize", 0)
    data = (b"z" * 78 + b"\r\n") * 1000
    content, done, leftover = reader.feed(data)
    # all but the last CRLF (kept back until we know no "." follows) in one piece
    assert not done and content == data[:-2]
    content, done, leftover = reader.feed(b".\r\nQUIT\r\n")
    assert (content, done, leftover) == (b"\r\n", True, b"QUIT\r\n")
    assert reader.size == len(data)


def test_dot_at_start_of_body():
    reader = DataReader("normalize", 0)
    assert reader.feed(b".") == (b"", False, b"")
    assert reader.feed(b".x\r\n.\r\n") == (b".x\r\n", True, b"")


def test_chunk_events_are_raw_bytes_not_merged():
    res = run(START)
    conn = res.conn
    conn.receive_data(b"abc")
    assert conn.next_event() == DataChunk(b"abc")
    conn.receive_data(b"def\r")
    assert conn.next_event() == DataChunk(b"def")
    conn.receive_data(b"\n.\r\n")
    assert conn.next_event() == DataChunk(b"\r\n")
    assert conn.next_event() == EndOfData(8)


class _Reference:
    """The reader's rules written the plain way (one full search per rule)."""

    def __init__(self, mode: str) -> None:
        self.mode, self.tail, self.first, self.bare_lf = mode, b"\r\n", True, False

    def feed(self, data: bytes):
        w = self.tail + data
        end = w.find(b"\r\n.\r\n")
        if end >= 0:
            region, leftover, done, self.tail = w[:end + 2], w[end + 5:], True, b""
        else:
            crlf = w.rfind(b"\r\n")
            cut = crlf if 0 <= crlf and len(w) - crlf < 5 else \
                len(w) - 1 if w.endswith((b"\r", b"\n")) else len(w)
            region, leftover, done, self.tail = w[:cut], b"", False, w[cut:]
        if region:
            region = region.replace(b"\n.", b"\n") if self.mode == "normalize" \
                else region.replace(b"\r\n.", b"\r\n")
            if region.count(b"\n") != region.count(b"\r\n"):
                self.bare_lf = True
                if self.mode == "normalize":
                    region = region.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            if self.first:
                region, self.first = region[2:], False
        return region, done, leftover


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b".", b"..", b"x", b"\r\n.\r\n", b"\n.",
                                 b"\r\n.", b"yz"]), max_size=40),
       st.lists(st.integers(min_value=1, max_value=12), max_size=20),
       st.sampled_from(["normalize", "reject", "no"]))
def test_reader_matches_the_plain_rules(pieces, steps, mode):
    data = b"".join(pieces)
    reader, ref = DataReader(mode, 0), _Reference(mode)
    pos, got, want = 0, [], []
    for step in steps + [len(data) + 1]:
        chunk = data[pos:pos + step]
        pos += step
        a, b = reader.feed(chunk), ref.feed(chunk)
        got.append(a)
        want.append(b)
        if a[1] or b[1] or pos >= len(data):
            break
    # the same content, end and leftover at every step, and the same bare LF verdict
    assert got == want
    assert reader.bare_lf == ref.bare_lf
