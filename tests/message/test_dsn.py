"""DSN notices against live Postfix 3.7.11 notices (tests/message/data/dsn-*.eml).

The goldens are notices as a Maildir received them, so the lines that the
delivery agent (Return-Path, X-Original-To, Delivered-To) and cleanup
(Received, Message-Id) added are taken off before comparing; everything else
must match byte for byte (CRLF line ends). Host and times are the goldens'
own: myhostname mx.example.com, myorigin example.com, UTC.
"""

import calendar
import email
import email.policy
import re
from dataclasses import replace
from datetime import timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsys.message.dsn import Kind, NoticeSettings, build_notice, line_wrap, wants_notice
from mailsys.message.envelope import Envelope, Notify, RcptState, Recipient

DATA = Path(__file__).parent / "data"
UTC = timezone.utc
SETTINGS = NoticeSettings(myhostname="mx.example.com", myorigin="example.com",
                          mail_name="mailsys", bounce_size_limit=50000,
                          delay_warning_time=1.0, maximal_queue_lifetime=5 * 86400.0, tz=UTC)
# Postfix's own notices: the same settings with Postfix's mail_name.
POSTFIX = replace(SETTINGS, mail_name="Postfix")

# Every place where a mailsys notice differs from Postfix's with the same
# input: the "Postfix" in these comes from $mail_name (bounce_notify_util.c
# prints "X-%s-..." with mail_name), and mailsys's mail_name is "mailsys".
# Nothing else in a notice names the mail system.
WORDING = [
    (b"X-Postfix-Queue-ID: ", b"X-mailsys-Queue-ID: "),
    (b"X-Postfix-Sender: ", b"X-mailsys-Sender: "),
    (b"Diagnostic-Code: X-Postfix; ", b"Diagnostic-Code: X-mailsys; "),
]


def t(*ymdhms: int) -> int:
    return calendar.timegm(ymdhms + (0, 0, 0))


def golden(name: str) -> bytes:
    """The golden notice as the bounce daemon wrote it: CRLF, delivery/cleanup lines removed."""
    lines = (DATA / name).read_bytes().split(b"\n")
    assert lines[-1] == b""
    lines = lines[:-1]
    start = next(i for i, line in enumerate(lines) if line.startswith(b"Date: "))
    lines = lines[start:]
    end = lines.index(b"")                       # end of the notice's own header
    lines = [line for line in lines[:end] if not line.startswith(b"Message-Id: ")] + lines[end:]
    return b"".join(line + b"\r\n" for line in lines)


def returned(notice: bytes) -> bytes:
    """What follows the Return-Path that starts part 3: the original, then the closing boundary."""
    return notice.split(b"\r\nReturn-Path: <alice@example.com>\r\n", 1)[1]


RECEIVED_ERROR = (b"Received: from client.example.org (client.example.org [192.0.2.10])\r\n"
                  b"\tby mx.example.com (Postfix) with ESMTP id AFD7C20E273\r\n"
                  b"\tfor <dave@bounce.example>; Fri, 27 Nov 2026 00:22:14 +0000 (UTC)\r\n")
HEADERS_ERROR = (RECEIVED_ERROR
                 + b"From: Alice <alice@example.com>\r\n"
                 b"To: dave@bounce.example\r\n"
                 b"Subject: bounce test\r\n"
                 b"Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
                 b"Message-ID: <20240101.3@client.example.org>\r\n")
BODY = b"\r\nHello Dave.\r\nThis body must not come back with RET=HDRS.\r\n"
REFUSED = "connect to 127.0.0.1[127.0.0.1]:2: Connection refused"


def error_transport_case():
    env = Envelope(queue_id="AFD7C20E273", sender="alice@example.com",
                   arrival_time=t(2026, 11, 27, 0, 22, 14), envid="env-0001", ret="HDRS",
                   recipients=(Recipient("dave@bounce.example", orcpt="rfc822;dave@bounce.example",
                                         notify=(Notify.FAILURE,), state=RcptState.BOUNCED,
                                         dsn_status="5.1.1", reason="mailbox unavailable"),))
    return env, HEADERS_ERROR + BODY


