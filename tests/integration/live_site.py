"""live_site - a whole running mail system for the admin tool tests (loaded by path).

SYNOPSIS
    site = live_site.build(inst, tmp_path, sink_port, main_cf={...})
    qid = site.send("alice@example.com", "r@ok.test")          # through smtpd
    reply = site.refused("x@foreign.test")                     # RCPT refused
    r = site.tool("postqueue", "-p")                           # mailsys -c DIR ...
    site.queue_of(qid)                                         # "deferred", ... or None
    r = site.sendmail("-f", "a@example.com", "b@ok.test", data=b"...")

DESCRIPTION
    build() writes main.cf and master.cf for a real master with smtpd (on a
    free port), anvil, cleanup, qmgr, bounce, smtp and the local/virtual
    agent, and starts it. Mail is routed by transport_maps to loopback:

        ok.test, bad.test, slow.test   the caller's sink at sink_port
                                       (its rcpt replies decide what bounces
                                       or defers)
        dead.test                      a port where nothing listens
        a.test b.test c.test           later_port: nothing listens until the
                                       test starts a sink there
        stall.test                     stall_port (a sink that hangs, if any)
        example.com                    virtual Maildirs of alice and bob

    The client 127.0.0.1 is not in mynetworks, so smtpd relays only to the
    domains above ("Relay access denied" for others) and rejects unknown
    users of example.com; AUTH is offered with an empty users file, so every
    login fails. Retries wait the default 300 s: what is deferred stays
    deferred until a test flushes it.
"""

from __future__ import annotations

import json
import smtplib
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MAILSYS = [sys.executable, "-m", "mailsys.cli.main"]
SERVICES = ["anvil unix - - n - 1 anvil", "cleanup unix - - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr", "bounce unix - - n - 0 bounce",
            "smtp unix - - n - - smtp", "virtual unix - n n - - local",
            "flush unix n - n - 0 flush"]
RELAYED = ("ok.test", "bad.test", "slow.test", "dead.test", "a.test", "b.test", "c.test",
           "stall.test")


@dataclass
class Site:
    inst: object
    smtpd_port: int
    sink_port: int
    dead_port: int
    later_port: int
    stall_port: int
    vmail: Path

    def send(self, sender: str, *rcpts: str, subject: str = "test",
             helo: str = "client.example.org") -> str:
        """One message through smtpd; its queue ID."""
        body = (f"From: {sender}\r\nTo: {', '.join(rcpts)}\r\nSubject: {subject}\r\n\r\n"
                f"Hello from {sender}.\r\n").encode()
        with smtplib.SMTP("127.0.0.1", self.smtpd_port, timeout=10) as s:
            s.ehlo(helo)
            s.mail(sender)
            for r in rcpts:
                code, text = s.rcpt(r)
                assert code == 250, (r, code, text)
            code, text = s.data(body)
            assert code == 250, text
        return text.decode().rsplit("queued as ", 1)[1].strip()

    def refused(self, rcpt: str, sender: str = "spam@spammer.test") -> tuple[int, str]:
        """A RCPT that smtpd refuses; its reply."""
        with smtplib.SMTP("127.0.0.1", self.smtpd_port, timeout=10) as s:
            s.ehlo("spammer.test")
            s.mail(sender)
            code, text = s.rcpt(rcpt)
        return code, text.decode()

    def failed_login(self, user: str = "info", password: str = "guess") -> int:
        with smtplib.SMTP("127.0.0.1", self.smtpd_port, timeout=10) as s:
            s.ehlo("brute.test")
            try:
                s.login(user, password)
            except smtplib.SMTPAuthenticationError as e:
                return e.smtp_code
        raise AssertionError("login succeeded")

    def tool(self, *args: str, stdin: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([*MAILSYS, "-c", str(self.inst.config_dir), *args], input=stdin,
                              capture_output=True, text=True, timeout=timeout)

    def queue_of(self, qid: str) -> str | None:
        """The queue postqueue -j says the entry is in; None when it is in none."""
        for line in self.tool("postqueue", "-j").stdout.splitlines():
            entry = json.loads(line)
            if entry["queue_id"] == qid:
                return entry["queue_name"]
        return None

    def sendmail(self, *args: str, data: bytes) -> subprocess.CompletedProcess:
        return subprocess.run([*MAILSYS, "-c", str(self.inst.config_dir), "sendmail", *args],
                              input=data, capture_output=True, timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(inst, tmp_path: Path, sink_port: int, *, stall_port: int = 0,
          main_cf: dict[str, str] | None = None) -> Site:
    smtpd_port, dead_port, later_port = _free_port(), _free_port(), _free_port()
    stall_port = stall_port or dead_port
    ports = {"ok.test": sink_port, "bad.test": sink_port, "slow.test": sink_port,
             "dead.test": dead_port, "a.test": later_port, "b.test": later_port,
             "c.test": later_port, "stall.test": stall_port}
    (tmp_path / "transport").write_text(
        "".join(f"{d} smtp:[127.0.0.1]:{p}\n" for d, p in ports.items()))
    (tmp_path / "vmailbox").write_text("alice@example.com example.com/alice/\n"
                                       "bob@example.com example.com/bob/\n")
    (tmp_path / "sasl_users").write_text("")
    params = {"mynetworks": "192.0.2.0/24", "relay_domains": " ".join(RELAYED),
              "myorigin": "example.com", "mydestination": "",
              "transport_maps": f"texthash:{tmp_path}/transport",
              "virtual_mailbox_domains": "example.com",
              "virtual_mailbox_base": str(tmp_path / "vmail"),
              "virtual_mailbox_maps": f"texthash:{tmp_path}/vmailbox",
              "smtpd_sasl_auth_enable": "yes",
              "smtpd_sasl_users_file": str(tmp_path / "sasl_users"),
              "smtpd_error_sleep_time": "0", "service_throttle_time": "1s"}
    params.update(main_cf or {})
    inst.write_config(master_cf=[*SERVICES, f"127.0.0.1:{smtpd_port} inet n - n - - smtpd"],
                      main_cf=params)
    inst.start()
    inst.wait_until(lambda: _accepts(smtpd_port))
    return Site(inst, smtpd_port, sink_port, dead_port, later_port, stall_port,
                tmp_path / "vmail")


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
