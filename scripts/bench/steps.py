"""steps - where one session's time goes: each SMTP step's latency, mailsys or Postfix.

SYNOPSIS
    .venv/bin/python scripts/bench/steps.py mailsys|postfix [--messages N] [--size BYTES]

DESCRIPTION
    Starts the system as the benchmark does (mbench/systems.py, relayhost =
    an smtp-sink on loopback), warms it up with 100 messages, then sends N
    messages (default 1000) one after the other, a new connection each, as
    smtp-source does at one session, and prints for each step the median and
    mean time from the client's send to the server's whole reply: connect
    and greeting, EHLO, MAIL, RCPT, DATA, the content with its final dot
    (the 250 comes after the queue commit), QUIT and the close. The client
    is plain blocking Python with TCP_NODELAY, the same for both systems,
    so its own share is the same on both sides; compare the steps, not
    the absolute times. --size makes the content about that many bytes
    (default 1024, as the benchmark's 1 KB cells; 102400 for its 100 KB
    ones), in lines of 72 bytes.

    The one-session cells of `make bench` are this sum; the step that
    differs says which part of the system to look at.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from drain import running_mailsys  # noqa: E402
from mbench import tools  # noqa: E402
from mbench.systems import Postfix  # noqa: E402

HEADER = b"From: <a@example.com>\r\nTo: <b@example.net>\r\nSubject: steps\r\n\r\n"
LINE = b"z" * 70 + b"\r\n"


def commands(size: int) -> tuple[bytes, ...]:
    """The session's commands, with content of about size bytes."""
    message = HEADER + LINE * max(1, (size - len(HEADER)) // len(LINE)) + b".\r\n"
    return (b"EHLO client.example\r\n", b"MAIL FROM:<a@example.com>\r\n",
            b"RCPT TO:<b@example.net>\r\n", b"DATA\r\n", message, b"QUIT\r\n")
STEPS = ("connect+greeting", "EHLO", "MAIL", "RCPT", "DATA", "content+dot", "QUIT+close")


def _reply(f) -> bytes:
    while True:
        line = f.readline()
        if line[3:4] != b"-":
            return line


def one_session(port: int, session: tuple[bytes, ...]) -> list[float]:
    """The seconds each step of one message's session took."""
    times = []
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with s, s.makefile("rb") as f:
        _reply(f)
        times.append(time.perf_counter() - t0)
        for cmd in session:
            t0 = time.perf_counter()
            s.sendall(cmd)
            reply = _reply(f)
            if cmd == b"QUIT\r\n":
                f.read()            # until the server closes
            times.append(time.perf_counter() - t0)
            if reply[:1] not in b"23":
                raise SystemExit(f"steps: {cmd[:20]!r} answered {reply!r}")
    return times


def run(port: int, messages: int, size: int) -> list[list[float]]:
    per_step: list[list[float]] = [[] for _ in STEPS]
    session = commands(size)
    for _ in range(messages):
        for k, t in enumerate(one_session(port, session)):
            per_step[k].append(t)
    return per_step


def report(name: str, per_step: list[list[float]]) -> None:
    print(f"{name}: {len(per_step[0])} messages, one session")
    total = 0.0
    for step, times in zip(STEPS, per_step):
        p50 = statistics.median(times) * 1000
        total += p50
        print(f"  {step:18s} p50 {p50:7.3f} ms   mean {statistics.mean(times) * 1000:7.3f} ms")
    print(f"  {'sum of p50':18s}     {total:7.3f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("system", choices=("mailsys", "postfix"))
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--size", type=int, default=1024, help="content bytes (default 1024)")
    args = ap.parse_args()
    if args.system == "mailsys":
        with running_mailsys("steps") as (system, _sink, _store):
            run(system.smtp_port, 100, args.size)
            report("mailsys", run(system.smtp_port, args.messages, args.size))
        return 0
    smtp_port, sink_port = tools.free_ports(2)
    sink = tools.Sink(sink_port, Path("/tmp") / f"steps-sink-{sink_port}.log")
    postfix = Postfix(smtp_port, sink_port)
    try:
        postfix.start()
        run(smtp_port, 100, args.size)
        report("postfix", run(smtp_port, args.messages, args.size))
    finally:
        postfix.remove()
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
