"""systems - the two mail systems under test, started on private ports and directories.

DESCRIPTION
    Each system is one master and its children, with its smtpd on
    127.0.0.1:smtp_port and relayhost = [127.0.0.1]:sink_port:

    Postfix   Debian's Postfix run by postfix-instance.sh (beside this file)
              with its own config, queue, data and log directories under a
              temporary PFX; Postfix's defaults otherwise (process limit
              100, no chroot, no DNS).
    Mailsys   this checkout's mailsys, `mailsys -c DIR start` on a generated
              DIR: a main.cf written here (relayhost, mynetworks
              127.0.0.0/8, no DNS, queue under a short /tmp directory since
              Unix socket paths are limited to 107 bytes) and the shipped
              etc/master.cf with every inet listener moved to a free port
              (the first smtpd listener to smtp_port). A service that the
              shipped master.cf does not name yet, but whose module exists
              under services/, is added with Postfix's default master.cf
              line, so the harness measures whatever has been built.

    Both: start() -> None or raise SystemUnavailable(reason);
    master_pid(); queue_empty() -> bool; purge(); cannot_deliver() -> why
    or ""; stop() (and kill, by pid, any process of its tree that outlives
    it; start() may follow); remove(keep_log=PATH) (stop, copy the mail log
    there, remove the directories).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import procstat

HERE = Path(__file__).resolve().parent.parent          # scripts/bench
REPO = HERE.parent.parent
POSTFIX_INSTANCE = HERE / "postfix-instance.sh"


class SystemUnavailable(Exception):
    """The system cannot be run here; the message says why."""


def _run(argv: list[str], *, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, 124, e.stdout or "", f"timed out after {timeout:.0f} s")


def _last_line(cp: subprocess.CompletedProcess) -> str:
    lines = (cp.stderr.strip() or cp.stdout.strip()).splitlines()
    return lines[-1] if lines else f"exit status {cp.returncode}"


def _kill_leftovers(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class _System:
    """What both systems share: stopping the tree, removing the directories."""
    name = ""
    root: Path          # every file of the instance lives below
    log_file: Path      # its mail log

    def master_pid(self) -> int | None:
        raise NotImplementedError

    def _stop_command(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """stop - stop the master; kill, by pid, any process of its tree still there after 5 s."""
        pid = self.master_pid()
        if pid is None:
            return
        pids = procstat.tree_pids(pid)
        self._stop_command()
        deadline = time.monotonic() + 5
        while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        _kill_leftovers({p for p in pids if Path(f"/proc/{p}").exists()})

    def remove(self, keep_log: Path | None = None) -> None:
        """remove - stop, copy the mail log to keep_log, remove every directory of the instance."""
        self.stop()
        if keep_log is not None and self.log_file.is_file():
            keep_log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.log_file, keep_log)
        shutil.rmtree(self.root, ignore_errors=True)


class Postfix(_System):
    name = "postfix"

    def __init__(self, smtp_port: int, sink_port: int) -> None:
        self.smtp_port, self.sink_port = smtp_port, sink_port
        self.root = Path(tempfile.mkdtemp(prefix="pfxbench", dir="/tmp"))
        self.log_file = self.root / "log" / "maillog"
        self.env = {**os.environ, "PFX": str(self.root), "SMTPD_LISTEN": f"127.0.0.1:{smtp_port}",
                    "RELAYHOST": f"[127.0.0.1]:{sink_port}"}

    def _script(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return _run(["bash", str(POSTFIX_INSTANCE), *args], env=self.env, timeout=timeout)

    def start(self) -> None:
        if os.geteuid() != 0:
            raise SystemUnavailable("the private Postfix instance needs root")
        if shutil.which("postfix") is None:
            raise SystemUnavailable("postfix is not installed (scripts/bench/install-postfix.sh)")
        cp = self._script("start")
        if cp.returncode != 0 or self.master_pid() is None:
            raise SystemUnavailable(f"postfix-instance.sh start: {_last_line(cp)}")

    def master_pid(self) -> int | None:
        cp = self._script("pid", timeout=10)
        return int(cp.stdout) if cp.returncode == 0 and cp.stdout.strip().isdigit() else None

    def queue_empty(self) -> bool:
        return self._script("qempty", timeout=30).returncode == 0

    def purge(self) -> None:
        self._script("purge")

    def _stop_command(self) -> None:
        self._script("stop")

    def cannot_deliver(self) -> str:
        return ""

    def describe(self) -> str:
        cp = _run(["postconf", "-d", "-h", "mail_version"], timeout=10)
        return f"Postfix {cp.stdout.strip()}" if cp.returncode == 0 else "Postfix"


# Postfix's default master.cf line (conf/master.cf) for each service that
# relaying to the relayhost needs, keyed by the service name; the smtpd
# listener is separate. Only these: every extra service is extra processes
# in mailsys's memory figure.
DEFAULT_SERVICES: dict[str, str] = {
    "cleanup": "cleanup   unix  n       -       n       -       0       cleanup",
    "anvil": "anvil     unix  -       -       n       -       1       anvil",
    "qmgr": "qmgr      unix  n       -       n       300     1       qmgr",
    "bounce": "bounce    unix  -       -       n       -       0       bounce",
    "smtp": "smtp      unix  -       -       n       -       -       smtp",
}
SMTPD_LINE = "{listen} inet  n       -       n       -       -       smtpd"


def bench_master_cf(shipped: str, smtp_port: int, ports: list[int],
                    commands: set[str]) -> tuple[str, list[str]]:
    """bench_master_cf - the shipped master.cf with its listeners moved; (text, notes).

    The first inet smtpd service listens on 127.0.0.1:smtp_port, any other
    inet service on the next port of `ports`; services whose command is in
    `commands` (the modules under services/) and that the file lacks are
    appended with Postfix's default line."""
    out, notes, names = [], [], set()
    have_smtpd = False
    spare = iter(ports)
    for line in shipped.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or line[0].isspace():
            out.append(line)
            continue
        fields = line.split()
        name, rest = line.split(None, 1)
        names.add(name)
        if len(fields) >= 8 and fields[1] == "inet":
            if fields[7] == "smtpd" and not have_smtpd:
                listen, have_smtpd = f"127.0.0.1:{smtp_port}", True
            else:
                listen = f"127.0.0.1:{next(spare)}"
            out.append(f"{listen} {rest}")
            continue
        out.append(line)
    if not have_smtpd and "smtpd" in commands:
        out.append(SMTPD_LINE.format(listen=f"127.0.0.1:{smtp_port}"))
        notes.append("etc/master.cf has no smtpd listener yet; added Postfix's default line")
        have_smtpd = True
    added = []
    for service, line in DEFAULT_SERVICES.items():
        command = line.split()[7]
        if service not in names and command in commands:
            out.append(line)
            added.append(service)
    if added:
        notes.append(f"etc/master.cf has no {', '.join(added)} service yet; "
                     "added Postfix's default master.cf lines")
    if not have_smtpd:
        raise SystemUnavailable("no smtpd: etc/master.cf names none and services/smtpd.py does not exist")
    return "\n".join(out) + "\n", notes


