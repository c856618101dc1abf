"""smtp_generic_maps and smtp_*_checks in the smtp and lmtp clients, against real peers.

What Postfix 3.7.11 did with the same tables (generic: alice@bench.localdomain
-> alice.smith@example.com, bob -> robert@example.com, @old.example ->
@new.example; recipient_delimiter = +; smtp-sink as the relayhost):

    X-Mail-Args: <alice.smith@example.com>
    X-Rcpt-Args: <robert@example.com> ORCPT=rfc822;bob+2Bext@bench.localdomain
    X-Rcpt-Args: <dave+x@new.example> ORCPT=rfc822;dave+2Bx@old.example
    From: Alice <alice.smith@example.com>
    postfix/smtp[21976]: A027C21C057: warning: header Subject: warnme please: subject warned
    postfix/smtp[21976]: warning: unsupported command in smtp_header_checks map: REJECT no way
    postfix/smtp[21455]: 939A521C151: to=<bob+ext@bench.localdomain>, relay=... status=sent

The log's to=<> keeps the address as queued; the receiver gets the rewritten one.
"""

from __future__ import annotations

import re
import runpy
import smtplib
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from mailsys.message.address_maps import AddressMaps
from mailsys.message.smtp_output import OutputRewrite
from mailsys.runtime.resolver import Resolver
from mailsys.runtime.smtp_agent import TIMEOUT_PARAMS, SmtpAgent, SmtpSettings
from mailsys.runtime.smtp_client_io import ConnectionCache

sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/memtable.py (tests/ is no package)
from memtable import Table  # noqa: E402

here = Path(__file__).parent
h = SimpleNamespace(**runpy.run_path(str(here / "agent_helpers.py")))
sh = SimpleNamespace(**runpy.run_path(str(here / "smtpd_helpers.py")))
ls = SimpleNamespace(**runpy.run_path(str(here / "lmtp_server.py")))

pytestmark = pytest.mark.integration

GENERIC = ("alice@bench.localdomain alice.smith@example.com\n"
           "bob robert@example.com\n"
           "@old.example @new.example\n")
HEADER_CHECKS = ("/^Subject: warnme/ WARN subject warned\n"
                 "/^X-Rej:/ REJECT no way\n"
                 "/^X-Rep:/ REPLACE X-Replaced: yes\n")
MESSAGE = (b"From: Alice <alice@bench.localdomain>\r\n"
           b"To: bob@bench.localdomain, dave@old.example (Dave D)\r\n"
           b"Subject: warnme please\r\n"
           b"X-Rej: bad\r\n"
           b"X-Rep: old\r\n"
           b"\r\n"
           b"body bob@bench.localdomain\r\n")
# A delivery over a cached connection adds ", conn_use=N" (Postfix too).
STAMP = r"delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+(?:, conn_use=\d+)?"


def deliver_with(generic: str, sink, *rcpts: str, **kw):
    """An in-process agent with this generic table delivers MESSAGE to the sink."""
    maps = AddressMaps(myorigin="bench.localdomain", delimiter="+",
                       is_local=lambda d: d == "bench.localdomain")
    t = {name: 5.0 for name in TIMEOUT_PARAMS}
    t["smtp_rset_timeout"] = 5.0
    table = Table(dict(line.split() for line in generic.splitlines()), fold=True)
    s = SmtpSettings(helo_name="mx.example.test", timeouts=t, cache_time_limit=0.0,
                     output=OutputRewrite(maps=maps, generic=(table,)))

    async def load(qid: str) -> bytes:
        return MESSAGE

    async def main():
        async with trio.open_nursery() as n:
            port = await n.start(sink.serve)
            agent = SmtpAgent(s, Resolver([("127.0.0.1", 9)], lifetime=1.0), load,
                              ConnectionCache(0.0))
            status = await agent.deliver(h.request(f"[127.0.0.1]:{port}", *rcpts, **kw))
            n.cancel_scope.cancel()
        return status
    return trio.run(main)


