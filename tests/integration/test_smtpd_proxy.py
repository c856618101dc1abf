"""smtpd_proxy_filter, the before-queue content filter, through a real master.

The setup of Postfix's SMTPD_PROXY_README: the public smtpd has
"-o smtpd_proxy_filter=127.0.0.1:FILTER" in master.cf, the filter takes
the message over SMTP and re-injects it into a second smtpd with no proxy
filter (the README's 127.0.0.1:10026), which queues it. Every reply and
log line asserted here was seen from Postfix 3.7.11 with the same filter
behaviour (a scripted filter on loopback, smtpd_proxy_filter pointing at it).
"""

from __future__ import annotations

import re
import runpy
import smtplib
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

here = Path(__file__).parent
sinks = SimpleNamespace(**runpy.run_path(str(here / "smtpsink.py")))
h = SimpleNamespace(**runpy.run_path(str(here / "smtpd_helpers.py")))

MESSAGE = b"Subject: through the filter\r\nFrom: a@example.org\r\n\r\nline one\r\n.leading dot\r\n"
SERVICES = ["cleanup unix - - n - 0 cleanup", "qmgr unix n - n 300 1 qmgr",
            "bounce unix - - n - 0 bounce", "smtp unix - - n - - smtp",
            "anvil unix - - n - 1 anvil"]


def _start(inst, filter_port, main_cf=None, opts="", reinject=None, sink_port=None):
    """The public smtpd (proxy filter on) and, when asked, the re-injection one."""
    port = inst.free_port()
    # As admins write it: the filter and a limit, both as -o overrides.
    master = [*SERVICES,
              f"127.0.0.1:{port} inet n - n - 20 smtpd -o smtpd_proxy_filter=127.0.0.1:{filter_port} "
              f"-o smtpd_client_connection_count_limit=10 {opts}".rstrip()]
    if reinject is not None:
        master.append(f"127.0.0.1:{reinject} inet n - n - - smtpd -o smtpd_proxy_filter= "
                      "-o myhostname=reinject.example.test "
                      "-o smtpd_authorized_xforward_hosts=127.0.0.0/8")
    params = {"mydestination": "", "mynetworks": "127.0.0.0/8", "smtpd_error_sleep_time": "0",
              "myhostname": "mx.example.test"}
    if sink_port is not None:
        params["relayhost"] = f"[127.0.0.1]:{sink_port}"
    params.update(main_cf or {})
    inst.write_config(master_cf=master, main_cf=params)
    inst.start()
    inst.wait_until(lambda: h.listening(port) and (reinject is None or h.listening(reinject)))
    return port


def _one_message(inst, sink, main_cf=None, message=MESSAGE):
    """One message from a@example.org to b@remote.example through the filter
    sink: (its port, the answers to RCPT and to the end of data, the log
    after the session); no DATA when the RCPT is refused."""
    with sinks.SinkThread(sink) as filter_port:
        port = _start(inst, filter_port, main_cf=main_cf)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("c.example")
            s.mail("a@example.org")
            rcpt = s.rcpt("b@remote.example")
            answer = s.data(message) if rcpt[0] == 250 else None
        return filter_port, rcpt, answer, inst.wait_log(" ehlo=1 ")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ReinjectingFilter:
    """An aiosmtpd handler that is a before-queue filter: each message is
    passed on to the re-injection smtpd, with that smtpd's reply as its own."""

    def __init__(self, reinject: int) -> None:
        self.reinject = reinject
        self.ehlo: list[str] = []
        self.envelopes = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.ehlo.append(hostname)
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        with smtplib.SMTP("127.0.0.1", self.reinject, timeout=10) as s:
            s.ehlo("filter.example.test")
            s.mail(envelope.mail_from)
            for rcpt in envelope.rcpt_tos:
                s.rcpt(rcpt)
            code, text = s.data(envelope.original_content)
        return f"{code} {text.decode()}"


