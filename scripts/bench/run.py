"""run.py - benchmark mailsys against a private Postfix, side by side, in one run.

SYNOPSIS
    .venv/bin/python scripts/bench/run.py [--quick] [--repeats N] [--seconds S]
                                          [--systems postfix,mailsys] [--out DIR]
                                          [--sizes 1024,102400] [--sessions 1,10,50,200]
                                          [--rcpts 1,5]

DESCRIPTION
    Load comes from Postfix's smtp-source, the final destination is
    Postfix's smtp-sink on loopback; both systems relay every message to
    it (relayhost). The matrix: message size 1 KB and 100 KB × 1, 10, 50
    and 200 parallel sessions × 1 and 5 recipients, each cell sized to last
    about --seconds (10) end to end, repeated --repeats (3) times; the
    systems take turns repeat by repeat (run_matrix()), each with its own
    sink.
    --sizes, --sessions and --rcpts pick a part of the matrix.
    --quick runs one small cell (1 KB × 10 sessions × 1 recipient, 300
    messages, once) per system, in well under a minute.

    smtp-source opens a new connection for every message (its default, as
    in Postfix's own benchmarks). The number of messages of a cell is the
    estimated rate × --seconds: the first repeat uses the last rate this
    system reached with this message size, the others the rate of the
    first repeat; a first repeat shorter than half of --seconds is run
    again, once, and only the second run counts.

    Each cell starts on a freshly started system (no process pool left
    over from the cell before) after a short warm-up (its first processes
    start, its caches fill); the first warm-up also tells whether it can
    deliver end to end. If it cannot, every end-to-end figure is n/a with
    the reason, the cells do not wait for deliveries, and the queue is
    emptied (postsuper -d ALL) after each cell.

    Figures and methods: see scripts/bench/README.md and the mbench
    modules. Results: var/bench/bench-YYYYmmdd-HHMMSS.{md,json} and
    var/bench/latest.{md,json}; the Markdown table is also printed; each
    system's mail log of the run is kept as var/bench/NAME-mail.log. Exit
    status 1 when Postfix, the yardstick, gave no figure at all (mailsys
    may be n/a while it is being built: that is reported, not an error).

    Needs root (the private Postfix, tcpdump) and Debian's postfix package,
    which it installs when missing (install-postfix.sh, no system Postfix
    left running). fsync stays on in both systems.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mbench import cell as cellrun  # noqa: E402
from mbench import report, systems, tools  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SIZES = (1024, 100 * 1024)
SESSIONS = (1, 10, 50, 200)
RCPTS = (1, 5)
FIRST_GUESS = {1024: 300.0, 100 * 1024: 200.0}     # msgs/s, Postfix's order of magnitude here
MIN_MESSAGES = 50


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def ensure_tools() -> None:
    if shutil.which("smtp-source") and shutil.which("smtp-sink") and shutil.which("tcpdump"):
        return
    if os.geteuid() != 0:
        say("smtp-source/smtp-sink/tcpdump missing and not root: cannot install them")
        return
    say("installing Debian's postfix and tcpdump (no system Postfix is left running)")
    subprocess.run(["sh", str(HERE / "install-postfix.sh")], check=False,
                   env={**os.environ, "APT_UPDATE": "1"})


def matrix(args) -> list[report.Cell]:
    if args.quick:
        return [report.Cell(1024, 10, 1)]
    return [report.Cell(size, s, r) for size in args.sizes for s in args.sessions for r in args.rcpts]


def int_list(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def warm_up(system, sink: tools.Sink, quick: bool, *, wait: bool = True) -> str:
    """warm_up - a few messages through the system; "" if they arrived, else why not.

    With wait=False it only sends them. Raises SystemUnavailable when not
    even one was accepted."""
    n = 20 if quick else 100
    before = sink.count().messages
    src = tools.source(system.smtp_port, messages=n, sessions=5, size=1024, rcpts=1, timeout=30)
    if not src.accepted:
        raise systems.SystemUnavailable(f"nothing was accepted in the warm-up ({src.reason})")
    if why := system.cannot_deliver():
        return why
    if not wait:
        return ""
    end, why = cellrun.wait_delivered(system, sink, before + src.accepted, 15 if quick else 30)
    return "" if end is not None else f"warm-up: {why}"


class SystemRun:
    """One system across the matrix: its sink, and what it learned from one
    cell for the next (whether it delivers, the rate to size a cell on).

    A cell is begun (begin_cell: the system started afresh and warmed
    up), measured a repeat at a time (repeat), and ended (end_cell: the
    system stopped, its results returned). Each cell starts on a freshly
    started system, so that no process pool of the cell before (such as
    Postfix's idle smtpd processes that wait max_idle = 100 s) weighs on
    its memory figure; the repeats of a cell share the start. The first
    warm-up decides whether the system delivers; later ones only start
    its processes again. A system that cannot be run gets n/a for the
    rest of the matrix."""

    def __init__(self, system_cls, args, workdir: Path) -> None:
        self.name = system_cls.name
        self.args, self.workdir = args, workdir
        self.delivers: str | None = None
        self.rate: dict[int, float] = dict(FIRST_GUESS)
        self.unavailable = ""
        self.notes: tuple[str, ...] = ()
        self.system = None
        self._cell: report.Cell | None = None
        self._results: list[report.Result] = []
        self._first_rate: float | None = None     # what the cell's first repeat reached
        self._resized = False
        sink_port, smtp_port, *spare = tools.free_ports(6)
        self.sink = tools.Sink(sink_port, workdir / f"{self.name}-sink.log")
        try:
            if system_cls is systems.Mailsys:
                self.system = systems.Mailsys(smtp_port, sink_port, spare)
                self.notes = tuple(self.system.notes)
            else:
                self.system = systems.Postfix(smtp_port, sink_port)
        except systems.SystemUnavailable as e:
            self._give_up(e)

    def begin_cell(self, cell: report.Cell) -> None:
        """begin_cell - the system started afresh and warmed up for cell."""
        self._cell, self._results, self._first_rate, self._resized = cell, [], None, False
        if self.unavailable:
            return
        system, args = self.system, self.args
        try:
            say(f"{self.name}: starting (smtpd 127.0.0.1:{system.smtp_port}, "
                f"sink 127.0.0.1:{self.sink.port})")
            system.start()
            if self.delivers is None:
                self.delivers = warm_up(system, self.sink, args.quick)
                if self.delivers:
                    say(f"{self.name}: no end-to-end figures: {self.delivers}")
            else:
                warm_up(system, self.sink, args.quick, wait=not self.delivers)
            if self.delivers:
                system.purge()
        except systems.SystemUnavailable as e:
            self._give_up(e)
            system.stop()

    def repeat(self) -> None:
        """repeat - one more repeat of the cell begun (nothing once n/a)."""
        if self.unavailable or self._cell is None:
            return
        try:
            self._results.append(self._measure(self._cell))
        except systems.SystemUnavailable as e:
            self._give_up(e)
            self.system.stop()

    def end_cell(self) -> list[report.Result]:
        """end_cell - the system stopped; the cell's results (n/a if it could not run)."""
        cell, results = self._cell, self._results
        self._cell, self._results = None, []
        if self.unavailable:
            results = [report.Result(self.name, cell, 1, 0, dict.fromkeys(report.METRICS),
                                     (self.unavailable,))]
        else:
            self.system.stop()
        return self._noted(results)

    def _measure(self, cell: report.Cell) -> report.Result:
        """One counted repeat. A first repeat that lasts less than half the
        target length was sized on a poor guess: it is run again, once,
        sized on what it measured, and only the second run counts."""
        args, system = self.args, self.system
        while True:
            est = self._first_rate or self.rate.get(cell.size, 200.0)
            messages = 300 if args.quick else max(MIN_MESSAGES, 2 * cell.sessions,
                                                  min(20000, round(est * args.seconds)))
            expected = messages / est
            say(f"{self.name}: {cell.label}, repeat {len(self._results) + 1}: {messages} messages")
            r = cellrun.run(system, self.sink, cell, repeat=len(self._results) + 1,
                            messages=messages, source_timeout=max(60.0, 4 * expected),
                            drain_timeout=max(15.0 if args.quick else 30.0, 3 * expected),
                            delivers=self.delivers, workdir=self.workdir)
            if self.delivers or r.metrics["e2e_rate"] is None:
                system.purge()    # what could not be delivered must not weigh on the next run
            measured = r.metrics["e2e_rate"] or r.metrics["accept_rate"]
            seconds = r.extra.get("e2e_seconds") or r.extra.get("accept_seconds") or 0
            if measured:
                self.rate[cell.size] = measured
                if not self._results and not self._resized and not args.quick \
                        and seconds < args.seconds / 2:
                    self._resized = True
                    self._first_rate = measured
                    say(f"{self.name}: that took only {seconds:.1f} s; not counted, sized again")
                    continue
                self._first_rate = self._first_rate or measured
            return r

    def _give_up(self, e: systems.SystemUnavailable) -> None:
        say(f"{self.name}: n/a: {e}")
        self.unavailable = f"n/a: {e}"

    def _noted(self, results: list[report.Result]) -> list[report.Result]:
        """The notes of the system's set-up go with its first result."""
        if self.notes and results:
            r = results[0]
            results[0] = report.Result(r.system, r.cell, r.repeat, r.messages, r.metrics,
                                       self.notes + r.notes, r.extra)
            self.notes = ()
        return results

    def describe(self) -> str:
        return self.system.describe() if self.system is not None else self.name

    def close(self) -> None:
        """Stop and remove the system (its mail log kept), stop the sink."""
        try:
            if self.system is not None:
                self.system.remove(keep_log=self.args.out / f"{self.name}-mail.log")
        finally:
            self.sink.stop()


def run_matrix(runs: list[SystemRun], cells: list[report.Cell],
               repeats: int) -> list[report.Result]:
    """run_matrix - every cell on every system, the systems taking turns repeat by repeat.

    Both systems are started for a cell and take turns within it, one
    repeat each, in the order A B B A A B ... (A being Postfix in the first
    cell, mailsys in the second, ...): the two figures of a ratio are
    measured within a minute of each other, and a drift of the machine's
    speed (this one has slow and fast spells minutes long) weighs on both
    alike. Only the one taking its turn has work; the other waits idle,
    and each one's CPU and memory are counted over its own processes."""
    results: list[report.Result] = []
    for i, cell in enumerate(cells):
        order = runs if i % 2 == 0 else runs[::-1]
        for run in order:
            run.begin_cell(cell)
        for k in range(repeats):
            for run in (order if k % 2 == 0 else order[::-1]):
                run.repeat()
        for run in order:
            results += run.end_cell()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="mailsys vs Postfix benchmark")
    ap.add_argument("--quick", action="store_true", help="one small cell per system")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=10.0, help="target length of a cell")
    ap.add_argument("--systems", default="postfix,mailsys")
    ap.add_argument("--out", type=Path, default=REPO / "var" / "bench")
    ap.add_argument("--sizes", type=int_list, default=SIZES, help="message sizes, e.g. 1024,102400")
    ap.add_argument("--sessions", type=int_list, default=SESSIONS, help="e.g. 1,10,50,200")
    ap.add_argument("--rcpts", type=int_list, default=RCPTS, help="recipients per message, e.g. 1,5")
    args = ap.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    ensure_tools()
    if not shutil.which("smtp-source"):
        say("smtp-source is not installed: nothing can be measured")
        return 1
    cells = matrix(args)
    chosen = [s for s in (systems.Postfix, systems.Mailsys) if s.name in args.systems.split(",")]
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench") as tmp:
        runs: list[SystemRun] = []
        try:
            for system_cls in chosen:
                runs.append(SystemRun(system_cls, args, Path(tmp)))
            results = run_matrix(runs, cells, args.repeats)
        finally:
            for run in runs:
                run.close()
        described = {run.name: run.describe() for run in runs}
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    meta = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": round(time.time() - started, 1), "quick": args.quick, "repeats": args.repeats,
            "target_cell_seconds": args.seconds, "cpus": os.cpu_count(),
            "kernel": platform.release(), "systems": described}
    full = len(cells) == len(SIZES) * len(SESSIONS) * len(RCPTS)
    kind = "quick" if args.quick else "full matrix" if full else f"{len(cells)} cells of the matrix"
    header = (f"# mailsys vs Postfix, {meta['started']} ({kind}, "
              f"medians of {args.repeats}; {', '.join(described.values())}; {os.cpu_count()} CPUs)\n")
    text = report.markdown(results, header=header)
    args.out.mkdir(parents=True, exist_ok=True)
    for base in (f"bench-{stamp}", "latest"):
        (args.out / f"{base}.md").write_text(text)
        (args.out / f"{base}.json").write_text(json.dumps(report.to_json(results, meta), indent=1) + "\n")
    print(text)
    say(f"written {args.out / f'bench-{stamp}.md'} and .json")
    # Postfix is the yardstick: when not one of its cells could be measured
    # the harness itself is broken here (mailsys may be n/a while it is built)
    if "postfix" in described and not any(r.metrics["accept_rate"] for r in results if r.system == "postfix"):
        say("no Postfix figure at all: see the notes")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # every system, sink and capture has been stopped on the way out
        say("interrupted; nothing written")
        sys.exit(130)