MAIN_CF = """\
# generated by scripts/bench: benchmark instance, loopback only
compatibility_level = 3.6
queue_directory = {queue}
maillog_file = {log}
maillog_file_prefixes = {log}
myhostname = bench.localdomain
mydomain = localdomain
myorigin = $myhostname
mydestination =
relayhost = [127.0.0.1]:{sink}
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtp_tls_security_level = none
"""


class Mailsys(_System):
    name = "mailsys"

    def __init__(self, smtp_port: int, sink_port: int, spare_ports: list[int]) -> None:
        self.smtp_port, self.sink_port = smtp_port, sink_port
        shipped = REPO / "etc" / "master.cf"
        if not shipped.is_file():
            raise SystemUnavailable("etc/master.cf does not exist")
        commands = {p.stem for p in (REPO / "services").glob("*.py") if p.stem != "__init__"}
        text, self.notes = bench_master_cf(shipped.read_text(), smtp_port, spare_ports, commands)
        # the commands master.cf now runs, for cannot_deliver()
        self.commands = {f[7] for f in (line.split() for line in text.splitlines()
                                        if line.strip() and not line[0].isspace() and not line.startswith("#"))
                         if len(f) >= 8}
        self.root = Path(tempfile.mkdtemp(prefix="msbench", dir="/tmp"))
        self.etc = self.root / "etc"
        self.queue = self.root / "q"
        self.etc.mkdir()
        (self.root / "log").mkdir()
        self.log_file = self.root / "log" / "mail.log"
        (self.etc / "master.cf").write_text(text)
        (self.etc / "main.cf").write_text(MAIN_CF.format(
            queue=self.queue, log=self.log_file, sink=sink_port))

    def cannot_deliver(self) -> str:
        """cannot_deliver - why mail cannot reach the relayhost with this master.cf, or ""."""
        missing = [c for c in ("qmgr", "smtp") if c not in self.commands]
        return f"no {' and no '.join(missing)} service to deliver with" if missing else ""

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return _run([sys.executable, "-m", "mailsys.cli.main", "-c", str(self.etc), *args],
                    timeout=timeout)

    def start(self) -> None:
        cp = self.cli("start", timeout=90)
        if cp.returncode != 0 or self.master_pid() is None:
            raise SystemUnavailable(f"mailsys start: {_last_line(cp)}")

    def master_pid(self) -> int | None:
        try:
            text = (self.queue / "pid" / "master.pid").read_text().strip()
        except OSError:
            return None
        if not text.isdigit() or not Path(f"/proc/{text}").exists():
            return None
        return int(text)

    def queue_empty(self) -> bool:
        cp = self.cli("postqueue", "-j", timeout=60)
        return cp.returncode == 0 and cp.stdout.strip() == ""

    def purge(self) -> None:
        self.cli("postsuper", "-d", "ALL")

    def _stop_command(self) -> None:
        self.cli("stop", timeout=60)

    def describe(self) -> str:
        cp = _run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], timeout=10)
        return f"mailsys {cp.stdout.strip()}" if cp.returncode == 0 else "mailsys"
