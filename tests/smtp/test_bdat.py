"""BDAT (RFC 3030 CHUNKING): exact chunk sizes, LAST, limits, no mixing with DATA."""

from __future__ import annotations

import pytest
from _smtp_testlib import QID, run

from mailsys.smtp import Bdat, DataChunk, EndOfChunk, EndOfData, Noop, replies

START = b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
STEPS = [None, 1, 4]


def bdat_policy(conn, event):
    if isinstance(event, EndOfData):
        return replies.bdat_queued(event.size, QID)
    return None


@pytest.mark.parametrize("step", STEPS)
def test_two_chunks(step):
    data = START + b"BDAT 5\r\nab\r\ncBDAT 3 LAST\r\n.\r\nNOOP\r\n"
    res = run(data, step=step, policy=bdat_policy)
    # bytes are taken exactly: no dot-unstuffing, no terminator, CRLF inside is content
    assert res.body == b"ab\r\nc.\r\n"
    assert res.of(Bdat) == [Bdat(5, False), Bdat(3, True)]
    assert res.of(EndOfChunk) == [EndOfChunk(5, 5)]
    assert res.of(EndOfData) == [EndOfData(8)]
    assert res.replies[-3:] == ["250 2.0.0 Ok: 5 bytes", f"250 2.0.0 Ok: 8 bytes queued as {QID}",
                                "250 2.0.0 Ok"]
    assert res.of(Noop) == [Noop()]
    assert res.conn.command_stats() == "ehlo=1 mail=1 rcpt=1 bdat=2 noop=1 commands=6"


def test_bdat_zero_last():
    # The size is Postfix's: the last line gets the CRLF the queue file adds.
    res = run(START + b"BDAT 4\r\nabcdBDAT 0 LAST\r\n", policy=bdat_policy)
    assert res.of(EndOfData) == [EndOfData(6)]
    assert res.replies[-1] == f"250 2.0.0 Ok: 6 bytes queued as {QID}"


def test_bdat_single_last_chunk():
    res = run(START + b"bdat 3 last\r\nxyz", policy=bdat_policy)
    assert res.body == b"xyz" and res.of(EndOfData) == [EndOfData(5)]
    assert res.replies[-1] == f"250 2.0.0 Ok: 5 bytes queued as {QID}"


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("chunks,size", [
    (b"BDAT 5 LAST\r\nab\r\nc", 7),                      # the last line without CRLF
    (b"BDAT 4 LAST\r\na\nb\n", 6),                        # each bare LF counts as CRLF
    (b"BDAT 2\r\na\rBDAT 3 LAST\r\n\nb\n", 6),            # a CRLF across two chunks
    (b"BDAT 2\r\nabBDAT 0 LAST\r\n", 4),
    (b"BDAT 0 LAST\r\n", 0),
])
def test_bdat_queued_size_counts_lines_as_postfix(chunks, size, step):
    # smtpd.c bdat_cmd(): act_size adds each line's length plus 2.
    res = run(START + chunks, step=step, policy=bdat_policy)
    assert res.replies[-1] == f"250 2.0.0 Ok: {size} bytes queued as {QID}"


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("before,reply", [
    # smtpd.c bdat_cmd(): the same words as DATA without a transaction.
    (b"", "503 5.5.1 Error: need RCPT command"),
    (b"MAIL FROM:<a@b>\r\n", "554 5.5.1 Error: no valid recipients"),
])
def test_bdat_out_of_order_is_skipped_then_refused(before, reply, step):
    res = run(before + b"BDAT 6\r\nNOOP\r\nRSET\r\n", step=step)
    assert res.replies[-2:] == [reply, "250 2.0.0 Ok"]
    assert not res.of(Noop)          # the chunk's bytes were not read as commands


def test_null_bdat():
    res = run(START + b"BDAT 0\r\nRSET\r\n")
    assert res.replies[-2:] == ["551 5.7.1 Null BDAT request", "250 2.0.0 Ok"]


