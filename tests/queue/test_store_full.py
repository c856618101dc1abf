"""A full map grows where it may; past that, QueueFull with nothing lost."""

import multiprocessing
import subprocess

import pytest
import qstore_workers
from qstore_helpers import assert_consistent, make_envelope

from mailsys.errors import QueueFull
from mailsys.queue import Queue, QueueStore

SMALL = 256 << 10


def test_full_map_grows_and_keeps_everything(tmp_path):
    with QueueStore.open(tmp_path, map_size=SMALL, max_map_size=64 << 20) as s:
        assert s.map_size() == SMALL
        contents = {s.create(make_envelope(), bytes([i]) * 40_000): bytes([i]) * 40_000
                    for i in range(40)}                       # ~1.6 MB > 256 KiB
        assert s.map_size() > SMALL
        for qid, content in contents.items():
            assert s.load_content(qid) == content
        assert assert_consistent(s).keys() == contents.keys()


def test_growth_capped_ends_in_queue_full_leaving_store_consistent(tmp_path):
    cap = 1 << 20
    with QueueStore.open(tmp_path, map_size=SMALL, max_map_size=cap) as s:
        created = {}
        with pytest.raises(QueueFull, match="is full"):
            for i in range(100):                              # 4 MB never fits in 1 MiB
                created[s.create(make_envelope(), bytes([i]) * 40_000)] = i
        assert 5 < len(created) < 100
        assert s.map_size() == cap
        entries = assert_consistent(s)
        assert entries.keys() == created.keys()               # no partial entry
        for qid, i in created.items():
            assert s.load_content(qid) == bytes([i]) * 40_000
        # A batch that does not fit leaves none of its entries behind.
        with pytest.raises(QueueFull):
            s.create_many([(make_envelope(), b"y" * 40_000)] * 10)
        assert assert_consistent(s).keys() == created.keys()
        # Room made by removing entries is usable again.
        for qid in list(created)[:10]:
            s.remove(qid)
        qid = s.create(make_envelope(), b"z" * 40_000)
        assert s.load(qid)[1] is Queue.INCOMING
        assert_consistent(s)


def test_full_store_still_reads_and_moves(tmp_path):
    with QueueStore.open(tmp_path, map_size=SMALL, max_map_size=SMALL) as s:
        first = s.create(make_envelope(), b"x" * 1000)
        with pytest.raises(QueueFull):
            for _ in range(100):
                s.create(make_envelope(), b"y" * 40_000)
        s.move(first, Queue.INCOMING, Queue.DEFERRED)   # small writes may still fit
        assert s.load(first)[1] is Queue.DEFERRED
        assert_consistent(s)


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs: a real full disk. Needs the right to mount."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_full_disk_is_queue_full_and_store_stays_consistent(small_disk):
    with QueueStore.open(small_disk) as s:                 # 4 GiB map on 2 MiB
        created = {}
        with pytest.raises(QueueFull, match="no space left on device"):
            for i in range(100):
                created[s.create(make_envelope(), bytes([i]) * 40_000)] = i
        assert 5 < len(created) < 100
        assert assert_consistent(s).keys() == created.keys()
        for qid, i in created.items():
            assert s.load_content(qid) == bytes([i]) * 40_000
        s.remove(next(iter(created)))                       # space can be freed
    with QueueStore.open(small_disk) as s:                 # and it reopens intact
        assert len(assert_consistent(s)) == len(created) - 1


@pytest.mark.integration
def test_write_error_with_room_on_disk_is_a_queue_error(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=qstore_workers.write_past_file_size_limit,
                       args=(str(tmp_path), child))
    proc.start()
    assert parent.poll(30)
    outcome, created = parent.recv()
    proc.join(10)
    assert outcome.startswith("QueueError: ") and "Input/output error" in outcome
    assert created
    with QueueStore.open(tmp_path) as s:
        assert assert_consistent(s).keys() == set(created)


def test_min_free_refuses_new_mail_only(tmp_path):
    """queue_minfree: new entries get QueueFull while the disk keeps less; queued mail still moves."""
    with QueueStore.open(tmp_path) as s:
        first = s.create(make_envelope(), b"x" * 100)
    with QueueStore.open(tmp_path, min_free=1 << 62) as s:
        with pytest.raises(QueueFull, match="queue_minfree"):
            s.create(make_envelope(), b"y" * 100)
        with pytest.raises(QueueFull, match="queue_minfree"):
            s.create_many([(make_envelope(), b"y" * 100)])
        s.move(first, Queue.INCOMING, Queue.DEFERRED)
        assert assert_consistent(s).keys() == {first}
    with QueueStore.open(tmp_path, min_free=1 << 20) as s:   # the disk has a megabyte to spare
        s.create(make_envelope(), b"z" * 100)
