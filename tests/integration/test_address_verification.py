"""Address verification through a real master: smtpd asks verify, verify
sends a probe through cleanup and qmgr, the smtp agent asks the next hop
(an SMTP sink that refuses some recipients) with RCPT TO and RSET, no
DATA, and the answer decides the next RCPT.

The replies and log lines are those of a live Postfix 3.7.11 with
relayhost pointing at the same kind of sink:

    RCPT good  450 4.1.1 <good@remote.test>: Recipient address rejected:
               unverified address: Address verification in progress
    smtp:      QID: to=<good@remote.test>, relay=127.0.0.1[127.0.0.1]:3102, ...,
               dsn=2.1.5, status=deliverable (250 2.1.5 Ok)
    smtp:      QID: to=<bad@remote.test>, relay=..., dsn=5.1.1, status=undeliverable
               (host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <bad@remote.test>: ...
               (in reply to RCPT TO command))
    qmgr:      QID: removed
    RCPT good  250 2.1.5 Ok
    RCPT bad   450 4.1.1 <bad@remote.test>: Recipient address rejected: unverified
               address: host 127.0.0.1[127.0.0.1] said: 550 5.1.1 ... (in reply to
               RCPT TO command)            (unverified_recipient_reject_code = 450)
"""

from __future__ import annotations

import re
import runpy
import smtplib
from pathlib import Path
from types import SimpleNamespace

import pytest

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("agent_helpers.py"))))
sh = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))

pytestmark = pytest.mark.integration

BAD = "550 5.1.1 <bad@remote.test>: Recipient address rejected: User unknown"
SERVICES = ["cleanup unix - - n - 0 cleanup", "anvil unix - - n - 1 anvil",
            "qmgr unix n - n 300 1 qmgr", "bounce unix - - n - 0 bounce",
            "smtp unix - - n - - smtp", "verify unix - - n - 1 verify"]


@pytest.fixture
def site(mailsys_instance, tmp_path):
    inst = mailsys_instance
    sink = h.smtpsink.SmtpSink(pipelining=False, rcpt={"bad@remote.test": BAD})

    def start(**main_cf):
        params = {"relayhost": f"[127.0.0.1]:{port}", "mynetworks": "127.0.0.0/8",
                  "smtpd_recipient_restrictions": "reject_unverified_recipient",
                  "data_directory": str(tmp_path / "data"), "address_verify_poll_count": "1",
                  }
        params.update(main_cf)
        return sh.start(inst, params, services=SERVICES)
    with h.smtpsink.SinkThread(sink) as port:
        yield SimpleNamespace(inst=inst, sink=sink, start=start, sink_port=port)


