"""writer -> datagram -> LogSink over a real AF_UNIX socket, and the direct-append fallback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import structlog

from mailsys.maillog import postfix
from mailsys.maillog.event import LogEvent
from mailsys.maillog.files import AppendFile, log_paths
from mailsys.maillog.setup import configure
from mailsys.maillog.sink import MAX_DATAGRAM, LogSink
from mailsys.maillog.writer import Writer, postlog_path

LINE = re.compile(r"^[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d mx (\S+)\[(\d+)\]: (.*)$")


@pytest.fixture
def writer(cfg):
    w = Writer.from_config(cfg)
    yield w
    w.close()


def files(cfg) -> tuple[list[str], list[dict]]:
    log, js = log_paths(cfg)
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    records = [json.loads(x) for x in js.read_text(encoding="utf-8").splitlines()] if js.exists() else []
    return lines, records


def event(text="removed", **kw) -> LogEvent:
    return LogEvent(time=0.0, tag="mailsys/qmgr", pid=4321, level=kw.pop("level", "info"),
                    event=text, queue_id=kw.pop("queue_id", "4F2A1C3B7D"), fields=kw)


def test_one_datagram_per_event_reaches_the_sink(cfg, postlog, writer):
    writer.emit(event(sender="a@b", size=12, text="opened", nrcpt=1))
    writer.emit(event(level="warning", text="odd\r\nthing"))
    sink = LogSink(cfg)
    for _ in range(2):
        sink.write(postlog.recv(MAX_DATAGRAM))
    sink.close()
    lines, records = files(cfg)
    assert [LINE.match(x).group(3) for x in lines] == [
        "4F2A1C3B7D: from=<a@b>, size=12, nrcpt=1 (queue active)",
        "warning: 4F2A1C3B7D: odd??thing"]
    assert [r["text"] for r in records] == [LINE.match(x).group(3) for x in lines]
    assert records[1]["event"] == "odd\r\nthing"


def test_fallback_appends_both_files_when_no_postlogd_socket(cfg, writer):
    assert not postlog_path(cfg).parent.exists()
    writer.emit(event())
    writer.emit(event(text="removed", queue_id="ABCDEF0123"))
    lines, records = files(cfg)
    assert [LINE.match(x).groups() for x in lines] == [
        ("mailsys/qmgr", "4321", "4F2A1C3B7D: removed"),
        ("mailsys/qmgr", "4321", "ABCDEF0123: removed")]
    assert [r["queue_id"] for r in records] == ["4F2A1C3B7D", "ABCDEF0123"]
    assert log_paths(cfg)[1].parent == log_paths(cfg)[0].parent


def test_fallback_when_socket_file_exists_but_nobody_listens(cfg, postlog, writer):
    postlog.close()                               # the file stays: ECONNREFUSED
    assert postlog_path(cfg).exists()
    writer.emit(event())
    lines, _ = files(cfg)
    assert len(lines) == 1 and lines[0].endswith("4F2A1C3B7D: removed")


@pytest.mark.parametrize("size", [MAX_DATAGRAM, 2 << 20])
def test_event_too_big_for_a_datagram_is_appended_whole(cfg, postlog, writer, size):
    big = "x" * size
    writer.emit(event(text="big " + big))
    postlog.setblocking(False)
    with pytest.raises(BlockingIOError):
        postlog.recv(1 << 22)                     # nothing went over the socket
    lines, records = files(cfg)
    assert len(lines) == 1 and lines[0].endswith("4F2A1C3B7D: big " + big)
    assert records[0]["event"] == "big " + big


def test_sink_turns_a_bad_datagram_into_a_warning_line(cfg):
    sink = LogSink(cfg)
    sink.write(b"\x00garbage\rNov 27 00:00:00 mx postfix/smtpd[1]: forged")
    sink.close()
    lines, records = files(cfg)
    assert len(lines) == 1
    tag, pid, text = LINE.match(lines[0]).groups()
    assert (tag, int(pid)) == ("mailsys/postlogd", os.getpid())
    assert text.startswith("warning: malformed log datagram (52 bytes): not a log event")
    assert text.endswith("\\000garbage\\rNov 27 00:00:00 mx postfix/smtpd[1]: forged")
    assert records[0]["level"] == "warning"


def test_sink_reopens_after_rotation(cfg):
    log, js = log_paths(cfg)
    sink = LogSink(cfg)
    sink.write(event(text="one").encode())
    log.rename(log.with_suffix(".1"))
    js.rename(js.with_suffix(".1"))
    sink.write(event(text="two").encode())        # within the second: still the old file
    sink.reopen()                                 # SIGHUP
    sink.write(event(text="three").encode())
    sink.close()
    assert log.with_suffix(".1").read_text().count("\n") == 2
    assert log.read_text().endswith("4F2A1C3B7D: three\n") and log.read_text().count("\n") == 1
    assert json.loads(js.read_text())["event"] == "three"


def test_append_file_checks_rotation_at_most_once_per_interval(tmp_path):
    path = tmp_path / "d" / "f.log"
    f = AppendFile(path)
    f.write(b"a\n")
    path.rename(tmp_path / "old")
    f.maybe_reopen(interval=3600)                 # checked just now, at open: no stat
    f.write(b"b\n")
    f.maybe_reopen(interval=0)
    f.write(b"c\n")
    f.close()
    assert (tmp_path / "old").read_bytes() == b"a\nb\n"
    assert path.read_bytes() == b"c\n"


# --- configure(): the structlog chain ---------------------------------------

def test_configure_routes_structlog_events(make_config, capfd):
    cfg = make_config(syslog_name="postfix")
    configure(cfg, "smtpd", console=True)
    log = structlog.get_logger()
    log.debug("not logged at info level")
    log.info("connect from localhost[127.0.0.1]")
    structlog.contextvars.bind_contextvars(queue_id="1C0BF20E25F")
    try:
        log.info("client", client="client.example.org[192.0.2.10]")
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            log.exception("handler failed")
    finally:
        structlog.contextvars.clear_contextvars()
    log.warning("process /x pid 12 exit status 1")
    lines, records = files(cfg)
    parsed = [LINE.match(x).groups() for x in lines]
    assert all(tag == "postfix/smtpd" and int(pid) == os.getpid() for tag, pid, _ in parsed)
    texts = [t for _, _, t in parsed]
    assert texts[:3] == ["connect from localhost[127.0.0.1]",
                         "1C0BF20E25F: client=client.example.org[192.0.2.10]",
                         "error: 1C0BF20E25F: handler failed"]
    assert texts[3] == "error: 1C0BF20E25F: Traceback (most recent call last):"
    assert texts[-3:] == ["error: 1C0BF20E25F: ValueError: bad", "error: 1C0BF20E25F: value",
                          "warning: process /x pid 12 exit status 1"]
    assert [r["event"] for r in records] == ["connect from localhost[127.0.0.1]", "client",
                                             "handler failed", "process /x pid 12 exit status 1"]
    assert records[2]["exception"].endswith("ValueError: bad\nvalue")
    assert capfd.readouterr().err.splitlines() == lines   # start-fg console echo


def test_configure_tag_override_and_no_console_by_default(make_config, capfd):
    cfg = make_config()
    configure(cfg, "smtpd", tag="mailsys/submission/smtpd")
    structlog.get_logger().info("removed", queue_id="4F2A1C3B7D")
    lines, _ = files(cfg)
    assert LINE.match(lines[0]).groups()[0::2] == ("mailsys/submission/smtpd", "4F2A1C3B7D: removed")
    assert capfd.readouterr().err == ""


def test_configure_takes_delay_logging_resolution_limit(make_config):
    # log_adhoc.c formats delay= and delays= with format_tv(..., 2,
    # var_delay_max_res): more decimals show below a second, none with 0.
    fields = dict(to="r@example.net", relay="none", delay=0.001234,
                  delays=(0.001234, 0.4, 0, 1.6), dsn="4.4.1", status="deferred", reason="x")
    try:
        for limit, numbers in (("4", "delay=0.0012, delays=0.0012/0.4/0/1.6"),
                               ("0", "delay=0, delays=0/0/0/2")):
            cfg = make_config(delay_logging_resolution_limit=limit)
            configure(cfg, "smtp")
            structlog.get_logger().info("status", queue_id="4F2A1C3B7D", **fields)
            lines, _ = files(cfg)
            assert f"4F2A1C3B7D: to=<r@example.net>, relay=none, {numbers}, dsn=4.4.1, " \
                   "status=deferred (x)" in lines[-1]
    finally:
        configure(make_config(), "smtp")
    assert postfix.format_delay(0.001234) == "0"


def test_configure_does_not_cache_loggers_under_pytest(make_config):
    configure(make_config(), "smtpd")
    assert structlog.get_config()["cache_logger_on_first_use"] is False


# --- many writers at once: only whole lines ---------------------------------

def _check_whole_lines(cfg, expected: set[tuple[str, int]]) -> None:
    lines, records = files(cfg)                   # json.loads of every mail.json line
    seen = set()
    for line in lines:
        m = LINE.match(line)
        assert m, line
        qid, rest = m.group(3).split(": ", 1)
        worker, seq = rest.split()[1:3]
        assert rest == f"event {worker} {seq} " + "z" * 200
        seen.add((worker, int(seq)))
    assert seen == expected and len(lines) == len(expected) == len(records)


def test_many_threads_append_only_whole_lines(cfg):
    configure(cfg, "smtpd")
    log = structlog.get_logger()

    def work(w: int) -> None:
        for i in range(250):
            log.info(f"event t{w} {i} " + "z" * 200, queue_id="ABCDEF0123")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _check_whole_lines(cfg, {(f"t{w}", i) for w in range(8) for i in range(250)})


@pytest.mark.integration
def test_many_processes_append_only_whole_lines(cfg, short_root):
    # Each child is a fresh interpreter, as with multiprocessing's "spawn".
    child = textwrap.dedent("""
        import sys, structlog
        from pathlib import Path
        from mailsys.config import load
        from mailsys.maillog.setup import configure
        configure(load(Path(sys.argv[1])), "smtpd")
        log = structlog.get_logger()
        for i in range(500):
            log.info(f"event p{sys.argv[2]} {i} " + "z" * 200, queue_id="ABCDEF0123")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", child, str(short_root / "etc"), str(w)])
             for w in range(4)]
    assert [p.wait(timeout=50) for p in procs] == [0, 0, 0, 0]
    _check_whole_lines(cfg, {(f"p{w}", i) for w in range(4) for i in range(500)})


def test_empty_maillog_file_logs_to_stderr_once_even_with_console(make_config, capfd):
    cfg = make_config(maillog_file="")
    assert log_paths(cfg) == (None, None)
    configure(cfg, "master", console=True)
    structlog.get_logger().info("daemon started -- version 0.1.0, configuration /etc/mailsys")
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 1
    assert LINE.match(err[0]).groups()[0::2] == (
        "mailsys/master", "daemon started -- version 0.1.0, configuration /etc/mailsys")
