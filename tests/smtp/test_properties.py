"""Property tests: any split of a pipelined session gives the same events and
replies; random byte streams never raise anything but RemoteProtocolError and
always produce well-formed replies."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from _smtp_testlib import TRANSACTION, run, well_formed

from mailsys.smtp import DataChunk, EndOfData

SESSION = (TRANSACTION.replace(b"QUIT\r\n", b"") +
           b"MAIL FROM:<> BODY=8BITMIME\r\nRCPT TO:<x@y>\r\nBDAT 7\r\n.\r\n\r\n..BDAT 2 LAST\r\nok"
           b"RSET\r\nVRFY someone\r\nNOOP\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
           b"line\n.\r\nfake\r.\r\n..\r\n.\r\nQUIT\r\n")
OPTS = dict(auth_mechanisms=("PLAIN", "LOGIN"), starttls=True, etrn=True)
WHOLE = run(SESSION, **OPTS)


def test_session_reference_is_sane():
    assert WHOLE.replies[-1] == "221 2.0.0 Bye"
    assert len(WHOLE.of(EndOfData)) == 3
    assert well_formed(WHOLE.out)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(SESSION) - 1), max_size=40))
def test_any_split_gives_the_same_session(splits):
    res = run(SESSION, splits=splits, **OPTS)
    assert res.out == WHOLE.out
    assert res.events == WHOLE.events


def test_every_single_split_point():
    for cut in range(1, len(SESSION)):
        res = run(SESSION, splits=[cut], **OPTS)
        assert res.out == WHOLE.out, cut
        assert res.events == WHOLE.events, cut


FRAGMENTS = [
    b"EHLO x\r\n", b"HELO x\r\n", b"MAIL FROM:<a@b>\r\n", b"MAIL FROM:<>\r\n", b"RCPT TO:<c@d>\r\n",
    b"RCPT TO:<c@d> NOTIFY=NEVER\r\n", b"DATA\r\n", b".\r\n", b"\r\n.\r\n", b"\n.\n", b"\r\n", b"\n",
    b"\r", b".", b"..", b"BDAT 3\r\n", b"BDAT 0 LAST\r\n", b"BDAT 2 LAST\r\n", b"BDAT x\r\n",
    b"AUTH PLAIN\r\n", b"AUTH LOGIN dXNlcg==\r\n", b"*\r\n", b"dXNlcg==\r\n", b"STARTTLS\r\n",
    b"RSET\r\n", b"NOOP\r\n", b"VRFY u\r\n", b"ETRN d\r\n", b"HELP\r\n", b"QUIT\r\n", b"From: x\r\n",
    b"\x00", b"\xff", "ü".encode(), b"x" * 3000, b"MAIL FROM:<a@b> SIZE=99999999999\r\n",
]
stream = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=40)), max_size=30).map(b"".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream, st.integers(min_value=0, max_value=50), st.sampled_from(["normalize", "reject", "no"]))
def test_random_streams_only_yield_replies(data, step, mode):
    # run() turns RemoteProtocolError into its reply; any other exception fails the test.
    res = run(data, step=step or None, eof=True, forbid_bare_newline=mode,
              message_size_limit=500, hard_error_limit=8, **OPTS)
    assert well_formed(res.out)
    for line in res.replies:
        assert len(line) >= 3 and line[:3].isdigit() and line[3:4] in (" ", "-")
    body = b"".join(e.data for e in res.events if isinstance(e, DataChunk))
    if mode == "normalize":
        # normalized content never holds a bare LF
        assert body.count(b"\n") == body.count(b"\r\n")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_body_bytes_round_trip(payload):
    # Whatever the body holds, the message ends at the first CRLF.CRLF we add
    # after dot-stuffing it, and the content comes back unstuffed.
    if b"\n" in payload.replace(b"\r\n", b""):
        return
    stuffed = b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in payload.split(b"\r\n"))
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
        payload += b"\r\n"
    if payload == b"\r\n":
        return
    res = run(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" + stuffed + b".\r\nNOOP\r\n",
              forbid_bare_newline="no")
    assert res.body == payload
    assert res.replies[-1] == "250 2.0.0 Ok"
