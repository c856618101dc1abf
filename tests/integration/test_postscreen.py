"""postscreen in front of smtpd through a real master: pass, pregreet, DNSBL, access list, cache."""

from __future__ import annotations

import re
import runpy
import socket
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from dnsserver import DnsServer  # noqa: E402

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))

# Postfix's own master.cf lines for postscreen (with the port of the test).
PSCREEN = ["smtpd pass - - n - - smtpd",
           "dnsblog unix - - n - 0 dnsblog",
           "tlsproxy unix - - n - 0 tlsproxy"]


@pytest.fixture(autouse=True)
def _show_log(mailsys_instance):
    yield
    print(mailsys_instance.log_text())


def start(inst, tmp_path, **params) -> int:
    port = inst.free_port()
    main_cf = {"mydestination": "$myhostname, localhost, example.test",
               "local_recipient_maps": "", "smtpd_error_sleep_time": "0",
               "data_directory": str(tmp_path / "data"),
               # Loopback is not $mynetworks here, so that the tests run.
               "mynetworks": "192.0.2.0/24",
               "postscreen_greet_wait": "1s"}
    main_cf.update(params)
    inst.write_config(master_cf=[*h.SERVICES, f"127.0.0.1:{port} inet n - n - 1 postscreen",
                                 *PSCREEN], main_cf=main_cf)
    inst.start()
    inst.wait_until(lambda: h.listening(port))
    inst.wait_log("DISCONNECT")          # the probe of listening()
    return port


