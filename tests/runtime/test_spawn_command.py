"""SpawnJob: real commands on one end of a socket pair, the test on the other."""

from __future__ import annotations

import functools
import os
import pwd
import socket

import pytest
import trio
from structlog.testing import capture_logs

from mailsys.config.spawn_attributes import parse_spawn_attributes
from mailsys.runtime.spawn_command import SpawnJob, exit_warning

pytestmark = pytest.mark.timeout(30)

NOBODY = pwd.getpwnam("nobody")
# Root runs the command as user=; anyone else runs it as themselves.
EXPECTED_UID = NOBODY.pw_uid if os.geteuid() == 0 else os.geteuid()


def trio_test(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return trio.run(functools.partial(fn, *args, **kwargs))
    return wrapper


def job(*argv: str, time_limit: float = 10.0, env=(("PATH", "/usr/bin:/bin"),)) -> SpawnJob:
    return SpawnJob(parse_spawn_attributes(("user=nobody", "argv=" + argv[0], *argv[1:])),
                    time_limit, env, "/")


async def converse(spawn: SpawnJob, send: bytes) -> tuple[int, bytes]:
    """Run spawn on one end; write `send` and read until end-of-file on the other."""
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    got = b""
    async with trio.open_nursery() as nursery:
        result = []

        async def run() -> None:
            result.append(await spawn.run(theirs))
            theirs.close()          # as the skeleton closes the client stream

        nursery.start_soon(run)
        tsock = trio.socket.from_stdlib_socket(ours)
        await tsock.send(send)
        while chunk := await tsock.recv(65536):
            got += chunk
        tsock.close()
    return result[0], got


@trio_test
async def test_the_connection_is_the_commands_stdin_stdout_and_stderr():
    script = 'read line; echo "got $line"; id -u; echo "PATH=$PATH X=${X-unset}"; echo oops >&2'
    status, got = await converse(job("/bin/sh", "-c", script), b"hello\n")
    assert status == 0
    assert got.decode().splitlines() == ["got hello", str(EXPECTED_UID),
                                         "PATH=/usr/bin:/bin X=unset", "oops"]


@trio_test
async def test_a_nonzero_exit_and_a_signal_are_logged():
    with capture_logs() as logs:
        status, _ = await converse(job("/bin/sh", "-c", "exit 3"), b"")
        killed, _ = await converse(job("/bin/sh", "-c", "kill -TERM $$"), b"")
    assert (status, killed) == (3, -15)
    assert [(e["log_level"], e["event"]) for e in logs] == [
        ("warning", "command /bin/sh exit status 3"),
        ("warning", "command /bin/sh killed by signal 15")]


@trio_test
async def test_the_time_limit_kills_the_command_and_its_children():
    # The shell's child holds the socket too: only killing the whole group
    # lets the client see end-of-file.
    with capture_logs() as logs:
        with trio.fail_after(10):
            status, got = await converse(job("/bin/sh", "-c", "echo started; sleep 30 & wait",
                                             time_limit=0.5), b"")
    assert (status, got) == (-9, b"started\n")
    assert [e["event"] for e in logs][0].startswith("/bin/sh: process id ")
    assert [e["event"] for e in logs][0].endswith(": command time limit exceeded")
    assert [e["event"] for e in logs][1:] == ["command /bin/sh killed by signal 9"]


@trio_test
async def test_a_command_that_cannot_run_is_logged_as_postfix_child_logs_it():
    with capture_logs() as logs:
        status, got = await converse(job("/no/such/command"), b"")
    assert (status, got) == (1, b"")
    assert [(e["log_level"], e["event"]) for e in logs] == [
        ("critical", "spawn_comand: execvp /no/such/command: No such file or directory"),
        ("warning", "command /no/such/command exit status 1")]


@trio_test
async def test_cancellation_kills_the_command():
    ours, theirs = socket.socketpair()
    with trio.move_on_after(0.5):
        await job("/bin/sleep", "30").run(theirs)
    # The command is gone: its end of the connection is closed with ours.
    theirs.close()
    ours.settimeout(5)
    assert ours.recv(10) == b""
    ours.close()


def test_exit_warning():
    assert exit_warning("/x", 0) is None
    assert exit_warning("/x", 2) == "command /x exit status 2"
    assert exit_warning("/x", -9) == "command /x killed by signal 9"
