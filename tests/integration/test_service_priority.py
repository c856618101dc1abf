"""The accepting services run with a larger share of the CPU (skeleton.MANY_CLIENTS_NICE)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from mailsys.ipc import names
from mailsys.runtime.skeleton import MANY_CLIENTS_NICE

pytestmark = pytest.mark.integration


def nice_of(pid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, pid)


def may_raise_priority() -> bool:
    """Whether a process here may lower its nice value (root with CAP_SYS_NICE)."""
    probe = subprocess.run([sys.executable, "-c", "import os; os.nice(-1)"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def program_pids(inst, program: str) -> list[int]:
    return [p.pid for p in inst.children() if f"services.{program}" in p.argv]


def test_smtpd_and_cleanup_run_at_a_lower_nice_value_than_the_rest(mailsys_instance):
    inst = mailsys_instance
    port = inst.free_port()
    inst.write_config(master_cf=[f"127.0.0.1:{port} inet n - n - - smtpd",
                                 "cleanup unix - - n - 0 cleanup"])
    inst.start()
    client = inst.connect(port)
    assert client.recv(512).startswith(b"220 ")
    lane = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lane.connect(str(names.private_path(inst.queue_dir, names.CLEANUP)))
    assert lane.recv(512)           # the channel's hello: cleanup runs
    try:
        inst.wait_until(lambda: program_pids(inst, "smtpd") and program_pids(inst, "cleanup"))
        base = nice_of(inst.master_pid())
        # Raising a priority needs root with CAP_SYS_NICE; without it the
        # services keep the master's, and start all the same.
        raised = base - MANY_CLIENTS_NICE if may_raise_priority() else base
        assert [nice_of(pid) for pid in program_pids(inst, "smtpd")] == [raised]
        assert [nice_of(pid) for pid in program_pids(inst, "cleanup")] == [raised]
        assert [nice_of(pid) for pid in program_pids(inst, "postlogd")] == [base]
    finally:
        client.close()
        lane.close()
