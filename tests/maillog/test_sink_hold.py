"""LogSink.hold() / flush(): the datagrams of a wake-up, written at once, give
the same bytes in the same order as write() of each."""

from __future__ import annotations

from mailsys.maillog.event import LogEvent
from mailsys.maillog.files import log_paths
from mailsys.maillog.sink import LogSink


def _datagrams() -> list[bytes]:
    def enc(i: int, **kw) -> bytes:
        d = {"event": "connect", "client": f"h\u00e9{i}[192.0.2.{i}]", "timestamp": 1_795_000_000.5 + i,
             **kw}
        return LogEvent.from_event_dict(d, tag="mailsys/smtpd", pid=100 + i).encode()
    return [enc(1), enc(2, noqueue=True, event="client") + b"\n" + enc(3, level="warning"),
            enc(4, queue_id="Q4", event="removed"),
            enc(5, event="oops", exception="Traceback\n  x\nValueError: \u00e9")]


def _files(cfg) -> tuple[bytes, bytes]:
    log, json = log_paths(cfg)
    return log.read_bytes(), json.read_bytes()


def test_flush_writes_what_write_writes(make_config, short_root):
    datagrams = _datagrams()
    cfg = make_config()
    sink = LogSink(cfg)
    for d in datagrams:
        sink.write(d)
    sink.close()
    expected = _files(cfg)
    log, json = log_paths(cfg)
    log.unlink()
    json.unlink()
    sink = LogSink(cfg)
    for d in datagrams:
        sink.hold(d)
    assert not log.exists()                     # nothing written before the flush
    sink.flush()
    sink.flush()                                # nothing held: nothing more
    sink.close()
    assert _files(cfg) == expected
    assert len(expected[0].splitlines()) == 8   # 5 events, a traceback of 3 lines


def test_write_close_and_bad_datagrams_keep_the_order(make_config):
    cfg = make_config()
    sink = LogSink(cfg)
    first, *_, last = _datagrams()
    sink.hold(first)
    sink.hold(b"")                              # an empty datagram: its own warning
    sink.hold(b"not json\n" + last)
    sink.write(first)                           # write() goes after what is held
    sink.hold(last)
    sink.close()                                # close() writes what is still held
    lines = _files(cfg)[0].decode().splitlines()
    assert ["connect" in lines[0], "malformed log datagram (0 bytes)" in lines[1],
            "malformed log datagram (8 bytes)" in lines[2], "oops" in lines[3],
            "connect" in lines[-5], "oops" in lines[-4]] == [True] * 6
    assert len(lines) == 12
