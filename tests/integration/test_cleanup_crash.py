"""cleanup under a real master: an entry acknowledged survives kill -9 of cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from mailsys.queue import QueueStore

pytestmark = pytest.mark.integration

SERVICES = ["cleanup unix - - n - 0 cleanup"]


def sendmail(inst, rcpt: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailsys.cli.main", "-c", str(inst.config_dir),
                           "sendmail", "-f", "alice@example.com", rcpt],
                          input=b"Subject: survive\n\nbody\n", capture_output=True, timeout=60)


def test_kill_9_after_the_reply_keeps_the_entry(mailsys_instance):
    inst = mailsys_instance
    inst.write_config(master_cf=SERVICES)
    inst.start()
    r = sendmail(inst, "bob@example.org")
    assert r.returncode == 0, r.stderr
    [cleanup] = inst.children("cleanup")
    os.kill(cleanup.pid, signal.SIGKILL)
    # Read the queue while the mail system still runs: another process may
    # open the store at any time.
    with QueueStore.open(inst.queue_dir) as store:
        envs = [env for env, _ in store.scan_all()]
    assert [r.address for env in envs for r in env.recipients] == ["bob@example.org"]
    # The master starts a new cleanup, and submission works again.
    inst.wait_until(lambda: sendmail(inst, "carol@example.org").returncode == 0, timeout=20,
                    interval=0.5)
    inst.stop()
    with QueueStore.open(inst.queue_dir) as store:
        rcpts = sorted(r.address for env, _ in store.scan_all() for r in env.recipients)
    assert rcpts[:1] == ["bob@example.org"] and "carol@example.org" in rcpts
