"""Appending to an mbox file on a real file system: order, locks, limits, failures undone."""

from __future__ import annotations

import os
import pickle
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mailsys.delivery.errors import DeliveryError
from mailsys.delivery.mbox import append
from mailsys.delivery.mbox_lock import LockPolicy, in_process

FAST = LockPolicy(attempts=3, delay=0.05)
ENTRY = b"From a@b  Fri Nov 27 16:41:35 2026\nSubject: x\n\nbody\n\n"

# A second process that takes a kernel lock on a file and holds it until its stdin closes.
HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
(fcntl.flock if sys.argv[2] == "flock" else fcntl.lockf)(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder():
    procs = []

    def hold(path: Path, style: str) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), style],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline() == "locked\n"
        procs.append(p)
        return p

    yield hold
    for p in procs:
        p.stdin.close()
        p.stdout.close()
        p.wait(timeout=10)


def test_two_appends_land_in_order_in_a_new_0600_file(tmp_path):
    box = tmp_path / "bob"
    assert append(box, ENTRY, policy=FAST) == 0
    second = ENTRY.replace(b"body", b"second")
    assert append(box, second, policy=FAST) == len(ENTRY)
    assert box.read_bytes() == ENTRY + second
    assert oct(box.stat().st_mode & 0o777) == "0o600"
    assert not (tmp_path / "bob.lock").exists()


def test_a_new_file_goes_to_its_owner_when_root_creates_it(tmp_path):
    box = tmp_path / "nobody"
    append(box, ENTRY, policy=FAST, owner=(65534, 65534))
    st = box.stat()
    expected = (65534, 65534) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    assert (st.st_uid, st.st_gid) == expected
    # An existing file keeps its owner.
    os.chown(box, os.geteuid(), os.getegid())
    append(box, ENTRY, policy=FAST, owner=(65534, 65534))
    assert box.stat().st_uid == os.geteuid()


def test_a_fresh_dotlock_defers_and_is_left_alone(tmp_path):
    box = tmp_path / "bob"
    box.write_bytes(ENTRY)
    (tmp_path / "bob.lock").write_bytes(b"")
    with pytest.raises(DeliveryError) as e:
        append(box, ENTRY, policy=FAST)
    assert (e.value.dsn, e.value.text) == (
        "4.2.0", f"unable to create lock file {tmp_path}/bob.lock: File exists")
    assert (tmp_path / "bob.lock").exists() and box.read_bytes() == ENTRY
    (tmp_path / "bob.lock").unlink()
    append(box, ENTRY, policy=FAST)
    assert box.read_bytes() == ENTRY * 2


def test_a_stale_dotlock_is_broken(tmp_path):
    box = tmp_path / "bob"
    (tmp_path / "bob.lock").write_bytes(b"")
    time.sleep(0.3)
    append(box, ENTRY, policy=LockPolicy(attempts=3, delay=0.05, stale=0.2))
    assert box.read_bytes() == ENTRY and not (tmp_path / "bob.lock").exists()


@pytest.mark.parametrize("style", ["fcntl", "flock"])
def test_a_kernel_lock_held_by_another_process_defers(tmp_path, holder, style):
    box = tmp_path / "bob"
    box.write_bytes(ENTRY)
    p = holder(box, style)
    policy = LockPolicy(styles=(style,), attempts=3, delay=0.05)
    with pytest.raises(DeliveryError) as e:
        append(box, ENTRY, policy=policy)
    assert (e.value.dsn, e.value.text) == (
        "4.2.0", "unable to lock for exclusive access: Resource temporarily unavailable")
    assert box.read_bytes() == ENTRY
    # Postfix's default styles (fcntl, dotlock) do not look at flock locks, and vice versa.
    other = ("fcntl",) if style == "flock" else ("flock",)
    append(box, ENTRY, policy=LockPolicy(styles=other, attempts=1))
    p.stdin.close()
    p.wait(timeout=10)
    append(box, ENTRY, policy=policy)
    assert box.read_bytes() == ENTRY * 3