def test_mail_goes_through_the_filter_and_on_to_its_destination(mailsys_instance):
    from aiosmtpd.controller import Controller

    inst = mailsys_instance
    sink = sinks.SmtpSink()
    reinject, filter_port = inst.free_port(), _closed_port()
    handler = ReinjectingFilter(reinject)
    controller = Controller(handler, hostname="127.0.0.1", port=filter_port)
    controller.start()
    try:
        with sinks.SinkThread(sink) as sink_port:
            port = _start(inst, filter_port, reinject=reinject, sink_port=sink_port)
            with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
                s.ehlo("c.example")
                assert s.mail("a@example.org", ["SIZE=120"])[0] == 250
                assert s.rcpt("b@remote.example")[0] == 250
                code, reply = s.data(MESSAGE)
            # The filter's answer is the client's: the re-injection smtpd's queue ID.
            assert code == 250, reply
            qid = h.qid_of(reply)
            inst.wait_until(lambda: len(sink.messages) == 1, timeout=20)
            log = inst.wait_log(f"{qid}: removed", timeout=20)
    finally:
        controller.stop()
    assert handler.ehlo == ["mx.example.test"]            # smtpd_proxy_ehlo = $myhostname
    [envelope] = handler.envelopes
    assert (envelope.mail_from, envelope.rcpt_tos) == ("a@example.org", ["b@remote.example"])
    assert envelope.mail_options == ["SIZE=120"]          # MAIL as the client sent it
    # smtpd's own Received: header comes first in what the filter gets, with
    # no queue ID (there is none: the message is not queued here).
    lines = envelope.original_content.split(b"\r\n")
    assert lines[0] == b"Received: from c.example (localhost [127.0.0.1])", lines[:3]
    assert lines[1] == b"\tby mx.example.test (mailsys) with ESMTP"
    assert lines[2].startswith(b"\tfor <b@remote.example>; ")
    assert lines[3:] == MESSAGE.split(b"\r\n")            # the content, dot and all
    [message] = sink.messages
    assert message.rcpts == ["b@remote.example"] and b"\r\n.leading dot\r\n" in message.data
    # Postfix's lines: the client with no queue ID, then the filter's verdict.
    smtpd = r"mailsys/smtpd\[\d+\]: "
    assert re.search(smtpd + r"NOQUEUE: client=localhost\[127\.0\.0\.1\]\n", log), log
    assert re.search(smtpd + re.escape(
        f"proxy-accept: END-OF-MESSAGE: 250 2.0.0 Ok: queued as {qid}; from=<a@example.org> "
        "to=<b@remote.example> proto=ESMTP helo=<c.example>"), log), log
    # Only the re-injected message was queued.
    assert len(re.findall(r"cleanup\[\d+\]: \w+: message-id=", log)) == 1, log


def test_the_filter_refuses_a_recipient(mailsys_instance):
    inst = mailsys_instance
    sink = sinks.SmtpSink(rcpt={"bad@remote.example": "550 5.1.1 <bad@remote.example>: "
                                                      "unknown here"},
                          dot="250 2.0.0 Ok: queued as F1")
    with sinks.SinkThread(sink) as filter_port:
        port = _start(inst, filter_port)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("c.example")
            s.mail("a@example.org")
            refused = s.rcpt("bad@remote.example")
            assert s.rcpt("b@remote.example") == (250, b"2.1.5 Ok")
            code, reply = s.data(MESSAGE)
        log = inst.wait_log(" ehlo=1 ")
    assert refused == (550, b"5.1.1 <bad@remote.example>: unknown here")
    assert (code, reply) == (250, b"2.0.0 Ok: queued as F1")
    assert f'warning: proxy 127.0.0.1:{filter_port} rejected "RCPT TO:<bad@remote.example>": ' \
           '"550 5.1.1 <bad@remote.example>: unknown here"' in log
    assert "NOQUEUE: reject: RCPT" not in log               # smtpd's own restrictions did not
    assert "proxy-accept: END-OF-MESSAGE: 250 2.0.0 Ok: queued as F1; from=<a@example.org> " \
           "to=<b@remote.example> proto=ESMTP helo=<c.example>" in log
    assert "disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 " \
           "commands=5/6" in log
    # The MAIL and RCPT commands went as the client sent them, QUIT at the end.
    assert sink.commands[1:] == ["MAIL FROM:<a@example.org>", "RCPT TO:<bad@remote.example>",
                                 "RCPT TO:<b@remote.example>", "DATA", "QUIT"], sink.commands
    assert sink.commands[0] == "EHLO mx.example.test"


