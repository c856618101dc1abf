"""heap_holes - fill the fork server's free small-object blocks before it forks.

SYNOPSIS
    from mailsys.runtime import heap_holes
    heap_holes.fill()           # once, after the imports and the warm-up
    heap_holes.vacancies()      # {block size: free blocks in partly used pools}

DESCRIPTION
    CPython's small-object allocator (pymalloc) serves objects of up to 512
    bytes from 16 KiB pools, one block size per pool. Importing and warming
    up frees many objects again, which leaves free blocks scattered over
    pools that are otherwise full. A forked child's first small objects go
    into those blocks, and each one makes the child copy the whole 4 KiB
    page around it from the fork server: a page of someone else's objects
    for one of its own.

    fill() takes every such block with an object that nobody looks at
    again (kept in BALLAST): bytes objects of the exact block size, floats
    for the 32-byte blocks. The pools are then full, and a child's small
    objects go into pools of its own, written by it alone. The ballast is
    a few hundred KB shared by every process; at 1 KB x 200 sessions the
    processes' summed Pss_Anon went down by about 1.5 MB.

    The free blocks per size come from sys._debugmallocstats(), which
    prints pymalloc's table on the C standard error: fd 2 points into a
    memory file while it runs. An interpreter without pymalloc, or whose
    table cannot be read, gets no ballast and loses nothing. 16-byte
    blocks are left free: no Python object is that small.

    Only for a single-threaded process before it forks (the master before
    it starts the fork server, or a fork server exec'd fresh): another
    thread writing to fd 2 meanwhile would write into the memory file.
"""

from __future__ import annotations

import os
import re
import sys

__all__ = ["fill", "vacancies", "BALLAST"]

BALLAST: list[object] = []
# "class size num_pools blocks_in_use avail_blocks", one line per size class.
_ROW = re.compile(rb"^\s*\d+\s+(\d+)\s+\d+\s+\d+\s+(\d+)\s*$", re.M)
_BYTES_HEAD = sys.getsizeof(b"")        # the size of bytes(n) is _BYTES_HEAD + n
_FLOAT_SIZE = sys.getsizeof(0.0)


def vacancies() -> dict[int, int]:
    """Free blocks in pymalloc's partly used pools, by block size; {} if unknown."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return {}
    try:
        memory = os.memfd_create("mallocstats")
    except OSError:
        return {}
    try:
        saved = os.dup(2)
        try:
            os.dup2(memory, 2)
            stats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        text = os.pread(memory, 1 << 20, 0)
    finally:
        os.close(memory)
    return {int(size): int(free) for size, free in _ROW.findall(text)}


def fill() -> int:
    """Take every free block of 32 bytes and more; return how many were taken."""
    taken = 0
    for size, free in vacancies().items():
        if size == 32 and _FLOAT_SIZE <= 32:
            # float(i) + 0.5: a new float each, not one from the free list
            BALLAST.extend(float(i) + 0.5 for i in range(free))
        elif size > _BYTES_HEAD:
            BALLAST.extend(bytes(size - _BYTES_HEAD) for _ in range(free))
        else:
            continue
        taken += free
    return taken
