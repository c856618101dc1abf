"""postscreen behind a proxy, its reject footer and its per-client EHLO keywords, through a real master.

Each expectation is what a private Postfix 3.7.11 postscreen answered and
logged on loopback for the same input.
"""

from __future__ import annotations

import re
import runpy
import socket
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))
ps = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("test_postscreen.py"))))


@pytest.fixture(autouse=True)
def _show_log(mailsys_instance):
    yield
    print(mailsys_instance.log_text())

GREETING = b"220 mx.example.test ESMTP mailsys\r\n"


def start(inst, tmp_path, **params) -> int:
    """postscreen on a free port; with a proxy header expected, the
    listening() probe is an unfinished header, refused at once."""
    port = inst.free_port()
    main_cf = {"mydestination": "$myhostname, localhost, example.test",
               "local_recipient_maps": "", "smtpd_error_sleep_time": "0",
               "data_directory": str(tmp_path / "data"),
               "mynetworks": "192.0.2.0/24", "postscreen_greet_wait": "1s"}
    main_cf.update(params)
    inst.write_config(master_cf=[*h.SERVICES, f"127.0.0.1:{port} inet n - n - 1 postscreen",
                                 *ps.PSCREEN], main_cf=main_cf)
    inst.start()
    inst.wait_until(lambda: h.listening(port))
    return port