def test_smtpd_restrictions_come_before_the_filter(mailsys_instance):
    inst = mailsys_instance
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as filter_port:
        port = _start(inst, filter_port, main_cf={
            "smtpd_recipient_restrictions": "check_recipient_access inline:{nope@remote.example=REJECT}"})
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("c.example")
            s.mail("a@example.org")
            refused = s.rcpt("nope@remote.example")
        log = inst.wait_log(" ehlo=1 ")
    assert refused[0] == 554
    assert "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 554 5.7.1 <nope@remote.example>" in log
    # smtpd refused it itself: the filter was never asked.
    assert sink.sessions == 0 and "NOQUEUE: client=" not in log


def test_the_filter_refuses_the_message(mailsys_instance):
    inst = mailsys_instance
    sink = sinks.SmtpSink(dot="554 5.7.1 looks like spam")
    with sinks.SinkThread(sink) as filter_port:
        port = _start(inst, filter_port)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("c.example")
            s.mail("a@example.org")
            s.rcpt("b@remote.example")
            s.rcpt("c@remote.example")
            answer = s.data(MESSAGE)
            # The session goes on: the next message is the filter's again.
            s.mail("a@example.org")
            s.rcpt("b@remote.example")
            again = s.data(MESSAGE)
        log = inst.wait_log(" ehlo=1 ")
    assert answer == again == (554, b"5.7.1 looks like spam")
    # to= is the first recipient, as Postfix logs it.
    line = "proxy-reject: END-OF-MESSAGE: 554 5.7.1 looks like spam; from=<a@example.org> " \
           "to=<b@remote.example> proto=ESMTP helo=<c.example>"
    assert log.count(line) == 2, log
    assert sink.sessions == 2 and len(sink.messages) == 2
    # Two recipients: the Received: header names neither.
    first = sink.messages[0].data.split(b"\r\n")
    assert first[1] == b"\tby mx.example.test (mailsys) with ESMTP;"
    assert "message-id=" not in log                         # cleanup never saw it


def test_filter_down(mailsys_instance):
    inst = mailsys_instance
    filter_port = _closed_port()
    port = _start(inst, filter_port)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("c.example")
        assert s.mail("a@example.org") == (250, b"2.1.0 Ok")
        first = s.rcpt("b@remote.example")
        second = s.rcpt("c@remote.example")
        data = s.docmd("DATA")
    log = inst.wait_log(" ehlo=1 ")
    assert first == second == (451, b"4.3.0 Error: queue file write error")
    assert data == (554, b"5.5.1 Error: no valid recipients")
    warning = f"warning: connect to proxy filter 127.0.0.1:{filter_port}: Connection refused"
    assert log.count(warning) == 2, log                     # each RCPT tries again
    assert "NOQUEUE: client=" not in log


def test_filter_too_slow(mailsys_instance):
    filter_port, _, answer, log = _one_message(mailsys_instance, sinks.SmtpSink(stall="DOT"),
                                               main_cf={"smtpd_proxy_timeout": "1s"})
    assert answer == (451, b"4.3.0 Error: queue file write error")
    assert f"warning: timeout talking to proxy 127.0.0.1:{filter_port}\n" in log
    assert "proxy-reject: END-OF-MESSAGE: 451 4.3.0 Error: queue file write error; " \
           "from=<a@example.org> to=<b@remote.example> proto=ESMTP helo=<c.example>" in log
    # As Postfix counts it (3.7.11 live): the DATA failed.
    assert "ehlo=1 mail=1 rcpt=1 data=0/1 quit=1 commands=4/5" in log


