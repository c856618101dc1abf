"""The helper daemons of Postfix's stock master.cf that mailsys does without.

tlsmgr, trivial-rewrite, proxymap, scache, showq, error and discard do
work that mailsys's own daemons do in process, so their master.cf lines
(Postfix 3.7's master.cf, with its "1000?" wakeup for tlsmgr) must be
accepted and cost nothing: the master's wakeups are taken without a word,
and anything else that connects is told why in the log.
"""

from __future__ import annotations

import runpy
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))

# Postfix 3.7.11's master.cf lines (chroot off), tlsmgr woken every second.
HELPERS = ["tlsmgr unix - - n 1? 1 tlsmgr",
           "rewrite unix - - n - - trivial-rewrite",
           "proxymap unix - - n - - proxymap",
           "proxywrite unix - - n - 1 proxymap",
           "scache unix - - n - 1 scache",
           "showq unix n - n - - showq",
           "error unix - - n - - error",
           "retry unix - - n - - error",
           "discard unix - - n - - discard"]


def test_postfix_helper_lines_are_accepted_and_serve_nothing(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, services=[*h.SERVICES, *HELPERS])
    qid, _ = h.send_message(port)                  # mail still goes through
    time.sleep(2.5)                                 # two wakeups of tlsmgr
    assert "not used by mailsys" not in inst.log_text()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(inst.queue_dir / "private" / "proxymap"))
        sock.sendall(b"request=lookup\0")
        sock.settimeout(10)
        assert sock.recv(100) == b""                # closed, nothing said
    log = inst.wait_log("proxymap: not used by mailsys")
    assert ("warning: proxymap: not used by mailsys (every process opens its tables itself); "
            "closing the connection") in log
    assert f"{qid}: message-id=" in log
