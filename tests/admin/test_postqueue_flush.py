"""postqueue -f / -i / -s: due times changed through the store, qmgr poked,
and Postfix's answers when the mail system is down; usage errors."""

from __future__ import annotations

import fcntl
import os
import socket
import time

import pytest

from mailsys.queue import Queue, QueueStore

from admin_fixtures import entries, log_lines, run_process, run_tool

DOWN = "postqueue: fatal: Cannot flush mail queue - mail system is down\n"
LATER = 3600.0


@pytest.fixture
def later(setup, queue):
    """Every deferred entry due in an hour."""
    with QueueStore.open(setup.queue_dir) as store:
        for qid in list(store.list(Queue.DEFERRED)):
            store.update(qid, next_attempt=time.time() + LATER)
    return queue


def live_pid_file(setup) -> int:
    """master.pid naming this (live) process, locked as a running master
    holds it; the descriptor that holds the lock."""
    (setup.queue_dir / "pid").mkdir()
    path = setup.queue_dir / "pid" / "master.pid"
    path.write_text("%10d\n" % os.getpid())
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


@pytest.fixture
def master(setup):
    """A live, locked master.pid and a listening qmgr trigger socket."""
    fd = live_pid_file(setup)
    (setup.queue_dir / "public").mkdir()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(setup.queue_dir / "public" / "qmgr"))
    sock.listen(8)
    sock.settimeout(2)
    yield sock
    sock.close()
    os.close(fd)


def received(sock: socket.socket) -> bytes:
    conn, _ = sock.accept()
    with conn:
        conn.settimeout(2)
        return conn.recv(64)


def due_soon(setup) -> set[str]:
    horizon = time.time() + LATER / 2
    return {qid for qid, (env, q) in entries(setup.queue_dir).items()
            if q is Queue.DEFERRED and env.next_attempt < horizon}


def test_flush_all_makes_deferred_due_and_triggers_qmgr(capsys, setup, later, master):
    assert due_soon(setup) == set()
    status, out, err = run_tool(capsys, setup, "postqueue", "-f")
    assert (status, out, err) == (0, "", "")
    assert received(master) == b"FADI"
    assert due_soon(setup) == {later["bounce"], later["long"]}
    # Entries outside the deferred queue are left alone.
    assert entries(setup.queue_dir)[later["held"]][1] is Queue.HOLD


@pytest.mark.parametrize("args", [("sendmail", "-q"), ("sendmail", "-q", "-v")])
def test_sendmail_q_flushes_like_postqueue_f(capsys, setup, later, master, args):
    status, out, err = run_tool(capsys, setup, *args)
    assert (status, out, err) == (0, "", "")
    assert received(master) == b"FADI"
    assert due_soon(setup) == {later["bounce"], later["long"]}


def test_sendmail_qr_flushes_one_site_and_an_interval_is_ignored(capsys, setup, later, master):
    flush_domains(setup, "fast_flush_domains = remote.example")
    assert run_tool(capsys, setup, "sendmail", "-q30m") == (0, "", "")
    assert due_soon(setup) == set()
    status, _, err = run_tool(capsys, setup, "sendmail", "-qRremote.example")
    assert (status, err) == (0, "")
    assert due_soon(setup) == {later["bounce"]}
    status, _, err = run_tool(capsys, setup, "sendmail", "-qSremote.example")
    assert (status, err) == (75, "sendmail: fatal: -qS is not implemented\n")


def test_flush_one(capsys, setup, later, master):
    status, _, err = run_tool(capsys, setup, "postqueue", "-i", later["long"])
    assert (status, err) == (0, "")
    assert received(master) == b"FAD"
    assert due_soon(setup) == {later["long"]}


def test_flush_unknown_id_is_not_an_error(capsys, setup, later, master):
    status, out, err = run_tool(capsys, setup, "postqueue", "-i", "4jbJDG3zVyz09x4")
    assert (status, out) == (0, "")
    assert err == "postqueue: warning: 4jbJDG3zVyz09x4: not in the deferred queue\n"
    assert due_soon(setup) == set()


def flush_domains(setup, setting: str) -> None:
    with (setup.config_dir / "main.cf").open("a") as f:
        f.write(setting + "\n")


@pytest.mark.parametrize("setting", ["fast_flush_domains = remote.example",
                                     "relay_domains = other.example, remote.example"])
def test_flush_site(capsys, setup, later, master, setting):
    # fast_flush_domains defaults to $relay_domains.
    flush_domains(setup, setting)
    status, _, err = run_tool(capsys, setup, "postqueue", "-s", "Remote.Example")
    assert (status, err) == (0, "")
    assert received(master) == b"FAD"
    assert due_soon(setup) == {later["bounce"]}


def test_flush_site_not_in_fast_flush_domains(capsys, setup, later, master):
    # Postfix 3.7.11 with fast_flush_domains empty (relay_domains empty):
    #   postqueue: fatal: Flush service is not configured for destination "example.com"
    # exit status 69: the flush service answers DENY, and nothing is flushed.
    flush_domains(setup, "fast_flush_domains = far.example")
    status, out, err = run_tool(capsys, setup, "postqueue", "-s", "remote.example")
    assert (status, out, err) == (69, "", "postqueue: fatal: Flush service is not configured "
                                          'for destination "remote.example"\n')
    assert due_soon(setup) == set()
    with pytest.raises(socket.timeout):
        master.accept()                       # qmgr is not poked


