"""procstat - memory and CPU of a process tree, read from /proc.

DESCRIPTION
    A mail system is a master and the processes it starts. Its memory is
    the sum over that tree of each process's PSS (proportional set size,
    /proc/PID/smaps_rollup: shared pages divided among their users, so the
    sum does not count a shared library once per process), of Pss_Anon +
    Pss_Shmem (PSS without file-backed pages: LMDB's memory map is page
    cache just as Postfix's queue files are) and of RSS.

    Its CPU time is utime + stime of every live process in the tree
    (/proc/PID/stat fields 14 and 15) plus the master's cutime + cstime
    (fields 16 and 17): the times of children it has already reaped. A
    process that exits during a measurement moves its whole lifetime into
    the master's cumulative times when the master waits for it, so the
    difference of two snapshots is the CPU spent between them, also by
    processes that started or exited in between. Time of a child that
    exits but is not yet reaped still shows in its own stat (a zombie keeps
    it), so nothing is lost or counted twice.

    The parsers take text and are pure; the readers tolerate processes
    that vanish while they are read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Memory:
    """Sizes in kB (smaps_rollup's unit)."""
    pss: int = 0
    pss_anon_shmem: int = 0
    rss: int = 0

    def __add__(self, other: "Memory") -> "Memory":
        return Memory(self.pss + other.pss, self.pss_anon_shmem + other.pss_anon_shmem,
                      self.rss + other.rss)


@dataclass(frozen=True, slots=True)
class Stat:
    """The fields of /proc/PID/stat this harness uses; times in clock ticks."""
    pid: int
    ppid: int
    state: str
    utime: int
    stime: int
    cutime: int
    cstime: int


def parse_smaps_rollup(text: str) -> Memory:
    """parse_smaps_rollup - Pss, Pss_Anon + Pss_Shmem and Rss of one process."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        parts = rest.split()
        # the header line ("addr-addr ---p 00000000 00:00 0 [rollup]") has no "N kB"
        if sep and len(parts) == 2 and parts[1] == "kB":
            fields[name.strip()] = int(parts[0])
    # Kernels before 5.x print no Pss_Anon/Pss_Shmem: then anon+shmem is unknown,
    # and Pss (an upper bound) is the honest figure to fall back to.
    if "Pss_Anon" in fields:
        anon = fields["Pss_Anon"] + fields.get("Pss_Shmem", 0)
    else:
        anon = fields.get("Pss", 0)
    return Memory(fields.get("Pss", 0), anon, fields.get("Rss", 0))


def parse_stat(text: str) -> Stat:
    """parse_stat - /proc/PID/stat; the command name may hold spaces and ')'."""
    pid = int(text[:text.index(" ")])
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); field N is rest[N - 3]
    return Stat(pid=pid, ppid=int(rest[1]), state=rest[0], utime=int(rest[11]),
                stime=int(rest[12]), cutime=int(rest[13]), cstime=int(rest[14]))


def descendants(root: int, parent_of: dict[int, int]) -> set[int]:
    """descendants - root and every process below it in the parent_of map."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_of.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in tree:
            continue
        tree.add(pid)
        todo.extend(children.get(pid, ()))
    return tree


def cpu_ticks(root: int, stats: dict[int, Stat]) -> int:
    """cpu_ticks - utime+stime of the tree under root plus root's reaped children."""
    tree = descendants(root, {pid: s.ppid for pid, s in stats.items()})
    total = sum(stats[p].utime + stats[p].stime for p in tree if p in stats)
    if root in stats:
        total += stats[root].cutime + stats[root].cstime
    return total


def read_stats(proc: Path = PROC) -> dict[int, Stat]:
    """read_stats - every process's Stat; processes that vanish meanwhile are skipped."""
    out: dict[int, Stat] = {}
    for entry in os.listdir(proc):
        if entry.isdigit():
            try:
                out[int(entry)] = parse_stat((proc / entry / "stat").read_text())
            except (OSError, ValueError, IndexError):
                continue
    return out


def tree_pids(root: int, proc: Path = PROC) -> set[int]:
    """tree_pids - the live processes of the tree under root.

    Walks /proc/PID/task/TID/children from root down, which reads only the
    tree's own files (the sampler does this five times a second, with
    Postfix running some 170 processes); a kernel built without those
    files gets a scan of every process's parent instead."""
    if not (proc / str(root) / "task" / str(root) / "children").exists():
        stats = read_stats(proc)
        if root not in stats:
            return set()
        return descendants(root, {pid: s.ppid for pid, s in stats.items()})
    tree: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in tree:
            continue
        try:
            tasks = os.listdir(proc / str(pid) / "task")
        except OSError:
            continue                     # exited meanwhile
        tree.add(pid)
        for tid in tasks:
            # a child belongs to the thread that forked it: read every thread's list
            try:
                todo.extend(int(c) for c in (proc / str(pid) / "task" / tid / "children").read_text().split())
            except (OSError, ValueError):
                continue
    return tree


def tree_memory(pids: set[int], proc: Path = PROC) -> Memory:
    """tree_memory - summed Memory over pids (a zombie or vanished process counts 0)."""
    total = Memory()
    for pid in pids:
        try:
            total = total + parse_smaps_rollup((proc / str(pid) / "smaps_rollup").read_text())
        except (OSError, ValueError):
            continue
    return total
