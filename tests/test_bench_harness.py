"""The pure parts of the benchmark harness (scripts/bench/mbench).

Parsing of smtp-source / smtp-sink counters, /proc parsing and summing,
the pcap latency replay, the ratio table and the generated master.cf.
No timing is tested here: the benchmark is not a test.
"""

from __future__ import annotations

import importlib
import importlib.util
import struct
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "scripts" / "bench"


@pytest.fixture(scope="module")
def mb():
    """The mbench package, imported from scripts/bench without leaving it on sys.path."""
    sys.path.insert(0, str(BENCH))
    try:
        names = ("counters", "procstat", "pcap", "report", "systems")
        mods = {n: importlib.import_module(f"mbench.{n}") for n in names}
    finally:
        sys.path.remove(str(BENCH))
    return type("MB", (), mods)


# ---- smtp-source -c / smtp-sink -c -------------------------------------------

def test_source_counter_last_figure(mb):
    assert mb.counters.source_count("1\r2\r3\r10\r11\r\n") == 11


def test_source_counter_after_fatal_error(mb):
    out = "1\r2\r3\rsmtp-source: fatal: connect: Connection refused\n"
    assert mb.counters.source_count(out) == 3
    assert mb.counters.source_count("") == 0


def test_sink_counter_last_complete_line(mb):
    text = "sess=1 quit=0 mesg=1\rsess=2 quit=1 mesg=2\rsess=3 quit=2 mesg=3\rsess=4 qu"
    assert mb.counters.sink_count(text) == mb.counters.SinkCount(3, 2, 3)


def test_sink_counter_ignores_a_line_still_being_written(mb):
    # the last figure is complete only once its carriage return has arrived
    assert mb.counters.sink_count("sess=9 quit=9 mesg=17") == mb.counters.SinkCount()
    assert mb.counters.sink_count("sess=9 quit=9 mesg=17\r").messages == 17


# ---- /proc --------------------------------------------------------------------

ROLLUP = """\
5560688bc000-7fffe58ab000 ---p 00000000 00:00 0                          [rollup]
Rss:               {rss} kB
Pss:               {pss} kB
Pss_Dirty:           116 kB
Pss_Anon:          {anon} kB
Pss_File:             74 kB
Pss_Shmem:         {shmem} kB
Shared_Clean:       1600 kB
Anonymous:           116 kB
"""


def stat_line(pid, comm, ppid, utime, stime, cutime=0, cstime=0, state="S"):
    # fields 1..17 as the kernel prints them, then a tail of further fields
    return (f"{pid} ({comm}) {state} {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 "
            f"{utime} {stime} {cutime} {cstime} 20 0 1 0 100 1000 200\n")


def test_parse_smaps_rollup(mb):
    m = mb.procstat.parse_smaps_rollup(ROLLUP.format(rss=1752, pss=190, anon=116, shmem=8))
    assert m == mb.procstat.Memory(pss=190, pss_anon_shmem=124, rss=1752)


def test_parse_smaps_rollup_without_anon_split_falls_back_to_pss(mb):
    m = mb.procstat.parse_smaps_rollup("Rss: 100 kB\nPss: 60 kB\n")
    assert m == mb.procstat.Memory(pss=60, pss_anon_shmem=60, rss=100)


def fake_proc(root: Path, procs: dict, *, children_files: bool) -> Path:
    """A /proc with stat, smaps_rollup and (optionally) task/PID/children files."""
    parsed = {pid: stat for pid, (stat, _) in procs.items()}
    for pid, (stat, rollup) in procs.items():
        d = root / str(pid)
        d.mkdir(parents=True)
        (d / "stat").write_text(stat)
        (d / "task" / str(pid)).mkdir(parents=True)
        if children_files:
            kids = [str(c) for c, st in parsed.items() if int(st.split(") ")[1].split()[1]) == pid]
            (d / "task" / str(pid) / "children").write_text(" ".join(kids) + (" " if kids else ""))
        if rollup is not None:
            (d / "smaps_rollup").write_text(rollup)
    (root / "self").mkdir()          # non-numeric entries are not processes
    return root


