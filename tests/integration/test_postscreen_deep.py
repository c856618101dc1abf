"""postscreen's tests after the 220 greeting, through a real master, byte for byte.

Each expectation is what a live Postfix 3.7.11 postscreen answered and
logged for the same bytes: a good client is deferred at RCPT (450 4.3.2)
and allowed from the cache when it comes back; a pipelining, non-SMTP or
bare-newline client is logged and dealt with by the test's action."""

from __future__ import annotations

import re
import runpy
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import lmdb
import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from dnsserver import DnsServer  # noqa: E402

pytestmark = pytest.mark.integration

ps = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("test_postscreen.py"))))
start, connect_from, read_until = ps.start, ps.connect_from, ps.read_until

DEEP = {"postscreen_pipelining_enable": "yes", "postscreen_non_smtp_command_enable": "yes",
        "postscreen_bare_newline_enable": "yes"}
GREETING = b"220 mx.example.test ESMTP mailsys\r\n"


@pytest.fixture(autouse=True)
def _show_log(mailsys_instance):
    yield
    print(mailsys_instance.log_text())


def cache_records(tmp_path) -> dict[str, str]:
    """The postscreen cache file as it stands (read beside the running process)."""
    env = lmdb.open(str(tmp_path / "data" / "postscreen_cache"), subdir=False, readonly=True,
                    max_dbs=0)
    try:
        with env.begin() as txn:
            return {bytes(k).decode(): bytes(v).decode() for k, v in txn.cursor()}
    finally:
        env.close()


def reply(sock) -> bytes:
    """One whole reply, multi-line ones too, however the bytes arrive."""
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
        last = data.rsplit(b"\r\n", 2)
        if data.endswith(b"\r\n") and last[-2][3:4] != b"-":
            return data


def converse(sock, commands: list[bytes]) -> list[bytes]:
    replies = []
    for command in commands:
        sock.sendall(command + b"\r\n")
        replies.append(reply(sock))
    return replies


def greet(sock) -> bytes:
    """postscreen's 220- teaser and, after the wait, its own 220 greeting."""
    return read_until(sock, GREETING)


def test_good_client_is_deferred_then_allowed(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path, **DEEP)
    with connect_from("127.0.0.11", port) as sock:
        client_port = sock.getsockname()[1]
        assert greet(sock) == b"220-mx.example.test ESMTP mailsys\r\n" + GREETING
        ehlo, *rest = converse(sock, [b"EHLO good.example", b"MAIL FROM:<a@good.example>",
                                      b"RCPT TO:<bob@example.test>", b"QUIT"])
        assert ehlo.startswith(b"250-mx.example.test\r\n") and b"PIPELINING" not in ehlo
        assert ehlo.endswith(b"250 CHUNKING\r\n")
        assert rest == [b"250 2.1.0 Ok\r\n", b"450 4.3.2 Service currently unavailable\r\n",
                        b"221 2.0.0 Bye\r\n"]
    namaddr = f"[127.0.0.11]:{client_port}"
    log = inst.wait_log(f"DISCONNECT {namaddr}")
    assert (f"NOQUEUE: reject: RCPT from {namaddr}: 450 4.3.2 Service currently unavailable; "
            "from=<a@good.example>, to=<bob@example.test>, proto=ESMTP, helo=<good.example>\n"
            ) in log
    assert re.search(rf"PASS NEW {re.escape(namaddr)}\n.*DISCONNECT {re.escape(namaddr)}\n",
                     log)
    assert "smtpd[" not in log.split(f"CONNECT from {namaddr}")[1]
    # Postfix's record: pregreet for a day, no DNSBL, the deep tests for 30 days.
    pregreet, dnsbl, *deep = (int(v) for v in cache_records(tmp_path)["127.0.0.11"].split(";"))
    now = time.time()
    assert abs(pregreet - (now + 86400)) < 30 and dnsbl == 1
    assert len(set(deep)) == 1 and abs(deep[0] - (now + 30 * 86400)) < 30
    # Back again: straight to smtpd, which takes the mail.
    with connect_from("127.0.0.11", port) as sock:
        client_port = sock.getsockname()[1]
        assert read_until(sock, b"\r\n") == GREETING
        replies = converse(sock, [b"HELO good.example", b"MAIL FROM:<a@good.example>",
                                  b"RCPT TO:<bob@example.test>", b"DATA"])
        assert [r[:3] for r in replies] == [b"250", b"250", b"250", b"354"]
        sock.sendall(b"Subject: hi\r\n\r\nbody\r\n.\r\n")
        assert read_until(sock, b"\r\n").startswith(b"250 2.0.0 Ok: queued as ")
        converse(sock, [b"QUIT"])
    log = inst.wait_log("message-id=")
    assert f"PASS OLD [127.0.0.11]:{client_port}" in log