def test_the_agent_sends_rewritten_envelope_with_orcpt_and_the_queued_size():
    sink = h.smtpsink.SmtpSink(dsn=True, size=10_000_000)
    with h.capture_logs() as logs:
        status = deliver_with(GENERIC, sink, "bob+ext@bench.localdomain", "dave+x@old.example",
                              "eve@other.example", sender="alice@bench.localdomain")
    assert [r.status for r in status.results] == ["sent", "sent", "sent"]
    mail = [c for c in sink.commands if c.startswith(("MAIL", "RCPT"))]
    # SIZE= is the queued content's (CRLF counted), as Postfix announces the queue file's.
    assert mail == [f"MAIL FROM:<alice.smith@example.com> SIZE={len(MESSAGE)}",
                    "RCPT TO:<robert@example.com> ORCPT=rfc822;bob+2Bext@bench.localdomain",
                    "RCPT TO:<dave+x@new.example> ORCPT=rfc822;dave+2Bx@old.example",
                    "RCPT TO:<eve@other.example>"]
    (msg,) = sink.messages
    assert msg.data.startswith(b"From: Alice <alice.smith@example.com>\r\n"
                               b"To: robert@example.com, dave@new.example (Dave D)\r\n")
    # The status lines name the recipients as queued.
    assert [l.split(",")[0] for l in h.lines(logs) if "status=" in l] == [
        "4F2A1C3B7D: to=<bob+ext@bench.localdomain>", "4F2A1C3B7D: to=<dave+x@old.example>",
        "4F2A1C3B7D: to=<eve@other.example>"]


def test_smtputf8_is_decided_on_the_queued_addresses():
    # Postfix 3.7.11, smtputf8_enable = yes, generic "jörg@bench.localdomain
    # joerg@example.com", a relayhost without SMTPUTF8: "to=<x@old.example>,
    # ... dsn=5.6.7, status=bounced (SMTPUTF8 is required, but was not
    # offered by host 127.0.0.1[127.0.0.1])", the rewriting notwithstanding.
    sink = h.smtpsink.SmtpSink()
    status = deliver_with("jörg@bench.localdomain joerg@example.com", sink, "x@old.example",
                          sender="jörg@bench.localdomain", smtputf8=True)
    (result,) = status.results
    assert (result.status, result.dsn) == ("bounced", "5.6.7")
    assert result.reason.startswith("SMTPUTF8 is required, but was not offered by host")
    assert sink.messages == []


class Recorder:
    """An aiosmtpd handler keeping each envelope."""

    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 2.0.0 Ok: queued as PEER1"


