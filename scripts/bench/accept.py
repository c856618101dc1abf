"""accept - where mailsys's CPU goes while smtp-source sends: per service, optionally profiled.

SYNOPSIS
    .venv/bin/python scripts/bench/accept.py [--messages N] [--sessions N]
        [--size BYTES] [--rcpts N] [--repeats N] [--profile SECONDS [--gil]]

DESCRIPTION
    Starts mailsys as the benchmark does (mbench/systems.py, relayhost =
    an smtp-sink on loopback), sends N messages with smtp-source over the
    given sessions, and prints the acceptance rate, the end-to-end rate
    (until the sink has them all and the store's counts are zero) and CPU
    ms per message for each service command, summed over its processes
    (with its system time apart).
    With --profile S, py-spy records every smtpd, cleanup, qmgr, smtp and
    postlogd process for S seconds of the first repeat, at SPY_RATE samples
    a second (environment; 200 by default) (raw collapsed
    stacks in var/bench/accept-*.txt). Needs root, like run.py. With
    --gil it keeps only the samples of the thread holding the GIL: the
    CPU spent in Python (py-spy cannot always tell a thread waiting in
    epoll_wait or on a lock from a running one, so without it the waits
    count as work).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from drain import by_command, pids_of, running_mailsys  # noqa: E402
from mbench import tools  # noqa: E402
from mbench.systems import Mailsys  # noqa: E402

from mailsys.queue import Queue, QueueStore  # noqa: E402

PROFILED = ("smtpd", "cleanup", "qmgr", "smtp", "postlogd", "anvil")


def spy(master: int, seconds: float, tag: str, gil: bool = False) -> list[subprocess.Popen]:
    out = Path("var/bench")
    out.mkdir(parents=True, exist_ok=True)
    py_spy = str(Path(sys.executable).parent / "py-spy")
    return [subprocess.Popen([py_spy, "record", "-p", str(pid), "-d", str(int(seconds)),
                              "-r", os.environ.get("SPY_RATE", "200"), "-f", "raw", *(["--gil"] if gil else []), "-o",
                              str(out / f"accept-{tag}-{command}-{pid}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for command in PROFILED for pid in pids_of(master, command)]


def one(system: Mailsys, sink: tools.Sink, store: QueueStore, args: argparse.Namespace,
        profile: float) -> None:
    base = sink.count().messages
    master = system.master_pid()
    assert master is not None
    hz = os.sysconf("SC_CLK_TCK")
    split0, kernel0 = by_command(master), by_command(master, kernel=True)
    spies: list[subprocess.Popen] = []
    if profile:
        spies = spy(master, profile, f"{args.size}-{args.sessions}", args.gil)
    run = tools.source(system.smtp_port, messages=args.messages, sessions=args.sessions,
                       size=args.size, rcpts=args.rcpts, timeout=600)
    if not run.ok:
        raise SystemExit(run.reason)
    accepted_at = time.monotonic()
    while sink.count().messages < base + args.messages:
        time.sleep(0.01)
    while any(store.counts()[q] for q in (Queue.INCOMING, Queue.ACTIVE, Queue.DEFERRED)):
        time.sleep(0.01)
    e2e = time.monotonic() - run.started
    split, kernel = by_command(master), by_command(master, kernel=True)
    n = args.messages
    print(f"accept {n / run.elapsed:7.1f} msg/s  end-to-end {n / e2e:7.1f} msg/s "
          f"(accepted at {accepted_at - run.started:.2f} s, done at {e2e:.2f} s)")
    total = 0.0
    parts = []
    for name, (t, k) in sorted(split.items()):
        ms = (t - split0.get(name, (0, 0))[0]) / hz * 1000 / n
        total += ms
        sys_ms = (kernel[name][0] - kernel0.get(name, (0, 0))[0]) / hz * 1000 / n
        parts.append(f"{name} {ms:.2f} (sys {sys_ms:.2f}, {k} proc)")
    print(f"  CPU ms/msg {total:.2f}: " + ", ".join(parts), flush=True)
    for s in spies:
        s.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--rcpts", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--profile", type=float, default=0)
    ap.add_argument("--gil", action="store_true", help="profile only the thread holding the GIL")
    args = ap.parse_args()
    with running_mailsys("accept") as (system, sink, store):
        warm = argparse.Namespace(**{**vars(args), "messages": 200, "sessions": 5})
        one(system, sink, store, warm, 0)
        for i in range(args.repeats):
            one(system, sink, store, args, args.profile if i == 0 else 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