def test_pipelining_client_is_refused(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path, **DEEP)
    with connect_from("127.0.0.12", port) as sock:
        client_port = sock.getsockname()[1]
        greet(sock)
        sock.sendall(b"EHLO pipe.example\r\nMAIL FROM:<a@pipe.example>\r\n"
                     b"RCPT TO:<bob@example.test>\r\n")
        replies = read_until(sock, b"550 5.5.1 Protocol error\r\n")
        assert replies.endswith(b"250 CHUNKING\r\n250 2.1.0 Ok\r\n550 5.5.1 Protocol error\r\n")
        assert converse(sock, [b"DATA"]) == [b"554 5.5.1 Error: no valid recipients\r\n"]
        assert sock.recv(100) == b""
    namaddr = f"[127.0.0.12]:{client_port}"
    log = inst.wait_log(f"DISCONNECT {namaddr}")
    assert (f"COMMAND PIPELINING from {namaddr} after EHLO: MAIL FROM:<a@pipe.example>"
            "\\r\\nRCPT TO:<bob@example.test>\\r\\n\n") in log
    assert (f"NOQUEUE: reject: RCPT from {namaddr}: 550 5.5.1 Protocol error; "
            "from=<a@pipe.example>, to=<bob@example.test>, proto=ESMTP, helo=<pipe.example>"
            ) in log
    assert f"DATA without valid RCPT from {namaddr}" in log
    assert "PASS NEW" not in log.split(f"CONNECT from {namaddr}")[1]
    # A failed client is not remembered: it is tested again.
    assert "127.0.0.12" not in cache_records(tmp_path)
    with connect_from("127.0.0.12", port) as sock:
        assert read_until(sock, b"\r\n") == b"220-mx.example.test ESMTP mailsys\r\n"


def test_non_smtp_command_is_dropped(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path, **DEEP)
    with connect_from("127.0.0.13", port) as sock:
        client_port = sock.getsockname()[1]
        greet(sock)
        assert converse(sock, [b"GET / HTTP/1.0"]) == [
            b"521 5.7.0 Error: I can break rules, too. Goodbye.\r\n"]
        assert sock.recv(100) == b""
    namaddr = f"[127.0.0.13]:{client_port}"
    log = inst.wait_log(f"DISCONNECT {namaddr}")
    assert f"NON-SMTP COMMAND from {namaddr} after CONNECT: GET / HTTP/1.0\n" in log


def test_bare_newline_ignored_for_the_shortest_ttl(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path, **DEEP)
    with connect_from("127.0.0.14", port) as sock:
        client_port = sock.getsockname()[1]
        greet(sock)
        sock.sendall(b"HELO bare.example\n")
        assert read_until(sock, b"\r\n") == b"250 mx.example.test\r\n"
        assert converse(sock, [b"MAIL FROM:<>", b"RCPT TO:<bob@example.test>"])[1] \
            == b"450 4.3.2 Service currently unavailable\r\n"
    # No QUIT: the hangup after RCPT still passes the client.
    namaddr = f"[127.0.0.14]:{client_port}"
    log = inst.wait_log(f"DISCONNECT {namaddr}")
    assert f"BARE NEWLINE from {namaddr} after HELO bare.example\n" in log
    assert re.search(rf"HANGUP after [0-9.]+ from {re.escape(namaddr)} in tests after SMTP "
                     rf"handshake\n.*PASS NEW {re.escape(namaddr)}\n", log)
    pregreet, _, pipelining, non_smtp, bare = (
        int(v) for v in cache_records(tmp_path)["127.0.0.14"].split(";"))
    # "ignore" passes the test for the shortest TTL (postscreen_dnsbl_min_ttl, 60s).
    assert abs(bare - (time.time() + 60)) < 30
    assert pipelining == non_smtp and pipelining - bare > 29 * 86400


