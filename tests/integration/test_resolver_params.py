"""The resolver's address checks through a real master: allow_min_user,
resolve_null_domain and resolve_numeric_domain in smtpd's replies and log
lines and in qmgr's routes, as Postfix 3.7.11 showed them for the same
settings."""

from __future__ import annotations

import json
import re
import runpy
import smtplib
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
h = SimpleNamespace(**runpy.run_path(str(HERE / "smtpd_helpers.py")))
qh = SimpleNamespace(**runpy.run_path(str(HERE / "qmgr_helpers.py")))
sinks = SimpleNamespace(**runpy.run_path(str(HERE / "smtpsink.py")))

CONTENT = b"From: a@example.org\r\nSubject: minus\r\n\r\nHello.\r\n"
QMGR = ["qmgr unix n - n 300 1 qmgr", "bounce unix - - n - 0 bounce",
        "cleanup unix - - n - 0 cleanup"]


def test_smtpd_refuses_an_address_that_begins_with_a_minus(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst)
    with h.session(port) as s:
        s.ehlo("client.example")
        assert s.mail("-a@example.org") == (501, b"5.1.7 Bad sender address syntax")
        assert s.mail("a@example.org")[0] == 250
        assert s.rcpt('"-bob"@example.test') == (501, b"5.1.3 Bad recipient address syntax")
        assert s.rcpt("bob@example.test")[0] == 250
        assert s.verify("-foo") == (501, b"5.1.3 Bad recipient address syntax")
    # Postfix 3.7.11: "warning: Illegal address syntax from unknown[127.0.0.1]
    # in MAIL command: <-foo@example.com>", "... in VRFY command: -foo".
    log = inst.wait_log("mail=1/2 rcpt=1/2 vrfy=0/1")
    assert "Illegal address syntax from localhost[127.0.0.1] in VRFY command: -foo" in log
    assert "warning: Illegal address syntax from localhost[127.0.0.1] in MAIL command: " \
           "<-a@example.org>" in log
    assert "warning: Illegal address syntax from localhost[127.0.0.1] in RCPT command: " \
           '<"-bob"@example.test>' in log


def test_allow_min_user_lets_smtpd_take_it(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"allow_min_user": "yes"})
    with h.session(port) as s:
        s.ehlo("client.example")
        assert s.mail("-a@example.org")[0] == 250
        assert s.rcpt("-bob@example.test")[0] == 250


def test_qmgr_bounces_a_recipient_that_begins_with_a_minus(mailsys_instance):
    inst = mailsys_instance
    inst.write_config(master_cf=QMGR, main_cf={"mydestination": "", "relayhost": "[127.0.0.1]:9"})
    inst.start()
    qid = qh.inject(inst, CONTENT, "-bar@example.net", sender="")
    log = inst.wait_log(f"{qid}: removed", timeout=20)
    # Postfix 3.7.11: "postfix/error[14410]: 6EF3720C0C1: to=<-bar@example.net>,
    # relay=none, delay=0.01, delays=0/0.01/0/0.01, dsn=5.1.3, status=bounced (bad address syntax)".
    line = next(x for x in log.splitlines() if f"{qid}: to=<-bar@example.net>" in x)
    assert "relay=none," in line and line.endswith("dsn=5.1.3, status=bounced (bad address syntax)")


def test_smtpd_refuses_null_and_numeric_domains_by_default(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst)
    with h.session(port) as s:
        s.ehlo("client.example")
        assert s.mail("a@1.2.3.4") == (501, b"5.1.7 Bad sender address syntax")
        assert s.mail("a@example.org")[0] == 250
        assert s.rcpt("u@") == (501, b"5.1.3 Bad recipient address syntax")
        assert s.rcpt("u@127.0.0.1") == (501, b"5.1.3 Bad recipient address syntax")
        assert s.rcpt("u@[127.0.0.1]")[0] == 250
    # Postfix 3.7.11: "warning: Illegal address syntax from unknown[127.0.0.1]
    # in RCPT command: <u@1.2.3.4>".
    log = inst.wait_log("mail=1/2 rcpt=1/3")
    assert "Illegal address syntax from localhost[127.0.0.1] in RCPT command: <u@>" in log
    assert "Illegal address syntax from localhost[127.0.0.1] in MAIL command: <a@1.2.3.4>" in log