def rcpt_replies(port: int, *rcpts: str, sender: str = "s@client.test") -> list[tuple[int, str]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.test")
        assert s.mail(sender)[0] == 250
        out = []
        for r in rcpts:
            code, text = s.rcpt(r)
            out.append((code, text.decode()))
        s.rset()
    return out


def in_progress(addr: str, kind: str = "Recipient") -> tuple[int, str]:
    return (450, f"4.1.1 <{addr}>: {kind} address rejected: unverified address: "
                 "Address verification in progress")


def test_unknown_yet_then_verified(site):
    port = site.start()
    assert rcpt_replies(port, "good@remote.test", "bad@remote.test") == [
        in_progress("good@remote.test"), in_progress("bad@remote.test")]
    # qmgr tells verify, then removes the probe: both probes are answered
    # once both are removed.
    site.inst.wait_until(lambda: site.inst.log_text().count(": removed") == 2, timeout=20)
    assert rcpt_replies(port, "good@remote.test", "bad@remote.test") == [
        (250, "2.1.5 Ok"),
        (450, "4.1.1 <bad@remote.test>: Recipient address rejected: unverified address: "
              "host 127.0.0.1[127.0.0.1] said: " + BAD + " (in reply to RCPT TO command)")]
    log = site.inst.log_text()
    sink_port = site.sink_port
    assert re.search(r"mailsys/smtpd\[\d+\]: NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: "
                     r"450 4\.1\.1 <good@remote\.test>: Recipient address rejected: unverified "
                     r"address: Address verification in progress; from=<s@client\.test> "
                     r"to=<good@remote\.test> proto=ESMTP helo=<client\.test>", log), log
    good = re.search(rf"mailsys/smtp\[\d+\]: (\w+): to=<good@remote\.test>, "
                     rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{sink_port}, (conn_use=2, )?delay=[\d.]+, "
                     rf"delays=[\d./]+, dsn=2\.1\.5, status=deliverable \(250 2\.1\.5 Ok\)", log)
    assert good, log
    qid = good.group(1)
    assert re.search(rf"mailsys/qmgr\[\d+\]: {qid}: from=<double-bounce@mx\.example\.test>, "
                     rf"size=\d+, nrcpt=1 \(queue active\)", log), log
    assert re.search(rf"mailsys/qmgr\[\d+\]: {qid}: removed", log), log
    assert re.search(r"mailsys/smtp\[\d+\]: \w+: to=<bad@remote\.test>, relay=127\.0\.0\.1"
                     r"\[127\.0\.0\.1\]:\d+, (conn_use=2, )?delay=[\d.]+, delays=[\d./]+, dsn=5\.1\.1, "
                     r"status=undeliverable \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 550 5\.1\.1 "
                     r"<bad@remote\.test>: Recipient address rejected: User unknown \(in reply "
                     r"to RCPT TO command\)\)", log), log
    # The probes asked RCPT TO and went no further: no DATA, no message, no bounce.
    assert site.sink.messages == []
    assert "DATA" not in site.sink.commands
    assert "RCPT TO:<good@remote.test>" in site.sink.commands
    assert site.sink.commands.count("RSET") >= 2
    assert "status=bounced" not in log and "sender non-delivery notification" not in log
    assert re.search(r"mailsys/verify\[\d+\]: cache btree:\S+/verify_cache full cleanup: "
                     r"retained=0 dropped=0 entries", log), log
    # The cache is a file: after a restart the answers stand, and no probe goes out.
    site.inst.stop()
    site.inst.start()
    site.inst.wait_until(lambda: sh.listening(port))
    assert rcpt_replies(port, "good@remote.test")[0] == (250, "2.1.5 Ok")
    log = site.inst.wait_log("retained=2 dropped=0 entries")
    assert log.count("message-id=") == 2


def test_reject_code_550_and_reason(site):
    port = site.start(unverified_recipient_reject_code="550", address_verify_poll_count="10",
                      address_verify_poll_delay="1s")
    # Polling: the probe's answer comes while smtpd asks again each second.
    assert rcpt_replies(port, "good@remote.test", "bad@remote.test") == [
        (250, "2.1.5 Ok"),
        (550, "5.1.1 <bad@remote.test>: Recipient address rejected: undeliverable address: "
              "host 127.0.0.1[127.0.0.1] said: " + BAD + " (in reply to RCPT TO command)")]


def test_reject_reason_replaces_the_text_and_sender_twin(site):
    port = site.start(unverified_recipient_reject_code="550",
                      unverified_recipient_reject_reason="Address lookup failed",
                      smtpd_sender_restrictions="reject_unverified_sender",
                      address_verify_poll_count="10", address_verify_poll_delay="1s")
    # As live Postfix 3.7.11 answers: the sender's 450 waits for the
    # recipient list to permit (defer_if_permit), with the sender DSN 4.1.7.
    assert rcpt_replies(port, "good@remote.test", sender="bad@remote.test") == [
        (450, "4.1.7 <bad@remote.test>: Sender address rejected: unverified address: "
              "host 127.0.0.1[127.0.0.1] said: " + BAD + " (in reply to RCPT TO command)")]
    assert rcpt_replies(port, "bad@remote.test", sender="good@remote.test") == [
        (550, "5.1.1 <bad@remote.test>: Recipient address rejected: undeliverable address: "
              "Address lookup failed")]


def test_verify_down_is_an_address_verification_problem(site, mailsys_instance):
    port = sh.start(mailsys_instance, {
        "smtpd_recipient_restrictions": "reject_unverified_recipient",
        "data_directory": str(Path(mailsys_instance.config_dir).parent / "data")})
    assert rcpt_replies(port, "good@remote.test") == [
        (450, "4.1.1 <good@remote.test>: Recipient address rejected: address verification "
              "problem")]
    mailsys_instance.wait_log("warning: verify service failure")
    log = mailsys_instance.wait_log("NOQUEUE: reject: RCPT from")
    assert re.search(r"mailsys/smtpd\[\d+\]: warning: verify service failure\n.*mailsys/smtpd"
                     r"\[\d+\]: NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 450 4\.1\.1 "
                     r"<good@remote\.test>: Recipient address rejected: address verification "
                     r"problem;", log), log


def test_local_probes_deliver_nothing(site, tmp_path):
    # Live Postfix 3.7.11's local(8) answers probes with "status=deliverable
    # (aliased to root)", "(delivers to mailbox)" and "status=undeliverable
    # (unknown user: "nosuch")", and writes nothing.
    (tmp_path / "aliases").write_text("alias1 root\n")        # texthash: postmap format
    (tmp_path / "users").write_text("carol x\n")
    spool = tmp_path / "spool"
    spool.mkdir()
    port = sh.start(site.inst, {
        "smtpd_recipient_restrictions": "reject_unverified_recipient",
        "smtpd_reject_unlisted_recipient": "no", "unverified_recipient_reject_code": "550",
        "data_directory": str(tmp_path / "data"), "address_verify_poll_count": "10",
        "address_verify_poll_delay": "1s", "alias_maps": f"texthash:{tmp_path}/aliases",
        "local_recipient_maps": f"texthash:{tmp_path}/users", "mail_spool_directory": str(spool)},
        services=[*SERVICES, "local unix - n n - - local"])
    assert rcpt_replies(port, "alias1@example.test", "carol@example.test",
                        "nosuch@example.test") == [
        (250, "2.1.5 Ok"), (250, "2.1.5 Ok"),
        (550, '5.1.1 <nosuch@example.test>: Recipient address rejected: undeliverable address: '
              'unknown user: "nosuch"')]
    log = site.inst.log_text()
    for to, status in (("alias1", r"dsn=2\.0\.0, status=deliverable \(aliased to root\)"),
                       ("carol", r"dsn=2\.0\.0, status=deliverable \(delivers to mailbox\)"),
                       ("nosuch", r'dsn=5\.1\.1, status=undeliverable \(unknown user: "nosuch"\)')):
        assert re.search(rf"mailsys/local\[\d+\]: \w+: to=<{to}@example\.test>, relay=local, "
                         rf"delay=[\d.]+, delays=[\d./]+, {status}", log), log
    assert list(spool.iterdir()) == []


def test_sendmail_bv_mails_a_delivery_status_report(site, tmp_path):
    # Postfix 3.7.11: "Mail Delivery Status Report will be mailed to <s>.",
    # the smtp agent's RCPT-only probe, and a report to the sender with one
    # "<rcpt>: delivery via RELAY: reason" line and Action deliverable /
    # undeliverable per recipient; nothing reaches verify's cache.
    (tmp_path / "vmailbox").write_text("alice@example.com example.com/alice/\n")
    inst = site.inst
    inst.write_config(master_cf=SERVICES + ["virtual unix - n n - - local"], main_cf={
        "relayhost": f"[127.0.0.1]:{site.sink_port}", "data_directory": str(tmp_path / "data"),
        "virtual_mailbox_domains": "example.com", "virtual_mailbox_base": str(tmp_path / "vmail"),
        "virtual_mailbox_maps": f"texthash:{tmp_path}/vmailbox"})
    inst.start()
    run = inst.cli("sendmail", "-f", "alice@example.com", "-bv", "good@remote.test",
                   "bad@remote.test", input="")
    assert (run.returncode, run.stdout) == (
        0, "Mail Delivery Status Report will be mailed to <alice@example.com>.\n")
    new = tmp_path / "vmail" / "example.com" / "alice" / "new"
    inst.wait_until(lambda: new.is_dir() and list(new.iterdir()), timeout=20)
    [report] = [p.read_text() for p in new.iterdir()]
    assert "Subject: Mail Delivery Status Report\n" in report
    assert "Enclosed is the mail delivery report that you requested." in report
    port = site.sink_port
    assert f"<good@remote.test>: delivery via 127.0.0.1[127.0.0.1]:{port}: 250 2.1.5 Ok\n" in report
    assert (f"<bad@remote.test>: delivery via 127.0.0.1[127.0.0.1]:{port}: host\n"
            "    127.0.0.1[127.0.0.1] said: 550 5.1.1 <bad@remote.test>: Recipient address\n"
            "    rejected: User unknown (in reply to RCPT TO command)\n") in report
    # Postfix 3.7.11's report for a -bv recipient has the Original-Recipient
    # its cleanup gave it (seen live).
    assert ("Final-Recipient: rfc822; good@remote.test\nOriginal-Recipient: "
            "rfc822;good@remote.test\nAction: deliverable\nStatus: 2.1.5\n") in report
    assert ("Final-Recipient: rfc822; bad@remote.test\nOriginal-Recipient: "
            "rfc822;bad@remote.test\nAction: undeliverable\nStatus: 5.1.1\n") in report
    assert "Content-Description: Message Headers\n" in report
    assert "Subject: probe\n" in report
    log = inst.log_text()
    assert re.search(r"mailsys/smtp\[\d+\]: (\w+): to=<good@remote\.test>, .*status=deliverable", log)
    assert re.search(r"mailsys/bounce\[\d+\]: \w+: sender delivery status notification: \w+", log), log
    assert site.sink.messages == [] and "DATA" not in site.sink.commands
    assert "mailsys/verify" not in log
