"""smtpd_reject_footer through a real master: the replies Postfix 3.7.11 gave for the same
footer and commands, byte for byte (its host name and the client port aside)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).parent / "smtpd_helpers.py")))
HOST = "mx.example.test"


def whole_reply(c) -> bytes:
    lines = []
    while True:
        lines.append(c.line())
        if lines[-1][3:4] != b"-":
            return b"".join(lines)


def test_footer_lines_after_every_4xx_and_5xx_reply(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {
        "myhostname": HOST, "smtpd_helo_required": "yes",
        "smtpd_recipient_restrictions": "reject_unauth_destination",
        "smtpd_reject_footer": "For help call 555. client=$client_address name=$client_name "
                               "port=$client_port server=$server_name helo=$helo_name\\n"
                               "Second line."})
    with h.Raw(port) as c:
        assert c.line().startswith(b"220 ")
        client_port = c.sock.getsockname()[1]
        foot = (f"For help call 555. client=127.0.0.1 name=localhost port={client_port} "
                f"server={HOST} helo=").encode()
        c.send(b"MAIL FROM:<a@b.example>\r\n")
        assert whole_reply(c) == (b"503-5.5.1 Error: send HELO/EHLO first\r\n503-5.5.1 " + foot
                                  + b"\r\n503 5.5.1 Second line.\r\n")
        c.send(b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\n")
        assert whole_reply(c).endswith(b"250 CHUNKING\r\n")
        assert whole_reply(c) == b"250 2.1.0 Ok\r\n"
        c.send(b"RCPT TO:<x@remote.example>\r\n")
        assert whole_reply(c) == (b"554-5.7.1 <x@remote.example>: Relay access denied\r\n"
                                  b"554-5.7.1 " + foot + b"client.example\r\n"
                                  b"554 5.7.1 Second line.\r\n")
        c.send(b"QUIT\r\n")
        assert whole_reply(c) == b"221 2.0.0 Bye\r\n"
    # The reject line in mail.log has no footer, as Postfix's has none.
    log = inst.wait_log("Relay access denied")
    assert re.search(r"554 5\.7\.1 <x@remote\.example>: Relay access denied; from=<a@b\.example> "
                     r"to=<x@remote\.example> proto=ESMTP helo=<client\.example>", log)


def test_a_leading_backslash_c_continues_the_last_line(mailsys_instance):
    # Postfix 3.7.11: "554 5.7.1 <r@remote.example>: Recipient address
    # rejected: Access denied see https:///help" and 'warning: unknown macro
    # name "myhostname" in expansion request': the footer's names are the
    # session's, never main.cf parameters.
    inst = mailsys_instance
    port = h.start(inst, {"smtpd_recipient_restrictions": "reject_unauth_destination",
                          "smtpd_reject_footer": "\\c see https://$myhostname/help$sender_domain"})
    with h.session(port) as s:
        s.ehlo("client.example")
        s.mail("a@b.example")
        code, text = s.rcpt("x@remote.example")
    assert (code, text) == (554, b"5.7.1 <x@remote.example>: Relay access denied see "
                                 b"https:///helpb.example")
    inst.wait_log('warning: unknown macro name "myhostname" in expansion request')


def test_footer_maps_by_the_complete_reply(mailsys_instance):
    # Seen live with Postfix 3.7.11: the key is the reply as sent, code and
    # enhanced code included; without a match the smtpd_reject_footer.
    inst = mailsys_instance
    table = inst.config_dir / "footers"
    table.write_text("/^554 5\\.7\\.1 <x@remote\\.example>: Relay access denied$/ Map footer one.\n"
                     "/^554 <y@/ Without the enhanced code.\n")
    port = h.start(inst, {"smtpd_recipient_restrictions": "reject_unauth_destination",
                          "smtpd_reject_footer_maps": f"regexp:{table}",
                          "smtpd_reject_footer": "Global footer."})
    with h.Raw(port) as c:
        assert c.line().startswith(b"220 ")
        c.send(b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\n")
        assert whole_reply(c).endswith(b"250 CHUNKING\r\n")
        assert whole_reply(c) == b"250 2.1.0 Ok\r\n"
        c.send(b"RCPT TO:<x@remote.example>\r\n")
        assert whole_reply(c) == (b"554-5.7.1 <x@remote.example>: Relay access denied\r\n"
                                  b"554 5.7.1 Map footer one.\r\n")
        c.send(b"RCPT TO:<y@remote.example>\r\n")
        assert whole_reply(c) == (b"554-5.7.1 <y@remote.example>: Relay access denied\r\n"
                                  b"554 5.7.1 Global footer.\r\n")


def test_smtpd_expansion_filter_turns_other_characters_of_values_into_underscores(mailsys_instance):
    # Postfix 3.7 with the same footer and smtpd_expansion_filter = 0123456789,
    # after "HELO x.example" and "FOO":
    #   500-5.5.2 Error: command not recognized
    #   500 5.5.2 Client: 127_0_0_1 helo _________
    inst = mailsys_instance
    port = h.start(inst, {"smtpd_reject_footer": "Client: $client_address helo $helo_name",
                          "smtpd_expansion_filter": "0123456789"})
    with h.Raw(port) as c:
        assert c.line().startswith(b"220 ")
        c.send(b"HELO x.example\r\n")
        assert whole_reply(c).startswith(b"250 ")
        c.send(b"FOO\r\n")
        assert whole_reply(c) == (b"500-5.5.2 Error: command not recognized\r\n"
                                  b"500 5.5.2 Client: 127_0_0_1 helo _________\r\n")