def test_a_lock_freed_while_waiting_is_taken(tmp_path, holder):
    box = tmp_path / "bob"
    box.write_bytes(b"")
    p = holder(box, "fcntl")
    threading.Timer(0.2, p.stdin.close).start()
    append(box, ENTRY, policy=LockPolicy(attempts=40, delay=0.05))
    assert box.read_bytes() == ENTRY


def test_deliveries_in_one_process_take_turns(tmp_path):
    box = tmp_path / "bob"
    policy = LockPolicy(styles=("fcntl",), attempts=2, delay=0.05)
    with in_process(box, policy):
        # fcntl alone would let this thread in: the lock belongs to the process.
        result = []
        t = threading.Thread(target=lambda: result.append(_try(box, policy)))
        t.start()
        t.join(timeout=10)
    assert result == ["4.2.0 unable to lock for exclusive access: Resource temporarily unavailable"]
    assert not box.exists()
    # Many threads at once: every entry whole, none lost.
    entries = [ENTRY.replace(b"body", f"thread {i}".encode()) for i in range(8)]
    threads = [threading.Thread(target=append, args=(box, e), kwargs={"policy": policy})
               for e in entries]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    data = box.read_bytes()
    assert len(data) == sum(map(len, entries)) and all(e in data for e in entries)


def _try(box: Path, policy: LockPolicy) -> str:
    try:
        append(box, ENTRY, policy=policy)
        return "ok"
    except DeliveryError as e:
        return f"{e.dsn} {e.text}"


def test_the_size_limit_covers_the_whole_file(tmp_path):
    box = tmp_path / "bob"
    append(box, ENTRY, policy=FAST, limit=2 * len(ENTRY))
    append(box, ENTRY, policy=FAST, limit=2 * len(ENTRY))
    with pytest.raises(DeliveryError) as e:
        append(box, ENTRY, policy=FAST, limit=2 * len(ENTRY))
    assert (e.value.dsn, e.value.text) == ("5.2.2", "error writing message: File too large")
    assert box.read_bytes() == ENTRY * 2


def _in_child(fn):
    """fn() in a forked child (its resource limits stay there); its result or error text."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            try:
                out = ("ok", fn())
            except DeliveryError as e:
                out = ("error", f"{e.dsn} {e.text}")
            os.write(write, pickle.dumps(out))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


def test_a_write_that_fails_halfway_is_undone(tmp_path):
    box = tmp_path / "bob"
    append(box, ENTRY, policy=FAST)
    big = ENTRY + b"x" * 10000 + b"\n\n"

    def capped():
        # The kernel lets the first part through and then fails with EFBIG:
        # a real partial write, as on a disk that fills up mid-message.
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(ENTRY) + 4096, resource.RLIM_INFINITY))
        return append(box, big, policy=FAST)

    assert _in_child(capped) == ("error", "5.2.2 error writing message: File too large")
    assert box.read_bytes() == ENTRY
    assert not (tmp_path / "bob.lock").exists()
    assert append(box, big, policy=FAST) == len(ENTRY)


def test_hard_links_symlinks_and_directories_are_refused(tmp_path):
    os.chmod(tmp_path, 0o775)           # a symlink is trusted only in a root-only directory
    target = tmp_path / "target"
    target.write_bytes(b"")
    os.link(target, tmp_path / "linked")
    (tmp_path / "other").write_bytes(b"")
    os.symlink(tmp_path / "other", tmp_path / "symlinked")
    (tmp_path / "dir").mkdir()
    texts = {}
    for name in ("linked", "symlinked", "dir"):
        with pytest.raises(DeliveryError) as e:
            append(tmp_path / name, ENTRY, policy=FAST)
        texts[name] = (e.value.dsn, e.value.text)
    assert texts == {"linked": ("4.2.0", "file has 2 hard links"),
                     "symlinked": ("4.2.0", "file is a symbolic link"),
                     "dir": ("4.2.0", "cannot open file: Is a directory")}
    assert target.read_bytes() == b"" and (tmp_path / "other").read_bytes() == b""
