"""header_checks: the action of one table answer, and what clean_header does with it."""

from __future__ import annotations

import pytest

from mailsys.message.header_checks import (ChecksGate, ContentAction, Verdict, log_text, screened,
                                           table_problem, verdict)
from mailsys.message.headers import HeaderPolicy, clean_header
from mailsys.message.reply import StatusReply

SUBJECT = "Subject: buy now"


@pytest.mark.parametrize("value, expected", [
    ("DUNNO", Verdict()),
    ("ok", Verdict()),
    ("IGNORE", Verdict(edit="ignore")),
    # cleanup_act() logs REPLACE, PREPEND and STRIP: "replace: header ...: X-Subject: ..."
    ("REPLACE X-Subject: was here", Verdict(
        edit="replace", line="X-Subject: was here",
        action=ContentAction("replace", SUBJECT, "X-Subject: was here"))),
    ("PREPEND X-Flag: yes", Verdict(edit="prepend", line="X-Flag: yes",
                                    action=ContentAction("prepend", SUBJECT, "X-Flag: yes"))),
    ("STRIP gone", Verdict(edit="ignore", action=ContentAction("strip", SUBJECT, "gone"))),
    ("strip", Verdict(edit="ignore", action=ContentAction("strip", SUBJECT, ""))),
    ("WARN\ttabbed", Verdict(action=ContentAction("warning", SUBJECT, "tabbed"))),
    ("REJECT", Verdict(action=ContentAction("reject", SUBJECT, "5.7.1 message content rejected"),
                       error=StatusReply(550, "5.7.1", "message content rejected"))),
    ("REJECT 5.7.0 no spam", Verdict(action=ContentAction("reject", SUBJECT, "5.7.0 no spam"),
                                     error=StatusReply(550, "5.7.0", "no spam"))),
    ("reject 4.7.1 try later", Verdict(action=ContentAction("reject", SUBJECT, "4.7.1 try later"),
                                       error=StatusReply(451, "4.7.1", "try later"))),
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


@pytest.mark.parametrize("value, kind, map_class, warning", [
    # Postfix 3.7.11's cleanup (cleanup_message.c cleanup_act()), seen live
    ("FILTER nocolon", "header", "header_checks",
     "bad FILTER command nocolon in header_checks -- need transport:destination"),
    ("FILTER", "header", "header_checks", "missing FILTER command argument in header_checks map"),
    ("REDIRECT nohost", "header", "header_checks",
     'bad REDIRECT target "nohost" in header_checks map -- need user@domain'),
    ("BCC nohost", "body", "body_checks",
     'bad BCC address "nohost" in body_checks map -- need user@domain'),
    ("PREPEND not a header", "header", "mime_header_checks",
     'bad PREPEND header text "not a header" in mime_header_checks map -- '
     'need "headername: headervalue"'),
    ("REPLACE", "body", "body_checks", "REPLACE action without text in body_checks map"),
    ("FROBNICATE now", "header", "header_checks", "unknown command in header_checks map: FROBNICATE now"),
    ("FROBNICATE x", "body", "body_checks", "unknown command in body_checks map: FROBNICATE x"),
    ("PREPEND any text", "body", "body_checks", None),
    ("STRIP", "header", "header_checks", None),
    ("REDIRECT a@b.example", "header", "header_checks", None),
])
def test_table_problem_words_the_warning_as_postfix(value, kind, map_class, warning):
    assert table_problem(value, map_class, kind) == warning


def test_screened_tables_warn_and_answer_no_match():
    warned = []
    check = screened({"X-A: 1": "FROB it", "X-B: 2": "HOLD"}.get, "nested_header_checks",
                     warned.append)
    assert check("X-A: 1") is None and check("X-B: 2") == "HOLD" and check("X-C: 3") is None
    assert warned == ["unknown command in nested_header_checks map: FROB it"]
    milter = screened({"X: y": "FROB"}.get, "milter_header_checks", warned.append,
                      unknown="unsupported")
    assert milter("X: y") is None
    assert warned[-1] == "unsupported command in milter_header_checks map: FROB"
    assert screened(None, "header_checks", warned.append) is None


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
    assert result.actions == (ContentAction("warning", "Subject: buy\n now", "odd"),
                              ContentAction("replace", "X-Old: 1", "X-New: 2"),
                              ContentAction("prepend", "X-Tag: a", "X-Before: tag"))
    assert "Subject: buy\n now" in seen            # one logical header, one string
    assert result.error is None and result.log_lines == ("message-id=<m@x>",)


@pytest.mark.parametrize("action", ["REJECT", "DISCARD"])
def test_nothing_is_looked_up_after_a_reject_or_discard(action):
    result = clean(b"Subject: a\r\nX-Later: b\r\n\r\nbody\r\n",
                   {"Subject": action, "X-Later": "HOLD"})
    assert [a.action for a in result.actions] == [action.lower()]
    assert (result.error is not None) == (action == "REJECT")


@pytest.mark.parametrize("final", ["REJECT", "DISCARD", "PASS", "REDIRECT a@b.example"])
def test_a_final_action_closes_the_gate_for_every_later_check(final):
    # cleanup_act(): these clear CLEANUP_FLAG_FILTER_ALL, for the header
    # and body checks and the milters alike.
    gate = ChecksGate()
    headers = gate.wrap({"Subject: a": final, "X-Later: b": "HOLD"}.get)
    body = gate.wrap({"line": "REJECT"}.get)
    assert headers("X-Later: b") == "HOLD" and not gate.closed
    assert headers("Subject: a") == final and gate.closed
    assert headers("X-Later: b") is None and body("line") is None
    assert gate.wrap(None) is None


def test_pass_is_logged_and_does_nothing_else():
    assert verdict("PASS trusted sender", "Subject: x") == Verdict(
        action=ContentAction("pass", "Subject: x", "trusted sender"))


def test_a_reject_with_a_2xx_code_is_a_deferral_with_a_warning():
    # cleanup_message.c cleanup_act(): dsn_prepend() keeps the text's
    # 2.0.0, "bad DSN action in 2.0.0 fine -- need 4.x.x or 5.x.x", then 4.0.0.
    v = verdict("REJECT 2.0.0 fine", SUBJECT)
    assert v.error == StatusReply(451, "4.0.0", "fine")
    warned = []
    check = screened({SUBJECT: "REJECT 2.0.0 fine"}.get, "header_checks", warned.append)
    assert check(SUBJECT) == "REJECT 2.0.0 fine"
    assert warned == ["bad DSN action in 2.0.0 fine -- need 4.x.x or 5.x.x"]