def refused(qid: str, addr: str, arrival: float, state: RcptState) -> Envelope:
    """An entry from alice whose one recipient met "Connection refused" (4.4.1)."""
    return Envelope(queue_id=qid, sender="alice@example.com", arrival_time=arrival,
                    recipients=(Recipient(addr, orcpt=f"rfc822;{addr}", state=state,
                                          dsn_status="4.4.1", reason=REFUSED),))


def force_expired_case():
    content = (b"Received: from client.example.org (client.example.org [192.0.2.10])\r\n"
               b"\tby mx.example.com (Postfix) with ESMTP id 972C220E072\r\n"
               b"\tfor <carol@remote.example>; Fri, 27 Nov 2026 00:22:02 +0000 (UTC)\r\n"
               b"From: Alice <alice@example.com>\r\n"
               b"To: carol@remote.example\r\n"
               b"Subject: deferred test\r\n"
               b"Message-ID: <20240101.2@client.example.org>\r\n"
               b"\r\n"
               b"Hello Carol.\r\n")
    return refused("972C220E072", "carol@remote.example", t(2026, 11, 27, 0, 22, 2),
                   RcptState.BOUNCED), content


def delay_case():
    content = (b"Received: from client.example.org (client.example.org [192.0.2.10])\r\n"
               b"\tby mx.example.com (Postfix) with ESMTP id B95BD20E141\r\n"
               b"\tfor <ivan@remote.example>; Fri, 27 Nov 2026 00:23:06 +0000 (UTC)\r\n"
               b"Subject: s\r\n"
               b"\r\n"
               b"delay body, never returned in a warning\r\n")
    return refused("B95BD20E141", "ivan@remote.example", t(2026, 11, 27, 0, 23, 6),
                   RcptState.DEFERRED), content


def delay_longid_case():
    content = (b"Received: by mx.example.com (Postfix, from userid 0)\r\n"
               b"\tid 4jbDmW4NhRzJDXR; Fri, 27 Nov 2026 00:28:43 +0000 (UTC)\r\n"
               b"Subject: long id\r\n"
               b"Message-Id: <4jbDmW4NhRzJDXR@mx.example.com>\r\n"
               b"Date: Fri, 27 Nov 2026 00:28:43 +0000 (UTC)\r\n"
               b"From: root <alice@example.com>\r\n"
               b"\r\n"
               b"x\r\n")
    # a fractional arrival time: Arrival-Date and Will-Retry-Until show whole seconds
    return refused("4jbDmW4NhRzJDXR", "zoe@remote.example", t(2026, 11, 27, 0, 28, 43) + 0.51,
                   RcptState.DEFERRED), content