def test_generic_maps_and_header_checks_end_to_end(mailsys_instance):
    from aiosmtpd.controller import Controller

    inst = mailsys_instance
    (inst.root / "generic").write_text(GENERIC)
    (inst.root / "hc").write_text(HEADER_CHECKS)
    recorder = Recorder()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        peer = s.getsockname()[1]
    controller = Controller(recorder, hostname="127.0.0.1", port=peer)
    controller.start()
    try:
        port = sh.start(inst, {
            "myhostname": "bench.localdomain", "mydestination": "bench.localdomain",
            "recipient_delimiter": "+", "relayhost": f"[127.0.0.1]:{peer}",
            "local_transport": f"smtp:[127.0.0.1]:{peer}",
            "smtp_generic_maps": f"texthash:{inst.root}/generic",
            "smtp_header_checks": f"regexp:{inst.root}/hc"},
            services=[*sh.SERVICES, "qmgr unix n - n 300 1 qmgr",
                      "bounce unix - - n - 0 bounce", "smtp unix - - n - - smtp"])
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.sendmail("alice@bench.localdomain",
                       ["bob+ext@bench.localdomain", "dave+x@old.example"], MESSAGE)
        log = inst.wait_log("to=<dave+x@old.example>", timeout=20)
        # The local recipient goes by local_transport, the other by the
        # relayhost: two deliveries to the same peer.
        inst.wait_until(lambda: sum(len(e.rcpt_tos) for e in recorder.envelopes) == 2,
                        timeout=10)
    finally:
        controller.stop()
    assert sorted(r for e in recorder.envelopes for r in e.rcpt_tos) == [
        "dave+x@new.example", "robert@example.com"]
    for env in recorder.envelopes:
        assert env.mail_from == "alice.smith@example.com"
        content = env.original_content
        assert b"\r\nFrom: Alice <alice.smith@example.com>\r\n" in content
        assert b"\r\nTo: robert@example.com, dave@new.example (Dave D)\r\n" in content
        assert b"\r\nX-Replaced: yes\r\n" in content and b"X-Rep: old" not in content
        assert b"\r\nX-Rej: bad\r\n" in content            # REJECT is not for the smtp client
        assert content.endswith(b"\r\n\r\nbody bob@bench.localdomain\r\n")
    qid = re.search(r"\]: ([0-9A-Za-z]+): to=<dave\+x@old\.example>", log).group(1)
    log = inst.wait_log(f"{qid}: removed", timeout=10)
    assert re.search(rf"mailsys/smtp\[\d+\]: {qid}: warning: header Subject: warnme please: "
                     r"subject warned\n", log), log
    assert re.search(rf"mailsys/smtp\[\d+\]: {qid}: replace: header X-Rep: old: "
                     r"X-Replaced: yes\n", log), log
    assert re.search(r"mailsys/smtp\[\d+\]: warning: unsupported command in smtp_header_checks "
                     r"map: REJECT no way\n", log), log
    assert re.search(rf"mailsys/smtp\[\d+\]: {qid}: to=<bob\+ext@bench\.localdomain>, "
                     rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{peer}, {STAMP}, dsn=2\.0\.0, "
                     r"status=sent \(250 2\.0\.0 Ok: queued as PEER1\)", log), log


def test_lmtp_reads_its_own_twins(mailsys_instance):
    inst = mailsys_instance
    (inst.root / "generic").write_text(GENERIC)
    (inst.root / "hc").write_text(HEADER_CHECKS)
    (inst.root / "transport").write_text("lmtp.test lmtp:unix:private/lmtp-generic\n")
    path = str(inst.queue_dir / "private" / "lmtp-generic")
    with ls.LmtpServer(path=path) as server:
        port = sh.start(inst, {
            "transport_maps": f"texthash:{inst.root}/transport",
            "lmtp_generic_maps": f"texthash:{inst.root}/generic",
            "lmtp_header_checks": f"regexp:{inst.root}/hc",
            # The smtp_* tables are not the lmtp program's.
            "smtp_generic_maps": "inline:{ {owner@old.example = wrong@example.com} }"},
            services=[*sh.SERVICES, "qmgr unix n - n 300 1 qmgr",
                      "bounce unix - - n - 0 bounce", "lmtp unix - - n - - lmtp"])
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.sendmail("owner@old.example", ["u@lmtp.test"], MESSAGE)
        log = inst.wait_log("to=<u@lmtp.test>", timeout=20)
        inst.wait_until(lambda: server.messages, timeout=10)
    (msg,) = server.messages
    assert msg.sender == "owner@new.example" and msg.rcpts == ["u@lmtp.test"]
    # A user@domain key matches any domain; the bare "bob" only a domain of
    # this host, which bench.localdomain is not in this instance.
    assert b"\r\nFrom: Alice <alice.smith@example.com>\r\n" in msg.data
    assert b"\r\nTo: bob@bench.localdomain, dave@new.example (Dave D)\r\n" in msg.data
    assert re.search(r"mailsys/lmtp\[\d+\]: warning: unsupported command in lmtp_header_checks "
                     r"map: REJECT no way\n", inst.log_text()), log