def test_chunk_over_size_limit():
    res = run(START + b"BDAT 60\r\n" + b"x" * 60 + b"BDAT 50 LAST\r\n" + b"y" * 50 + b"NOOP\r\n",
              message_size_limit=100, policy=bdat_policy)
    assert res.replies[-3:] == ["250 2.0.0 Ok: 60 bytes", "552 5.3.4 Chunk exceeds message size limit",
                                "250 2.0.0 Ok"]
    assert res.conn.state.value == "IDLE"      # the transaction is gone
    assert not res.of(EndOfData)


def test_data_mail_rcpt_after_bdat():
    # smtpd.c mail_cmd() looks at the open transaction before BDAT: MAIL is nested.
    res = run(START + b"BDAT 1\r\nxDATA\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRSET\r\n")
    assert res.replies[-4:] == ["503 5.5.1 Error: DATA after BDAT", "503 5.5.1 Error: nested MAIL command",
                                "503 5.5.1 Error: RCPT after BDAT", "250 2.0.0 Ok"]


# After a refused BDAT, Postfix (smtpd.c SMTPD_BDAT_STAT_ERROR) reads and
# discards every further chunk of the message until BDAT LAST or RSET; the
# replies below are Postfix 3.7.11's to the same bytes.

@pytest.mark.parametrize("step", STEPS)
def test_failed_bdat_spoils_the_transaction(step):
    res = run(START + b"BDAT 0\r\nBDAT 3\r\nabcBDAT 0 LAST\r\nNOOP\r\n", step=step,
              policy=bdat_policy)
    assert res.replies[-4:] == ["551 5.7.1 Null BDAT request",
                                "551 5.0.0 Discarded 3 bytes after earlier error",
                                "551 5.0.0 Discarded 0 bytes after earlier error", "250 2.0.0 Ok"]
    assert not res.of(Bdat) and not res.of(EndOfData) and res.body == b""
    assert res.conn.state.value == "IDLE" and res.conn.mail is None
    assert res.conn.command_stats() == "ehlo=1 mail=1 rcpt=1 bdat=0/3 noop=1 commands=4/7"


def test_null_bdat_then_last_queues_nothing():
    res = run(START + b"BDAT 0\r\nBDAT 0 LAST\r\n", policy=bdat_policy)
    assert res.replies[-2:] == ["551 5.7.1 Null BDAT request",
                                "551 5.0.0 Discarded 0 bytes after earlier error"]
    assert not res.of(EndOfData)


def test_bdat_without_mail_spoils_later_chunks():
    res = run(b"EHLO c\r\nBDAT 3\r\nabcBDAT 0 LAST\r\nMAIL FROM:<a@b.c>\r\n")
    assert res.replies[-3:] == ["503 5.5.1 Error: need RCPT command",
                                "551 5.0.0 Discarded 0 bytes after earlier error", "250 2.1.0 Ok"]


def test_mail_and_data_after_failed_bdat_until_rset():
    res = run(b"EHLO c\r\nBDAT 0\r\nMAIL FROM:<a@b.c>\r\nDATA\r\nRCPT TO:<x@example.net>\r\n"
              b"RSET\r\nMAIL FROM:<a@b.c>\r\n")
    assert res.replies[-6:] == ["551 5.7.1 Null BDAT request", "503 5.5.1 Error: MAIL after BDAT",
                                "503 5.5.1 Error: DATA after BDAT", "503 5.5.1 Error: need MAIL command",
                                "250 2.0.0 Ok", "250 2.1.0 Ok"]


def test_failed_bdat_keeps_the_transaction_open():
    res = run(START + b"BDAT 0\r\nMAIL FROM:<c@d.e>\r\nRCPT TO:<x@example.net>\r\nDATA\r\n"
              b"ETRN example.net\r\n", etrn=True)
    assert res.replies[-5:] == ["551 5.7.1 Null BDAT request", "503 5.5.1 Error: nested MAIL command",
                                "503 5.5.1 Error: RCPT after BDAT", "503 5.5.1 Error: DATA after BDAT",
                                "503 Error: MAIL transaction in progress"]


