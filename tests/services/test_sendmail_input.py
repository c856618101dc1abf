"""sendmail's input handling, without a mail system: options, the lone dot, -t."""

from __future__ import annotations

import io
import os

import pytest

from mailsys.cli import sendmail, sendmail_opts
from mailsys.ipc.proto.cleanup import CleanupRecipient
from mailsys.queue import maildrop
from mailsys.runtime import cleanup_client
from mailsys.errors import UsageError


@pytest.mark.parametrize("data, ignore, expected", [
    (b"a\n.\nb\n", False, b"a\n"),
    (b"a\r\n.\r\nb\r\n", False, b"a\n"),
    (b".\nb\n", False, b""),
    (b"a\n.", False, b"a\n"),
    (b"a\n..\nb\n", False, b"a\n..\nb\n"),
    (b"a\n.x\nb\n", False, b"a\n.x\nb\n"),
    (b"a\n.\nb\n", True, b"a\n.\nb\n"),
    (b"From alice Fri Nov 27\nSubject: x\n\nb\n", True, b"Subject: x\n\nb\n"),
])
def test_read_message(data, ignore, expected):
    assert sendmail._read_message(io.BytesIO(data), ignore_dots=ignore) == expected


# Leading mbox "From " lines, as Postfix 3.7.11's sendmail stored these inputs
# (postcat of the queue file): every line at the very start that reads
# "From " after any number of ">" is dropped; the first other line ends
# the skipping, so a "From " line further down stays; so does a last line
# with no line end, or one as long as line_length_limit.
@pytest.mark.parametrize("data, expected", [
    (b"From a@b Mon\n>From c@d\n>>From x\nFrom again\nSubject: t\n\nFrom body\n",
     b"Subject: t\n\nFrom body\n"),
    (b"From a\r\n>From b\r\nSubject: crlf\r\n\r\nx\r\n", b"Subject: crlf\n\nx\n"),
    (b"  From a\nSubject: t2\n\nx\n", b"  From a\nSubject: t2\n\nx\n"),
    (b"Subject: t\nFrom inner\n\nx\n", b"Subject: t\nFrom inner\n\nx\n"),
    (b"From a\nFrom noeol", b"From noeol"),
    (b"from a\n>From\tb\nS: c\n", b"from a\n>From\tb\nS: c\n"),
    (b"From a\n.\nb\n", b""),
])
def test_leading_from_lines(data, expected):
    assert sendmail._read_message(io.BytesIO(data), ignore_dots=False) == expected


def test_leading_from_line_as_long_as_the_line_limit_stays():
    short, long = b"From " + b"x" * 5, b"From " + b"x" * 6
    data = short + b"\n" + long + b"\nS: c\n"
    assert sendmail._read_message(io.BytesIO(data), ignore_dots=True,
                                  line_limit=11) == long + b"\nS: c\n"


# sendmail_fix_line_endings, as Postfix 3.7.11's sendmail stored these inputs
# (postcat of the queue file): always removes every CR before LF and ".<CR>"
# ends the message; never keeps each CR as data (".<CR>" ends nothing);
# strict follows the first input line, a "From " line included.
@pytest.mark.parametrize("fix_eol, data, expected", [
    ("always", b"S: a\r\n\r\nbody\r\nx\r\r\n.\r\nafter\n", b"S: a\n\nbody\nx\n"),
    ("never", b"S: a\r\n\r\nbody\r\nx\r\r\n.\r\nafter\n",
     b"S: a\r\r\n\r\r\nbody\r\r\nx\r\r\r\n.\r\r\nafter\n"),
    ("never", b"S: b\n\nbody\r\n.\n", b"S: b\n\nbody\r\r\n"),
    ("strict", b"X: 1\nS: a\r\n\r\nbody\r\n", b"X: 1\nS: a\r\r\n\r\r\nbody\r\r\n"),
    ("strict", b"From me\r\nS: c\n\nbody\r\n", b"S: c\n\nbody\n"),
    ("strict", b"S: b\n\nbody\r\n.\n", b"S: b\n\nbody\r\r\n"),
    ("always", b"no line end\r", b"no line end\r"),
])
def test_fix_line_endings(fix_eol, data, expected):
    assert sendmail._read_message(io.BytesIO(data), ignore_dots=False, fix_eol=fix_eol) == expected


def test_extract_recipients_and_drop_bcc():
    content = (b"To: Bob <bob@example.org>,\n  carol@example.org\nSubject: s\n"
               b"Bcc: secret@example.org\nCc: \"Doe, J\" <j@example.net>\n\nBcc: body@x\n")
    found, out = sendmail._extract_recipients(content)
    assert found == ["bob@example.org", "carol@example.org", "secret@example.org", "j@example.net"]
    assert out == (b"To: Bob <bob@example.org>,\n  carol@example.org\nSubject: s\n"
                   b"Cc: \"Doe, J\" <j@example.net>\n\nBcc: body@x\n")


def test_extract_resent_recipients_only():
    content = b"To: old@example.org\nResent-To: new@example.org\nResent-Bcc: b@example.org\n\nx\n"
    found, out = sendmail._extract_recipients(content)
    assert found == ["new@example.org", "b@example.org"]
    assert b"Resent-Bcc" not in out and b"To: old@example.org" in out


