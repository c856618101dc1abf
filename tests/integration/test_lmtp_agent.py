"""The lmtp agent end to end: smtpd -> cleanup -> qmgr -> lmtp -> a real LMTP server.

The peer is aiosmtpd's LMTP server (lmtp_server.py), on a UNIX-domain
socket under the queue directory and on a loopback port. The expected
mail.log lines are those Postfix 3.7.11's lmtp(8) wrote for the same
transports and the same replies (transport_maps entries lmtp:unix:
private/lmtp-test, lmtp:inet:127.0.0.1:PORT, lmtp:[127.0.0.1]:PORT and
lmtp:127.0.0.1:PORT, an aiosmtpd LMTP peer with the same per-recipient
replies):

  postfix/lmtp[32574]: 9F2B9216035: to=<bounce@unix.test>,
    relay=bench.localdomain[private/lmtp-test], delay=0.03,
    delays=0.01/0.01/0/0.01, dsn=5.2.1, status=bounced (host
    bench.localdomain[private/lmtp-test] said: 550 5.2.1 <bounce@unix.test>
    Mailbox disabled (in reply to end of DATA command))
  postfix/lmtp[32574]: C8E8621613B: to=<ok@missing.test>, relay=none, ...,
    dsn=4.4.1, status=deferred (connect to bench.localdomain[private/nothere]:
    No such file or directory)
"""

from __future__ import annotations

import re
import runpy
import smtplib
from pathlib import Path
from types import SimpleNamespace

import pytest

here = Path(__file__).parent
sh = SimpleNamespace(**runpy.run_path(str(here / "smtpd_helpers.py")))
ls = SimpleNamespace(**runpy.run_path(str(here / "lmtp_server.py")))

pytestmark = pytest.mark.integration

SERVICES = ["cleanup unix - - n - 0 cleanup", "anvil unix - - n - 1 anvil",
            "qmgr unix n - n 300 1 qmgr", "bounce unix - - n - 0 bounce",
            "lmtp unix - - n - - lmtp"]
MESSAGE = b"From: owner@lmtp.test\r\nSubject: lmtp\r\n\r\nhello\r\n.leading dot\r\n"
STAMP = r"delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+"


def start(inst, transport: str, **main_cf: str) -> int:
    (inst.root / "transport").write_text(transport)
    params = {"transport_maps": f"texthash:{inst.root}/transport",
              "minimal_backoff_time": "300s", "queue_run_delay": "300s"}
    params.update(main_cf)
    return sh.start(inst, params, services=SERVICES)


def send(port: int, *rcpts: str, sender: str = "owner@lmtp.test") -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.sendmail(sender, list(rcpts), MESSAGE)
        reply = s.noop()   # the 250 ... queued as QID came with sendmail(); take it from the log
    assert reply[0] == 250
    return sender


def qid_of(inst, rcpt: str) -> str:
    log = inst.wait_log(f"to=<{rcpt}>", timeout=20)
    return re.search(rf"\]: ([0-9A-Za-z]+): to=<{re.escape(rcpt)}>", log).group(1)


def line(inst, rcpt: str) -> str:
    qid_of(inst, rcpt)
    return next(l for l in inst.log_text().splitlines() if f"to=<{rcpt}>" in l)


def test_unix_socket_each_recipient_by_its_own_reply(mailsys_instance):
    inst = mailsys_instance
    path = str(inst.queue_dir / "private" / "lmtp-test")
    with ls.LmtpServer(path=path) as server:
        port = start(inst, "lmtp.test lmtp:unix:private/lmtp-test\n")
        send(port, "ok@lmtp.test", "defer@lmtp.test", "bounce@lmtp.test", "norcpt@lmtp.test")
        qid = qid_of(inst, "ok@lmtp.test")
        # The bounce notice goes back to the sender, over LMTP too.
        inst.wait_log(f"{qid}: sender non-delivery notification", timeout=20)
        inst.wait_log("to=<owner@lmtp.test>", timeout=20)
        log = inst.log_text()
        relay = r"mx\.example\.test\[private/lmtp-test\]"
        said = r"host mx\.example\.test\[private/lmtp-test\] said: "
        expect = {
            "ok": rf"dsn=2\.0\.0, status=sent \(250 2\.0\.0 <ok@lmtp\.test> Saved\)",
            "defer": rf"dsn=4\.2\.2, status=deferred \({said}452 4\.2\.2 <defer@lmtp\.test> "
                     r"Mailbox is full \(in reply to end of DATA command\)\)",
            "bounce": rf"dsn=5\.2\.1, status=bounced \({said}550 5\.2\.1 <bounce@lmtp\.test> "
                      r"Mailbox disabled \(in reply to end of DATA command\)\)",
            "norcpt": rf"dsn=5\.1\.1, status=bounced \({said}550 5\.1\.1 <norcpt@lmtp\.test> "
                      r"User doesn't exist \(in reply to RCPT TO command\)\)",
        }
        for user, tail in expect.items():
            assert re.search(rf"mailsys/lmtp\[\d+\]: {qid}: to=<{user}@lmtp\.test>, "
                             rf"relay={relay}, {STAMP}, {tail}\n", log), (user, log)
        first, notice = server.messages[0], server.messages[1]
    assert first.lhlo == "mx.example.test"              # $lmtp_lhlo_name = $myhostname
    assert first.sender == "owner@lmtp.test"
    # In qmgr's order (Postfix sorts each message's recipients), not as received.
    assert first.rcpts == ["bounce@lmtp.test", "defer@lmtp.test", "ok@lmtp.test"]
    assert first.data.endswith(b"\r\n\r\nhello\r\n.leading dot\r\n")
    assert (notice.sender, notice.rcpts) == ("<>", ["owner@lmtp.test"])    # aiosmtpd's <>
    assert b"Final-Recipient: rfc822; bounce@lmtp.test" in notice.data
    assert b"Final-Recipient: rfc822; norcpt@lmtp.test" in notice.data
    assert b"Final-Recipient: rfc822; defer@lmtp.test" not in notice.data
    # The deferred recipient is still queued, the others are done.
    assert f"{qid}: removed" not in inst.log_text()
    mailq = inst.cli("mailq").stdout
    assert "defer@lmtp.test" in mailq and "ok@lmtp.test" not in mailq


