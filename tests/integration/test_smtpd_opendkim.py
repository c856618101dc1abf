"""OpenDKIM as an smtpd milter through a real master: the message that
reaches the relay carries OpenDKIM's DKIM-Signature, and the signature
verifies against the key OpenDKIM signed with (dkim_check.py: RFC 6376
canonicalization and RSA-SHA256, the public key from the test, not DNS)."""

from __future__ import annotations

import runpy
import smtplib
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization

pytestmark = pytest.mark.integration

here = Path(__file__).parent
sinks = SimpleNamespace(**runpy.run_path(str(here / "smtpsink.py")))
h = SimpleNamespace(**runpy.run_path(str(here / "smtpd_helpers.py")))
dkim = SimpleNamespace(**runpy.run_path(str(here / "dkim_check.py")))

MESSAGE = (b"From: Alice <alice@dkim.example>\r\nTo: bob@remote.example\r\n"
           b"Subject: signed by OpenDKIM\r\nDate: Fri, 27 Nov 2026 17:00:00 +0000\r\n"
           b"Message-ID: <dkim-test-1@dkim.example>\r\n\r\n"
           b"Hello,  this body   has odd spacing \r\nand two lines.\r\n\r\n\r\n")


@pytest.fixture
def opendkim(tmp_path, mailsys_instance):
    """OpenDKIM signing for dkim.example on a loopback port: (port, public key PEM)."""
    keys = tmp_path / "keys"
    keys.mkdir()
    subprocess.run(["opendkim-genkey", "-D", str(keys), "-d", "dkim.example", "-s", "test",
                    "-b", "1024"], check=True, capture_output=True)
    private = keys / "test.private"
    public = serialization.load_pem_private_key(private.read_bytes(), None).public_key() \
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    port = mailsys_instance.free_port()
    conf = tmp_path / "opendkim.conf"
    conf.write_text(f"Syslog no\nSocket inet:{port}@127.0.0.1\n"
                    "Domain dkim.example,mail.dkim.example\n"
                    f"Selector test\nKeyFile {private}\nMode s\nCanonicalization relaxed/simple\n"
                    f"RequireSafeKeys false\nPidFile {tmp_path / 'opendkim.pid'}\n")
    proc = subprocess.Popen(["opendkim", "-f", "-x", str(conf)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not h.listening(port):
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "opendkim did not listen"
            time.sleep(0.05)
        yield port, public
    finally:
        # OpenDKIM lingers for seconds on SIGTERM; nothing of it is kept.
        proc.kill()
        proc.wait(10)
        proc.stdout.close()


def relayed(inst, milter_port: int, message: bytes, sender: str = "alice@dkim.example",
            **main_cf: str) -> bytes:
    """message sent through smtpd with OpenDKIM as its milter, as the relay got it."""
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port:
        port = inst.free_port()
        inst.write_config(
            master_cf=["cleanup unix - - n - 0 cleanup", "qmgr unix n - n 300 1 qmgr",
                       "bounce unix - - n - 0 bounce", "smtp unix - - n - - smtp",
                       f"127.0.0.1:{port} inet n - n - - smtpd"],
            main_cf={"relayhost": f"[127.0.0.1]:{sink_port}", "mydestination": "",
                     "mynetworks": "127.0.0.0/8",
                     "smtpd_milters": f"inet:127.0.0.1:{milter_port}",
                     "milter_default_action": "tempfail", **main_cf})
        inst.start()
        inst.wait_until(lambda: h.listening(port))
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("client.example")
            s.mail(sender)
            s.rcpt("bob@remote.example")
            code, _ = s.data(message)
            assert code == 250, inst.log_text()
        inst.wait_until(lambda: len(sink.messages) == 1, timeout=20)
    return sink.messages[0].data


def test_opendkim_signs_and_the_signature_verifies(mailsys_instance, opendkim):
    milter_port, public = opendkim
    data = relayed(mailsys_instance, milter_port, MESSAGE)
    # OpenDKIM inserts its header at index 0: above the Received: header,
    # as with Postfix, which does not show milters its own.
    assert data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=dkim.example;")
    assert b"\r\nReceived: from client.example (localhost [127.0.0.1])\r\n" in data
    tags = dkim.verify(data, public)
    assert tags["d"] == "dkim.example" and tags["s"] == "test"
    assert "from" in tags["h"].lower().split(":")
    # One changed byte in the body no longer verifies: the check can fail.
    with pytest.raises(AssertionError):
        dkim.verify(data.replace(b"two lines", b"two  lines!"), public)


def test_opendkim_signs_the_headers_cleanup_adds(mailsys_instance, opendkim):
    # A message from a local client without From: or Date: gets them from
    # cleanup; as in Postfix, OpenDKIM sees them first, so it signs (From:
    # names the domain it signs for) and covers them.
    milter_port, public = opendkim
    data = relayed(mailsys_instance, milter_port,
                   b"To: bob@remote.example\r\nSubject: bare\r\n\r\nhello\r\n")
    head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    for name in (b"\r\nFrom: alice@dkim.example\r\n", b"\r\nDate: ", b"\r\nMessage-Id: <"):
        assert head.count(name) == 1, head
    tags = dkim.verify(data, public)
    assert {"from", "date"} <= set(tags["h"].lower().split(":"))


def test_opendkim_signs_the_from_header_as_masquerading_rewrote_it(mailsys_instance, opendkim):
    # cleanup rewrites From: (masquerade_domains, header_sender) before
    # the milters see the header, as Postfix's cleanup runs them after it
    # wrote the message: the signature covers the From: delivered. Were
    # OpenDKIM shown the From: as received, it would sign for
    # mail.dkim.example, and the rewritten From: would break that.
    milter_port, public = opendkim
    data = relayed(mailsys_instance, milter_port,
                   MESSAGE.replace(b"alice@dkim.example>", b"alice@mail.dkim.example>"),
                   sender="alice@mail.dkim.example", masquerade_domains="dkim.example")
    assert b"\r\nFrom: Alice <alice@dkim.example>\r\n" in data
    tags = dkim.verify(data, public)
    assert tags["d"] == "dkim.example" and "from" in tags["h"].lower().split(":")


def test_opendkim_signs_the_from_header_as_canonical_maps_rewrote_it(mailsys_instance, opendkim,
                                                                    tmp_path):
    milter_port, public = opendkim
    table = tmp_path / "sender_canonical"
    table.write_text("/^alice@internal\\.test$/ alice@mail.dkim.example\n")
    data = relayed(mailsys_instance, milter_port,
                   MESSAGE.replace(b"alice@dkim.example>", b"alice@internal.test>"),
                   sender="alice@internal.test", sender_canonical_maps=f"regexp:{table}",
                   canonical_classes="envelope_sender, header_sender")
    assert b"\r\nFrom: Alice <alice@mail.dkim.example>\r\n" in data
    tags = dkim.verify(data, public)
    assert tags["d"] == "mail.dkim.example"
