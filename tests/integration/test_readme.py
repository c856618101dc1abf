"""The README's commands, run from a fresh clone in a temporary directory.

`make run` must create the venv, install mailsys and start the master in the
foreground on the shipped etc/, with queue and logs under the clone's ./var.
The clone's inet ports are moved to free ones first, so the test runs beside
a developer's own `make run` on 2525/2587. (`make test` is what CI itself
runs from a fresh clone, so it is not run again from here.)
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def committed_tree(dest: Path) -> None:
    """A clone of HEAD: only what is committed, as CI sees it."""
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(dest)],
                   check=True, timeout=60)


def test_make_run_from_a_fresh_clone(tmp_path):
    if shutil.which("make") is None or shutil.which("git") is None:
        pytest.fail("make and git are needed (the README says so)")
    clone = tmp_path / "mailsys"
    committed_tree(clone)
    master_cf = clone / "etc" / "master.cf"
    ports = {}

    def move_port(m: re.Match) -> str:
        ports.setdefault(m.group(1), free_port())
        return f"127.0.0.1:{ports[m.group(1)]}"

    master_cf.write_text(re.sub(r"127\.0\.0\.1:(\d+)", move_port, master_cf.read_text()))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "MAILSYS"))}
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p)
    run = subprocess.Popen(["make", "run"], cwd=clone, env=env, start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    mailsys = clone / ".venv" / "bin" / "mailsys"
    try:
        deadline = time.monotonic() + 240
        while True:
            if run.poll() is not None:
                pytest.fail(f"make run exited {run.returncode}:\n{run.stdout.read()}")
            if mailsys.exists():
                status = subprocess.run([str(mailsys), "-c", str(clone / "etc"), "status"],
                                        capture_output=True, text=True, timeout=30)
                if status.returncode == 0:
                    break
            assert time.monotonic() < deadline, "make run did not bring the master up"
            time.sleep(0.5)
        assert "is running" in status.stderr + status.stdout
        log = clone / "var" / "log" / "mail.log"
        for _ in range(100):
            if log.exists() and "daemon started" in log.read_text():
                break
            time.sleep(0.1)
        assert "daemon started" in log.read_text()
        assert (clone / "var" / "queue" / "pid" / "master.pid").exists()
        for port in ports.values():
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                assert s.recv(512).startswith(b"220 ")
    finally:
        os.killpg(run.pid, signal.SIGINT)
        try:
            run.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        run.stdout.close()
    after = subprocess.run([str(mailsys), "-c", str(clone / "etc"), "status"],
                           capture_output=True, text=True, timeout=30)
    assert after.returncode == 1