@pytest.mark.parametrize("form", ["inet:127.0.0.1:{port}", "[127.0.0.1]:{port}",
                                  "127.0.0.1:{port}"])
def test_inet_next_hops_with_pipelining(mailsys_instance, form):
    inst = mailsys_instance
    lport = inst.free_port()
    with ls.LmtpServer(port=lport, pipelining=True) as server:
        port = start(inst, f"lmtp.test lmtp:{form.format(port=lport)}\n",
                     lmtp_lhlo_name="lhlo.example.test")
        send(port, "ok@lmtp.test", "bounce@lmtp.test")
        qid = qid_of(inst, "bounce@lmtp.test")
        text = line(inst, "ok@lmtp.test")
        [msg] = [m for m in server.messages if m.sender == "owner@lmtp.test"]
    assert re.fullmatch(rf".* mailsys/lmtp\[\d+\]: {qid}: to=<ok@lmtp\.test>, "
                        rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{lport}, {STAMP}, dsn=2\.0\.0, "
                        r"status=sent \(250 2\.0\.0 <ok@lmtp\.test> Saved\)", text), text
    assert re.search(rf"{qid}: to=<bounce@lmtp\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{lport}, "
                     rf"{STAMP}, dsn=5\.2\.1, status=bounced \(host 127\.0\.0\.1\[127\.0\.0\.1\] "
                     r"said: 550 5\.2\.1 <bounce@lmtp\.test> Mailbox disabled \(in reply to end "
                     r"of DATA command\)\)", inst.log_text())
    assert msg.lhlo == "lhlo.example.test"
    assert msg.rcpts == ["bounce@lmtp.test", "ok@lmtp.test"]


def test_virtual_transport_to_a_dovecot_style_socket(mailsys_instance):
    inst = mailsys_instance
    path = str(inst.queue_dir / "private" / "dovecot-lmtp")
    with ls.LmtpServer(path=path, pipelining=True) as server:
        (inst.root / "transport").write_text("")
        port = sh.start(inst, {"virtual_transport": "lmtp:unix:private/dovecot-lmtp",
                               "virtual_mailbox_domains": "virt.test",
                               "virtual_mailbox_maps": ""}, services=SERVICES)
        send(port, "ok@virt.test", "ok2@virt.test", sender="alice@example.org")
        text = line(inst, "ok2@virt.test")
        [msg] = server.messages
    assert re.search(r"mailsys/lmtp\[\d+\]: \w+: to=<ok2@virt\.test>, "
                     rf"relay=mx\.example\.test\[private/dovecot-lmtp\], {STAMP}, dsn=2\.0\.0, "
                     r"status=sent \(250 2\.0\.0 <ok2@virt\.test> Saved\)", text), text
    assert sorted(msg.rcpts) == ["ok2@virt.test", "ok@virt.test"]


def test_missing_socket_defers_without_a_connect_line(mailsys_instance):
    inst = mailsys_instance
    port = start(inst, "lmtp.test lmtp:unix:private/nothere\n")
    send(port, "ok@lmtp.test")
    text = line(inst, "ok@lmtp.test")
    assert re.search(r"mailsys/lmtp\[\d+\]: \w+: to=<ok@lmtp\.test>, relay=none, "
                     rf"{STAMP}, dsn=4\.4\.1, status=deferred \(connect to "
                     r"mx\.example\.test\[private/nothere\]: No such file or directory\)$", text), text
    # Postfix logs a refused TCP connection on a line of its own, a missing socket not.
    assert not re.search(r"mailsys/lmtp\[\d+\]: connect to", inst.log_text())


def test_refused_tcp_connection_is_logged_then_deferred(mailsys_instance):
    inst = mailsys_instance
    dead = inst.free_port()
    port = start(inst, f"lmtp.test lmtp:inet:127.0.0.1:{dead}\n")
    send(port, "ok@lmtp.test")
    text = line(inst, "ok@lmtp.test")
    assert text.endswith(f"dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:{dead}: "
                         "Connection refused)"), text
    assert re.search(rf"mailsys/lmtp\[\d+\]: connect to 127\.0\.0\.1\[127\.0\.0\.1\]:{dead}: "
                     r"Connection refused\n", inst.log_text())


def test_opportunistic_tls_is_off_for_a_socket_with_postfix_warning(mailsys_instance):
    inst = mailsys_instance
    path = str(inst.queue_dir / "private" / "lmtp-test")
    with ls.LmtpServer(path=path) as server:
        port = start(inst, "lmtp.test lmtp:unix:private/lmtp-test\n",
                     lmtp_tls_security_level="may")
        send(port, "ok@lmtp.test")
        text = line(inst, "ok@lmtp.test")
        assert len(server.messages) == 1
    assert "status=sent (250 2.0.0 <ok@lmtp.test> Saved)" in text
    assert re.search(r"mailsys/lmtp\[\d+\]: warning: smtp_connect_local: opportunistic TLS "
                     r"encryption is not appropriate for unix-domain destinations\.\n",
                     inst.log_text()), inst.log_text()
