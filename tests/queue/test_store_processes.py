"""Several processes on one store: concurrent writers, kill -9, stale
readers, a map grown by another process."""

import multiprocessing
import os
import signal

import pytest
import qstore_workers
from qstore_helpers import assert_consistent, make_envelope

from mailsys.message.qid import qid_pid
from mailsys.queue import Queue, QueueStore

pytestmark = pytest.mark.integration

ctx = multiprocessing.get_context("spawn")


def _kill(proc):
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL


@pytest.mark.parametrize("metasync", [(True, True, True, True), (True, False, True, False)],
                         ids=["all-metasync", "half-without-metasync"])
def test_four_writers_at_once_all_entries_distinct(tmp_path, metasync):
    start, results = ctx.Event(), ctx.Queue()
    n = 150
    procs = [ctx.Process(target=qstore_workers.write_many,
                         args=(str(tmp_path), n, start, results, flag)) for flag in metasync]
    for p in procs:
        p.start()
    start.set()
    got = dict(results.get(timeout=50) for _ in procs)
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    all_qids = [q for qids in got.values() for q in qids]
    assert len(all_qids) == len(set(all_qids)) == 4 * n
    with QueueStore.open(tmp_path) as s:
        entries = assert_consistent(s)
        assert entries.keys() == set(all_qids)
        assert s.counts()[Queue.INCOMING] == 4 * n
        for pid, qids in got.items():
            assert qids == sorted(qids)                    # each writer: in order
            assert {qid_pid(q) for q in qids} == {pid}
            for i, q in enumerate(qids):
                assert entries[q][0].sender == f"pid{pid}@example.com"
                assert s.load_content(q) == f"{pid}:{i}".encode()


def test_entry_survives_kill_9_right_after_commit(tmp_path):
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=qstore_workers.create_then_wait, args=(str(tmp_path), child))
    proc.start()
    assert parent.poll(30)
    qid = parent.recv()
    _kill(proc)
    with QueueStore.open(tmp_path) as s:
        env, queue = s.load(qid)
        assert queue is Queue.INCOMING and qid_pid(qid) == proc.pid
        assert s.load_content(qid) == b"must survive kill -9"


def test_move_without_metasync_survives_kill_9(tmp_path):
    with QueueStore.open(tmp_path) as s:
        qid = s.create(make_envelope(), b"moved by a qmgr-like process")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=qstore_workers.move_then_wait, args=(str(tmp_path), qid, child))
    proc.start()
    assert parent.poll(30) and parent.recv() == "moved"
    _kill(proc)
    with QueueStore.open(tmp_path) as s:
        assert s.load(qid)[1] is Queue.DEFERRED
        assert s._env.flags()["metasync"] is True          # each opener's own choice
        assert_consistent(s)


def test_kill_9_in_the_middle_of_writes_leaves_no_half_entry(tmp_path):
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=qstore_workers.write_until_killed, args=(str(tmp_path), child))
    proc.start()
    committed = []
    while len(committed) < 5:                  # killed while writing the sixth or later
        assert parent.poll(30)
        committed.append(parent.recv())
    _kill(proc)
    while parent.poll(0):
        committed.append(parent.recv())
    with QueueStore.open(tmp_path) as s:
        entries = assert_consistent(s)
        assert set(committed) <= entries.keys() and len(entries) <= len(committed) + 1
        for qid in entries:
            content = s.load_content(qid)
            assert len(content) == 300_000 and len(set(content)) == 1


def test_reader_check_clears_a_dead_process_reader(tmp_path):
    with QueueStore.open(tmp_path) as s:
        s.create(make_envelope(), b"x")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=qstore_workers.hold_reader_then_wait,
                           args=(str(tmp_path), child))
        proc.start()
        assert parent.poll(30)
        parent.recv()
        _kill(proc)
        assert s.reader_check() == 1
        assert s.reader_check() == 0


def test_map_grown_by_another_process_is_adopted(tmp_path):
    small = 256 << 10
    with QueueStore.open(tmp_path, map_size=small) as s:
        mine = s.create(make_envelope(), b"parent")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=qstore_workers.grow,
                           args=(str(tmp_path), small, 40, 40_000, child))
        proc.start()
        assert parent.poll(30)
        qids, child_map = parent.recv()
        proc.join(10)
        assert proc.exitcode == 0 and child_map > small
        assert s.map_size() == small
        # This process still maps 256 KiB; its next transactions adopt the
        # bigger map (MapResizedError -> set_mapsize(0)) and see everything.
        for i, q in enumerate(qids):
            assert s.load_content(q) == bytes([i % 256]) * 40_000
        assert s.map_size() >= child_map
        after = s.create(make_envelope(), b"after")
        assert assert_consistent(s).keys() == {mine, after, *qids}
