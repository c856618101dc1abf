"""XCLIENT and XFORWARD through a real smtpd, compared with what Postfix 3.7.11 answers and logs.

The expected replies and log lines were taken from a private Postfix 3.7.11
on loopback given the same commands (smtpd_authorized_xclient_hosts /
smtpd_authorized_xforward_hosts = 127.0.0.1).
"""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).parent / "smtpd_helpers.py")))

XCLIENT_LINE = b"250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT"
XFORWARD_LINE = b"250-XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT"


def ehlo_lines(raw: h.Raw, name: bytes = b"proxy.example") -> list[bytes]:
    raw.send(b"EHLO " + name + b"\r\n")
    lines = []
    while True:
        line = raw.line().rstrip(b"\r\n")
        lines.append(line)
        if line[3:4] != b"-":
            return lines


def test_authorized_proxy_becomes_the_client_it_names(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, main_cf={
        "smtpd_authorized_xclient_hosts": "127.0.0.1", "mynetworks": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination"})
    with h.Raw(port) as raw:
        assert raw.reply().startswith(b"220 ")
        lines = ehlo_lines(raw)
        assert XCLIENT_LINE in lines and not any(b"XFORWARD" in l for l in lines)
        raw.send(b"XCLIENT NAME=client.example.org ADDR=192.0.2.10 PORT=1234\r\n")
        assert raw.reply().startswith(b"220 ")          # the session starts over
        lines = ehlo_lines(raw, b"x")
        # The new client is not authorized: no XCLIENT any more, and a second one is refused.
        assert not any(b"XCLIENT" in l for l in lines)
        raw.send(b"XCLIENT ADDR=192.0.2.11\r\n")
        assert raw.reply() == b"550 5.7.0 Error: insufficient authorization"
        # Restrictions judge the new client: 192.0.2.10 is not in mynetworks.
        raw.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<r@remote.example>\r\n")
        assert raw.reply() == b"250 2.1.0 Ok"
        assert raw.reply() == b"554 5.7.1 <r@remote.example>: Relay access denied"
        raw.send(b"RCPT TO:<user@example.test>\r\nDATA\r\n")
        assert raw.reply() == b"250 2.1.5 Ok"
        assert raw.reply().startswith(b"354 ")
        raw.send(h.MESSAGE + b".\r\n")
        qid = h.qid_of(raw.reply())
        raw.send(b"QUIT\r\n")
        assert raw.reply() == b"221 2.0.0 Bye"
    log = inst.wait_log("disconnect from client.example.org")
    lines = [line.split(": ", 1)[1] for line in log.splitlines() if "/smtpd[" in line]
    # Without the port probe of h.start (its lines may interleave with ours).
    lines.remove("connect from localhost[127.0.0.1]")
    lines.remove("lost connection after CONNECT from localhost[127.0.0.1]")
    lines.remove("disconnect from localhost[127.0.0.1] commands=0/0")
    assert lines == [
        "connect from localhost[127.0.0.1]",
        "NOQUEUE: reject: RCPT from client.example.org[192.0.2.10]: 554 5.7.1 "
        "<r@remote.example>: Relay access denied; from=<a@example.org> to=<r@remote.example> "
        "proto=ESMTP helo=<x>",
        f"{qid}: client=client.example.org[192.0.2.10]",
        "disconnect from client.example.org[192.0.2.10] ehlo=2 xclient=0/2 mail=1 rcpt=1/2 "
        "data=1 quit=1 commands=6/9",
    ], log
    envelope, _, content = h.queued(inst, qid)
    assert content.startswith(b"Received: from x (client.example.org [192.0.2.10])\r\n")
    assert (envelope.client_name, envelope.client_addr, envelope.client_port) == \
        ("client.example.org", "192.0.2.10", 1234)


def test_xclient_helo_proto_login_and_refusals(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, main_cf={"smtpd_authorized_xclient_hosts": "127.0.0.0/8"})
    with h.Raw(port) as raw:
        raw.reply()
        ehlo_lines(raw)
        for command, reply in [
                (b"XCLIENT", b"501 5.5.4 Syntax: XCLIENT attribute=value..."),
                (b"XCLIENT FOO=1", b"501 5.5.4 Bad XCLIENT attribute name: FOO"),
                (b"XCLIENT NAME", b"501 5.5.4 Error: attribute=value expected"),
                (b"XCLIENT NAME=bad_name!", b"501 5.5.4 Bad NAME syntax: bad_name!"),
                (b"XCLIENT ADDR=2001:db8::1", b"501 5.5.4 Bad ADDR syntax: 2001:db8::1"),
                (b"XCLIENT PROTO=FOO", b"501 5.5.4 Bad PROTO syntax: FOO"),
                (b"XCLIENT HELO=" + b"a" * 256, b"501 5.5.4 Error: attribute value too long")]:
            raw.send(command + b"\r\n")
            assert raw.reply() == reply, command
        # xtext, neutered HELO, an IPv6: address, PROTO in any case, LOGIN.
        raw.send(b"XCLIENT NAME=[TEMPUNAVAIL] ADDR=IPv6:2001:DB8::1 HELO=a+20b<c> PROTO=esmtp "
                 b"LOGIN=bob\r\n")
        assert raw.reply().startswith(b"220 ")
        raw.send(b"MAIL FROM:<a@example.org>\r\n")
        assert raw.reply() == b"250 2.1.0 Ok"
        raw.send(b"XCLIENT ADDR=10.0.0.1\r\n")
        assert raw.reply() == b"503 5.5.1 Error: MAIL transaction in progress"
        raw.send(b"RCPT TO:<user@example.test>\r\nDATA\r\n")
        assert raw.reply() == b"250 2.1.5 Ok"
        assert raw.reply().startswith(b"354 ")
        raw.send(h.MESSAGE + b".\r\n")
        qid = h.qid_of(raw.reply())
    log = inst.wait_log("disconnect from unknown[2001:db8::1]")
    assert f"{qid}: client=unknown[2001:db8::1], sasl_method=XCLIENT, sasl_username=bob" in log
    assert "ehlo=1 xclient=0/9 mail=1 rcpt=1 data=1 commands=4/13" in log
    _, _, content = h.queued(inst, qid)
    # As Postfix's: "with ESMTPA", no "(Authenticated sender: ...)" line by default.
    assert content.startswith(b"Received: from a?b?c? (unknown [IPv6:2001:db8::1])\r\n"
                              b"\tby mx.example.test (mailsys) with ESMTPA id " + qid.encode()), \
        content[:200]


def test_unauthorized_client_gets_neither_command(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, main_cf={"smtpd_authorized_xclient_hosts": "192.0.2.1",
                                  "smtpd_authorized_xforward_hosts": "192.0.2.1"})
    with h.Raw(port) as raw:
        raw.reply()
        lines = ehlo_lines(raw)
        assert not any(b"XCLIENT" in l or b"XFORWARD" in l for l in lines), lines
        raw.send(b"XCLIENT ADDR=192.0.2.9\r\nXFORWARD ADDR=192.0.2.9\r\nQUIT\r\n")
        assert raw.reply() == b"550 5.7.0 Error: insufficient authorization"
        assert raw.reply() == b"550 5.7.0 Error: insufficient authorization"
        assert raw.reply() == b"221 2.0.0 Bye"
    inst.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 xclient=0/1 xforward=0/1 quit=1 "
                  "commands=2/4")


def test_xforward_names_the_original_client_in_the_log(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, main_cf={"smtpd_authorized_xforward_hosts": "127.0.0.1"})
    with h.Raw(port) as raw:
        raw.reply()
        assert XFORWARD_LINE in ehlo_lines(raw, b"filter.local")
        raw.send(b"XFORWARD NAME=mx.example.org ADDR=198.51.100.7 PORT=4444\r\n"
                 b"XFORWARD PROTO=ESMTP HELO=orig-helo.example IDENT=ABC123 SOURCE=REMOTE\r\n"
                 b"MAIL FROM:<a@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n")
        for expected in (b"250 2.0.0 Ok", b"250 2.0.0 Ok", b"250 2.1.0 Ok", b"250 2.1.5 Ok"):
            assert raw.reply() == expected
        assert raw.reply().startswith(b"354 ")
        raw.send(h.MESSAGE + b".\r\n")
        first = h.qid_of(raw.reply())
        # The attributes are for one message only.
        raw.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n")
        raw.reply(), raw.reply(), raw.reply()
        raw.send(h.MESSAGE + b".\r\n")
        second = h.qid_of(raw.reply())
        raw.send(b"XFORWARD NAME=x.example\r\nMAIL FROM:<a@example.org>\r\n"
                 b"XFORWARD NAME=y.example\r\nQUIT\r\n")
        assert raw.reply() == b"250 2.0.0 Ok"
        assert raw.reply() == b"250 2.1.0 Ok"
        assert raw.reply() == b"503 5.5.1 Error: MAIL transaction in progress"
        assert raw.reply() == b"221 2.0.0 Bye"
    log = inst.wait_log("disconnect from localhost[127.0.0.1] ehlo=1")
    assert (f"{first}: client=localhost[127.0.0.1], orig_queue_id=ABC123, "
            f"orig_client=mx.example.org[198.51.100.7]\n") in log
    assert f"{second}: client=localhost[127.0.0.1]\n" in log
    # SOURCE=REMOTE: no Message-ID is added for the filtered message, as for
    # a remote client; the next one comes from this host (127.0.0.1) again.
    log = inst.wait_log(f"{second}: message-id=")
    assert f"{first}: message-id=<>" in log and f"{second}: message-id=<>" not in log
    assert "ehlo=1 xforward=3/4 mail=3 rcpt=2 data=2 quit=1 commands=12/13" in log
    envelope, _, content = h.queued(inst, first)
    # Postfix's Received: header names the actual client, the envelope the forwarded one.
    assert content.startswith(b"Received: from filter.local (localhost [127.0.0.1])\r\n")
    assert (envelope.client_name, envelope.client_addr, envelope.client_port, envelope.helo,
            envelope.protocol, envelope.log_ident, envelope.rewrite_context) == \
        ("mx.example.org", "198.51.100.7", 4444, "orig-helo.example", "ESMTP", "ABC123", "remote")


def test_anvil_counts_the_client_xclient_names(mailsys_instance):
    # Postfix 3.7.11 with smtpd_client_connection_count_limit = 1: a second
    # proxied session for the same client gets the 421 in place of the new
    # greeting, and smtpd warns "Connection concurrency limit exceeded: 2
    # from unknown[192.0.2.10] for service ..." (the proxy itself is exempt).
    inst = mailsys_instance
    port = h.start(inst, main_cf={"smtpd_authorized_xclient_hosts": "127.0.0.1",
                                  "smtpd_client_connection_count_limit": "1"})
    with h.Raw(port) as first, h.Raw(port) as second:
        first.reply(), second.reply()
        first.send(b"XCLIENT ADDR=192.0.2.10\r\n")
        assert first.reply().startswith(b"220 ")
        second.send(b"XCLIENT ADDR=192.0.2.10\r\n")
        assert second.reply() == b"421 4.7.0 mx.example.test Error: too many connections from " \
                                 b"192.0.2.10"
        assert second.line() == b""                 # closed after the 421
        first.send(b"QUIT\r\n")
        assert first.reply() == b"221 2.0.0 Bye"
    log = inst.wait_log("xclient=0/1 quit=1")
    # (XCLIENT named no NAME: the proxy's name stays, here localhost, as in Postfix.)
    assert "warning: Connection concurrency limit exceeded: 2 from localhost[192.0.2.10] " \
           "for service" in log, log


def test_client_restrictions_judge_the_new_client_at_xclient(mailsys_instance, tmp_path):
    # Postfix 3.7.11 with smtpd_delay_reject = no: the new greeting is the
    # refusal, logged as a reject of XCLIENT with the forgotten HELO left out.
    inst = mailsys_instance
    table = tmp_path / "clients"
    table.write_text("192.0.2.0/24 REJECT\n")
    port = h.start(inst, main_cf={"smtpd_authorized_xclient_hosts": "127.0.0.1",
                                  "smtpd_delay_reject": "no",
                                  "smtpd_client_restrictions": f"check_client_access cidr:{table}"})
    with h.Raw(port) as raw:
        assert raw.reply().startswith(b"220 ")
        ehlo_lines(raw)
        raw.send(b"XCLIENT NAME=[UNAVAILABLE] ADDR=192.0.2.10\r\n")
        assert raw.reply() == b"554 5.7.1 <unknown[192.0.2.10]>: Client host rejected: Access denied"
        # Then, as after a refusal at connect: 503 to all but QUIT, a second
        # XCLIENT included ("... ehlo=1 xclient=0/2 mail=0/1 quit=1 commands=2/5").
        raw.send(b"MAIL FROM:<a@example.org>\r\nXCLIENT ADDR=127.0.0.1\r\nQUIT\r\n")
        assert raw.reply() == b"503 5.7.0 Error: access denied for unknown[192.0.2.10]"
        assert raw.reply() == b"503 5.7.0 Error: access denied for unknown[192.0.2.10]"
        assert raw.reply() == b"221 2.0.0 Bye"
    log = inst.wait_log("disconnect from unknown[192.0.2.10]")
    assert "disconnect from unknown[192.0.2.10] ehlo=1 xclient=0/2 mail=0/1 quit=1 commands=2/5" \
        in log, log
    assert ("NOQUEUE: reject: XCLIENT from unknown[192.0.2.10]: 554 5.7.1 <unknown[192.0.2.10]>: "
            "Client host rejected: Access denied; proto=SMTP\n") in log, log


def test_xclient_names_a_lookup_that_failed_for_now_or_for_good(mailsys_instance):
    # Postfix 3.7.11 with unknown_client_reject_code = 550 answered these
    # RCPTs so: [TEMPUNAVAIL] is a temporary failure whatever the code
    # (smtpd.c xclient_cmd(): SMTPD_PEER_CODE_TEMP), and a name "unknown"
    # given as such is a name like any other (Postfix went on to its relay
    # check; root@localhost is local here).
    inst = mailsys_instance
    port = h.start(inst, main_cf={
        "smtpd_authorized_xclient_hosts": "127.0.0.1", "mynetworks": "127.0.0.0/8",
        "smtpd_client_restrictions": "reject_unknown_client_hostname",
        "unknown_client_reject_code": "550"})
    refusal = b"Client host rejected: cannot find your hostname, [192.0.2.10]"
    for name, reply in ((b"[TEMPUNAVAIL]", b"450 4.7.25 " + refusal),
                        (b"[UNAVAILABLE]", b"550 5.7.25 " + refusal),
                        (b"unknown", b"250 2.1.5 Ok")):
        with h.Raw(port) as raw:
            assert raw.reply().startswith(b"220 ")
            ehlo_lines(raw)
            raw.send(b"XCLIENT NAME=" + name + b" ADDR=192.0.2.10\r\n")
            assert raw.reply().startswith(b"220 ")
            ehlo_lines(raw, b"x")
            raw.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<root@localhost>\r\n")
            assert raw.reply() == b"250 2.1.0 Ok"
            assert raw.reply() == reply, name
