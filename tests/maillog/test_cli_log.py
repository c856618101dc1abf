"""mailsys log: tail, filters, JSON, follow across rotation - run as the real command."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest

from mailsys.maillog.event import LogEvent
from mailsys.maillog.files import log_paths
from mailsys.maillog.sink import LogSink

EVENTS = [
    ("mailsys/smtpd", "info", "connect from client.example.org[192.0.2.10]", None, {}),
    ("mailsys/smtpd", "info", "client", "1C0BF20E25F", {"client": "client.example.org[192.0.2.10]"}),
    ("mailsys/cleanup", "info", "message-id", "1C0BF20E25F", {"message_id": "<1@x>"}),
    ("mailsys/qmgr", "info", "opened", "1C0BF20E25F", {"sender": "a@x", "size": 317, "nrcpt": 1}),
    ("mailsys/submission/smtpd", "info", "connect from u[192.0.2.11]", None, {}),
    ("mailsys/smtp", "info", "delivered", "1C0BF20E25F",
     {"to": "b@y", "relay": "mx.y[203.0.113.5]:25", "delay": 1.2, "delays": [0.05, 0.01, 0.6, 0.54],
      "dsn": "2.0.0", "reason": "250 2.0.0 Ok"}),
    ("mailsys/bounce", "info", "notification", "AFD7C20E273",
     {"kind": "sender non-delivery", "notice_id": "1C0BF20E25F"}),
    ("mailsys/smtpd", "warning", "queue file size limit exceeded", "1C0BF20E25F", {}),
    ("mailsys/smtpd", "info", "reject", None,
     {"command": "RCPT", "client": "u[198.51.100.7]", "reply": "454 4.7.1 <v@r>: Relay access denied",
      "sender": "s@x", "recipient": "v@r", "proto": "ESMTP", "helo": "x"}),
    ("mailsys/qmgr", "info", "removed", "1C0BF20E25F", {}),
] + [("mailsys/anvil", "info", f"statistics: tick {i}", None, {}) for i in range(12)]


def emit(sink: LogSink, tag, level, text, qid, fields) -> None:
    sink.append(LogEvent(time=time.time(), tag=tag, pid=100, level=level, event=text,
                         queue_id=qid, noqueue=(text == "reject"), fields=fields))


@pytest.fixture
def logs(cfg):
    sink = LogSink(cfg)
    for e in EVENTS:
        emit(sink, *e)
    sink.close()
    return cfg


def run(cfg, *args, **kw):
    return subprocess.run([sys.executable, "-m", "mailsys.cli.main", "-c", str(cfg.config_dir), "log", *args],
                          capture_output=True, text=True, timeout=30, **kw)


def texts(stdout: str) -> list[str]:
    return [line.split("[100]: ", 1)[1] for line in stdout.splitlines()]


def test_default_prints_the_last_ten_lines(logs):
    r = run(logs)
    assert r.returncode == 0, r.stderr
    assert texts(r.stdout) == [f"statistics: tick {i}" for i in range(2, 12)]
    assert "\x1b" not in r.stdout                  # no colours on a pipe


def test_n_lines_and_zero(logs):
    assert texts(run(logs, "-n", "2").stdout) == ["statistics: tick 10", "statistics: tick 11"]
    assert run(logs, "-n", "0").stdout == ""
    assert len(run(logs, "-n", "1000").stdout.splitlines()) == len(EVENTS)


def test_id_shows_the_whole_history_of_one_message(logs):
    r = run(logs, "--id", "1C0BF20E25F")
    assert r.returncode == 0
    assert texts(r.stdout) == [
        "1C0BF20E25F: client=client.example.org[192.0.2.10]",
        "1C0BF20E25F: message-id=<1@x>",
        "1C0BF20E25F: from=<a@x>, size=317, nrcpt=1 (queue active)",
        "1C0BF20E25F: to=<b@y>, relay=mx.y[203.0.113.5]:25, delay=1.2, delays=0.05/0.01/0.6/0.54, "
        "dsn=2.0.0, status=sent (250 2.0.0 Ok)",
        "warning: 1C0BF20E25F: queue file size limit exceeded",
        "1C0BF20E25F: removed",
    ]
    assert texts(run(logs, "--id", "1C0BF20E25F", "-n", "1").stdout) == ["1C0BF20E25F: removed"]
    none = run(logs, "--id", "NOSUCHID")
    assert (none.returncode, none.stdout) == (1, "")
    assert none.stderr == f"log: fatal: no lines for queue ID NOSUCHID in {logs.path('maillog_file')}\n"


def test_service_matches_program_and_middle_components(logs):
    lines = run(logs, "--service", "smtpd", "-n", "100").stdout.splitlines()
    tags = [line.split()[4].split("[")[0] for line in lines]
    assert tags == ["mailsys/smtpd", "mailsys/smtpd", "mailsys/submission/smtpd",
                    "mailsys/smtpd", "mailsys/smtpd"]
    sub = run(logs, "--service", "submission").stdout
    assert texts(sub) == ["connect from u[192.0.2.11]"]
    assert texts(run(logs, "--service", "smtp").stdout)[0].startswith("1C0BF20E25F: to=<b@y>")
    assert len(run(logs, "--service", "smtp").stdout.splitlines()) == 1


def test_json_prints_raw_mail_json_events_with_the_same_filters(logs):
    r = run(logs, "--json", "--id", "1C0BF20E25F", "--service", "smtpd")
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["tag"], x["event"]) for x in records] == [
        ("mailsys/smtpd", "client"), ("mailsys/smtpd", "queue file size limit exceeded")]
    raw = log_paths(logs)[1].read_text().splitlines()
    assert r.stdout.splitlines() == [raw[1], raw[7]]


def test_missing_log_file_is_one_clear_line_and_exit_1(cfg):
    r = run(cfg)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert str(log_paths(cfg)[0]) in r.stderr and "No such file" in r.stderr


def test_bad_usage_exits_64(logs):
    r = run(logs, "--bogus")
    assert r.returncode == 64 and "usage: mailsys log" in r.stderr
    assert run(logs, "-n", "-3").returncode == 64


def test_colours_on_a_terminal_for_warnings_and_rejects(logs):
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([sys.executable, "-m", "mailsys.cli.main", "-c", str(logs.config_dir),
                              "log", "-n", "100"], stdout=slave, stderr=subprocess.PIPE,
                             env={k: v for k, v in os.environ.items() if k != "NO_COLOR"})
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:                          # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        err = p.stderr.read().decode()
        p.stderr.close()
        assert p.wait(timeout=30) == 0, err
    finally:
        os.close(master)
    lines = out.decode().splitlines()
    warning = next(x for x in lines if "warning: 1C0BF20E25F" in x)
    reject = next(x for x in lines if "NOQUEUE: reject:" in x)
    plain = next(x for x in lines if "removed" in x)
    assert warning.startswith("\x1b[33m") and warning.endswith("\x1b[0m")
    assert reject.startswith("\x1b[31m") and reject.endswith("\x1b[0m")
    assert "\x1b" not in plain


def _read_until(proc, want: str, seen: list[str], deadline: float) -> None:
    """Collect follow output lines until one contains want."""
    buf = ""
    while time.monotonic() < deadline:
        if any(want in line for line in seen):
            return
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536).decode()
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split("\n")
            seen.extend(lines)
    raise AssertionError(f"never saw {want!r}; got {seen}")


@pytest.mark.integration
def test_follow_across_rename_rotation_and_truncation(logs):
    log_path = log_paths(logs)[0]
    proc = subprocess.Popen([sys.executable, "-m", "mailsys.cli.main", "-c", str(logs.config_dir),
                             "log", "-f", "-n", "1", "--service", "qmgr"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen: list[str] = []
    deadline = time.monotonic() + 20
    try:
        _read_until(proc, "1C0BF20E25F: removed", seen, deadline)
        sink = LogSink(logs)
        emit(sink, "mailsys/qmgr", "info", "before rotation", None, {})
        emit(sink, "mailsys/smtpd", "info", "filtered out", None, {})
        _read_until(proc, "before rotation", seen, deadline)
        # logrotate: rename, then the writer writes once more to the old
        # file before it notices, then a new file.
        log_path.rename(log_path.with_suffix(".1"))
        emit(sink, "mailsys/qmgr", "info", "late in old file", None, {})
        sink.reopen()
        emit(sink, "mailsys/qmgr", "info", "first in new file", None, {})
        _read_until(proc, "first in new file", seen, deadline)
        _read_until(proc, "late in old file", seen, deadline)
        # copytruncate: the file shrinks in place
        os.truncate(log_path, 0)
        time.sleep(0.5)
        emit(sink, "mailsys/qmgr", "info", "after truncation", None, {})
        sink.close()
        _read_until(proc, "after truncation", seen, deadline)
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=10)
        err = proc.stderr.read().decode()
        proc.stdout.close()
        proc.stderr.close()
    assert rc == 130 and "Traceback" not in err, err
    assert not any("filtered out" in line for line in seen)
    assert sum("first in new file" in line for line in seen) == 1


def test_tail_reads_backwards_across_blocks_and_skips_an_unfinished_line(cfg):
    log_path = log_paths(cfg)[0]
    log_path.parent.mkdir(parents=True)
    lines = [f"Nov 27 00:00:00 mx mailsys/qmgr[1]: Q{i:05d}: " + "p" * (i % 997) for i in range(400)]
    log_path.write_text("\n".join(lines) + "\nNov 27 00:00:00 mx mailsys/qmgr[1]: unfinished")
    assert run(cfg, "-n", "150").stdout.splitlines() == lines[-150:]
    assert run(cfg, "-n", "400").stdout.splitlines() == lines
    assert run(cfg, "--id", "Q00007").stdout.splitlines() == [lines[7]]
    assert run(cfg, "--service", "qmgr", "-n", "3").stdout.splitlines() == lines[-3:]
