"""smtpd_helpers - what the tests of smtpd through a real master share.

Loaded by path from the test modules (the tests directories are not
packages): start() writes main.cf/master.cf with smtpd on a free port
beside cleanup and anvil, starts the master and waits until the port
accepts; queued() stops the master and reads one queue entry; raw() talks
to the port byte for byte; PolicyServer is a check_policy_service server
on loopback that keeps the requests.
"""

from __future__ import annotations

import smtplib
import socket
import socketserver
import threading
from pathlib import Path

from mailsys.queue import QueueStore

MESSAGE = b"Subject: hello\r\nFrom: a@example.org\r\n\r\nline one\r\n.leading dot\r\n"
SERVICES = ["cleanup unix - - n - 0 cleanup", "anvil unix - - n - 1 anvil"]


def start(inst, main_cf=None, services=SERVICES, opts=""):
    """smtpd on a free port with cleanup and anvil beside it; the port once it accepts."""
    port = inst.free_port()
    params = {"mydestination": "$myhostname, localhost, example.test",
              "local_recipient_maps": "", "smtpd_error_sleep_time": "0"}
    params.update(main_cf or {})
    inst.write_config(master_cf=[*services, f"127.0.0.1:{port} inet n - n - - smtpd {opts}".rstrip()],
                      main_cf=params)
    inst.start()
    inst.wait_until(lambda: listening(port))
    return port


def shipped_smtpd_entries(smtp_port: int, submission_port: int) -> list[str]:
    """etc/master.cf's two smtpd entries as shipped (with their -o lines), on the given ports."""
    shipped = (Path(__file__).parents[2] / "etc" / "master.cf").read_text()
    lines = shipped.replace("127.0.0.1:2525", f"127.0.0.1:{smtp_port}") \
        .replace("127.0.0.1:2587", f"127.0.0.1:{submission_port}").splitlines()
    entries, keep = [], False
    for line in lines:
        if line[:1] not in (" ", "\t"):
            keep = not line.startswith("#") and line.split()[7:8] == ["smtpd"]
        if keep:
            entries.append(line)
    assert len([l for l in entries if l.endswith("smtpd")]) == 2
    return entries


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def queued(inst, qid):
    """The entry's envelope, queue and content, read after the master stopped."""
    inst.stop()
    with QueueStore.open(inst.queue_dir) as store:
        envelope, queue = store.load(qid)
        return envelope, queue, store.load_content(qid)


def all_entries(inst):
    """Every queue entry's (qid, content), read after the master stopped."""
    inst.stop()
    with QueueStore.open(inst.queue_dir) as store:
        return [(e.queue_id, store.load_content(e.queue_id)) for e, _ in store.scan_all()]


def qid_of(reply: bytes | str) -> str:
    text = reply.decode() if isinstance(reply, bytes) else reply
    assert "queued as " in text, text
    return text.rsplit("queued as ", 1)[1].strip()


def session(port) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", port, timeout=10)


def send_message(port) -> tuple[str, int]:
    """One message to bob@example.test with smtplib: its queue ID and the client's port."""
    with session(port) as s:
        client_port = s.sock.getsockname()[1]
        code, _ = s.ehlo("client.example.org")
        assert code == 250
        s.mail("alice@example.org")
        s.rcpt("bob@example.test")
        code, reply = s.data(MESSAGE)
        assert code == 250
    return qid_of(reply), client_port


class Raw:
    """A byte-level client: send() bytes, line() / reply() read the answers."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        return self.f.readline()

    def reply(self) -> bytes:
        """One whole reply (the last line of a multi-line one), without CRLF."""
        while True:
            line = self.f.readline()
            if line[3:4] != b"-":
                return line.rstrip(b"\r\n")

    def close(self) -> None:
        self.f.close()
        self.sock.close()

    def __enter__(self) -> "Raw":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PolicyServer(socketserver.ThreadingTCPServer):
    """A policy server on loopback answering action=answer(attrs); keeps the requests."""

    daemon_threads = allow_reuse_address = True

    def __init__(self, answer) -> None:
        self.answer = answer
        self.requests: list[dict[str, str]] = []
        super().__init__(("127.0.0.1", 0), PolicyHandler)

    @property
    def service(self) -> str:
        return f"inet:127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> "PolicyServer":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class PolicyHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        attrs: dict[str, str] = {}
        for raw in self.rfile:
            line = raw.decode().rstrip("\n")
            if line:
                attrs.update([line.split("=", 1)])
                continue
            self.server.requests.append(attrs)
            self.wfile.write(f"action={self.server.answer(attrs)}\n\n".encode())
            attrs = {}