def test_parse_options():
    warnings: list[str] = []
    opts = sendmail_opts.parse(["-oi", "-fsender@x", "-F", "Full Name", "-t", "-N",
                                "success,delay", "-odi", "-v", "rcpt@x"], "sendmail",
                               warnings.append)
    assert opts.ignore_dots and opts.extract and opts.sender == "sender@x"
    assert opts.full_name == "Full Name" and opts.recipients == ["rcpt@x"]
    assert opts.notify == ("SUCCESS", "DELAY") and warnings == []
    assert sendmail_opts.parse(["-bs"], "sendmail", warnings.append).mode == "user"
    assert sendmail_opts.parse(["-bv"], "sendmail", warnings.append).verify
    with pytest.raises(sendmail_opts.Fatal, match="^unsupported: -bx$"):
        sendmail_opts.parse(["-bx"], "sendmail", warnings.append)
    assert sendmail_opts.parse(["-R", "most"], "sendmail", warnings.append).ret == ""
    assert sendmail_opts.notify_mask("never,success", warnings.append) == ()
    assert warnings == ["bad -R option value -- ignored"]


def test_command_line_recipients_may_be_lists():
    assert sendmail._addresses(["Bob <bob@x.example>, carol@y.example", "dave"]) == [
        "bob@x.example", "carol@y.example", "dave"]


def test_a_name_without_domain_keeps_the_name_given(make_config):
    # Postfix 3.7.11, "sendmail bob": cleanup logs "to=<bob@host>,
    # orig_to=<bob>", and a notice says "<bob@host> (expanded from <bob>)".
    cfg = make_config(myorigin="example.com")
    assert sendmail.recipient("<bob>", cfg) == sendmail.recipient(" bob ", cfg) == \
        CleanupRecipient("bob@example.com", orig="bob")
    assert sendmail.recipient("<bob@example.org>", cfg) == CleanupRecipient("bob@example.org")
    assert sendmail.recipient("bob", cfg, orcpt="rfc822;bob").orcpt == "rfc822;bob"
    assert sendmail.qualify("bob", cfg) == "bob@example.com"
    with pytest.raises(UsageError):
        sendmail.recipient("<>", cfg)


def test_bs_session_without_a_mail_system(make_config, queue_dir):
    """-bs with no cleanup to talk to (the mail system stopped, or a live
    master without one): the message goes to the maildrop and gets its
    250, as Postfix's stand-alone smtpd posts through postdrop."""
    from mailsys.admin import access
    from mailsys.cli.sendmail_bs import smtp_session
    cfg = make_config()
    stdin = (b"EHLO client\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<bob>\r\n"
             b"DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n")
    for live_master in (False, True):
        if live_master:
            pid_file = access.pid_dir(cfg) / access.MASTER_PID_FILE
            pid_file.parent.mkdir(parents=True, exist_ok=True)
            pid_file.write_text(f"{os.getpid()}\n")
        stdout = io.BytesIO()
        assert smtp_session(cfg, io.BytesIO(stdin), stdout) == 0
        lines = stdout.getvalue().decode().split("\r\n")
        assert lines[0] == "220 mx.example.test ESMTP mailsys"
        assert "250-mx.example.test" in lines
        assert "STARTTLS" not in stdout.getvalue().decode() and "AUTH" not in stdout.getvalue().decode()
        tail = lines[lines.index("250 2.1.0 Ok"):]
        assert tail[:3] == ["250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>"]
        assert tail[3].startswith("250 2.0.0 Ok: queued as ")
        assert tail[4:] == ["250 2.0.0 Ok", "221 2.0.0 Bye", ""]
        qid = tail[3].rsplit(" ", 1)[1]
        [request] = [r for r in map(maildrop.read, maildrop.waiting(queue_dir))
                     if r.queue_id == qid]
        assert request.sender == "alice@example.com" and request.origin == "sendmail"
        assert [r.address for r in request.recipients] == [f"bob@{cfg.myorigin}"]
        assert request.content.endswith(b"Subject: x\r\n\r\nbody\r\n")


def test_cleanup_socket_private_or_public(make_config, queue_dir):
    cfg = make_config()
    private, public = queue_dir / "private" / "cleanup", queue_dir / "public" / "cleanup"
    assert cleanup_client.cleanup_path(cfg) == private          # neither exists: the usual place
    public.touch()                                          # master.cf copied from Postfix
    assert cleanup_client.cleanup_path(cfg) == public
    private.touch()
    assert cleanup_client.cleanup_path(cfg) == private


def test_fullname_is_name_or_the_gecos_field(monkeypatch):
    """Postfix fullname(): $NAME, else GECOS up to the first , ; or %, each
    & the login name capitalized (an added From: reads "root <root@host>")."""
    import pwd
    entry = pwd.struct_passwd(("jdoe", "x", 1000, 1000, "& Doe,Room 1,;x", "/home/jdoe", "/bin/sh"))
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: entry)
    monkeypatch.delenv("NAME", raising=False)
    assert sendmail.fullname() == "Jdoe Doe"
    monkeypatch.setenv("NAME", "Jane Q. Doe")
    assert sendmail.fullname() == "Jane Q. Doe"
    monkeypatch.delenv("NAME")
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: (_ for _ in ()).throw(KeyError(uid)))
    assert sendmail.fullname() == ""