def test_resolved_null_and_numeric_domains_are_delivered(mailsys_instance, tmp_path):
    inst = mailsys_instance
    inst.write_config(master_cf=QMGR, main_cf={
        "mydestination": "", "relayhost": "[127.0.0.1]:9", "default_transport": "error:5.0.0 parked",
        "local_transport": "error:5.0.0 local", "resolve_null_domain": "yes",
        "resolve_numeric_domain": "yes"})
    inst.start()
    qid = qh.inject(inst, CONTENT, "u@", "u@1.2.3.4", "u@1.2.3", sender="")
    log = inst.wait_log(f"{qid}: removed", timeout=20)
    lines = {x.split(" to=<", 1)[1].split(">", 1)[0]: x for x in log.splitlines()
             if f"{qid}: to=<" in x}
    # Delivered as the resolver rewrote them, the queued address as orig_to
    # (Postfix 3.7.11: to=<u@bench.localdomain>, orig_to=<u@>). u@ is
    # u@$myhostname, which is not local with mydestination empty: it takes
    # the default transport (resolve.c re-resolves it as any other address).
    assert "orig_to=<u@>, relay=none" in lines["u@mx.example.test"]
    assert lines["u@mx.example.test"].endswith("status=bounced (parked)")
    assert "orig_to=<u@1.2.3.4>, relay=none" in lines["u@[1.2.3.4]"]
    assert lines["u@[1.2.3.4]"].endswith("status=bounced (parked)")
    assert lines["u@1.2.3"].endswith("dsn=5.1.3, status=bounced (bad address syntax)")


def test_a_numeric_domain_is_sent_and_logged_as_its_literal(mailsys_instance):
    # Postfix 3.7.11 with resolve_numeric_domain = yes, MAIL FROM:<s@5.6.7.8>
    # RCPT TO:<u@1.2.3.4> through a relayhost:
    #   qmgr: BE59A224944: from=<s@5.6.7.8>, size=403, nrcpt=1 (queue active)
    #   smtp: 8E663224935: to=<u@[1.2.3.4]>, orig_to=<u@1.2.3.4>,
    #         relay=127.0.0.1[127.0.0.1]:3202, ..., dsn=2.0.0, status=sent (250 2.0.0 Ok)
    # and the relayhost got MAIL FROM:<s@5.6.7.8>, RCPT TO:<u@[1.2.3.4]>.
    inst = mailsys_instance
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port:
        port = h.start(inst, {"resolve_numeric_domain": "yes", "mydestination": "",
                              "relayhost": f"[127.0.0.1]:{sink_port}"},
                       services=[*h.SERVICES, *QMGR[:2], "smtp unix - - n - - smtp"])
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.ehlo("c.example")
            assert c.mail("s@5.6.7.8")[0] == 250 and c.rcpt("u@1.2.3.4")[0] == 250
            qid = h.qid_of(c.data(CONTENT)[1])
        inst.wait_until(lambda: sink.messages, timeout=20)
        log = inst.wait_log(f"{qid}: removed", timeout=20)
    [message] = sink.messages
    assert (message.sender, message.rcpts) == ("s@5.6.7.8", ["u@[1.2.3.4]"])
    assert re.search(rf"\]: {qid}: from=<s@5\.6\.7\.8>, size=\d+, nrcpt=1 \(queue active\)",
                     log), log
    assert re.search(rf"mailsys/smtp\[\d+\]: {qid}: to=<u@\[1\.2\.3\.4\]>, "
                     rf"orig_to=<u@1\.2\.3\.4>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{sink_port}, "
                     r".*dsn=2\.0\.0, status=sent", log), log


