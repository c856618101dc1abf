"""cell - one repeat of one matrix cell against one running system.

DESCRIPTION
    Order of events: snapshot CPU and the sink's counter, start the memory
    sampler and the packet capture, run smtp-source (acceptance ends when
    it exits: its last session has had its last 250), then wait until the
    sink has counted every message and the queue is empty (end-to-end),
    then stop sampling and snapshot CPU again.

    The queue is only asked once the sink has every message, because
    asking costs a process start (for mailsys a Python interpreter) that
    must not load the system while it works. End-to-end time is the moment
    the sink's count was complete when the first check after it finds the
    queue empty (the entries are removed right after delivery), otherwise
    the start of the first check that does (so the figure is exact to one
    check interval).

    Figures: acceptance rate = accepted / smtp-source's elapsed time;
    end-to-end rate = messages / time until the end above; CPU ms per
    message = CPU time of the system's processes (procstat) between the
    snapshots / messages; memory = the sampler's peaks; latency p50/p99 =
    from the capture (pcap). A figure that cannot be had is None, with a
    note saying why.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import procstat, report, tools

POLL = 0.05


def wait_delivered(system, sink: tools.Sink, target: int, timeout: float) -> tuple[float | None, str]:
    """wait_delivered - monotonic time of end-to-end completion, or (None, why)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sink.count().messages >= target:
            complete = time.monotonic()
            if system.queue_empty():
                return complete, ""
            while time.monotonic() < deadline:
                # a check starts a process (for mailsys an interpreter): leave
                # the system at least as much time to itself as a check takes
                asked = time.monotonic()
                if system.queue_empty():
                    return asked, ""
                time.sleep(max(0.2, time.monotonic() - asked))
            return None, f"queue not empty {timeout:.0f} s after the last message was accepted"
        time.sleep(POLL)
    missing = target - sink.count().messages
    return None, f"the sink still lacked {missing} messages {timeout:.0f} s after the last was accepted"


def run(system, sink: tools.Sink, cell: report.Cell, *, repeat: int, messages: int,
        source_timeout: float, drain_timeout: float, delivers: str, workdir: Path) -> report.Result:
    """run - one repeat; `delivers` is "" when the system can deliver, else why not."""
    notes: list[str] = []
    metrics: dict[str, float | None] = dict.fromkeys(report.METRICS)
    extra: dict = {}
    master = system.master_pid()
    if master is None:
        return report.Result(system.name, cell, repeat, messages, metrics, ("the master is not running",))
    stats = procstat.read_stats()
    cpu0 = procstat.cpu_ticks(master, stats)
    sink0 = sink.count().messages
    sampler = tools.Sampler(master)
    capture, why = None, tools.capture_unavailable()
    if not why:
        try:
            capture = tools.Capture(system.smtp_port, workdir / f"{system.name}-{repeat}.pcap")
        except RuntimeError as e:
            why = str(e)
    if why:
        notes.append(why)

    try:
        src = tools.source(system.smtp_port, messages=messages, sessions=cell.sessions,
                           size=cell.size, rcpts=cell.rcpts, timeout=source_timeout)
        extra.update(accept_seconds=round(src.elapsed, 3), accepted=src.accepted)
        if src.ok:
            metrics["accept_rate"] = src.accepted / src.elapsed
        else:
            notes.append(src.reason)

        end = None
        if delivers:
            notes.append(f"end-to-end n/a: {delivers}")
        elif src.accepted:
            end, why = wait_delivered(system, sink, sink0 + src.accepted, drain_timeout)
            if end is None:
                notes.append(f"end-to-end n/a: {why}")
            elif src.ok:
                metrics["e2e_rate"] = src.accepted / (end - src.started)
                extra["e2e_seconds"] = round(end - src.started, 3)
    except BaseException:
        # an interrupted cell must not leave tcpdump or the sampler running
        sampler.stop()
        if capture is not None:
            capture.stop()
        raise

    peak = sampler.stop()
    cpu1 = procstat.cpu_ticks(master, procstat.read_stats())
    metrics["pss_mb"] = peak.pss / 1024
    metrics["pss_anon_mb"] = peak.pss_anon_shmem / 1024
    metrics["rss_mb"] = peak.rss / 1024
    extra["max_processes"] = sampler.max_procs
    if src.accepted:
        # CPU is divided by the messages this cell handled: all of them when
        # they were delivered, else the accepted ones (acceptance work only)
        metrics["cpu_ms_per_msg"] = (cpu1 - cpu0) * 1000 / procstat.CLK_TCK / src.accepted
        extra["cpu_seconds"] = round((cpu1 - cpu0) / procstat.CLK_TCK, 2)
        if delivers:
            notes.append("CPU per message covers acceptance only")
        elif end is None:
            notes.append("CPU per message covers only the part of the delivery that finished")

    if capture is not None:
        samples, note = capture.stop()
        if note:
            notes.append(note)
        extra["latency_samples"] = len(samples)
        if 0 < len(samples) < src.accepted:
            notes.append(f"latency from {len(samples)} of {src.accepted} messages (the rest not captured)")
        if samples:
            metrics["p50_ms"] = report.percentile(samples, 50) * 1000
            metrics["p99_ms"] = report.percentile(samples, 99) * 1000
        else:
            notes.append("latency n/a: no DATA reply seen in the capture")
    return report.Result(system.name, cell, repeat, messages, metrics, tuple(notes), extra)
