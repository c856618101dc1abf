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
    log = site.inst.wait_log("to=<bad@remote.test>, relay=", timeout=20)
    site.inst.wait_log("to=<good@remote.test>, relay=", timeout=20)
    log = site.inst.wait_log("removed", timeout=10)
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
                     rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{sink_port}, delay=[\d.]+, "
                     rf"delays=[\d./]+, dsn=2\.1\.5, status=deliverable \(250 2\.1\.5 Ok\)", log)
    assert good, log
    qid = good.group(1)
    assert re.search(rf"mailsys/qmgr\[\d+\]: {qid}: from=<double-bounce@mx\.example\.test>, "
                     rf"size=\d+, nrcpt=1 \(queue active\)", log), log
    assert re.search(rf"mailsys/qmgr\[\d+\]: {qid}: removed", log), log
    assert re.search(r"mailsys/smtp\[\d+\]: \w+: to=<bad@remote\.test>, relay=127\.0\.0\.1"
                     r"\[127\.0\.0\.1\]:\d+, delay=[\d.]+, delays=[\d./]+, dsn=5\.1\.1, "
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


def test_reject_code_550_and_reason(site):
    port = site.start(unverified_recipient_reject_code="550", address_verify_poll_count="3",
                      address_verify_poll_delay="1s")
    # poll_count 3: the probe's answer comes within the two polls.
    assert rcpt_replies(port, "good@remote.test", "bad@remote.test") == [
        (250, "2.1.5 Ok"),
        (550, "5.1.1 <bad@remote.test>: Recipient address rejected: undeliverable address: "
              "host 127.0.0.1[127.0.0.1] said: " + BAD + " (in reply to RCPT TO command)")]


def test_reject_reason_replaces_the_text_and_sender_twin(site):
    port = site.start(unverified_recipient_reject_code="550",
                      unverified_recipient_reject_reason="Address lookup failed",
                      smtpd_sender_restrictions="reject_unverified_sender",
                      address_verify_poll_count="3", address_verify_poll_delay="1s")
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
    log = mailsys_instance.wait_log("warning: verify service failure")
    assert "NOQUEUE: reject: RCPT from" in log


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
        "data_directory": str(tmp_path / "data"), "address_verify_poll_count": "3",
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