@pytest.mark.parametrize("children_files", [True, False])
def test_tree_memory_sums_pss_over_the_tree_only(mb, tmp_path, children_files):
    proc = fake_proc(tmp_path, {
        10: (stat_line(10, "master", 1, 5, 5), ROLLUP.format(rss=4000, pss=1000, anon=600, shmem=0)),
        11: (stat_line(11, "smtpd", 10, 1, 1), ROLLUP.format(rss=3000, pss=700, anon=300, shmem=50)),
        12: (stat_line(12, "cleanup", 11, 1, 1), ROLLUP.format(rss=2000, pss=300, anon=100, shmem=0)),
        13: (stat_line(13, "zombie", 10, 0, 0, state="Z"), None),       # no smaps: counts 0
        20: (stat_line(20, "other", 1, 9, 9), ROLLUP.format(rss=9999, pss=9999, anon=9999, shmem=0)),
    }, children_files=children_files)
    pids = mb.procstat.tree_pids(10, proc)
    assert pids == {10, 11, 12, 13}
    assert mb.procstat.tree_memory(pids, proc) == mb.procstat.Memory(
        pss=2000, pss_anon_shmem=1050, rss=9000)


def test_parse_stat_with_parentheses_and_spaces_in_the_name(mb):
    s = mb.procstat.parse_stat(stat_line(42, "python3 -m (x) y", 7, 123, 45, 6, 7))
    assert (s.pid, s.ppid, s.state, s.utime, s.stime, s.cutime, s.cstime) == (42, 7, "S", 123, 45, 6, 7)


def test_cpu_ticks_counts_live_tree_and_reaped_children(mb):
    P = mb.procstat.parse_stat
    stats = {p.pid: p for p in (
        P(stat_line(10, "master", 1, 100, 50, cutime=30, cstime=20)),
        P(stat_line(11, "smtpd", 10, 7, 3)),
        P(stat_line(12, "x", 11, 1, 1, cutime=1000, cstime=1000)),   # only the root's cutime counts
        P(stat_line(99, "outsider", 1, 500, 500)),
    )}
    assert mb.procstat.cpu_ticks(10, stats) == 100 + 50 + 30 + 20 + 7 + 3 + 1 + 1


# ---- pcap latency ---------------------------------------------------------------

SERVER = 2525


def frame(src_port: int, dst_port: int, payload: bytes) -> bytes:
    tcp = struct.pack(">HHIIBBHHH", src_port, dst_port, 1, 1, 0x80, 0x18, 512, 0, 0) + b"\x01\x01" + bytes(10)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0, 64, 6, 0,
                     b"\x7f\0\0\1", b"\x7f\0\0\1")
    return b"\0" * 12 + b"\x08\x00" + ip + tcp + payload


def pcap_file(packets, snaplen: int = 128) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1)
    for ts, sport, dport, payload in packets:
        f = frame(sport, dport, payload)
        cut = f[:snaplen]
        sec, usec = int(ts), round((ts - int(ts)) * 1e6)
        out += struct.pack("<IIII", sec, usec, len(cut), len(f)) + cut
    return out


