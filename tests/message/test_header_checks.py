"""header_checks: the action of one table answer, and what clean_header does with it."""

from __future__ import annotations

import pytest

from mailsys.message.header_checks import ContentAction, Verdict, log_text, verdict
from mailsys.message.headers import HeaderPolicy, clean_header
from mailsys.message.reply import StatusReply

SUBJECT = "Subject: buy now"


@pytest.mark.parametrize("value, expected", [
    ("DUNNO", Verdict()),
    ("ok", Verdict()),
    ("IGNORE", Verdict(edit="ignore")),
    ("REPLACE X-Subject: was here", Verdict(edit="replace", line="X-Subject: was here")),
    ("PREPEND X-Flag: yes", Verdict(edit="prepend", line="X-Flag: yes")),
    ("REJECT", Verdict(action=ContentAction("reject", SUBJECT, "5.7.1 message content rejected"),
                       error=StatusReply(550, "5.7.1", "message content rejected"))),
    ("REJECT 5.7.0 no spam", Verdict(action=ContentAction("reject", SUBJECT, "5.7.0 no spam"),
                                     error=StatusReply(550, "5.7.0", "no spam"))),
    ("reject 4.7.1 try later", Verdict(action=ContentAction("reject", SUBJECT, "4.7.1 try later"),
                                       error=StatusReply(450, "4.7.1", "try later"))),
    ("WARN looks odd", Verdict(action=ContentAction("warning", SUBJECT, "looks odd"))),
    ("INFO", Verdict(action=ContentAction("info", SUBJECT, ""))),
    ("HOLD", Verdict(action=ContentAction("hold", SUBJECT, ""))),
    ("DISCARD gone", Verdict(action=ContentAction("discard", SUBJECT, "gone"))),
    ("FILTER smtp:[127.0.0.1]:10025", Verdict(action=ContentAction("filter", SUBJECT,
                                                                   "smtp:[127.0.0.1]:10025"))),
    ("BCC a@example.org", Verdict(action=ContentAction("bcc", SUBJECT, "a@example.org"))),
    ("REDIRECT nowhere", Verdict(action=ContentAction("unknown", SUBJECT, "REDIRECT nowhere"))),
    ("PREPEND not a header", Verdict(action=ContentAction("unknown", SUBJECT,
                                                          "PREPEND not a header"))),
    ("FROB", Verdict(action=ContentAction("unknown", SUBJECT, "FROB"))),
])
def test_verdict(value, expected):
    assert verdict(value, SUBJECT) == expected


def test_log_text_as_postfix_writes_it():
    act = ContentAction("reject", "Subject: buy viagra", "5.7.1 message content rejected")
    assert log_text(act, origin="unknown[127.0.0.1]", sender="a@x.test", recipient="b@example.net",
                    proto="ESMTP", helo="vm") == (
        "reject: header Subject: buy viagra from unknown[127.0.0.1]; from=<a@x.test> "
        "to=<b@example.net> proto=ESMTP helo=<vm>: 5.7.1 message content rejected")
    assert log_text(ContentAction("hold", "X: " + "y" * 300), origin="local", sender="",
                    recipient=None) == "hold: header X: " + "y" * 197 + " from local; from=<>"
    assert log_text(ContentAction("warning", "Content-Type: a;\n\tname=x"), origin="local",
                    sender="", recipient=None).startswith("warning: header Content-Type: a;??name=x ")


def clean(content: bytes, table: dict[str, str]):
    return clean_header(content, policy=HeaderPolicy("mx.example"), received="Received: by mx",
                        queue_id="4jbJDG3zVyz09x4", arrival=0.0, sender="a@x.test",
                        add_missing=False,
                        check=lambda header: next((v for k, v in table.items()
                                                   if header.startswith(k)), None))


def test_clean_header_edits_and_reports():
    content = (b"X-Drop: yes\r\nSubject: buy\r\n now\r\nX-Old: 1\r\nX-Tag: a\r\n"
               b"Message-Id: <m@x>\r\n\r\nbody\r\n")
    seen = []
    result = clean_header(content, policy=HeaderPolicy("mx.example"), received="Received: by mx",
                          queue_id="4jbJDG3zVyz09x4", arrival=0.0, sender="a@x.test",
                          add_missing=False,
                          check=lambda h: seen.append(h) or {"X-Drop: yes": "IGNORE",
                                                             "X-Old: 1": "REPLACE X-New: 2",
                                                             "X-Tag: a": "PREPEND X-Before: tag",
                                                             "Subject: buy\n now": "WARN odd"
                                                             }.get(h))
    assert result.header == (b"Received: by mx\r\nSubject: buy\r\n now\r\nX-New: 2\r\n"
                             b"X-Before: tag\r\nX-Tag: a\r\nMessage-Id: <m@x>\r\n")
    assert result.actions == (ContentAction("warning", "Subject: buy\n now", "odd"),)
    assert "Subject: buy\n now" in seen            # one logical header, one string
    assert result.error is None and result.log_lines == ("message-id=<m@x>",)


@pytest.mark.parametrize("action", ["REJECT", "DISCARD"])
def test_nothing_is_looked_up_after_a_reject_or_discard(action):
    result = clean(b"Subject: a\r\nX-Later: b\r\n\r\nbody\r\n",
                   {"Subject": action, "X-Later": "HOLD"})
    assert [a.action for a in result.actions] == [action.lower()]
    assert (result.error is not None) == (action == "REJECT")