def test_flush_bad_site(capsys, setup, later, master):
    # Postfix 3.7.11: postqueue: fatal: Cannot flush mail queue - invalid
    # destination: "x y", exit status 69 (postqueue.c's "%.100s%s").
    flush_domains(setup, "fast_flush_domains = remote.example")
    status, _, err = run_tool(capsys, setup, "postqueue", "-s", "no such site")
    assert (status, err) == (
        69, 'postqueue: fatal: Cannot flush mail queue - invalid destination: "no such site"\n')
    long = "x y" + "z" * 120
    status, _, err = run_tool(capsys, setup, "postqueue", "-s", long)
    assert (status, err) == (69, "postqueue: fatal: Cannot flush mail queue - invalid destination: "
                                 f'"{long[:100]}..."\n')
    assert due_soon(setup) == set()


def test_flush_bad_queue_id(capsys, setup, later, master):
    # postqueue.c mail_queue_id_ok(): letters, digits and "_" (3.7.11 live:
    # 'postqueue: fatal: Cannot flush queue ID - invalid name: "bad/id"', 69).
    for qid, shown in (("bad/id", "bad/id"), ("x" * 256, "x" * 100 + "...")):
        status, _, err = run_tool(capsys, setup, "postqueue", "-i", qid)
        assert (status, err) == (
            69, f'postqueue: fatal: Cannot flush queue ID - invalid name: "{shown}"\n')
    assert due_soon(setup) == set()          # nothing changed
    assert log_lines(setup) == [
        'mailsys/postqueue: fatal: Cannot flush queue ID - invalid name: "bad/id"',
        f'mailsys/postqueue: fatal: Cannot flush queue ID - invalid name: "{"x" * 100}..."']


def test_sendmail_qi_flushes_one(capsys, setup, later, master):
    assert run_tool(capsys, setup, "sendmail", f"-qI{later['long']}") == (0, "", "")
    assert received(master) == b"FAD"
    assert due_soon(setup) == {later["long"]}


@pytest.mark.parametrize("args", [("-f",), ("-i", "4jbJDG3zVyz09x4"), ("-s", "remote.example")])
def test_flush_when_master_is_down(capsys, setup, later, args):
    status, out, err = run_tool(capsys, setup, "postqueue", *args)
    assert (status, out, err) == (69, "", DOWN)
    assert due_soon(setup) == set()          # nothing changed
    # Postfix's postqueue logs it too (3.7.11 live: postfix/postqueue[pid]: fatal: ...).
    assert log_lines(setup) == ["mailsys/postqueue: " + DOWN.split(": ", 1)[1].rstrip()]


def test_flush_with_dead_master_pid(capsys, setup, later):
    (setup.queue_dir / "pid").mkdir()
    # A pid that cannot be alive: beyond Linux's pid_max.
    (setup.queue_dir / "pid" / "master.pid").write_text("%10d\n" % (1 << 23))
    assert run_tool(capsys, setup, "postqueue", "-f")[0] == 69


def test_flush_without_qmgr_socket(capsys, setup, later):
    fd = live_pid_file(setup)
    try:
        status, _, err = run_tool(capsys, setup, "postqueue", "-f")
    finally:
        os.close(fd)
    assert (status, err) == (69, DOWN)


USAGE = ("postqueue: fatal: usage: postqueue -f | postqueue -i queueid | postqueue -j"
         " | postqueue -p | postqueue -s site\n")


@pytest.mark.parametrize("args, complaint", [
    ((), ""), (("-p", "-j"), ""), (("-p", "extra"), ""),
    # glibc getopt's own line comes first, as with Postfix 3.7's postqueue.
    (("-x",), "postqueue: invalid option -- 'x'\n"),
    (("-i",), "postqueue: option requires an argument -- 'i'\n")])
def test_usage_errors(capsys, setup, args, complaint):
    # 69, not EX_USAGE: Postfix's msg_cleanup() handler exits first (3.7.11 live).
    status, out, err = run_tool(capsys, setup, "postqueue", *args)
    assert (status, out, err) == (69, "", complaint + USAGE)
    # Postfix's postqueue reads main.cf only after its options, so only the
    # missing mode, found after that, is in $maillog_file (3.7.11 live).
    logged = ["mailsys/postqueue: fatal: " + USAGE.split("fatal: ", 1)[1].rstrip()]
    assert log_lines(setup) == (logged if not args else [])


@pytest.mark.integration
def test_errors_as_processes(setup, tmp_path):
    r = run_process(setup, "postqueue", "-q")
    assert (r.returncode, r.stderr) == (69, "postqueue: invalid option -- 'q'\n" + USAGE)
    r = run_process(setup, "postqueue", "-f")
    assert (r.returncode, r.stderr) == (69, DOWN)
    (setup.config_dir / "main.cf").write_text(f"queue_directory = {tmp_path}/nowhere\n")
    r = run_process(setup, "postqueue", "-p")
    assert r.returncode == 69 and "Traceback" not in r.stderr
    assert r.stderr == f"postqueue: fatal: chdir {tmp_path}/nowhere: No such file or directory\n"
    # mailq is Postfix's sendmail, which exits 75 (3.7.11 live).
    r = run_process(setup, "mailq")
    assert (r.returncode, r.stderr) == (
        75, f"mailq: fatal: chdir {tmp_path}/nowhere: No such file or directory\n")
    (setup.config_dir / "main.cf").unlink()
    # Seen live: "postqueue: fatal: open /x/main.cf: No such file or directory", 69;
    # "mailq: fatal: open ...", 75.
    for args, status in ((("postqueue", "-p"), 69), (("mailq",), 75)):
        r = run_process(setup, *args)
        assert r.returncode == status and "Traceback" not in r.stderr
        assert r.stderr.startswith(f"{args[0]}: fatal: open ") and len(r.stderr.splitlines()) == 1