def test_data_latency_from_last_content_segment_to_250(mb):
    a, b = 40001, 40002
    body = b"x" * 500
    packets = [
        (100.000, SERVER, a, b"220 bench ESMTP\r\n"),
        (100.001, a, SERVER, b"DATA\r\n"),
        (100.002, SERVER, a, b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        (100.003, SERVER, b, b"354 go ahead\r\n"),
        (100.010, a, SERVER, body),
        (100.020, b, SERVER, body + b"\r\n.\r\n"),       # truncated by snaplen: still counted
        (100.030, a, SERVER, b"tail\r\n.\r\n"),
        (100.035, SERVER, b, b"451 4.3.0 Error: queue file write error\r\n"),
        (100.045, SERVER, a, b"250 2.0.0 Ok: queued as 4F2A1C3B7D\r\n"),
        (100.050, a, SERVER, b"QUIT\r\n"),
        (100.051, SERVER, a, b"221 2.0.0 Bye\r\n"),
        (100.060, SERVER, 40003, b"250 2.0.0 Ok: not after a 354\r\n"),
    ]
    got = mb.pcap.data_latencies(pcap_file(packets), SERVER)
    assert got == [pytest.approx(0.015, abs=2e-6)]


def test_pcap_rejects_other_files(mb):
    with pytest.raises(ValueError):
        list(mb.pcap.segments(b"this is no capture file at all"))


# ---- report -----------------------------------------------------------------------

def result(mb, system, cell, repeat, **metrics):
    full = dict.fromkeys(mb.report.METRICS)
    full.update(metrics)
    return mb.report.Result(system, cell, repeat, 100, full)


def test_percentile_nearest_rank(mb):
    values = list(range(1, 101))
    assert mb.report.percentile(values, 50) == 50
    assert mb.report.percentile(values, 99) == 99
    assert mb.report.percentile([3.0], 99) == 3.0
    assert mb.report.percentile([], 50) is None


def test_medians_and_ratios(mb):
    R, cell = mb.report, mb.report.Cell(1024, 10, 1)
    results = [result(mb, "postfix", cell, i, accept_rate=v, pss_mb=100.0) for i, v in enumerate((400, 500, 300))]
    results += [result(mb, "mailsys", cell, i, accept_rate=v, pss_mb=m)
                for i, (v, m) in enumerate(((900, 40.0), (1000, 60.0), (None, 50.0)))]
    summary = R.summarize(results)
    assert summary[("postfix", cell)]["accept_rate"] == 400
    assert summary[("mailsys", cell)]["accept_rate"] == 950          # the n/a repeat is left out
    assert summary[("mailsys", cell)]["e2e_rate"] is None
    doc = R.to_json(results, {"quick": False})
    assert doc["ratios"][0]["accept_rate"] == pytest.approx(950 / 400)
    assert doc["ratios"][0]["pss_mb"] == pytest.approx(0.5)
    assert doc["ratios"][0]["e2e_rate"] is None


def test_markdown_table_rows_and_notes(mb):
    R, cell = mb.report, mb.report.Cell(100 * 1024, 50, 5)
    results = [result(mb, "postfix", cell, 1, accept_rate=200.0, e2e_rate=100.0),
               R.Result("mailsys", cell, 1, 100, {**dict.fromkeys(R.METRICS), "accept_rate": 300.0},
                        ("end-to-end n/a: no qmgr yet",))]
    text = R.markdown(results)
    rows = [line for line in text.splitlines() if line.startswith("| 100 KB × 50 sess × 5 rcpt")]
    assert len(rows) == 3
    ratio_cells = [c.strip() for c in rows[2].split("|")]
    assert ratio_cells[2] == "**mailsys / postfix**"
    assert ratio_cells[3:5] == ["1.50", "n/a"]
    assert "- mailsys, 100 KB × 50 sess × 5 rcpt, repeat 1: end-to-end n/a: no qmgr yet" in text


def test_markdown_without_mailsys_has_no_ratio_row(mb):
    cell = mb.report.Cell(1024, 1, 1)
    text = mb.report.markdown([result(mb, "postfix", cell, 1, accept_rate=10.0)])
    assert "mailsys / postfix" not in text and "| 1 KB × 1 sess × 1 rcpt | postfix | 10 |" in text


# ---- generated master.cf ---------------------------------------------------------------

SHIPPED = """\
# comment
127.0.0.1:2525 inet n - n - - smtpd
127.0.0.1:2587 inet n - n - - smtpd
  -o smtpd_sasl_auth_enable=yes
postlog   unix-dgram y  -       n       -       1       postlogd
cleanup   unix  n       -       n       -       0       cleanup
"""


def test_master_cf_listeners_moved_and_missing_services_added(mb):
    text, notes = mb.systems.bench_master_cf(SHIPPED, 40025, [40100, 40101],
                                             {"smtpd", "cleanup", "qmgr", "postlogd"})
    lines = text.splitlines()
    assert "127.0.0.1:40025 inet n - n - - smtpd" in lines
    assert "127.0.0.1:40100 inet n - n - - smtpd" in lines
    assert "  -o smtpd_sasl_auth_enable=yes" in lines
    assert not any("2525" in line or "2587" in line for line in lines)
    assert sum(line.split()[0] == "cleanup" for line in lines if line and not line[0].isspace()) == 1
    assert any(line.split()[:2] == ["qmgr", "unix"] for line in lines if line.strip())
    assert not any(line.startswith("smtp ") for line in lines)      # no services/smtp.py
    assert notes == ["etc/master.cf has no qmgr service yet; added Postfix's default master.cf lines"]


def test_master_cf_without_any_smtpd_is_unavailable(mb):
    with pytest.raises(mb.systems.SystemUnavailable):
        mb.systems.bench_master_cf("postlog unix-dgram y - n - 1 postlogd\n", 40025, [], {"postlogd"})


# ---- run.py: the order of the matrix ---------------------------------------------

@pytest.fixture(scope="module")
def bench_run(mb):
    """scripts/bench/run.py as a module (it puts its directory on sys.path)."""
    saved = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


class _Turns:
    """A stand-in system run that notes what it is asked to do."""

    def __init__(self, name: str, order: list) -> None:
        self.name, self.order = name, order

    def begin_cell(self, cell):
        self.order.append((cell.sessions, self.name, "begin"))

    def repeat(self):
        self.order.append(self.name)

    def end_cell(self):
        self.order.append((self.name, "end"))
        return []


def test_systems_take_turns_repeat_by_repeat(mb, bench_run):
    order: list = []
    cells = [mb.report.Cell(1024, s, 1) for s in (1, 10)]
    bench_run.run_matrix([_Turns("postfix", order), _Turns("mailsys", order)], cells, 3)
    assert order == [
        (1, "postfix", "begin"), (1, "mailsys", "begin"),
        "postfix", "mailsys", "mailsys", "postfix", "postfix", "mailsys",
        ("postfix", "end"), ("mailsys", "end"),
        (10, "mailsys", "begin"), (10, "postfix", "begin"),
        "mailsys", "postfix", "postfix", "mailsys", "mailsys", "postfix",
        ("mailsys", "end"), ("postfix", "end")]


def unavailable_run(mb, bench_run, tmp_path):
    args = type("Args", (), {"out": tmp_path, "quick": True})()
    run = bench_run.SystemRun.__new__(bench_run.SystemRun)
    run.name, run.args, run.workdir, run.system = "mailsys", args, tmp_path, None
    run._cell, run._results = None, []
    run.notes = ("etc/master.cf: a note",)
    run._give_up(mb.systems.SystemUnavailable("mailsys start: no such file"))
    return run


def test_a_system_that_cannot_run_is_na_in_every_cell(mb, bench_run, tmp_path):
    run = unavailable_run(mb, bench_run, tmp_path)
    cells = [mb.report.Cell(1024, s, 1) for s in (1, 10)]
    results = bench_run.run_matrix([run], cells, 2)
    assert [(r.cell, r.messages) for r in results] == [(cells[0], 0), (cells[1], 0)]
    assert all(v is None for r in results for v in r.metrics.values())
    assert results[0].notes == ("etc/master.cf: a note", "n/a: mailsys start: no such file")
    assert results[1].notes == ("n/a: mailsys start: no such file",)


class _Stopped:
    """A stand-in system that counts how often it is stopped."""

    name = "mailsys"

    def __init__(self) -> None:
        self.stops = 0

    def stop(self):
        self.stops += 1


def test_a_system_that_fails_in_a_cell_is_na_from_there_on(mb, bench_run, tmp_path):
    run = unavailable_run(mb, bench_run, tmp_path)
    run.unavailable, run.notes, run.system = "", (), _Stopped()
    cell = mb.report.Cell(1024, 1, 1)
    measured = []

    def measure(c):
        if measured:
            raise mb.systems.SystemUnavailable("the master is gone")
        measured.append(c)
        return mb.report.Result("mailsys", c, 1, 100, dict.fromkeys(mb.report.METRICS), ())
    run._measure = measure
    run._cell, run._results = cell, []
    run.repeat()
    run.repeat()
    run.repeat()
    results = run.end_cell()
    assert measured == [cell]
    assert [(r.messages, r.notes) for r in results] == [(0, ("n/a: the master is gone",))]
    assert run.system.stops == 1
    run.begin_cell(mb.report.Cell(1024, 10, 1))
    assert run.end_cell()[0].notes == ("n/a: the master is gone",)
