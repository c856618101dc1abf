"""smtpd behind a load balancer (smtpd_upstream_proxy_protocol = haproxy) through a real master:
the client is the one the PROXY header names; a bad header gets Postfix 3.7.11's 421 and lines."""

from __future__ import annotations

import runpy
import socket
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).parent / "smtpd_helpers.py")))
HOST = "mx.example.test"
SETTINGS = {"myhostname": HOST, "smtpd_upstream_proxy_protocol": "haproxy",
            "smtpd_upstream_proxy_timeout": "2s", "smtpd_peername_lookup": "no",
            "smtpd_client_restrictions": "check_client_access inline:{ 198.51.100.66=REJECT }",
            "smtpd_delay_reject": "no"}


def start(inst):
    port = inst.free_port()
    inst.write_config(master_cf=[*h.SERVICES, f"127.0.0.1:{port} inet n - n - - smtpd"],
                      main_cf={"mydestination": "localhost", "smtpd_error_sleep_time": "0",
                               **SETTINGS})
    inst.start()
    inst.wait_until(lambda: h.listening(port))
    return port


def first_reply(port, header: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(header)
        return s.makefile("rb").readline()


def test_the_header_names_the_client(mailsys_instance):
    inst = mailsys_instance
    port = start(inst)
    assert first_reply(port, b"PROXY TCP4 198.51.100.22 203.0.113.7 35646 25\r\n").startswith(b"220 ")
    inst.wait_log("disconnect from unknown[198.51.100.22]")
    assert "connect from unknown[198.51.100.22]" in inst.log_text()
    # Version 2, and the client restrictions see the proxied address.
    header = (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", 12)
              + socket.inet_aton("198.51.100.66") + socket.inet_aton("192.0.2.10")
              + struct.pack("!HH", 5555, 25))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(header)
        f = s.makefile("rb")
        # smtpd_delay_reject = no: the refusal is the greeting, as in Postfix.
        assert f.readline() == (b"554 5.7.1 <unknown[198.51.100.66]>: Client host rejected: "
                                b"Access denied\r\n")
        s.sendall(b"HELO client.example\r\n")
        assert f.readline() == b"503 5.7.0 Error: access denied for unknown[198.51.100.66]\r\n"


def test_a_bad_header_gets_421_server_local_error(mailsys_instance):
    inst = mailsys_instance
    port = start(inst)
    assert first_reply(port, b"PROXY UNKNOWN\r\n") == \
        f"421 4.3.0 {HOST} Server local error\r\n".encode()
    log = inst.wait_log("disconnect from unknown[127.0.0.1]")
    assert "warning: haproxy read: bad or missing protocol type: PROXY UNKNOWN\\r\\n" in log
    assert "connect from unknown[127.0.0.1]" in log
    # A header that never ends: refused when the timeout is up.
    assert first_reply(port, b"PROXY TCP4 1.2.3.4") == \
        f"421 4.3.0 {HOST} Server local error\r\n".encode()
    inst.wait_log("warning: haproxy read: missing protocol header terminator: PROXY TCP4 1.2.3.4")
