"""Several events per datagram: the sink's side, and the writer's pending
buffer while postlogd's queue is full (a real socket nobody reads)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import structlog

from mailsys.maillog import writer as writer_mod
from mailsys.maillog.event import LogEvent
from mailsys.maillog.files import AppendFile, log_paths
from mailsys.maillog.setup import configure
from mailsys.maillog.sink import MAX_DATAGRAM, LogSink
from mailsys.maillog.writer import Writer

LINE = re.compile(r"^[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d mx (\S+)\[(\d+)\]: (.*)$")


def logged(cfg) -> tuple[list[str], list[dict]]:
    """The texts of mail.log (after "tag[pid]: ") and the mail.json records."""
    log, js = log_paths(cfg)
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    records = [json.loads(x) for x in js.read_text(encoding="utf-8").splitlines()] \
        if js.exists() else []
    return [LINE.match(x).group(3) for x in lines], records


def ev(i: int, pad: int = 0, level: str = "info") -> LogEvent:
    return LogEvent(time=0.0, tag="mailsys/smtpd", pid=4321, level=level,
                    event=f"event {i}" + " " * bool(pad) + "p" * pad, queue_id="4F2A1C3B7D")


def numbers(texts) -> list[int]:
    return [int(re.search(r"event (\d+)", t).group(1)) for t in texts]


def receive_all(sock) -> list[bytes]:
    """Every datagram queued on the socket now."""
    sock.setblocking(False)
    out = []
    while True:
        try:
            out.append(sock.recv(MAX_DATAGRAM + 1))
        except BlockingIOError:
            return out


def events_of(datagrams) -> list[int]:
    return [int(LogEvent.decode(line).event.split()[1])
            for d in datagrams for line in d.split(b"\n")]


@pytest.fixture
def no_flusher(monkeypatch):
    """The flusher waits a minute: only emit(), flush() and close() send."""
    monkeypatch.setattr(writer_mod, "COALESCE", 60.0)
    monkeypatch.setattr(writer_mod, "RETRY_FIRST", 60.0)


@pytest.fixture
def writes(monkeypatch):
    """The number of AppendFile.write() calls, per file name."""
    counts: dict[str, int] = {}
    real = AppendFile.write

    def counting(self, data):
        counts[self.path.name] = counts.get(self.path.name, 0) + 1
        real(self, data)
    monkeypatch.setattr(AppendFile, "write", counting)
    return counts


@pytest.fixture
def writer(cfg):
    w = Writer.from_config(cfg)
    yield w
    w.close()


def fill(postlog, w: Writer) -> int:
    """Emit events 0, 1, ... until postlogd's queue is full; returns how many went.
    They are warnings: sent at once, never held to share a datagram."""
    i = 0
    while not w._pending:
        w.emit(ev(i, level="warning"))
        i += 1
        assert i < 10_000, "the queue never filled"
    return i - 1                                  # event i-1 is the first one pending


# --- the sink: one or more events per datagram --------------------------------

def test_sink_renders_every_event_of_a_datagram_with_one_write_per_file(cfg, writes):
    sink = LogSink(cfg)
    sink.write(b"\n".join(ev(i).encode() for i in range(5)))
    sink.close()
    texts, records = logged(cfg)
    assert texts == [f"4F2A1C3B7D: event {i}" for i in range(5)]
    assert [r["event"] for r in records] == [f"event {i}" for i in range(5)]
    assert writes == {"mail.log": 1, "mail.json": 1}


def test_sink_single_event_output_is_unchanged(cfg):
    # One event per datagram, and the same event inside a batch: same bytes.
    one = ev(7, pad=3)
    sink = LogSink(cfg)
    sink.write(one.encode())
    sink.write(b"\n".join([ev(1).encode(), one.encode()]))
    sink.close()
    log, js = log_paths(cfg)
    lines, jlines = log.read_bytes().splitlines(), js.read_bytes().splitlines()
    assert lines[0] == lines[2] and jlines[0] == jlines[2]


def test_sink_a_malformed_line_becomes_a_warning_for_that_line_only(cfg, writes):
    sink = LogSink(cfg)
    sink.write(b"\n".join([ev(0).encode(), b"{\"v\": 1, broken", ev(2).encode()]))
    sink.close()
    texts, records = logged(cfg)
    assert texts[0] == "4F2A1C3B7D: event 0"
    assert texts[1].startswith("warning: malformed log datagram (15 bytes): not a log event")
    assert texts[1].endswith(': {"v": 1, broken')
    assert texts[2] == "4F2A1C3B7D: event 2"
    assert [r["level"] for r in records] == ["info", "warning", "info"]
    assert writes == {"mail.log": 1, "mail.json": 1}


# --- the writer: postlogd's queue full ----------------------------------------

def test_full_queue_keeps_events_pending_without_sleeping(cfg, postlog, writer):
    first = fill(postlog, writer)
    started = time.monotonic()
    for i in range(first + 1, first + 200):
        writer.emit(ev(i))
    # The old writer slept up to 8 ms per event here; now it only queues.
    assert time.monotonic() - started < 0.5
    assert len(writer._pending) == 200
    assert logged(cfg) == ([], [])                # nothing fell back yet
    # postlogd reads again: the flusher sends the rest, several per datagram.
    datagrams = []
    deadline = time.monotonic() + 5
    while len(events_of(datagrams)) < first + 200 and time.monotonic() < deadline:
        datagrams += receive_all(postlog)
        time.sleep(0.001)
    assert events_of(datagrams) == list(range(first + 200))
    assert max(d.count(b"\n") for d in datagrams) > 0
    assert all(len(d) <= MAX_DATAGRAM for d in datagrams)
    assert logged(cfg) == ([], [])


def test_routine_events_share_a_datagram_and_a_warning_goes_at_once(cfg, postlog, writer,
                                                                     no_flusher):
    writer.emit(ev(0))                            # the first goes at once
    writer.emit(ev(1))
    writer.emit(ev(2))
    assert events_of(receive_all(postlog)) == [0]
    writer.emit(ev(3, level="warning"))
    assert receive_all(postlog) == [b"\n".join(ev(i, level="warning" if i == 3 else "info").encode()
                                                for i in (1, 2, 3))]


def test_the_flusher_sends_held_events_within_the_coalesce_time(cfg, postlog, writer,
                                                                monkeypatch):
    monkeypatch.setattr(writer_mod, "COALESCE", 0.2)
    for i in range(20):
        writer.emit(ev(i))
    assert events_of(receive_all(postlog)) == [0]
    time.sleep(0.4)
    assert [events_of([d]) for d in receive_all(postlog)] == [list(range(1, 20))]


def test_in_a_trio_loop_the_end_of_the_scheduler_pass_sends(cfg, postlog, writer, no_flusher):
    import trio

    async def main() -> list[list[int]]:
        got = []
        for burst in ((0,), (1, 2, 3), (4, 5)):
            for i in burst:
                writer.emit(ev(i))
            got.append(events_of(receive_all(postlog)))   # still in the same pass
            await trio.sleep(0.001)                       # the loop waits for I/O
        got.append(events_of(receive_all(postlog)))
        return got

    assert trio.run(main) == [[0], [], [1, 2, 3], [4, 5]]
    assert writer._flusher is None                # no thread needed for that


def test_next_emit_sends_pending_and_new_together(cfg, postlog, writer, no_flusher):
    first = fill(postlog, writer)
    writer.emit(ev(first + 1, level="warning"))
    before = receive_all(postlog)                  # room again
    writer.emit(ev(first + 2, level="warning"))
    after = receive_all(postlog)
    assert events_of(before) == list(range(first))
    assert after == [b"\n".join(ev(i, level="warning").encode()
                                for i in range(first, first + 3))]


def test_a_stuck_postlogd_gets_the_pending_events_appended_in_order(cfg, postlog, writer,
                                                                   monkeypatch):
    monkeypatch.setattr(writer_mod, "FULL_TIMEOUT", 0.05)
    first = fill(postlog, writer)
    for i in range(first + 1, first + 5):
        writer.emit(ev(i))
    deadline = time.monotonic() + 5
    while writer._pending and time.monotonic() < deadline:
        time.sleep(0.01)                          # the flusher gives up after 50 ms
    texts, records = logged(cfg)
    assert numbers(texts) == list(range(first, first + 5))
    assert [r["event"] for r in records] == [f"event {i}" for i in range(first, first + 5)]
    # Still full: the next events are held again, then go once there is room.
    writer.emit(ev(first + 5))
    assert len(writer._pending) == 1
    sent = receive_all(postlog)
    deadline = time.monotonic() + 5
    while writer._pending and time.monotonic() < deadline:
        time.sleep(0.001)
    sent += receive_all(postlog)
    assert events_of(sent) == list(range(first)) + [first + 5]


def test_too_much_pending_is_appended_at_once(cfg, postlog, writer, no_flusher, monkeypatch):
    monkeypatch.setattr(writer_mod, "MAX_PENDING", 10_000)
    first = fill(postlog, writer)
    i = first
    while len(logged(cfg)[0]) == 0:
        i += 1
        writer.emit(ev(i, pad=100, level="warning"))
        assert i < first + 200
    assert numbers(logged(cfg)[0]) == list(range(first, i + 1))
    assert not writer._pending


def test_postlogd_gone_appends_pending_then_the_new_event_in_order(cfg, postlog, writer,
                                                                    no_flusher):
    first = fill(postlog, writer)
    writer.emit(ev(first + 1))
    postlog.close()                               # the file stays: ECONNREFUSED
    writer.emit(ev(first + 2, level="error"))
    assert numbers(logged(cfg)[0]) == [first, first + 1, first + 2]
    writer.emit(ev(first + 3))                    # straight to the files now
    assert numbers(logged(cfg)[0]) == [first, first + 1, first + 2, first + 3]


def test_an_event_too_big_for_a_datagram_keeps_its_place(cfg, postlog, writer, no_flusher):
    first = fill(postlog, writer)
    writer.emit(ev(first + 1, pad=MAX_DATAGRAM))
    writer.emit(ev(first + 2))
    assert logged(cfg) == ([], [])                # the big one waits its turn
    writer.close()                                # queue still full: all appended
    texts, records = logged(cfg)
    assert numbers(texts) == [first, first + 1, first + 2]
    assert len(records[1]["event"]) > MAX_DATAGRAM


def test_close_appends_what_postlogd_cannot_take(cfg, postlog, writer, no_flusher):
    first = fill(postlog, writer)
    for i in range(first + 1, first + 30):
        writer.emit(ev(i))
    writer.close()
    assert numbers(logged(cfg)[0]) == list(range(first, first + 30))
    assert events_of(receive_all(postlog)) == list(range(first))
    writer.emit(ev(1000))                         # a closed writer opens again
    assert events_of(receive_all(postlog)) == [1000]


@pytest.mark.integration
def test_interpreter_exit_loses_nothing_pending(cfg, postlog, short_root):
    child = textwrap.dedent("""
        import sys, structlog
        from pathlib import Path
        from mailsys.config import load
        from mailsys.maillog import writer
        from mailsys.maillog.setup import configure
        writer.COALESCE = writer.RETRY_FIRST = 60.0   # only the exit hook delivers them
        configure(load(Path(sys.argv[1])), "smtpd")
        log = structlog.get_logger()
        for i in range(40):
            log.warning(f"event {i}", queue_id="4F2A1C3B7D")   # sent at once, until full
    """)
    subprocess.run([sys.executable, "-c", child, str(short_root / "etc")], check=True,
                   timeout=50)
    sent = events_of(receive_all(postlog))
    appended = numbers(logged(cfg)[0])
    assert sent and appended
    assert sent + appended == list(range(40))


def test_many_threads_through_a_small_queue_keep_each_threads_order(cfg, postlog):
    # A reader that lags: the queue fills, events go pending and come out
    # in batches, from the emitting threads and from the flusher.
    configure(cfg, "smtpd")
    log = structlog.get_logger()
    sink = LogSink(cfg)
    stop = threading.Event()

    def postlogd() -> None:
        postlog.settimeout(0.05)
        while not stop.is_set():
            try:
                sink.write(postlog.recv(MAX_DATAGRAM))
            except TimeoutError:
                continue
            time.sleep(0.0005)

    def work(w: int) -> None:
        for i in range(300):
            log.info(f"event t{w} {i}", queue_id="ABCDEF0123")

    reader = threading.Thread(target=postlogd)
    reader.start()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    structlog.reset_defaults()
    writer_mod._flush_all()                       # what is still pending now
    deadline = time.monotonic() + 10
    # Count whole lines only: the reader may be half-way through writing
    # one (logged() parses them, and would trip over the half).
    mail_log = log_paths(cfg)[0]
    while (mail_log.read_text(encoding="utf-8").count("\n") if mail_log.exists() else 0) < 1800 \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    reader.join()
    sink.close()
    texts, records = logged(cfg)
    assert len(texts) == len(records) == 1800
    for w in range(6):
        mine = [int(t.split()[3]) for t in texts if t.split()[2] == f"t{w}"]
        assert mine == list(range(300))


def test_a_forked_child_drops_the_parents_pending_events(cfg, postlog, writer, no_flusher):
    first = fill(postlog, writer)
    pid = os.fork()
    if pid == 0:                                  # the child: nothing held, a lock it can take
        ok = not writer._pending and writer._lock.acquire(timeout=1)
        os._exit(0 if ok else 1)
    assert os.waitpid(pid, 0)[1] == 0
    writer.close()                                # the parent still delivers its own
    assert numbers(logged(cfg)[0]) == [first]
