"""smtp_output: smtp_generic_maps and smtp_*_checks as Postfix 3.7.11's smtp client applies them.

The expected bytes and log lines are what a private Postfix 3.7.11 sent to
smtp-sink and wrote to its maillog for the same messages and tables.
"""

import sys
from pathlib import Path

import pytest

from mailsys.config.regexp_table import read_regexp
from mailsys.message.address_maps import AddressMaps
from mailsys.message.message_actions import first_answer
from mailsys.message.smtp_output import Note, OutputError, OutputRewrite

sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/memtable.py (tests/ is no package)
from memtable import Table  # noqa: E402


GENERIC = {"alice@bench.localdomain": "alice.smith@example.com", "bob": "robert@example.com",
           "@old.example": "@new.example", "carol+foo@bench.localdomain": "carol-foo@example.com"}


def rewriter(generic=None, propagate=("canonical", "virtual"), **checks):
    maps = AddressMaps(myorigin="bench.localdomain", delimiter="+",
                       propagate=frozenset(propagate),
                       is_local=lambda d: d.lower() == "bench.localdomain")
    return OutputRewrite(maps=maps, generic=(Table(generic, fold=True),) if generic else (), **checks)


def regexp(tmp_path: Path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return first_answer([read_regexp(f"regexp:{path}", path, lambda w: None, pcre=False)])


def no_warning(text):
    raise AssertionError(text)


def test_envelope_addresses_follow_generic_lookup_order():
    out = rewriter(GENERIC)
    # user@domain, then the bare user for a local domain (its extension
    # dropped: "generic" is not in propagate_unmatched_extensions), then
    # @domain, which keeps the whole local part, extension included.
    assert out.address("alice@bench.localdomain", no_warning) == "alice.smith@example.com"
    assert out.address("bob+ext@bench.localdomain", no_warning) == "robert@example.com"
    assert out.address("carol+foo@bench.localdomain", no_warning) == "carol-foo@example.com"
    assert out.address("dave+x@old.example", no_warning) == "dave+x@new.example"
    assert out.address('"a b"@old.example', no_warning) == '"a b"@new.example'
    assert out.address("unk@bench.localdomain", no_warning) == "unk@bench.localdomain"
    assert out.address("bob@remote.example", no_warning) == "bob@remote.example"   # not local
    assert out.address("", no_warning) == ""


def test_envelope_lookup_is_one_step_and_propagates_only_for_generic():
    table = Table({"a@x.example": "b@x.example", "b@x.example": "c@x.example",
                   "bob": "robert@example.com"}, fold=True)
    maps = AddressMaps(myorigin="bench.localdomain", delimiter="+",
                       propagate=frozenset(("generic",)),
                       is_local=lambda d: d == "bench.localdomain")
    out = OutputRewrite(maps=maps, generic=(table,))
    assert out.address("a@x.example", no_warning) == "b@x.example"     # no recursion
    assert out.address("bob+ext@bench.localdomain", no_warning) == "robert+ext@example.com"
    table.keys.clear()
    out.address("joe+ext@bench.localdomain", no_warning)
    assert table.keys == ["joe+ext@bench.localdomain", "joe@bench.localdomain", "joe+ext",
                           "joe", "@bench.localdomain"]


def test_multi_valued_result_warns_and_takes_the_first():
    out = rewriter({"a@x.example": "b@x.example, c@x.example"})
    warnings = []
    assert out.address("a@x.example", warnings.append) == "b@x.example"
    assert warnings == ["multi-valued smtp_generic_maps result for a@x.example"]


def test_non_address_result_is_an_error():
    out = rewriter({"a@x.example": ","})
    with pytest.raises(OutputError):
        out.address("a@x.example", no_warning)


MESSAGE1 = (b'From: Alice <alice@bench.localdomain>\n'
            b'To: bob@bench.localdomain, "Carol C" <carol+foo@bench.localdomain>,\n'
            b'  dave@old.example (Dave D), eve@other.example\n'
            b'Cc: group: frank@old.example, gina@old.example;\n'
            b'Reply-To: alice@bench.localdomain\n'
            b'Sender: bob+ext@bench.localdomain\n'
            b'Resent-From: x@old.example\n'
            b'Return-Receipt-To: bob@bench.localdomain\n'
            b'Errors-To: bob@bench.localdomain\n'
            b'X-Other: bob@bench.localdomain\n'
            b'Subject: test generic\n'
            b'\n'
            b'body bob@bench.localdomain\n')

SENT1 = (b'From: Alice <alice.smith@example.com>\n'
         b'To: robert@example.com, "Carol C" <carol-foo@example.com>,\n'
         b'\tdave@new.example (Dave D), eve@other.example\n'
         b'Cc: group: frank@new.example, gina@new.example;\n'
         b'Reply-To: alice.smith@example.com\n'
         b'Sender: robert@example.com\n'
         b'Resent-From: x@new.example\n'
         b'Return-Receipt-To: robert@example.com\n'
         b'Errors-To: robert@example.com\n'
         b'X-Other: bob@bench.localdomain\n'
         b'Subject: test generic\n'
         b'\n'
         b'body bob@bench.localdomain\n')


@pytest.mark.parametrize("crlf", [False, True])
def test_header_addresses_rewritten_as_postfix_sends_them(crlf):
    message, sent = MESSAGE1, SENT1
    if crlf:
        message, sent = message.replace(b"\n", b"\r\n"), sent.replace(b"\n", b"\r\n")
    content, notes = rewriter(GENERIC).content(message)
    assert content == sent
    assert notes == []


def test_a_rewritten_header_is_written_again_and_an_untouched_one_left_alone():
    message = (b'From: Joe<joe@old.example>\n'
               b'To:   x@old.example  ,y@old.example,\n'
               b' "Quoted, Name" <q@old.example>\n'
               b'Cc: nochange@else.example,  other@else.example\n'
               b'Resent-To: r@old.example (comment here)\n'
               b'Sender: "a b"@old.example\n'
               b'Reply-To: <bob@bench.localdomain>\n'
               b'\n--BB\n')
    content, _ = rewriter(GENERIC).content(message)
    assert content == (b'From: Joe <joe@new.example>\n'
                       b'To: x@new.example, y@new.example, "Quoted, Name" <q@new.example>\n'
                       b'Cc: nochange@else.example,  other@else.example\n'
                       b'Resent-To: r@new.example (comment here)\n'
                       b'Sender: "a b"@new.example\n'
                       b'Reply-To: <robert@example.com>\n'
                       b'\n--BB\n')


def test_generic_maps_leave_mime_parts_and_attached_messages_alone():
    message = (b"From: a@old.example\nContent-Type: multipart/mixed; boundary=BB\n\n"
               b"--BB\nContent-Type: message/rfc822\n\nFrom: inner@old.example\n\nx\n--BB--\n")
    content, _ = rewriter(GENERIC).content(message)
    assert content == message.replace(b"From: a@old", b"From: a@new")


def test_nothing_found_is_the_same_bytes_object():
    message = b"From: someone@else.example\nSubject: hi\n\nbody\n"
    content, notes = rewriter(GENERIC).content(message)
    assert content is message and notes == []


HEADER_CHECKS = r"""/^Subject: warnme/ WARN subject warned
/^X-Info:/ INFO informed
/^X-Rep:/ REPLACE X-Replaced: yes
/^X-Pre:/ PREPEND X-Prepended: first
/^X-Ign:/ IGNORE
/^X-Rej:/ REJECT no way
/^X-Hold:/ HOLD
/^X-Bad:/ REPLACE not a header
/^X-Empty:/ REPLACE
/^Content-Type:/ WARN primary content-type seen by header checks
/^X-Long:/ WARN
/^To:/ REPLACE To: x@old.example, y@old.example
"""
MIME_CHECKS = r"""/^Content-Type:/ WARN mime ct
/^Content-Disposition:/ INFO disp
/^MIME-Version:/ WARN mimever
"""
NESTED_CHECKS = "/^Subject:/ WARN nested subj\n"
BODY_CHECKS = r"""/^--/ WARN boundary
/secret/ REPLACE [redacted]
/^prependme/ PREPEND before line
/^$/ INFO empty
/^dropme/ IGNORE
"""

MESSAGE2 = b"""From: alice@bench.localdomain
To: bob@bench.localdomain
Subject: warnme please
X-Info: hello
X-Rep: old
X-Pre: something
X-Ign: gone
X-Rej: bad
X-Hold: bad
X-Bad: x
X-Empty: x
X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
X-Long: folded
  second line
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="BB"

preamble
--BB
Content-Type: text/plain
Content-Disposition: inline

secret text
prependme now
dropme
--BB
Content-Type: message/rfc822

Subject: inner
From: inner@old.example

inner body
--BB--
"""

SENT2 = b"""From: alice.smith@example.com
To: x@new.example, y@new.example
Subject: warnme please
X-Info: hello
X-Replaced: yes
X-Prepended: first
X-Pre: something
X-Rej: bad
X-Hold: bad
X-Bad: x
X-Empty: x
X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
X-Long: folded
  second line
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="BB"

preamble
--BB
Content-Type: text/plain
Content-Disposition: inline

[redacted]
before line
prependme now
--BB
Content-Type: message/rfc822

Subject: inner
From: inner@old.example

inner body
--BB--
"""

# Postfix 3.7.11's maillog for MESSAGE2, after "postfix/smtp[pid]: ".
LOG2 = [
    Note("info", "replace: header To: bob@bench.localdomain: To: x@old.example, y@old.example"),
    Note("info", "warning: header Subject: warnme please: subject warned"),
    Note("info", "info: header X-Info: hello: informed"),
    Note("info", "replace: header X-Rep: old: X-Replaced: yes"),
    Note("info", "prepend: header X-Pre: something: X-Prepended: first"),
    Note("warning", "unsupported command in smtp_header_checks map: REJECT no way", False),
    Note("warning", "unsupported command in smtp_header_checks map: HOLD", False),
    Note("warning", 'bad REPLACE header text "not a header" in smtp_header_checks map -- '
         'need "headername: headervalue"', False),
    Note("warning", "REPLACE action without text in smtp_header_checks map", False),
    Note("info", "warning: header X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    Note("info", "warning: header X-Long: folded?  second line"),
    Note("info", "warning: header MIME-Version: 1.0: mimever"),
    Note("info", 'warning: header Content-Type: multipart/mixed; boundary="BB": mime ct'),
    Note("info", "warning: body --BB: boundary"),
    Note("info", "warning: header Content-Type: text/plain: mime ct"),
    Note("info", "info: header Content-Disposition: inline: disp"),
    Note("info", "replace: body secret text: [redacted]"),
    Note("info", "prepend: body prependme now: before line"),
    Note("info", "warning: body --BB: boundary"),
    Note("info", "warning: header Content-Type: message/rfc822: mime ct"),
    Note("info", "warning: header Subject: inner: nested subj"),
    Note("info", "warning: body --BB--: boundary"),
]


@pytest.mark.parametrize("crlf", [False, True])
def test_header_and_body_checks_as_postfix_applies_and_logs_them(tmp_path, crlf):
    out = rewriter(GENERIC, header_checks=regexp(tmp_path, "hc", HEADER_CHECKS),
                   mime_header_checks=regexp(tmp_path, "mhc", MIME_CHECKS),
                   nested_header_checks=regexp(tmp_path, "nhc", NESTED_CHECKS),
                   body_checks=regexp(tmp_path, "bc", BODY_CHECKS))
    message, sent = MESSAGE2, SENT2
    if crlf:
        message, sent = message.replace(b"\n", b"\r\n"), sent.replace(b"\n", b"\r\n")
    content, notes = out.content(message)
    assert content == sent
    assert notes == LOG2


def test_strip_removes_and_logs(tmp_path):
    # header_body_checks.c hbc_action(): STRIP logs "strip: header ..." and
    # drops the header or line, as IGNORE does without a line.
    maps = AddressMaps(myorigin="x.example")
    out = OutputRewrite(maps=maps, header_checks=regexp(tmp_path, "hc", "/^X-S/ STRIP gone\n"),
                        body_checks=regexp(tmp_path, "bc", "/^strip/ STRIP\n"))
    content, notes = out.content(b"X-S: 1\nX-T: 2\n\nkeep\nstrip me\n")
    assert content == b"X-T: 2\n\nkeep\n"
    assert notes == [Note("info", "strip: header X-S: 1: gone"),
                     Note("info", "strip: body strip me")]


def test_lmtp_names_its_own_tables(tmp_path):
    maps = AddressMaps(myorigin="x.example")
    out = OutputRewrite(maps=maps, header_checks=regexp(tmp_path, "hc", "/^X-/ DISCARD\n"),
                        program="lmtp")
    content, notes = out.content(b"X-A: 1\n\nbody\n")
    assert content == b"X-A: 1\n\nbody\n"
    assert notes == [Note("warning", "unsupported command in lmtp_header_checks map: DISCARD",
                          False)]


def test_long_lists_fold_and_empty_elements_stay_as_postfix_writes_them():
    message = (b"reply-to: x@old.example\n"
               b"TO: aaaaaaaaaa@old.example, bbbbbbbbbbbbbbb@old.example, "
               b"ccccccccccccccccc@old.example, dddddddddddd@old.example, "
               b'"Some Long Display Name" <eeeeeeeeeeeeeeee@old.example>, f@old.example\n'
               b'Cc: "x" <a@old.example>,,b@old.example\n'
               b"Bcc: a@old.example,\n"
               b"Resent-To: ,b@old.example\n"
               b"Resent-Cc: c@old.example , \n"
               b"\nhi\n")
    content, _ = rewriter(GENERIC).content(message)
    # Postfix 3.7.11 (Bcc: was removed by its cleanup, so "To: a@old.example," stands for it).
    assert content == (b"reply-to: x@new.example\n"
                       b"TO: aaaaaaaaaa@new.example, bbbbbbbbbbbbbbb@new.example,\n"
                       b"\tccccccccccccccccc@new.example, dddddddddddd@new.example,\n"
                       b'\t"Some Long Display Name" <eeeeeeeeeeeeeeee@new.example>,\n'
                       b"\tf@new.example\n"
                       b'Cc: "x" <a@new.example>, , b@new.example\n'
                       b"Bcc: a@new.example, \n"
                       b"Resent-To: , b@new.example\n"
                       b"Resent-Cc: c@new.example, \n"
                       b"\nhi\n")


def test_generic_maps_parse_a_whole_header_whatever_header_address_token_limit():
    # Postfix 3.7.11, header_address_token_limit = 12, smtp_generic_maps
    # mapping z@old.example to z@new.example: the smtp client rewrote the
    # last address of "To: b@x.example, ..., h@x.example, z@old.example"
    # (smtp_header_rewrite() parses with tok822_parse(), no limit), while
    # the same limit made cleanup cut a header it rewrote with
    # recipient_canonical_maps to "To: y@new.example, b@x.example, ".
    to = ", ".join(f"{c}@x.example" for c in "bcdefgh") + ", z@old.example"
    content, _ = rewriter(GENERIC).content(f"To: {to}\n\nhi\n".encode())
    assert content == (b"To: b@x.example, c@x.example, d@x.example, e@x.example, f@x.example,\n"
                       b"\tg@x.example, h@x.example, z@new.example\n\nhi\n")
    # Beyond the default limit of 10240 tokens as well (6 tokens an address).
    many = ", ".join(f"u{i}@x.example" for i in range(2000)) + ", z@old.example"
    content, _ = rewriter(GENERIC).content(f"To: {many}\n\nhi\n".encode())
    assert content.count(b"@x.example") == 2000 and content.endswith(b", z@new.example\n\nhi\n")
