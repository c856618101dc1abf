"""Milter changes applied to a message: the header indexes as Postfix's
cleanup_milter.c counts them, untouched headers byte for byte."""

from mailsys.milter import protocol as p
from mailsys.milter.edits import MilterMessage, apply, envelope_changes, strip_brackets

CONTENT = (b"Received: from a\r\n\tby b; Fri, 27 Nov 2026\r\n"
           b"Subject: one\r\nX-Tag: 1\r\nx-tag: 2\r\n\r\nbody line\r\n")


def test_parse_and_round_trip():
    msg = MilterMessage.parse(CONTENT)
    assert [h.name for h in msg.headers] == ["Received", "Subject", "X-Tag", "x-tag"]
    assert msg.milter_headers()[0] == ("Received", "from a\n\tby b; Fri, 27 Nov 2026")
    assert msg.milter_headers(leading_space=True)[1] == ("Subject", " one")
    assert msg.body == b"body line\r\n"
    assert msg.content() == CONTENT


def test_header_changes():
    msg = apply(MilterMessage.parse(CONTENT), [
        p.AddHeader("X-Added", "a\n\tfolded"),
        p.InsertHeader(0, "X-Top", "t"),
        p.ChangeHeader(2, "X-TAG", "two"),
        p.ChangeHeader(1, "Subject", ""),
        p.ChangeHeader(1, "X-Missing", "m"),
        p.ChangeHeader(3, "X-Tag", ""),          # no third one: nothing
    ])
    assert msg.content() == (b"X-Top: t\r\nReceived: from a\r\n\tby b; Fri, 27 Nov 2026\r\n"
                             b"X-Tag: 1\r\nx-tag: two\r\nX-Added: a\r\n\tfolded\r\n"
                             b"X-Missing: m\r\n\r\nbody line\r\n")


def test_insert_beyond_the_end_appends():
    msg = apply(MilterMessage.parse(CONTENT), [p.InsertHeader(99, "X-Last", "l")])
    assert msg.headers[-1].name == "X-Last"


def test_body_replacement_joins_pieces_with_crlf():
    msg = apply(MilterMessage.parse(CONTENT), [p.ReplaceBody(b"new\nbo"), p.ReplaceBody(b"dy\n")])
    assert msg.body == b"new\r\nbody\r\n"


def test_headers_inserted_on_top_are_split_off():
    msg = apply(MilterMessage.parse(b"Subject: s\r\n\r\nb\r\n"),
                [p.InsertHeader(0, "X-Top", "a\n\tb"), p.InsertHeader(1, "X-Two", "2"),
                 p.AddHeader("X-End", "e")])
    top, rest, bottom = msg.split_added()
    assert top == ("X-Top: a\n\tb", "X-Two: 2") and bottom == ("X-End: e",)
    assert rest.content() == b"Subject: s\r\n\r\nb\r\n"
    # Only added headers: none to place them by, nothing split off.
    msg = apply(MilterMessage.parse(b"\r\nbody"), [p.AddHeader("X-A", "1")])
    assert msg.split_added() == ((), msg, ())


def test_envelope_changes_accumulate():
    env = envelope_changes([p.AddRecipient("<c@x>"), p.DeleteRecipient("<b@x>")])
    env = envelope_changes([p.ChangeSender("<s@x>"), p.Quarantine("why")], env)
    assert env.added == (p.AddRecipient("<c@x>"),) and env.deleted == ("<b@x>",)
    assert env.sender == p.ChangeSender("<s@x>") and env.quarantine == "why"
    assert strip_brackets(" <c@x> ") == "c@x" and strip_brackets("c@x") == "c@x"


def test_milter_header_checks_on_added_inserted_and_changed_headers():
    # Postfix's cleanup_milter.c looks each header a milter adds, inserts
    # or changes up in milter_header_checks; deletions are not looked up.
    table = {"X-Spam: yes": "IGNORE", "X-Tag: old": "REPLACE X-Tag: new",
             "Subject: bad": "IGNORE", "X-Hold: 1": "HOLD held here",
             "X-Note: a": "PREPEND X-Pre: 1"}
    msg = MilterMessage.parse(CONTENT)
    hits = []
    new = apply(msg, [p.AddHeader("X-Spam", "yes"), p.AddHeader("X-Tag", "old"),
                      p.InsertHeader(0, "X-Hold", "1"), p.ChangeHeader(1, "Subject", "bad"),
                      p.AddHeader("X-Note", "a"), p.ChangeHeader(1, "X-Kept", "")],
                table.get, hits)
    texts = [h.text() for h in new.headers]
    assert "X-Spam: yes" not in texts and "X-Tag: new" in texts and "X-Hold: 1" == texts[0]
    assert "Subject: one" in texts       # a refused change keeps the header as it was
    assert "X-Note: a" in texts          # PREPEND is not done (nor in Postfix)
    assert [(a.action, a.header, a.text) for a in hits] == [
        ("replace", "X-Tag: old", "X-Tag: new"), ("hold", "X-Hold: 1", "held here"),
        ("prepend", "X-Note: a", "X-Pre: 1")]


def test_milter_header_checks_stop_after_a_reject():
    hits = []
    apply(MilterMessage.parse(CONTENT),
          [p.AddHeader("X-A", "1"), p.AddHeader("X-B", "2")],
          lambda text: "REJECT no thanks" if text.startswith("X-") else None, hits)
    assert [(a.action, a.header, a.text) for a in hits] == [
        ("reject", "X-A: 1", "5.7.1 no thanks")]