def connect_from(source: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def read_until(sock: socket.socket, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def converse(sock: socket.socket, commands: list[bytes]) -> list[bytes]:
    """Each command's whole reply, a multi-line one arriving at once included."""
    replies = []
    for command in commands:
        sock.sendall(command + b"\r\n")
        reply = b""
        while not re.search(rb"(^|\n)\d{3} [^\n]*\r\n$", reply):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        replies.append(reply)
    return replies


def test_good_client_reaches_smtpd_and_is_cached(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path)
    with connect_from("127.0.0.1", port) as sock:
        # postscreen's 220- line, then smtpd's 220 after the wait: one greeting.
        greeting = read_until(sock, b"\r\n")
        assert greeting == b"220-mx.example.test ESMTP mailsys\r\n"
        assert read_until(sock, b"\r\n") == b"220 mx.example.test ESMTP mailsys\r\n"
        sock.sendall(b"QUIT\r\n")
        assert read_until(sock, b"\r\n").startswith(b"221 2.0.0")
    qid, client_port = h.send_message(port)
    log = inst.wait_log(f"{qid}: message-id=")
    assert re.search(r"postscreen\[\d+\]: CONNECT from \[127\.0\.0\.1\]:\d+ to "
                     rf"\[127\.0\.0\.1\]:{port}", log)
    assert re.search(r"postscreen\[\d+\]: PASS NEW \[127\.0\.0\.1\]:\d+\n", log)
    # The second connection finds the client in the cache.
    assert f"PASS OLD [127.0.0.1]:{client_port}" in log
    assert f"{qid}: client=localhost[127.0.0.1]" in log
    assert log.count("PASS NEW") == 1
    envelope, _, content = h.queued(inst, qid)
    assert [r.address for r in envelope.recipients] == ["bob@example.test"]
    # The cache is a file: it outlives the process.
    assert (tmp_path / "data" / "postscreen_cache").is_file()


def test_pregreet_client_is_refused(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path, postscreen_greet_action="enforce")
    with connect_from("127.0.0.5", port) as sock:
        assert read_until(sock, b"\r\n") == b"220-mx.example.test ESMTP mailsys\r\n"
        client_port = sock.getsockname()[1]
        sock.sendall(b"EHLO bad.example\r\n")      # before its turn
        # The early EHLO is answered by postscreen's own dialogue, no "220 ".
        ehlo = read_until(sock, b"250 CHUNKING\r\n")
        assert ehlo.startswith(b"250-mx.example.test\r\n") and b"PIPELINING" not in ehlo
        replies = converse(sock, [b"MAIL FROM:<spam@bad.example>", b"RCPT TO:<bob@example.test>",
                                  b"DATA"])
        assert replies == [b"250 2.1.0 Ok\r\n", b"550 5.5.1 Protocol error\r\n",
                           b"554 5.5.1 Error: no valid recipients\r\n"]
        assert sock.recv(100) == b""
    namaddr = f"[127.0.0.5]:{client_port}"
    log = inst.wait_log(f"DISCONNECT {namaddr}")
    assert re.search(rf"PREGREET 18 after [0-9.]+ from {re.escape(namaddr)}: "
                     r"EHLO bad\.example\\r\\n\n", log)
    assert (f"NOQUEUE: reject: RCPT from {namaddr}: 550 5.5.1 Protocol error; "
            "from=<spam@bad.example>, to=<bob@example.test>, proto=ESMTP, helo=<bad.example>") in log
    assert f"DATA without valid RCPT from {namaddr}" in log
    assert "smtpd[" not in log
    assert h.all_entries(inst) == []


def test_pregreet_drop(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path, postscreen_greet_action="drop")
    with connect_from("127.0.0.6", port) as sock:
        read_until(sock, b"\r\n")
        sock.sendall(b"HELO x\r\n")
        assert read_until(sock, b"\r\n") == b"521 5.5.1 Protocol error\r\n"
        # Closed with the pregreet unread: the kernel resets (Postfix's too).
        try:
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass
    inst.wait_log("DISCONNECT [127.0.0.6]")
    assert "PREGREET 8 after" in inst.log_text()


def test_dnsbl_listed_and_unlisted_clients(mailsys_instance, tmp_path):
    inst = mailsys_instance
    zone = {"2.0.0.127.zen.example": {"A": ["127.0.0.2"]},
            # 127.0.0.3 is on the list too, but with a code the filter leaves out.
            "3.0.0.127.zen.example": {"A": ["127.0.0.10"]},
            "1.0.0.127.zen.example": {}}
    with DnsServer(zone, ttl=300) as dns:
        port = start(inst, tmp_path, dns_nameservers=dns.spec,
                     postscreen_dnsbl_sites="zen.example=127.0.0.[2..4]*2",
                     postscreen_dnsbl_threshold="2", postscreen_dnsbl_action="enforce")
        with connect_from("127.0.0.2", port) as sock:
            client_port = sock.getsockname()[1]
            banner = read_until(sock, b"220 mx.example.test ESMTP mailsys\r\n")
            assert banner.startswith(b"220-")
            replies = converse(sock, [b"HELO spam.example", b"MAIL FROM:<a@spam.example>",
                                      b"RCPT TO:<bob@example.test>", b"QUIT"])
        assert replies == [b"250 mx.example.test\r\n", b"250 2.1.0 Ok\r\n",
                           b"550 5.7.1 Service unavailable; client [127.0.0.2] blocked using"
                           b" zen.example\r\n", b"221 2.0.0 Bye\r\n"]
        namaddr = f"[127.0.0.2]:{client_port}"
        log = inst.wait_log(f"DISCONNECT {namaddr}")
        assert f"DNSBL rank 2 for {namaddr}" in log
        assert (f"NOQUEUE: reject: RCPT from {namaddr}: 550 5.7.1 Service unavailable; client"
                " [127.0.0.2] blocked using zen.example; from=<a@spam.example>,"
                " to=<bob@example.test>, proto=SMTP, helo=<spam.example>") in log
        # Unlisted (NODATA) and filtered out: both get through to smtpd.
        for source in ("127.0.0.1", "127.0.0.3"):
            with connect_from(source, port) as sock:
                assert read_until(sock, b"220 mx.example.test ESMTP mailsys\r\n")
                assert converse(sock, [b"QUIT"])[0].startswith(b"221")
            inst.wait_log(f"[{source}] quit=1 commands=1")
        assert ("2.0.0.127.zen.example", "A") in dns.queries
    log = inst.log_text()
    assert "DNSBL rank" not in log.replace(f"DNSBL rank 2 for {namaddr}", "")
    assert re.search(r"PASS NEW \[127\.0\.0\.3\]", log)


def test_access_list_allow_and_deny(mailsys_instance, tmp_path):
    inst = mailsys_instance
    cidr = tmp_path / "postscreen_access.cidr"
    cidr.write_text("127.0.0.8 reject\n127.0.0.0/8 dunno\n")
    port = start(inst, tmp_path, mynetworks="127.0.0.7/32",
                 postscreen_access_list=f"permit_mynetworks, cidr:{cidr}",
                 postscreen_blacklist_action="drop", respectful_logging="no")
    with connect_from("127.0.0.8", port) as sock:
        assert read_until(sock, b"\r\n") == b"521 5.3.2 Service currently unavailable\r\n"
        assert sock.recv(100) == b""
    with connect_from("127.0.0.7", port) as sock:
        # Allowed: smtpd answers at once, without postscreen's 220- line.
        assert read_until(sock, b"\r\n") == b"220 mx.example.test ESMTP mailsys\r\n"
        converse(sock, [b"QUIT"])
    log = inst.wait_log("disconnect from unknown[127.0.0.7]")
    assert re.search(r"BLACKLISTED \[127\.0\.0\.8\]:\d+\n", log)
    assert re.search(r"WHITELISTED \[127\.0\.0\.7\]:\d+\n", log)
    assert "DISCONNECT [127.0.0.8]" in log


def test_connection_count_limit(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path, postscreen_client_connection_count_limit="1",
                 postscreen_greet_wait="5s")
    with connect_from("127.0.0.9", port) as first:
        assert read_until(first, b"\r\n").startswith(b"220-")
        with connect_from("127.0.0.9", port) as second:
            assert read_until(second, b"\r\n") == b"421 4.7.0 Error: too many connections\r\n"
    log = inst.wait_log("too many connections")
    assert re.search(r"NOQUEUE: reject: CONNECT from \[127\.0\.0\.9\]:\d+: too many connections",
                     log)


def test_dnsbl_allowlist_skips_the_wait(mailsys_instance, tmp_path):
    inst = mailsys_instance
    zone = {"4.0.0.127.wl.example": {"A": ["127.0.10.2"]}}
    with DnsServer(zone) as dns:
        port = start(inst, tmp_path, dns_nameservers=dns.spec, postscreen_greet_wait="8s",
                     postscreen_dnsbl_sites="wl.example=127.0.[0..255].[1..3]*-5",
                     postscreen_dnsbl_allowlist_threshold="-1")
        with connect_from("127.0.0.4", port) as sock:
            began = time.monotonic()
            read_until(sock, b"220 mx.example.test ESMTP mailsys\r\n")
            # Handed over on the DNS answer, long before the 8 s wait ends.
            assert time.monotonic() - began < 4
            converse(sock, [b"QUIT"])
    log = inst.wait_log("[127.0.0.4] quit=1 commands=1")
    assert re.search(r"PASS NEW \[127\.0\.0\.4\]:\d+\n", log)
    assert "DNSBL rank" not in log


def test_no_smtpd_to_hand_over_to(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = inst.free_port()
    inst.write_config(master_cf=[f"127.0.0.1:{port} inet n - n - 1 postscreen"],
                      main_cf={"mynetworks": "127.0.0.1/32", "data_directory": str(tmp_path)})
    inst.start()
    inst.wait_until(lambda: h.listening(port))
    with connect_from("127.0.0.1", port) as sock:
        assert read_until(sock, b"\r\n") == b"421 4.3.2 All server ports are busy\r\n"
    log = inst.wait_log("DISCONNECT [127.0.0.1]")
    assert re.search(r"postscreen\[\d+\]: warning: cannot connect to service \S+/private/smtpd: ",
                     log)
    assert "ALLOWLISTED [127.0.0.1]" in log


def test_pre_queue_limit(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path, postscreen_pre_queue_limit="10", postscreen_greet_wait="8s")
    held = [connect_from(f"127.0.1.{i}", port) for i in range(1, 11)]
    try:
        for sock in held:
            assert read_until(sock, b"\r\n").startswith(b"220-")
        with connect_from("127.0.1.11", port) as sock:
            assert read_until(sock, b"\r\n") == b"421 4.3.2 All screening ports are busy\r\n"
    finally:
        for sock in held:
            sock.close()
    log = inst.wait_log("all screening ports busy")
    assert re.search(r"NOQUEUE: reject: CONNECT from \[127\.0\.1\.11\]:\d+: all screening ports busy",
                     log)
