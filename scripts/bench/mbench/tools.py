"""tools - the programs a benchmark cell runs: smtp-sink, smtp-source, tcpdump, a sampler.

DESCRIPTION
    Sink      smtp-sink -c on a loopback port, its running counter read by a
              thread; count() is the last figure it printed.
    source()  one smtp-source run (-c, so the number of completed DATA
              commands is known even when it stops early), with a time limit.
    Capture   tcpdump on lo, TCP segments with payload to or from one port,
              first 128 bytes of each; stop() returns the latencies
              (mbench.pcap) and a note when the kernel dropped packets.
    Sampler   a thread that sums the memory of a process tree every
              `interval` seconds and keeps the peaks.

    Every program is started by this harness and stopped by it, by pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import counters, pcap, procstat

SNAPLEN = 128     # link + IP + TCP headers with options (~66 bytes) + the reply code


def free_ports(n: int) -> list[int]:
    """free_ports - n distinct TCP ports on 127.0.0.1 that nothing listens on now.

    The kernel hands out ports from the ephemeral range, so never 2525/2587
    (the shipped mailsys ports that a developer's `make run` may hold)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def is_root() -> bool:
    return os.geteuid() == 0


class Sink:
    """smtp-sink on 127.0.0.1:port counting messages."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        argv = ["smtp-sink", "-c", "-m", "512"]
        if is_root():
            argv += ["-u", "nobody"]     # smtp-sink refuses to run as root without -u
        argv += [f"127.0.0.1:{port}", "1024"]
        self._err = open(log, "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._err)
        self._tail = ""
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        if not wait_port(port, 5):
            self.stop()
            raise RuntimeError(f"smtp-sink did not listen on port {port}")

    def _read(self) -> None:
        while chunk := os.read(self.proc.stdout.fileno(), 65536):
            with self._lock:
                # keep a bounded tail: only the last complete counter matters
                self._tail = (self._tail + chunk.decode(errors="replace"))[-4096:]

    def count(self) -> counters.SinkCount:
        with self._lock:
            return counters.sink_count(self._tail)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()


@dataclass(frozen=True, slots=True)
class SourceRun:
    started: float       # time.monotonic() just before the program started
    elapsed: float       # seconds until it exited (or was stopped)
    accepted: int        # DATA commands completed (smtp-source -c)
    ok: bool
    reason: str          # why not ok


def source(port: int, *, messages: int, sessions: int, size: int, rcpts: int,
           timeout: float) -> SourceRun:
    """source - send `messages` messages through `sessions` parallel sessions; wait for the end."""
    argv = ["smtp-source", "-c", "-s", str(sessions), "-m", str(messages), "-l", str(size),
            "-r", str(rcpts), "-M", "bench.client", "-f", "sender@bench.test",
            "-t", "rcpt@example.net", f"127.0.0.1:{port}"]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        timed_out = True
    elapsed = time.monotonic() - started
    accepted = counters.source_count(out.decode(errors="replace"))
    errtext = err.decode(errors="replace").strip().splitlines()
    if timed_out:
        return SourceRun(started, elapsed, accepted, False,
                         f"smtp-source stopped after {timeout:.0f} s with {accepted} of {messages} accepted")
    if proc.returncode != 0 or accepted < messages:
        why = errtext[-1] if errtext else f"exit status {proc.returncode}"
        return SourceRun(started, elapsed, accepted, False,
                         f"smtp-source: {accepted} of {messages} accepted; {why}")
    return SourceRun(started, elapsed, accepted, True, "")


class Capture:
    """tcpdump of one server port on lo, for the DATA reply latency."""

    def __init__(self, port: int, path: Path) -> None:
        self.port, self.path = port, path
        self._errpath = path.with_suffix(".err")
        self._err = open(self._errpath, "wb")
        # payload-carrying segments only: SYN/ACK/FIN carry no timing we use
        bpf = (f"tcp port {port} and "
               "(((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)")
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-n", "--immediate-mode", "-s", str(SNAPLEN), "-B", "16384", "-Z", "root",
             "-w", str(path), bpf], stdout=subprocess.DEVNULL, stderr=self._err)
        deadline = time.monotonic() + 5
        while b"listening on" not in self._errpath.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("tcpdump did not start: " + self._errpath.read_text(errors="replace").strip())
            time.sleep(0.02)

    def stop(self) -> tuple[list[float], str]:
        """stop - end the capture; (latencies in seconds, a note or "")."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()
        note = ""
        for line in self._errpath.read_text(errors="replace").splitlines():
            if "dropped by kernel" in line and not line.startswith("0 "):
                note = f"tcpdump: {line.strip()} (latency from the packets it kept)"
        try:
            data = self.path.read_bytes()
        except OSError:
            return [], "tcpdump wrote no capture"
        finally:
            self.path.unlink(missing_ok=True)
        return pcap.data_latencies(data, self.port), note


def capture_unavailable() -> str:
    """capture_unavailable - why latency cannot be measured here, or "" when it can."""
    if shutil.which("tcpdump") is None:
        return "latency needs tcpdump (apt-get install tcpdump)"
    if not is_root():
        return "latency needs root for tcpdump"
    return ""


class Sampler:
    """Peak summed memory of the process tree under a root pid, sampled in a thread."""

    def __init__(self, root: int, interval: float = 0.2) -> None:
        self.root, self.interval = root, interval
        self.peak = procstat.Memory()
        self.max_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> None:
        pids = procstat.tree_pids(self.root)
        mem = procstat.tree_memory(pids)
        # each figure's own peak: the samples where PSS and RSS peak may differ
        self.peak = procstat.Memory(max(self.peak.pss, mem.pss),
                                    max(self.peak.pss_anon_shmem, mem.pss_anon_shmem),
                                    max(self.peak.rss, mem.rss))
        self.max_procs = max(self.max_procs, len(pids))

    def stop(self) -> procstat.Memory:
        self._stop.set()
        self._thread.join()
        self.sample()
        return self.peak