@pytest.mark.parametrize("sink, refused, command, said", [
    # The filter's answer to MAIL is the answer to the RCPT that opened it.
    (dict(mail="553 5.7.1 not from you"), (553, b"5.7.1 not from you"),
     "MAIL FROM:<a@example.org>", "553 5.7.1 not from you"),
    # Its greeting is not passed on: smtpd's own generic reply (smtpd_proxy.c).
    (dict(greeting="554 5.3.2 too busy"), (451, b"4.3.0 Error: queue file write error"),
     "connection request", "554 5.3.2 too busy"),
])
def test_filter_refusing_the_transaction(mailsys_instance, sink, refused, command, said):
    filter_port, answer, _, log = _one_message(mailsys_instance, sinks.SmtpSink(**sink))
    assert answer == refused
    assert f'warning: proxy 127.0.0.1:{filter_port} rejected "{command}": "{said}"' in log
    assert "NOQUEUE: client=" not in log


def test_xforward_speed_adjust_and_bdat(mailsys_instance):
    inst = mailsys_instance
    sink = sinks.SmtpSink(xforward="NAME ADDR PROTO HELO SOURCE PORT IDENT",
                          rcpt={"bad@remote.example": "550 5.1.1 no such user"})
    with sinks.SinkThread(sink) as filter_port:
        port = _start(inst, filter_port, opts="-o smtpd_proxy_options=speed_adjust "
                                              "-o smtpd_proxy_ehlo=proxy.example.test")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("c.example")
            client_port = s.sock.getsockname()[1]
            s.mail("a@example.org")
            # speed_adjust: smtpd answers and the filter hears nothing yet.
            assert s.rcpt("b@remote.example") == (250, b"2.1.5 Ok")
            assert sink.sessions == 0
            ok = s.data(MESSAGE)
            s.mail("a@example.org")
            assert s.rcpt("bad@remote.example") == (250, b"2.1.5 Ok")
            refused = s.data(MESSAGE)
            # BDAT: the filter gets DATA and dot-stuffed lines.
            s.mail("a@example.org")
            s.rcpt("b@remote.example")
            s.send(b"BDAT 14\r\nSubject: x\r\n\r\n")
            assert s.getreply() == (250, b"2.0.0 Ok: 14 bytes")
            s.send(b"BDAT 6 LAST\r\n.dot\r\n")
            bdat = s.getreply()
        log = inst.wait_log(" ehlo=1 ")
    assert ok[0] == 250 and bdat[0] == 250
    assert refused == (550, b"5.1.1 no such user")
    assert "proxy-reject: END-OF-MESSAGE: 550 5.1.1 no such user; from=<a@example.org> " \
           "to=<bad@remote.example> proto=ESMTP helo=<c.example>" in log
    xforward = (f"XFORWARD NAME=localhost ADDR=127.0.0.1 PORT={client_port} HELO=c.example "
                "IDENT=[UNAVAILABLE] PROTO=ESMTP SOURCE=LOCAL")
    assert sink.commands[:3] == ["EHLO proxy.example.test", xforward, "MAIL FROM:<a@example.org>"]
    assert sink.messages[-1].data.endswith(b"Subject: x\r\n\r\n.dot\r\n")


def test_message_too_big_for_smtpd(mailsys_instance):
    sink = sinks.SmtpSink(data="354 go ahead")
    _, _, answer, log = _one_message(mailsys_instance, sink,
                                     main_cf={"message_size_limit": "2000"}, message=b"Subject: big\r\n\r\n" + (b"z" * 98 + b"\r\n") * 30)
    assert answer == (552, b"5.3.4 Error: message file too big")
    assert "warning: NOQUEUE: queue file size limit exceeded" in log
    # Postfix quotes the filter's last reply here (3.7.11 live).
    assert "proxy-reject: END-OF-MESSAGE: 354 go ahead; from=<a@example.org> " \
           "to=<b@remote.example> proto=ESMTP helo=<c.example>" in log
    assert sink.messages == []                              # no "." was sent