CASES = {
    # golden file: (case, kind, notice time = its Date and boundary time)
    "dsn-bounce-error-transport.eml": (error_transport_case, Kind.FAILURE, t(2026, 11, 27, 0, 22, 14)),
    "dsn-bounce-force-expired.eml": (force_expired_case, Kind.FAILURE, t(2026, 11, 27, 0, 22, 51)),
    "dsn-delay-warning.eml": (delay_case, Kind.DELAY, t(2026, 11, 27, 0, 23, 6)),
    "dsn-delay-warning-longid.eml": (delay_longid_case, Kind.DELAY, t(2026, 11, 27, 0, 28, 43)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_postfix_mail_name_gives_postfix_bytes(name):
    case, kind, now = CASES[name]
    env, content = case()
    notice = build_notice(kind, env, content, env.recipients, POSTFIX, now=now)
    assert notice == golden(name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_mailsys_differs_only_in_listed_wording(name):
    case, kind, now = CASES[name]
    env, content = case()
    notice = build_notice(kind, env, content, env.recipients, SETTINGS, now=now)
    expected = golden(name)
    for postfix, mailsys in WORDING:
        expected = expected.replace(postfix, mailsys)
    assert notice == expected
    assert b"Postfix" not in notice.replace(b"(Postfix", b"")   # only the copied Received: lines


@pytest.mark.parametrize("name", sorted(CASES))
def test_field_by_field(name):
    """The same comparison, per header and per MIME part, so a failure names the field."""
    case, kind, now = CASES[name]
    env, content = case()
    ours = email.message_from_bytes(build_notice(kind, env, content, env.recipients, POSTFIX,
                                                 now=now), policy=email.policy.compat32)
    theirs = email.message_from_bytes(golden(name), policy=email.policy.compat32)
    assert ours.items() == theirs.items()
    ours_parts, their_parts = ours.get_payload(), theirs.get_payload()
    assert len(ours_parts) == len(their_parts) == 3
    for mine, gold in zip(ours_parts, their_parts):
        assert mine.items() == gold.items()
        assert mine.as_bytes() == gold.as_bytes()
    # message/delivery-status: per-message fields, then one block per recipient
    report = ours_parts[1].get_payload()
    gold_report = their_parts[1].get_payload()
    assert [dict(b.items()) for b in report] == [dict(b.items()) for b in gold_report]


def test_lines_are_crlf_only():
    env, content = force_expired_case()
    notice = build_notice(Kind.FAILURE, env, content, env.recipients, SETTINGS, now=t(2026, 11, 27))
    assert notice.count(b"\n") == notice.count(b"\r\n")
    assert notice.endswith(b"--\r\n")


def test_bare_lf_content_is_returned_with_crlf():
    env, content = force_expired_case()
    lf = content.replace(b"\r\n", b"\n")
    assert build_notice(Kind.FAILURE, env, lf, env.recipients, SETTINGS, now=1) == \
        build_notice(Kind.FAILURE, env, content, env.recipients, SETTINGS, now=1)


# -- wrapping ------------------------------------------------------------------

def test_long_smtp_reason_wraps_at_79_with_4_space_indent():
    reason = ("host mx.remote.example[203.0.113.5] said: 550 5.1.1 <u@remote.example>: "
              "Recipient address rejected: User unknown in virtual mailbox table "
              "(in reply to RCPT TO command)")
    rcpt = Recipient("u@remote.example", state=RcptState.BOUNCED, dsn_status="5.1.1",
                     reason=reason, remote_mta="mx.remote.example",
                     diagnostic="smtp; 550 5.1.1 <u@remote.example>: Recipient address "
                                "rejected: User unknown in virtual mailbox table")
    env = Envelope(queue_id="AFD7C20E273", sender="alice@example.com", arrival_time=1,
                   recipients=(rcpt,))
    notice = build_notice(Kind.FAILURE, env, HEADERS_ERROR + BODY, [rcpt], SETTINGS,
                          now=t(2026, 11, 27)).decode()
    text = notice.split("\r\n\r\n                   The mail system\r\n\r\n", 1)[1]
    text = text.split("\r\n\r\n--", 1)[0]
    assert text.split("\r\n") == [
        "<u@remote.example>: host mx.remote.example[203.0.113.5] said: 550 5.1.1",
        "    <u@remote.example>: Recipient address rejected: User unknown in virtual",
        "    mailbox table (in reply to RCPT TO command)",
    ]
    assert ("\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            "Remote-MTA: dns; mx.remote.example\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 <u@remote.example>: Recipient address\r\n"
            "    rejected: User unknown in virtual mailbox table\r\n") in notice


@pytest.mark.parametrize("text, expected", [
    ("short", ["short"]),
    ("a" * 100, ["a" * 100]),                          # one long word stays whole
    ("x " + "a" * 100, ["x", "    " + "a" * 100]),
    ("w " * 50, ["w " * 39 + "w", "    " + "w " * 9 + "w"]),
    ("one  two", ["one  two"]),                       # inner blanks kept
])
def test_line_wrap_matches_postfix(text, expected):
    assert line_wrap(text) == expected
    assert all(len(line) <= 79 or " " not in line.strip() for line in line_wrap(text))


@given(st.lists(st.text(alphabet="abc<>@.:", min_size=1, max_size=30), max_size=40))
def test_line_wrap_keeps_words_and_fits(words):
    text = " ".join(words)
    lines = line_wrap(text)
    assert " ".join(line.strip() for line in lines).split() == text.split()
    assert all(line.startswith("    ") for line in lines[1:])
    for line in lines:
        assert len(line) <= 79 or " " not in line.strip()


def _notice_about(orig: str, reason: str) -> bytes:
    """A failure notice about bob@example.org, received as orig."""
    rcpt = Recipient("bob@example.org", orig=orig, state=RcptState.BOUNCED,
                     dsn_status="5.2.2", reason=reason)
    env = Envelope(queue_id="AFD7C20E273", sender="alice@example.com", arrival_time=1,
                   recipients=(rcpt,))
    return build_notice(Kind.FAILURE, env, HEADERS_ERROR + BODY, [rcpt], SETTINGS, now=2)


def test_expanded_from_and_control_characters():
    notice = _notice_about("postmaster@example.org", "mailbox full\x07 here")
    assert b"\r\n<bob@example.org> (expanded from <postmaster@example.org>): mailbox full? here\r\n" \
        in notice
    assert b"\r\nOriginal-Recipient: rfc822; postmaster@example.org\r\n" in notice
    assert b"\r\nDiagnostic-Code: X-mailsys; mailbox full? here\r\n" in notice
    assert b"\x07" not in notice


def test_an_orcpt_with_line_breaks_cannot_add_report_fields():
    # RCPT TO:<bob@example.org> ORCPT=rfc822;a+0D+0AX-Evil:+20y decodes to
    # a CR LF; Postfix's bounce server neuters every recipient and DSN
    # field to printable text before it writes a report (bounce.c
    # VS_NEUTER: printable(..., '?')).
    rcpt = Recipient("bob@example.org", orcpt="rfc822;a\r\nX-Evil: y", state=RcptState.BOUNCED,
                     dsn_status="5.2.2", reason="mailbox full",
                     remote_mta="dns; mx\r\nX-Evil2: z", diagnostic="smtp; 552 full")
    env = Envelope(queue_id="AFD7C20E273", sender="alice@example.com", arrival_time=1,
                   recipients=(rcpt,))
    notice = build_notice(Kind.FAILURE, env, HEADERS_ERROR + BODY, [rcpt], SETTINGS, now=2)
    assert b"\r\nOriginal-Recipient: rfc822;a??X-Evil: y\r\n" in notice
    assert b"\r\nRemote-MTA: dns; mx??X-Evil2: z\r\n" in notice
    assert b"\r\nX-Evil" not in notice


def test_an_original_recipient_differing_only_in_case_is_not_named():
    # bounce_append_service.c writes orig_rcpt to the bounce log only when
    # strcasecmp_utf8() finds it different from the recipient.
    notice = _notice_about("Bob@Example.ORG", "unknown user")
    assert b"\r\n<bob@example.org>: unknown user\r\n" in notice
    assert b"expanded from" not in notice and b"Original-Recipient" not in notice


# -- what comes back of the original ------------------------------------------------

def test_ret_hdrs_returns_headers_only():
    env, content = error_transport_case()
    notice = build_notice(Kind.FAILURE, env, content, env.recipients, SETTINGS, now=5)
    assert b"Content-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n" \
        in notice
    assert returned(notice) == HEADERS_ERROR + b"\r\n--AFD7C20E273.5/mx.example.com--\r\n"


def test_ret_full_returns_the_message():
    env, content = error_transport_case()
    notice = build_notice(Kind.FAILURE, env.replace(ret="FULL"), content, env.recipients,
                          SETTINGS, now=5)
    assert b"Content-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n" in notice
    assert returned(notice) == content + b"\r\n--AFD7C20E273.5/mx.example.com--\r\n"


@pytest.mark.parametrize("limit, whole", [(0, False), (1, False), (10**9, True)])
def test_bounce_size_limit(limit, whole):
    env, content = force_expired_case()
    exact = replace(SETTINGS, bounce_size_limit=len(content))
    over = replace(SETTINGS, bounce_size_limit=len(content) - 1)
    assert b"message/rfc822" in build_notice(Kind.FAILURE, env, content, env.recipients, exact, now=5)
    small = build_notice(Kind.FAILURE, env, content, env.recipients, over, now=5)
    assert b"text/rfc822-headers" in small and b"Hello Carol." not in small
    notice = build_notice(Kind.FAILURE, env, content, env.recipients,
                          replace(SETTINGS, bounce_size_limit=limit or 1), now=5)
    assert (b"Hello Carol." in notice) is whole


def test_delay_notice_headers_only_even_with_ret_full():
    env, content = delay_case()
    notice = build_notice(Kind.DELAY, env.replace(ret="FULL"), content, env.recipients, SETTINGS,
                          now=t(2026, 11, 28))
    assert b"never returned" not in notice
    assert b"Subject: Delayed Mail (still being retried)\r\n" in notice
    assert b"\r\nAction: delayed\r\n" in notice
    assert b"\r\nWill-Retry-Until: Wed,  2 Dec 2026 00:23:06 +0000 (UTC)\r\n" in notice


def test_delay_text_uses_hours_and_days():
    env, content = delay_case()
    settings = replace(SETTINGS, delay_warning_time=4 * 3600.0, maximal_queue_lifetime=3 * 86400.0)
    notice = build_notice(Kind.DELAY, env, content, env.recipients, settings, now=5)
    assert b"\r\nYour message could not be delivered for more than 4 hour(s).\r\n" \
           b"It will be retried until it is 3 day(s) old.\r\n" in notice
    assert b"\r\nWill-Retry-Until: Mon, 30 Nov 2026 00:23:06 +0000 (UTC)\r\n" in notice


def test_success_report_action_as_the_agent_gave_it():
    # Postfix 3.7.11, pipe entries with and without flag X, NOTIFY=SUCCESS:
    #   <v@pipeq.test>: delivery via pipeq: delivered via pipeq service
    #   Final-Recipient: rfc822; v@pipeq.test ... Action: relayed
    #   Final-Recipient: rfc822; u@pipex.test ... Action: delivered
    env, content = force_expired_case()
    rcpts = [Recipient("v@pipeq.test", state=RcptState.SENT, dsn_status="2.0.0", action="relayed",
                       reason="delivery via pipeq: delivered via pipeq service"),
             Recipient("u@pipex.test", state=RcptState.SENT, dsn_status="2.0.0", action="delivered",
                       reason="delivery via pipex: delivered via pipex service")]
    notice = build_notice(Kind.SUCCESS, env, content, rcpts, SETTINGS, now=5).decode()
    assert "\r\n<v@pipeq.test>: delivery via pipeq: delivered via pipeq service\r\n" in notice
    assert ("Final-Recipient: rfc822; v@pipeq.test\r\nAction: relayed\r\nStatus: 2.0.0\r\n"
            "Diagnostic-Code: X-mailsys; delivery via pipeq: delivered via pipeq service\r\n") in notice  # mail_name
    assert "Final-Recipient: rfc822; u@pipex.test\r\nAction: delivered\r\n" in notice


def test_success_report():
    env, content = force_expired_case()
    rcpts = [Recipient("carol@remote.example", state=RcptState.SENT, dsn_status="2.0.0",
                       reason="250 2.0.0 Ok", remote_mta="mx.remote.example",
                       diagnostic="smtp; 250 2.0.0 Ok"),
             Recipient("bob@example.com", state=RcptState.SENT, dsn_status="2.0.0",
                       reason="delivered to maildir")]
    notice = build_notice(Kind.SUCCESS, env, content, rcpts, SETTINGS, now=5)
    assert b"Subject: Successful Mail Delivery Report\r\n" in notice
    assert b"Your message was successfully delivered to the destination(s)\r\n" in notice
    assert b"\r\nAction: relayed\r\n" in notice and b"\r\nAction: delivered\r\n" in notice
    assert b"Content-Description: Message Headers\r\n" in notice     # no "Undelivered"
    assert b"Hello Carol." not in notice


def test_postmaster_copy():
    env, content = force_expired_case()
    notice = build_notice(Kind.FAILURE, env, content, env.recipients, SETTINGS, now=5,
                          postmaster="postmaster")
    msg = email.message_from_bytes(notice, policy=email.policy.compat32)
    assert msg["Subject"] == "Postmaster Copy: Undelivered Mail"
    assert msg["To"] == "postmaster"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert b"I'm sorry" not in notice and b"The mail system" not in notice
    assert b"Content-Type: text/plain; charset=us-ascii\r\n\r\n\r\n<carol@remote.example>: " \
        in notice
    assert b"Hello Carol." not in notice


def test_no_envid_no_field_and_null_sender():
    env, content = force_expired_case()
    notice = build_notice(Kind.FAILURE, env.replace(sender=""), content, env.recipients,
                          SETTINGS, now=5, postmaster="postmaster")
    assert b"Original-Envelope-Id" not in notice
    # bounce_notify_util.c: mail_addr_mail_daemon(), MAILER-DAEMON@$myhostname
    # (seen live with Postfix 3.7.11).
    assert b"\r\nX-mailsys-Sender: rfc822; MAILER-DAEMON@mx.example.com\r\n" in notice
    assert b"\r\nReturn-Path: <MAILER-DAEMON@mx.example.com>\r\n" in notice


# -- 8-bit and SMTPUTF8 --------------------------------------------------------

def test_8bit_original():
    env, content = force_expired_case()
    content = content.replace(b"Hello Carol.", "Grüße, Carol.".encode())
    notice = build_notice(Kind.FAILURE, env, content, env.recipients, SETTINGS, now=5)
    msg = email.message_from_bytes(notice, policy=email.policy.compat32)
    assert msg["Content-Transfer-Encoding"] == "8bit"
    notification, report, original = msg.get_payload()
    assert notification["Content-Type"] == "text/plain; charset=utf-8"
    assert notification["Content-Transfer-Encoding"] == "8bit"
    assert report["Content-Transfer-Encoding"] is None       # only for SMTPUTF8
    assert original["Content-Transfer-Encoding"] == "8bit"
    assert "Grüße".encode() in notice


def test_body_7bit_declared():
    env, content = force_expired_case()
    notice = build_notice(Kind.FAILURE, env.replace(body_type="7BIT"), content, env.recipients,
                          SETTINGS, now=5)
    assert notice.count(b"Content-Transfer-Encoding") == 1
    assert b'boundary="972C220E072.5/mx.example.com"\r\nContent-Transfer-Encoding: 7bit\r\n' \
        in notice
    assert b"charset=us-ascii" in notice


def test_smtputf8_uses_global_types():
    env, content = force_expired_case()
    rcpt = Recipient("jörg@münchen.example", state=RcptState.BOUNCED, dsn_status="5.1.1",
                     reason="unknown user")
    env = env.replace(sender="zoë@example.com", smtputf8=True, recipients=(rcpt,))
    notice = build_notice(Kind.FAILURE, env, content, [rcpt], SETTINGS, now=5)
    text = notice.decode("utf-8")
    assert "Content-Type: message/global-delivery-status\r\nContent-Transfer-Encoding: 8bit\r\n" \
        in text
    assert "Content-Type: message/global\r\n" in text
    assert "\r\nX-mailsys-Sender: utf-8; zoë@example.com\r\n" in text
    assert "\r\nFinal-Recipient: utf-8; jörg@münchen.example\r\n" in text
    assert "\r\nTo: zoë@example.com\r\n" in text
    hdrs = build_notice(Kind.DELAY, env, content, [rcpt], SETTINGS, now=5)
    assert b"Content-Type: message/global-headers\r\n" in hdrs


# -- NOTIFY --------------------------------------------------------------------

@pytest.mark.parametrize("notify, failure, delay, success", [
    ((), True, True, False),
    ((Notify.NEVER,), False, False, False),
    ((Notify.SUCCESS,), False, False, True),
    ((Notify.FAILURE, Notify.DELAY), True, True, False),
    ((Notify.FAILURE,), True, False, False),
])
def test_wants_notice(notify, failure, delay, success):
    rcpt = Recipient("a@b.example", notify=notify)
    assert [wants_notice(rcpt, k) for k in (Kind.FAILURE, Kind.DELAY, Kind.SUCCESS)] == \
        [failure, delay, success]


def test_notice_is_valid_multipart_report():
    env, content = force_expired_case()
    notice = build_notice(Kind.FAILURE, env, content, env.recipients, SETTINGS, now=5)
    msg = email.message_from_bytes(notice, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert [p.get_content_type() for p in msg.iter_parts()] == \
        ["text/plain", "message/delivery-status", "message/rfc822"]
    assert not msg.defects and all(not p.defects for p in msg.walk())
    assert re.fullmatch(r"972C220E072\.5/mx\.example\.com", msg.get_boundary())


def test_settings_from_config(tmp_path):
    from mailsys.config import load
    (tmp_path / "main.cf").write_text(
        "myhostname = mx.example.com\nmydomain = example.com\nmyorigin = $mydomain\n"
        "bounce_size_limit = 1000\ndelay_warning_time = 4\nmaximal_queue_lifetime = 3\n")
    settings = NoticeSettings.from_config(load(tmp_path), tz=UTC)
    assert settings == NoticeSettings(myhostname="mx.example.com", myorigin="example.com",
                                      mail_name="mailsys", bounce_size_limit=1000,
                                      delay_warning_time=4 * 3600.0,
                                      maximal_queue_lifetime=3 * 86400.0, tz=UTC)