def test_qmgr_bounces_null_and_numeric_domains_by_default(mailsys_instance):
    inst = mailsys_instance
    inst.write_config(master_cf=QMGR, main_cf={"mydestination": "", "relayhost": "[127.0.0.1]:9"})
    inst.start()
    qid = qh.inject(inst, CONTENT, "u@", "u@1.2.3.4", sender="")
    log = inst.wait_log(f"{qid}: removed", timeout=20)
    for rcpt in ("u@", "u@1.2.3.4"):
        line = next(x for x in log.splitlines() if f"{qid}: to=<{rcpt}>" in x)
        assert line.endswith("dsn=5.1.3, status=bounced (bad address syntax)")


def test_local_bounces_an_alias_that_expands_to_bad_syntax(mailsys_instance, tmp_path):
    inst = mailsys_instance
    inst.write_config(master_cf=[*QMGR, "local unix - n n - - local"], main_cf={
        "mydestination": "example.test", "local_recipient_maps": "",
        "mail_spool_directory": str(tmp_path), "relayhost": "[127.0.0.1]:9",
        "alias_maps": "inline:{ {minus=-bar@example.net} }"})
    inst.start()
    qid = qh.inject(inst, CONTENT, "minus@example.test", sender="")
    log = inst.wait_log(f"{qid}: removed", timeout=20)
    # Postfix 3.7.11: "local[30922]: 5A2C420C6F2: to=<minus@localhost>, relay=local,
    # delay=0.03, delays=0.02/0.01/0/0.01, dsn=5.1.3, status=bounced (bad recipient
    # address syntax: -bar@example.net)".
    line = next(x for x in log.splitlines() if f"{qid}: to=<minus@example.test>" in x)
    assert "relay=local," in line and line.endswith(
        "dsn=5.1.3, status=bounced (bad recipient address syntax: -bar@example.net)")


def notice_for_a_numeric_domain(inst, reply: str, **main_cf: str):
    """Mail from s@example.org to u@1.2.3.4 (resolve_numeric_domain = yes)
    through a next hop that answers RCPT TO:<u@[1.2.3.4]> with reply; the
    first notice the sink gets back."""
    sink = sinks.SmtpSink(rcpt={"u@[1.2.3.4]": f"{reply} <u@[1.2.3.4]>: refused"})
    with sinks.SinkThread(sink) as sink_port:
        port = h.start(inst, {"resolve_numeric_domain": "yes", "mydestination": "",
                              "relayhost": f"[127.0.0.1]:{sink_port}", **main_cf},
                       services=[*h.SERVICES, *QMGR[:2], "smtp unix - - n - - smtp"])
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.sendmail("s@example.org", ["u@1.2.3.4"], CONTENT)
        inst.wait_until(lambda: sink.messages, timeout=30)
    notice = sink.messages[0]
    assert notice.sender == "" and notice.rcpts == ["s@example.org"]
    return notice.data.decode()


@pytest.mark.parametrize("refused", ["550 5.1.1", "450 4.2.1"])
def test_a_bounced_numeric_domain_is_named_as_its_literal_in_the_notice(mailsys_instance,
                                                                          refused):
    # Postfix 3.7.11, resolve_numeric_domain = yes, the next hop refusing
    # RCPT TO:<u@[1.2.3.4]>: the sender's notice said
    #   <u@[1.2.3.4]> (expanded from <u@1.2.3.4>): host 127.0.0.1[127.0.0.1] said: 500
    #   Final-Recipient: rfc822; u@[1.2.3.4]
    #   Original-Recipient: rfc822;u@1.2.3.4
    # A temporary refusal with no queue lifetime left returns the mail the
    # same way (Postfix's notice then comes from its defer log, which holds
    # the address as delivered).
    text = notice_for_a_numeric_domain(mailsys_instance, refused, maximal_queue_lifetime="0",
                                       bounce_queue_lifetime="0")
    assert "<u@[1.2.3.4]> (expanded from <u@1.2.3.4>): host 127.0.0.1[127.0.0.1] said:" in text
    assert "Final-Recipient: rfc822; u@[1.2.3.4]\r\nOriginal-Recipient: rfc822;u@1.2.3.4\r\n" \
        "Action: failed\r\n" in text


