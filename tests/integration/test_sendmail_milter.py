"""non_smtpd_milters: mail submitted with sendmail through a real master and
a milter written in the test (milter_peer.py); what the milter is told and
what is logged are Postfix 3.7.11's (seen live)."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from mailsys.queue import Queue, QueueStore

pytestmark = pytest.mark.integration

here = Path(__file__).parent
MilterPeer = runpy.run_path(str(here / "milter_peer.py"))["MilterPeer"]
SERVICES = ["cleanup unix - - n - 0 cleanup", "anvil unix - - n - 1 anvil"]


def sendmail(inst, *args: str, data: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailsys.cli.main", "-c", str(inst.config_dir),
                           "sendmail", *args], input=data, capture_output=True, timeout=60)


def test_sendmail_mail_goes_through_non_smtpd_milters(mailsys_instance):
    inst = mailsys_instance
    peer = MilterPeer(rcpt={"bad@example.com": "r"}, eom_add=[("X-NS", "1")],
                      eom_swap_rcpt=("b@example.com", "c@example.com"))
    with peer.running() as milter_port:
        inst.write_config(master_cf=SERVICES,
                          main_cf={"non_smtpd_milters": f"inet:127.0.0.1:{milter_port}",
                                   "myhostname": "mx.example.test"})
        inst.start()
        ok = sendmail(inst, "-f", "me@example.org", "b@example.com",
                      data=b"Subject: local\n\nbody\n")
        assert ok.returncode == 0, ok.stderr
        refused = sendmail(inst, "-f", "me@example.org", "bad@example.com",
                           data=b"Subject: local2\n\nbody\n")
        log = inst.wait_log("message not accepted, try again later")
        inst.stop()
    assert refused.returncode == 75, refused       # EX_TEMPFAIL
    with QueueStore.open(inst.queue_dir) as store:
        [(env, content)] = [(e, store.load_content(e.queue_id))
                            for e, _ in store.scan_all([Queue.INCOMING])]
    assert [r.address for r in env.recipients] == ["c@example.com"]
    assert b"\nSubject: local\r\n" in content and b"\r\nX-NS: 1\r\n" in content
    assert content.endswith(b"\r\n\r\nbody\r\n")
    # As Postfix's cleanup tells milters about a local submission.
    first = peer.seen[:8]
    assert first[2] == (b"C", b"localhost\x004\x00\x00127.0.0.1\x00")
    assert peer.macros(b"C")["_"] == "localhost [127.0.0.1]"
    assert (b"H", b"localhost\x00") in peer.seen
    assert (b"M", b"me@example.org\x00") in peer.seen
    assert (b"R", b"b@example.com\x00") in peer.seen
    assert ("Subject", "local") in peer.headers()
    assert (b"B", b"body\r\n") in peer.seen
    assert ": milter-reject: RCPT from localhost[127.0.0.1]: 5.7.1 Command rejected; " \
           "from=<me@example.org> to=<bad@example.com>\n" in log
    assert "warning: " in log and ": milter configuration error: can't reject recipient in " \
           "non-smtpd(8) submission\n" in log