def test_pregreet_client_gets_every_deep_test(mailsys_instance, tmp_path):
    inst = mailsys_instance
    # Deep tests off: a client that failed the pregreet test gets them anyway.
    port = start(inst, tmp_path, postscreen_greet_action="enforce", postscreen_greet_wait="5s")
    with connect_from("127.0.0.15", port) as sock:
        client_port = sock.getsockname()[1]
        read_until(sock, b"\r\n")
        began = time.monotonic()
        sock.sendall(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\n")
        read_until(sock, b"250 2.1.0 Ok\r\n")
        # No DNSBL to wait for: the dialogue starts at once, not after 5 s.
        assert time.monotonic() - began < 3
        assert converse(sock, [b"GET / HTTP/1.0"]) == [
            b"521 5.7.0 Error: I can break rules, too. Goodbye.\r\n"]
        assert sock.recv(100) == b""
    namaddr = f"[127.0.0.15]:{client_port}"
    log = inst.wait_log(f"DISCONNECT {namaddr}")
    assert f"COMMAND PIPELINING from {namaddr} after EHLO: MAIL FROM:<a@b.example>\\r\\n" in log
    assert f"NON-SMTP COMMAND from {namaddr} after MAIL: GET / HTTP/1.0" in log


def test_cached_pregreet_means_no_wait_and_limits(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path, postscreen_command_time_limit="2s",
                 postscreen_command_count_limit="3", **DEEP)
    with connect_from("127.0.0.16", port) as sock:
        greet(sock)
        converse(sock, [b"QUIT"])
    inst.wait_log("DISCONNECT [127.0.0.16]")
    # The pregreet pass is cached, the deep tests are still to do: postscreen's
    # 220 comes at once, without the 220- teaser.
    with connect_from("127.0.0.16", port) as sock:
        client_port = sock.getsockname()[1]
        assert read_until(sock, b"\r\n") == GREETING
        assert converse(sock, [b"NOOP", b"NOOP", b"NOOP", b"NOOP"]) == [
            b"250 2.0.0 Ok\r\n"] * 3 + [
            b"421 mx.example.test Service unavailable - try again later\r\n"]
    namaddr = f"[127.0.0.16]:{client_port}"
    log = inst.wait_log(f"DISCONNECT {namaddr}")
    assert f"COMMAND COUNT LIMIT from {namaddr} after NOOP\n" in log
    with connect_from("127.0.0.16", port) as sock:
        client_port = sock.getsockname()[1]
        read_until(sock, b"\r\n")
        converse(sock, [b"EHLO x"])
        sock.sendall(b"MAIL FROM")
        assert read_until(sock, b"\r\n") \
            == b"421 4.4.2 mx.example.test Error: timeout exceeded\r\n"
    log = inst.wait_log(f"COMMAND TIME LIMIT from [127.0.0.16]:{client_port} after EHLO\n")
    assert cache_records(tmp_path)["127.0.0.16"].endswith(";1;0;0;0")


def test_allowlist_interfaces_veto(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path, postscreen_whitelist_interfaces="!127.0.0.1, static:all")
    for _ in range(2):
        with connect_from("127.0.0.17", port) as sock:
            client_port = sock.getsockname()[1]
            greet(sock)
            assert converse(sock, [b"HELO x", b"MAIL FROM:<>", b"RCPT TO:<bob@example.test>",
                                   b"QUIT"])[2] == b"450 4.3.2 Service currently unavailable\r\n"
        log = inst.wait_log(f"DISCONNECT [127.0.0.17]:{client_port}")
        assert f"ALLOWLIST VETO [127.0.0.17]:{client_port}\n" in log
    assert "PASS NEW" not in log.replace("PASS NEW [127.0.0.1]", "")
    assert "127.0.0.17" not in cache_records(tmp_path)


def test_cache_cleanup(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path, postscreen_cache_cleanup_interval="2s", **DEEP)
    spec = f"btree:{tmp_path / 'data'}/postscreen_cache"
    inst.wait_log(f"cache {spec} full cleanup: retained=0 dropped=0 entries")
    with connect_from("127.0.0.18", port) as sock:
        greet(sock)
        converse(sock, [b"QUIT"])
    inst.wait_log("DISCONNECT [127.0.0.18]")
    assert cache_records(tmp_path)["127.0.0.18"].endswith(";1;0;0;0")
    # Its deep tests were never passed: the next cleanup drops the record.
    inst.wait_log(f"cache {spec} full cleanup: retained=0 dropped=1 entries")
    records = cache_records(tmp_path)
    assert "127.0.0.18" not in records
    assert abs(int(records["_LAST_CACHE_CLEANUP_COMPLETED_"]) - time.time()) < 30


def test_dnsbl_allow_list_passes_the_deep_tests(mailsys_instance, tmp_path):
    inst = mailsys_instance
    zone = {"4.0.0.127.wl.example": {"A": ["127.0.10.2"]}}
    with DnsServer(zone, ttl=300) as dns:
        port = start(inst, tmp_path, dns_nameservers=dns.spec, postscreen_greet_wait="8s",
                     postscreen_dnsbl_sites="wl.example=127.0.[0..255].[1..3]*-5",
                     postscreen_dnsbl_allowlist_threshold="-1", **DEEP)
        with connect_from("127.0.0.4", port) as sock:
            client_port = sock.getsockname()[1]
            began = time.monotonic()
            # Allowed by DNS: no wait, no dialogue of postscreen's own, smtpd at once.
            assert read_until(sock, GREETING) \
                == b"220-mx.example.test ESMTP mailsys\r\n" + GREETING
            assert time.monotonic() - began < 4
            converse(sock, [b"QUIT"])
        log = inst.wait_log("[127.0.0.4] quit=1 commands=1")
    assert f"PASS NEW [127.0.0.4]:{client_port}\n" in log
    assert "NOQUEUE" not in log
    # Every test, the disabled ones too, lasts as long as the DNS answer (300 s).
    stamps = [int(v) for v in cache_records(tmp_path)["127.0.0.4"].split(";")]
    assert len(set(stamps)) == 1 and abs(stamps[0] - (time.time() + 300)) < 30


def test_starttls_in_postscreens_dialogue(mailsys_instance, tmp_path):
    import smtplib
    import ssl

    import trustme

    inst = mailsys_instance
    ca = trustme.CA()
    pem = tmp_path / "cert.pem"
    ca.issue_cert("mx.example.test").private_key_and_cert_chain_pem.write_to_path(str(pem))
    port = start(inst, tmp_path, smtpd_tls_security_level="may", smtpd_tls_cert_file=str(pem),
                 postscreen_greet_wait="1s", **DEEP)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    client = smtplib.SMTP(timeout=10, source_address=("127.0.0.19", 0))
    try:
        assert client.connect("127.0.0.1", port)[0] == 220
        client._host = "mx.example.test"        # the name STARTTLS checks the certificate for
        assert "starttls" in client.ehlo("tls.example")[1].decode().lower()
        client.starttls(context=context)
        code, text = client.ehlo("tls.example")
        assert code == 250 and b"STARTTLS" not in text
        client.mail("a@tls.example")
        code, text = client.rcpt("bob@example.test")
        assert (code, text) == (450, b"4.3.2 Service currently unavailable")
        client.quit()
    finally:
        client.close()
    log = inst.wait_log("DISCONNECT [127.0.0.19]")
    assert re.search(r"NOQUEUE: reject: RCPT from \[127\.0\.0\.19\]:\d+: 450 4\.3\.2 Service "
                     r"currently unavailable; from=<a@tls\.example>, to=<bob@example\.test>, "
                     r"proto=ESMTP, helo=<tls\.example>", log)
    assert re.search(r"PASS NEW \[127\.0\.0\.19\]", log)