def test_a_delay_warning_names_a_numeric_domain_as_its_literal(mailsys_instance):
    # Postfix 3.7.11, resolve_numeric_domain = yes, delay_warning_time = 1s,
    # the next hop answering RCPT with 450:
    #   Subject: Delayed Mail (still being retried)
    #   <u@[1.2.3.4]> (expanded from <u@1.2.3.4>): host 127.0.0.1[127.0.0.1] said: 450
    #   Final-Recipient: rfc822; u@[1.2.3.4]
    #   Original-Recipient: rfc822;u@1.2.3.4
    #   Action: delayed
    text = notice_for_a_numeric_domain(
        mailsys_instance, "450 4.2.1", delay_warning_time="1s", minimal_backoff_time="1s",
        maximal_backoff_time="2s", queue_run_delay="1s")
    assert "Subject: Delayed Mail (still being retried)\r\n" in text
    assert "<u@[1.2.3.4]> (expanded from <u@1.2.3.4>): host 127.0.0.1[127.0.0.1] said:" in text
    assert "Final-Recipient: rfc822; u@[1.2.3.4]\r\nOriginal-Recipient: rfc822;u@1.2.3.4\r\n" \
        "Action: delayed\r\n" in text


def test_mailq_lists_a_deferred_numeric_domain_as_postfix_does(mailsys_instance):
    # Postfix 3.7.11, resolve_numeric_domain = yes, relayhost a closed port,
    # RCPT TO:<u@1.2.3.4>: logged "to=<u@[1.2.3.4]>, orig_to=<u@1.2.3.4>, ...
    # status=deferred"; mailq listed its defer log's address under the reason
    # and then the queued address, which that log did not name:
    #                     (connect to 127.0.0.1[127.0.0.1]:3502: Connection refused)
    #                                          u@[1.2.3.4]
    #                                                           (reason unavailable)
    #                                          u@1.2.3.4
    # and postqueue -j: "recipients": [{"address": "u@[1.2.3.4]", "delay_reason":
    # "connect to ...: Connection refused"}, {"address": "u@1.2.3.4"}]
    inst = mailsys_instance
    inst.write_config(master_cf=[*QMGR, "smtp unix - - n - - smtp"], main_cf={
        "resolve_numeric_domain": "yes", "mydestination": "",
        "relayhost": "[127.0.0.1]:9"})
    inst.start()

    def tool(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "mailsys.cli.main", "-c",
                               str(inst.config_dir), *args],
                              capture_output=True, text=True, timeout=30).stdout

    def entry() -> dict:
        return json.loads(tool("postqueue", "-j") or "{}")

    qid = qh.inject(inst, CONTENT, "u@1.2.3.4")
    inst.wait_log(f"{qid}: to=<u@[1.2.3.4]>, orig_to=<u@1.2.3.4>", timeout=20)
    inst.wait_until(lambda: entry().get("queue_name") == "deferred", timeout=20)
    why = "connect to 127.0.0.1[127.0.0.1]:9: Connection refused"
    assert entry()["recipients"] == [{"address": "u@[1.2.3.4]", "delay_reason": why},
                                     {"address": "u@1.2.3.4"}]
    lines = tool("mailq").splitlines()
    assert lines[2:6] == ["%*s(%s)" % (76 - len(why), "", why), " " * 47 + "u@[1.2.3.4]",
                          "%*s(reason unavailable)" % (76 - 18, ""), " " * 47 + "u@1.2.3.4"]