def test_ehlo_ends_the_bdat_error_state():
    res = run(b"EHLO c\r\nBDAT 0\r\nEHLO c\r\nMAIL FROM:<a@b.c>\r\n")
    assert res.replies[-1] == "250 2.1.0 Ok"


def test_refused_chunk_discards_the_rest_of_the_message():
    # smtpd.c bdat_cmd(): a chunk that the queue refused (state->err) ends
    # the transaction and the chunks pipelined after it are discarded.
    def policy(conn, event):
        if isinstance(event, EndOfChunk):
            return replies.Reply(451, "4.3.0", "Error: queue file write error")
        return bdat_policy(conn, event)

    res = run(START + b"BDAT 2\r\nabBDAT 2 LAST\r\ncdMAIL FROM:<a@b.c>\r\n", policy=policy)
    assert res.replies[-3:] == ["451 4.3.0 Error: queue file write error",
                                "551 5.0.0 Discarded 2 bytes after earlier error", "250 2.1.0 Ok"]
    assert not res.of(EndOfData)


def test_non_final_chunk_over_the_limit_discards_the_rest():
    res = run(START + b"BDAT 60\r\n" + b"x" * 60 + b"BDAT 50\r\n" + b"y" * 50
              + b"BDAT 1 LAST\r\nzNOOP\r\n", message_size_limit=100, policy=bdat_policy)
    assert res.replies[-4:] == ["250 2.0.0 Ok: 60 bytes", "552 5.3.4 Chunk exceeds message size limit",
                                "551 5.0.0 Discarded 1 bytes after earlier error", "250 2.0.0 Ok"]
    assert not res.of(EndOfData)


def test_bdat_syntax_error_hangs_up():
    res = run(START + b"BDAT many\r\n")
    assert res.replies[-1] == "521 5.5.4 Syntax: BDAT count [LAST]"
    assert res.conn.closed


def test_bdat_without_chunking_hangs_up():
    # smtpd.c bdat_cmd(): CHUNKING discarded, the content that follows
    # cannot be told from commands: "521 5.5.1 Error: command not implemented".
    res = run(START + b"BDAT 1 LAST\r\n", chunking=False)
    assert res.replies[-1] == "521 5.5.1 Error: command not implemented"
    assert res.conn.closed


def test_where_stays_bdat_content_after_a_chunk():
    # smtpd.c: "lost connection after BDAT (N bytes)", also between chunks
    # (bdat_cmd() leaves state->where at "BDAT content" after a chunk).
    res = run(START + b"BDAT 5\r\nab\r\nc")
    assert res.conn.after("lost connection") == "lost connection after BDAT (5 bytes)"
    res = run(START + b"BDAT 5\r\nab\nc")
    assert res.conn.after("timeout") == "timeout after BDAT (5 bytes)"
    res = run(START + b"BDAT 4\r\nab\r\n")
    assert res.replies[-1] == "250 2.0.0 Ok: 4 bytes"
    assert res.conn.after("lost connection") == "lost connection after BDAT (4 bytes)"


def test_bdat_chunk_events_follow_reads():
    conn = run(START).conn
    conn.receive_data(b"BDAT 6 LAST\r\nabc")
    assert conn.next_event() == Bdat(6, True)
    assert conn.next_event() == DataChunk(b"abc")
    conn.receive_data(b"defQUIT\r\n")
    assert conn.next_event() == DataChunk(b"def")
    assert conn.next_event() == EndOfData(8)     # with the CRLF Postfix counts


def test_eof_inside_chunk():
    res = run(START + b"BDAT 10\r\nabc", eof=True)
    assert res.events[-1].__class__.__name__ == "ConnectionClosed"
    assert res.conn.command_stats() == "ehlo=1 mail=1 rcpt=1 bdat=0/1 commands=3/4"