def proxied(port: int, header: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(header)
    return sock


def v1(client: str, cport: int, server: str = "127.0.0.1", sport: int = 25) -> bytes:
    return f"PROXY TCP4 {client} {server} {cport} {sport}\r\n".encode()


def test_client_named_by_the_proxy_is_screened_and_handed_to_smtpd(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path, postscreen_upstream_proxy_protocol="haproxy",
                 postscreen_pipelining_enable="yes")
    with proxied(port, v1("198.51.100.7", 5555)) as sock:
        assert ps.read_until(sock, GREETING) == b"220-mx.example.test ESMTP mailsys\r\n" + GREETING
        replies = ps.converse(sock, [b"EHLO x", b"MAIL FROM:<a@example.org>",
                                     b"RCPT TO:<bob@example.test>", b"QUIT"])
        assert replies[2] == b"450 4.3.2 Service currently unavailable\r\n"
    log = inst.wait_log("DISCONNECT [198.51.100.7]:5555")
    assert "CONNECT from [198.51.100.7]:5555 to [127.0.0.1]:25" in log
    assert ("NOQUEUE: reject: RCPT from [198.51.100.7]:5555: 450 4.3.2 Service currently "
            "unavailable; from=<a@example.org>, to=<bob@example.test>, proto=ESMTP, "
            "helo=<x>") in log
    assert "PASS NEW [198.51.100.7]:5555" in log
    # The second time the cache lets it through, and smtpd sees the
    # proxy's client, not the proxy.
    with proxied(port, v1("198.51.100.7", 5556)) as sock:
        assert ps.read_until(sock, b"\r\n") == GREETING
        replies = ps.converse(sock, [b"EHLO x", b"QUIT"])
        assert b"PIPELINING" in replies[0]          # smtpd's EHLO, not postscreen's
    log = inst.wait_log("disconnect from unknown[198.51.100.7]")
    assert "PASS OLD [198.51.100.7]:5556" in log
    assert re.search(r"smtpd\[\d+\]: connect from unknown\[198\.51\.100\.7\]", log)


def test_a_version_2_local_header_keeps_the_connection_own_addresses(mailsys_instance,
                                                                       tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path, postscreen_upstream_proxy_protocol="haproxy",
                 mynetworks="127.0.0.0/8")
    local = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    with proxied(port, local) as sock:
        assert ps.read_until(sock, b"\r\n") == GREETING
        own = sock.getsockname()[1]
        ps.converse(sock, [b"QUIT"])
    log = inst.wait_log("disconnect from localhost[127.0.0.1]")
    assert f"CONNECT from [127.0.0.1]:{own} to [127.0.0.1]:{port}" in log
    assert f"ALLOWLISTED [127.0.0.1]:{own}" in log


@pytest.mark.parametrize("header, warning", [
    (b"GARBAGE\r\n", r"warning: haproxy read: short protocol header: GARBAGE\r\n"),
    (b"PROXY TCP4 192.0.2.300 127.0.0.1 5557 25\r\n",
     r"warning: haproxy read: bad or missing client address: "
     r"PROXY TCP4 192.0.2.300 127.0.0.1 5557 25\r\n"),
    # Postfix looks once: an unfinished header is refused at once.
    (b"PROXY TCP4 192.0.2.7 127.0.0.1 5557",
     "warning: haproxy read: missing protocol header terminator: "
     "PROXY TCP4 192.0.2.7 127.0.0.1 5557"),
    (b"", "warning: haproxy read: time limit exceeded"),
])
def test_a_bad_or_missing_header_gets_no_system_resources(mailsys_instance, tmp_path,
                                                           header, warning):
    inst = mailsys_instance
    port = start(inst, tmp_path, postscreen_upstream_proxy_protocol="haproxy",
                 postscreen_upstream_proxy_timeout="1s",
                 postscreen_reject_footer="not for this reply")
    with proxied(port, header) as sock:
        assert ps.read_until(sock, b"\r\n") == b"421 4.3.2 No system resources\r\n"
        try:
            # Closed; a reset when the peeked bytes were left unread.
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass
    log = inst.wait_log(warning)
    # Refused before anything else: no CONNECT line, no DISCONNECT.
    assert "CONNECT" not in log


def test_reject_footer_with_postscreen_macros_only(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path, postscreen_upstream_proxy_protocol="haproxy",
                 postscreen_pipelining_enable="yes",
                 postscreen_reject_footer=("For [$client_address]:$client_port at $server_name"
                                           " h=$helo_name x=$myhostname"))
    with proxied(port, v1("198.51.100.8", 5558)) as sock:
        ps.read_until(sock, GREETING)
        replies = ps.converse(sock, [b"EHLO x", b"MAIL FROM:<a@b.example>",
                                     b"RCPT TO:<c@d.example>", b"FOO", b"QUIT"])
    footer = b"For [198.51.100.8]:5558 at mx.example.test h= x=\r\n"
    assert replies[1] == b"250 2.1.0 Ok\r\n"
    assert replies[2] == b"450-4.3.2 Service currently unavailable\r\n450 4.3.2 " + footer
    assert replies[3] == b"502-5.5.2 Error: command not recognized\r\n502 5.5.2 " + footer
    assert replies[4] == b"221 2.0.0 Bye\r\n"
    log = inst.wait_log("DISCONNECT [198.51.100.8]:5558")
    assert log.count('warning: unknown macro name "helo_name" in expansion request') == 2
    assert log.count('warning: unknown macro name "myhostname" in expansion request') == 2


def test_reject_footer_defaults_to_smtpd_reject_footer_as_written(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path, postscreen_pipelining_enable="yes",
                 smtpd_reject_footer="SF $client_address")
    with ps.connect_from("127.0.0.9", port) as sock:
        ps.read_until(sock, GREETING)
        replies = ps.converse(sock, [b"FOO", b"QUIT"])
    assert replies[0] == b"502-5.5.2 Error: command not recognized\r\n502 5.5.2 SF 127.0.0.9\r\n"


def test_discard_ehlo_keyword_address_maps(mailsys_instance, tmp_path):
    inst = mailsys_instance
    table = tmp_path / "discard"
    table.write_text("127.0.0.8 pipelining dsn\n127.0.0.9 silent-discard, chunking\n")
    port = start(inst, tmp_path, postscreen_pipelining_enable="yes",
                 postscreen_discard_ehlo_keywords="dsn, etrn",
                 postscreen_discard_ehlo_keyword_address_maps=f"texthash:{table}")
    ehlo = {}
    for source in ("127.0.0.7", "127.0.0.8", "127.0.0.9"):
        with ps.connect_from(source, port) as sock:
            ps.read_until(sock, GREETING)
            ehlo[source], _, _ = ps.converse(sock, [b"EHLO x", b"EHLO y", b"QUIT"])
            if source == "127.0.0.8":
                port8 = sock.getsockname()[1]
    # The static list for a client the map does not name; the map's instead of it.
    assert b"DSN" not in ehlo["127.0.0.7"] and b"ETRN" not in ehlo["127.0.0.7"]
    assert b"DSN" not in ehlo["127.0.0.8"] and b"250-ETRN" in ehlo["127.0.0.8"]
    assert b"CHUNKING" not in ehlo["127.0.0.9"] and b"250-DSN\r\n" in ehlo["127.0.0.9"]
    log = inst.wait_log("DISCONNECT [127.0.0.9]")
    # Logged at each EHLO, "[addr]port" as Postfix 3.7 writes it; not for
    # the static list, nor with silent-discard.
    assert log.count(f"[127.0.0.8]{port8}: discarding EHLO keywords: PIPELINING DSN") == 2
    assert log.count("discarding EHLO keywords") == 2
