"""drain - time mailsys's delivery path alone: a pre-filled queue to an empty one.

SYNOPSIS
    .venv/bin/python scripts/bench/drain.py [--messages N] [--size BYTES]
        [--rcpts N] [--repeats N] [--profile SECONDS]

DESCRIPTION
    Starts mailsys as the benchmark does (mbench/systems.py, relayhost =
    an smtp-sink on loopback), writes N messages straight into the
    incoming queue with the store's group commit (so smtpd and cleanup
    play no part), pokes qmgr, and times until the sink has counted them
    all and the store's counts show an empty queue. Prints msgs/s and CPU
    ms per message summed over mailsys's process tree (the filling
    process is not in the tree). With --profile S, py-spy records qmgr
    and one smtp agent for S seconds of the first drain (flame graphs in
    var/bench/). Needs root, like run.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mbench import procstat, tools  # noqa: E402
from mbench.systems import Mailsys  # noqa: E402

from mailsys.admin.access import poke_qmgr  # noqa: E402
from mailsys.message.envelope import Envelope, Recipient  # noqa: E402
from mailsys.queue import Queue, QueueStore  # noqa: E402

FILL_BATCH = 256


def content(size: int) -> bytes:
    head = b"From: a@example.com\r\nTo: b@example.net\r\nSubject: drain\r\n\r\n"
    line = b"x" * 70 + b"\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


def fill(store: QueueStore, n: int, size: int, rcpts: int) -> None:
    data = content(size)
    now = time.time()
    for start in range(0, n, FILL_BATCH):
        items = [(Envelope(queue_id="", sender="a@example.com",
                           recipients=tuple(Recipient(f"r{j}@example.net") for j in range(rcpts)),
                           arrival_time=now, size=len(data), protocol="ESMTP"), data)
                 for _ in range(min(FILL_BATCH, n - start))]
        store.create_many(items, Queue.HOLD)


def pids_of(root: int, command: str) -> list[int]:
    out = []
    for pid in sorted(procstat.tree_pids(root)):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"services.{command}".encode() in cmd:
            out.append(pid)
    return out


def by_command(root: int, kernel: bool = False) -> dict[str, tuple[int, int]]:
    """CPU ticks (system time only with kernel=True) and process count per service command of the live tree."""
    stats = procstat.read_stats()
    out: dict[str, tuple[int, int]] = {}
    for pid in procstat.tree_pids(root):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        name = next((c.decode().split(".")[-1] for c in cmd if c.startswith(b"services.")),
                    "master")
        if pid in stats:
            ticks, n = out.get(name, (0, 0))
            out[name] = (ticks + (0 if kernel else stats[pid].utime) + stats[pid].stime, n + 1)
    return out


def drain(system: Mailsys, sink: tools.Sink, store: QueueStore, n: int, size: int,
          rcpts: int, profile: float, tag: str) -> tuple[float, float]:
    base = sink.count().messages
    fill(store, n, size, rcpts)
    master = system.master_pid()
    assert master is not None
    ticks0 = procstat.cpu_ticks(master, procstat.read_stats())
    split0 = by_command(master)
    t0 = time.monotonic()
    # Release: hold -> incoming in one commit, then the trigger qmgr gets from cleanup.
    store.move_many(list(store.list(Queue.HOLD)), Queue.HOLD, Queue.INCOMING)
    poke_qmgr(system.queue, b"I")
    spies = []
    if profile:
        out = Path("var/bench")
        out.mkdir(parents=True, exist_ok=True)
        time.sleep(0.3)
        for command, pid in [(c, p) for c in ("qmgr", "smtp") for p in pids_of(master, c)]:
            spies.append(subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid),
                 "-d", str(int(profile)), "-r", "100", "-f", "raw", "--gil",
                 "-o", str(out / f"drain-{tag}-{command}-{pid}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = t0 + 600
    while sink.count().messages < base + n and time.monotonic() < deadline:
        time.sleep(0.02)
    while any(store.counts()[q] for q in (Queue.INCOMING, Queue.ACTIVE, Queue.DEFERRED)):
        if time.monotonic() > deadline:
            raise SystemExit(f"queue not empty: {store.counts()}")
        time.sleep(0.02)
    elapsed = time.monotonic() - t0
    ticks = procstat.cpu_ticks(master, procstat.read_stats()) - ticks0
    split = by_command(master)
    print("  CPU ms/msg by service (processes): " + ", ".join(
        f"{name} {(t - split0.get(name, (0, 0))[0]) / os.sysconf('SC_CLK_TCK') * 1000 / n:.2f} ({k})"
        for name, (t, k) in sorted(split.items())), flush=True)
    for spy in spies:
        spy.wait()
    hz = os.sysconf("SC_CLK_TCK")
    return n / elapsed, ticks / hz * 1000 / n


@contextlib.contextmanager
def running_mailsys(name: str) -> Iterator[tuple[Mailsys, tools.Sink, QueueStore]]:
    """A started benchmark mailsys, its sink and its store; removed afterwards (log kept)."""
    smtp_port, sink_port, *spare = tools.free_ports(6)
    sink = tools.Sink(sink_port, Path("/tmp") / f"{name}-sink-{sink_port}.log")
    system = Mailsys(smtp_port, sink_port, spare)
    try:
        system.start()
        store = QueueStore.open(system.queue)
        try:
            yield system, sink, store
        finally:
            store.close()
    finally:
        system.remove(keep_log=Path(f"var/bench/{name}-mail.log"))
        sink.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--rcpts", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", type=float, default=0)
    args = ap.parse_args()
    with running_mailsys("drain") as (system, sink, store):
        # warm-up: every process started, the sink connection known
        drain(system, sink, store, 50, args.size, args.rcpts, 0, "warm")
        for i in range(args.repeats):
            rate, cpu = drain(system, sink, store, args.messages, args.size, args.rcpts,
                              args.profile if i == 0 else 0, f"{args.size}-{args.rcpts}")
            print(f"drain {args.messages} x {args.size} B x {args.rcpts} rcpt: "
                  f"{rate:7.1f} msg/s  {cpu:6.2f} CPU ms/msg", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
