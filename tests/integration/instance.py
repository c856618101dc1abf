"""instance - a real mailsys master on temporary directories and free ports.

SYNOPSIS
    def test_x(mailsys_instance):                  # fixture: configured, not started
        inst = mailsys_instance
        port = inst.free_port()
        inst.write_config(master_cf=[f"127.0.0.1:{port} inet n - n - - smtpd"],
                          main_cf={"smtpd_banner": "$myhostname ESMTP"})
        inst.start()                               # asserts `mailsys start` exit 0
        inst.wait_log("daemon started")
        inst.cli("reload")                         # CompletedProcess of `mailsys -c DIR reload`

    def test_y(mailsys_running): ...               # the same, started with only postlog

DESCRIPTION
    An Instance owns a configuration directory under pytest's tmp_path
    (etc/main.cf, etc/master.cf) and a short queue directory under /tmp
    (Unix socket paths are limited to 107 bytes; tmp_path is too long for
    them). mail.log is tmp_path/log/mail.log. The postlog service is always
    in master.cf, so every line goes through postlogd as in production.

    Teardown stops the instance with `mailsys stop` if it runs, then SIGKILLs
    every process whose command line names this instance's config directory
    (a master killed by a test leaves children behind for a few seconds), and
    removes the queue directory.

    Methods: free_port(), cli(*args), popen(*args), start(), stop(), master_pid(),
    children(name="") -> [Proc(pid, argv)], log_text(), wait_log(text, timeout),
    wait_until(predicate, timeout), connect(port) -> socket, echo(sock, data).

    The conftest.py files load this file by path (the tests directories are
    not packages) and export its fixtures; import nothing from it directly.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

MAILSYS = [sys.executable, "-m", "mailsys.cli.main"]
POSTLOG = "postlog unix-dgram y - n - 1 postlogd"     # as in etc/master.cf


@dataclass(frozen=True)
class Proc:
    pid: int
    argv: tuple[str, ...]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll predicate until it returns something true; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def processes() -> list[Proc]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        if not raw or stat[stat.rindex(b")") + 2:stat.rindex(b")") + 3] == b"Z":
            continue                                          # kernel thread or zombie
        out.append(Proc(int(entry), tuple(a.decode(errors="replace") for a in raw.split(b"\0")[:-1])))
    return out


def connect(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    return socket.create_connection((host, port), timeout=timeout)


def echo(sock: socket.socket, data: bytes) -> bytes:
    """Send data to an echo service and read the same number of bytes back."""
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


class Instance:
    """One mailsys instance of a test (see the module description)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config_dir = root / "etc"
        self.queue_dir = Path(tempfile.mkdtemp(prefix="msq", dir="/tmp"))
        self.log_path = root / "log" / "mail.log"
        self.write_config()

    free_port = staticmethod(free_port)
    connect = staticmethod(connect)
    echo = staticmethod(echo)
    wait_until = staticmethod(wait_until)

    # --- configuration -------------------------------------------------------

    def write_config(self, master_cf: list[str] = (), main_cf: dict[str, str] | None = None) -> None:
        """etc/main.cf (paths set; main_cf adds or overrides) and etc/master.cf (postlog + lines)."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        params = {"queue_directory": str(self.queue_dir), "maillog_file": str(self.log_path),
                  "maillog_file_prefixes": str(self.root),
                  "myhostname": "mx.example.test", "inet_interfaces": "loopback-only",
                  "compatibility_level": "3.6"}
        params.update(main_cf or {})
        (self.config_dir / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in params.items()))
        (self.config_dir / "master.cf").write_text("\n".join([POSTLOG, *master_cf]) + "\n")

    # --- commands ---------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 60, input: str | None = None
            ) -> subprocess.CompletedProcess:
        """`mailsys -c DIR ARGS`, with input (text) on its standard input."""
        return subprocess.run([*MAILSYS, "-c", str(self.config_dir), *args], input=input,
                              capture_output=True, text=True, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen:
        """`mailsys -c DIR ARGS` in the background (stderr piped, text)."""
        return subprocess.Popen([*MAILSYS, "-c", str(self.config_dir), *args],
                                stderr=subprocess.PIPE, text=True)

    def start(self) -> subprocess.CompletedProcess:
        r = self.cli("start")
        assert r.returncode == 0, f"mailsys start failed: {r.stderr}"
        return r

    def stop(self) -> subprocess.CompletedProcess:
        return self.cli("stop")

    @property
    def pid_file(self) -> Path:
        return self.queue_dir / "pid" / "master.pid"

    def master_pid(self) -> int | None:
        for p in processes():
            if "services.master" in p.argv and str(self.config_dir) in p.argv:
                return p.pid
        return None

    def children(self, name: str = "") -> list[Proc]:
        """This instance's service processes (not the master), optionally by service name."""
        out = []
        for p in processes():
            if str(self.config_dir) in p.argv and "services.master" not in p.argv \
                    and "-n" in p.argv:
                if not name or p.argv[p.argv.index("-n") + 1] == name:
                    out.append(p)
        return out

    # --- the log ---------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def wait_log(self, text: str, timeout: float = 10.0) -> str:
        try:
            return wait_until(lambda: text in self.log_text() and self.log_text(), timeout)
        except AssertionError:
            raise AssertionError(f"{text!r} not in mail.log within {timeout}s:\n{self.log_text()}") from None

    # --- teardown ------------------------------------------------------------------

    def cleanup(self) -> None:
        if self.pid_file.exists() and self.master_pid():
            self.cli("stop", timeout=30)
        for p in processes():
            if str(self.config_dir) in p.argv and p.pid != os.getpid():
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.queue_dir, ignore_errors=True)


@pytest.fixture
def mailsys_instance(tmp_path):
    """A configured mailsys instance (postlog only), not started; cleaned up after the test."""
    inst = Instance(tmp_path)
    try:
        yield inst
    finally:
        inst.cleanup()


@pytest.fixture
def mailsys_running(mailsys_instance):
    """The same, started."""
    mailsys_instance.start()
    return mailsys_instance
