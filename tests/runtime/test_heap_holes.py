"""heap_holes: the free blocks of pymalloc's partly used pools are read and taken."""

import subprocess
import sys

# In a fresh interpreter: the test's own process has threads and a pytest
# capture on fd 2. Ten thousand 96-byte objects, every other one freed,
# leave about five thousand free blocks in pools that stay in use.
CODE = """
import sys
from mailsys.runtime import heap_holes
size = 96
keep = [bytes(size - sys.getsizeof(b"")) for _ in range(10000)]
del keep[::2]
before = heap_holes.vacancies()
taken = heap_holes.fill()
after = heap_holes.vacancies()
print(before[size], after[size], taken, len(heap_holes.BALLAST))
"""


def test_fill_takes_the_free_blocks_of_partly_used_pools():
    out = subprocess.run([sys.executable, "-P", "-c", CODE], capture_output=True, text=True,
                         check=True, timeout=30).stdout.split()
    before, after, taken, ballast = map(int, out)
    assert before >= 5000
    # What is left is at most the untouched tail of one pool opened since
    # (16 KiB / 96 bytes = 170 blocks), never the holes.
    assert after < 170
    assert taken >= before and ballast == taken


def test_vacancies_reads_every_size_class():
    code = "from mailsys.runtime import heap_holes; print(*sorted(heap_holes.vacancies()))"
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    assert [int(size) for size in out.split()] == list(range(16, 513, 16))
