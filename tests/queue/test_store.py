"""QueueStore operations in one process: round trips, indexes, errors."""

import os

import lmdb
import pytest
from qstore_helpers import assert_consistent, make_envelope

from mailsys.errors import NoSuchEntry, QueueError
from mailsys.message.envelope import RcptState
from mailsys.message.qid import is_qid, new_qid
from mailsys.queue import CorruptRecord, Queue, QueueStore, WrongQueue, schema


def test_create_load_round_trip(store):
    env = make_envelope(3, client_addr="192.0.2.1", helo="c.example")
    content = b"Subject: hi\r\n\r\nbody\r\n"
    qid = store.create(env, content)
    assert is_qid(qid)
    got, queue = store.load(qid)
    assert queue is Queue.INCOMING
    assert got == env.replace(queue_id=qid)
    assert store.load_content(qid) == content
    assert type(store.load_content(qid)) is bytes
    assert store.load_content(qid, limit=7) == b"Subject"
    assert store.exists(qid)
    assert_consistent(store)


def test_create_with_given_qid_and_duplicate_refused(store):
    qid = new_qid()
    assert store.create(make_envelope(queue_id=qid), b"x", queue="hold") == qid
    assert store.load(qid)[1] is Queue.HOLD
    with pytest.raises(QueueError, match="duplicate"):
        store.create(make_envelope(queue_id=qid), b"y")
    with pytest.raises(QueueError, match="not a queue ID"):
        store.create(make_envelope(queue_id="../etc"), b"y")
    assert store.load_content(qid) == b"x"
    assert_consistent(store)


def test_large_content(store):
    content = os.urandom(3 << 20)
    qid = store.create(make_envelope(), content)
    assert store.load_content(qid) == content


def test_create_many_is_one_batch_in_order(store):
    items = [(make_envelope(i + 1), f"msg {i}".encode()) for i in range(20)]
    qids = store.create_many(items)
    assert len(set(qids)) == 20 and qids == sorted(qids)
    for (env, content), qid in zip(items, qids):
        assert store.load(qid) == (env.replace(queue_id=qid), Queue.INCOMING)
        assert store.load_content(qid) == content
    assert list(store.list(Queue.INCOMING)) == qids
    assert_consistent(store)


def test_create_many_is_all_or_nothing(store):
    qid = store.create(make_envelope(), b"first")
    with pytest.raises(QueueError, match="duplicate"):
        store.create_many([(make_envelope(), b"a"), (make_envelope(queue_id=qid), b"b")])
    assert store.counts()[Queue.INCOMING] == 1
    assert assert_consistent(store).keys() == {qid}


def test_move_through_every_queue(store):
    qid = store.create(make_envelope(), b"x")
    path = [Queue.ACTIVE, Queue.DEFERRED, Queue.HOLD, Queue.INCOMING, Queue.CORRUPT,
            Queue.DEFERRED, Queue.ACTIVE]
    src = Queue.INCOMING
    for dst in path:
        assert store.move(qid, src, dst) is src
        assert store.load(qid)[1] is dst
        assert_consistent(store)
        src = dst
    assert store.move(qid, None, Queue.ACTIVE) is Queue.ACTIVE     # no-op
    assert_consistent(store)


def test_move_from_wrong_queue_changes_nothing(store):
    qid = store.create(make_envelope(), b"x")
    with pytest.raises(WrongQueue) as e:
        store.move(qid, Queue.ACTIVE, Queue.DEFERRED)
    assert e.value.actual is Queue.INCOMING and e.value.qid == qid
    assert store.move(qid, [Queue.ACTIVE, "incoming"], Queue.HOLD) is Queue.INCOMING
    assert store.load(qid)[1] is Queue.HOLD
    assert_consistent(store)


def test_update_recipients_schedule_and_queue_at_once(store):
    qid = store.create(make_envelope(3), b"x")
    store.move(qid, Queue.INCOMING, Queue.ACTIVE)
    new = store.update(qid, src=Queue.ACTIVE, dst=Queue.DEFERRED,
                       rcpt={0: dict(state=RcptState.SENT, dsn_status="2.0.0"),
                             2: dict(state=RcptState.DEFERRED, reason="later")},
                       attempts=1, next_attempt=1000.0, last_reason="later")
    env, queue = store.load(qid)
    assert env == new and queue is Queue.DEFERRED
    assert [r.state for r in env.recipients] == [RcptState.SENT, RcptState.PENDING,
                                                 RcptState.DEFERRED]
    assert env.recipients[2].reason == "later" and env.attempts == 1
    assert store.due(999.0) == [] and store.due(1000.0) == [qid]
    assert store.next_due() == 1000.0
    # Rescheduling inside the deferred queue moves the due key.
    store.update(qid, next_attempt=50.0)
    assert store.due(60.0) == [qid] and store.due(49.0) == []
    assert_consistent(store)
    # Leaving the deferred queue drops it from the due index.
    store.move(qid, Queue.DEFERRED, Queue.HOLD)
    assert store.due(float("inf")) == [] and store.next_due() is None
    assert_consistent(store)


def test_update_refusals_change_nothing(store):
    qid = store.create(make_envelope(1), b"x")
    before = store.load(qid)
    with pytest.raises(WrongQueue):
        store.update(qid, src=Queue.DEFERRED, attempts=5)
    with pytest.raises(IndexError):
        store.update(qid, rcpt={4: dict(state=RcptState.SENT)})
    with pytest.raises(TypeError):
        store.update(qid, no_such_field=1)
    with pytest.raises(QueueError):
        store.update(qid, queue_id=new_qid())
    assert store.load(qid) == before
    assert_consistent(store)


def test_remove_and_missing_entries(store):
    qid = store.create(make_envelope(), b"x")
    store.move(qid, Queue.INCOMING, Queue.DEFERRED)
    assert store.remove(qid) == []
    assert not store.exists(qid)
    assert assert_consistent(store) == {}
    for call in (lambda: store.load(qid), lambda: store.load_content(qid),
                 lambda: store.remove(qid), lambda: store.move(qid, None, Queue.HOLD),
                 lambda: store.update(qid, attempts=1)):
        with pytest.raises(NoSuchEntry, match=qid):
            call()


def test_remove_with_notice_is_one_step(store):
    qid = store.create(make_envelope(2), b"original")
    store.move(qid, Queue.INCOMING, Queue.ACTIVE)
    with pytest.raises(WrongQueue):
        store.remove(qid, src=Queue.DEFERRED, notices=[(make_envelope(sender=""), b"dsn")])
    assert store.counts()[Queue.INCOMING] == 0
    [notice] = store.remove(qid, src=Queue.ACTIVE,
                            notices=[(make_envelope(sender=""), b"dsn")])
    assert store.load(notice)[0].sender == "" and store.load_content(notice) == b"dsn"
    assert assert_consistent(store).keys() == {notice}


def test_list_is_arrival_order_across_batches(store):
    qids = [store.create(make_envelope(), b"x") for _ in range(11)]
    for q in qids[::3]:
        store.move(q, Queue.INCOMING, Queue.ACTIVE)
    assert list(store.list(Queue.INCOMING, batch=2)) == [q for q in qids if q not in qids[::3]]
    assert list(store.list("active", batch=1)) == qids[::3]
    assert list(store.list(Queue.HOLD)) == []


def test_due_orders_by_time_and_honours_limit(store):
    qids = [store.create(make_envelope(), b"x") for _ in range(6)]
    for i, q in enumerate(qids):
        store.update(q, dst=Queue.DEFERRED, next_attempt=float(100 - i))
    assert store.due(97.0) == qids[3:][::-1]
    assert store.due(1000.0, limit=2) == [qids[5], qids[4]]
    assert store.next_due() == 95.0
    assert_consistent(store)


def test_scan_all_in_mailq_order(store):
    a = store.create(make_envelope(), b"x")
    b = store.create(make_envelope(), b"x", queue=Queue.ACTIVE)
    c = store.create(make_envelope(), b"x", queue=Queue.HOLD)
    d = store.create(make_envelope(), b"x", queue=Queue.DEFERRED)
    store.create(make_envelope(), b"x", queue=Queue.CORRUPT)
    seen = [(e.queue_id, q) for e, q in store.scan_all(batch=1)]
    assert seen == [(b, Queue.ACTIVE), (a, Queue.INCOMING), (d, Queue.DEFERRED),
                    (c, Queue.HOLD)]


def test_scan_during_changes_sees_each_entry_once(store):
    qids = [store.create(make_envelope(), b"x") for _ in range(6)]
    seen = []
    for env, queue in store.scan_all(batch=2):
        seen.append(env.queue_id)
        if len(seen) == 1:
            store.move(qids[3], Queue.INCOMING, Queue.HOLD)   # seen again in hold
            store.remove(qids[4])
    assert seen == [q for q in qids if q not in (qids[4],)][:3] + [qids[5], qids[3]]


def test_counts(store):
    store.create_many([(make_envelope(), b"x")] * 3)
    store.create(make_envelope(), b"x", queue="hold")
    assert store.counts() == {Queue.INCOMING: 3, Queue.ACTIVE: 0, Queue.DEFERRED: 0,
                              Queue.HOLD: 1, Queue.CORRUPT: 0}


def test_data_survives_reopen(tmp_path):
    with QueueStore.open(tmp_path) as s:
        qid = s.create(make_envelope(), b"kept")
        s.move(qid, Queue.INCOMING, Queue.DEFERRED)
    with QueueStore.open(tmp_path) as s:
        assert s.load(qid)[1] is Queue.DEFERRED and s.load_content(qid) == b"kept"
        assert_consistent(s)


def test_second_open_in_one_process_is_refused(tmp_path, store):
    with pytest.raises(QueueError, match="already open in this process"):
        QueueStore.open(tmp_path)
    # The same directory under another name is still the same store.
    os.symlink(tmp_path, tmp_path.parent / (tmp_path.name + "-link"))
    with pytest.raises(QueueError, match="already open in this process"):
        QueueStore.open(tmp_path.parent / (tmp_path.name + "-link"))
    qid = store.create(make_envelope(), b"x")        # the first is unharmed
    assert store.load_content(qid) == b"x"


def test_closed_store_refuses_calls(tmp_path):
    s = QueueStore.open(tmp_path)
    s.close()
    s.close()
    with pytest.raises(QueueError, match="closed"):
        s.load(new_qid())
    QueueStore.open(tmp_path).close()               # and may be opened again


def test_schema_version_mismatch_is_refused(tmp_path):
    QueueStore.open(tmp_path).close()
    env = lmdb.Environment(str(tmp_path / "lmdb"), max_dbs=schema.MAX_DBS)
    with env.begin(write=True) as txn:
        txn.put(schema.VERSION_KEY, b"999", db=env.open_db(schema.META_DB, txn=txn))
    env.close()
    with pytest.raises(QueueError, match="schema version 999; this mailsys reads version 1"):
        QueueStore.open(tmp_path)
    # The failed open left nothing open: py-lmdb would refuse a second open.
    env = lmdb.Environment(str(tmp_path / "lmdb"), max_dbs=schema.MAX_DBS)
    env.close()


def test_unversioned_non_empty_environment_is_refused(tmp_path):
    env = lmdb.Environment(str(tmp_path / "lmdb"), max_dbs=schema.MAX_DBS)
    with env.begin(write=True) as txn:
        txn.put(b"k", b"v", db=env.open_db(b"something", txn=txn))
    env.close()
    with pytest.raises(QueueError, match="no schema version and is not empty"):
        QueueStore.open(tmp_path)


def test_unopenable_directory_is_a_queue_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(QueueError, match="cannot create queue store"):
        QueueStore.open(tmp_path / "file")


def test_reader_check_runs(store):
    assert store.reader_check() == 0


def _spoil(store, qid, value=b"\x07garbage"):
    def fn(txn):
        txn.put(qid.encode(), value, db=store._envelopes)
    store._write(fn, 100)


@pytest.mark.parametrize("queue", [Queue.INCOMING, Queue.DEFERRED])
def test_corrupt_entry_can_be_quarantined_and_removed(store, queue):
    ok = store.create(make_envelope(), b"fine")
    bad = store.create(make_envelope(), b"spoiled", queue=queue)
    store.update(bad, next_attempt=77.0)
    _spoil(store, bad)
    with pytest.raises(CorruptRecord):
        store.load(bad)
    with pytest.raises(CorruptRecord):
        list(store.scan_all())
    seen = []
    assert [e.queue_id for e, _ in store.scan_all(
        on_corrupt=lambda qid, e: seen.append(qid))] == [ok]
    assert seen == [bad]
    store.quarantine(bad)
    assert list(store.list(Queue.CORRUPT)) == [bad]
    assert list(store.list(queue)) == ([ok] if queue is Queue.INCOMING else [])
    assert store.due(float("inf")) == []
    assert store.counts()[Queue.CORRUPT] == 1 and store.counts()[queue] == (
        1 if queue is Queue.INCOMING else 0)
    with pytest.raises(CorruptRecord):
        store.remove(bad, src=Queue.HOLD)                 # not there: refused
    store.remove(bad, src=Queue.CORRUPT)
    assert assert_consistent(store).keys() == {ok}


@pytest.mark.parametrize("queue", [Queue.INCOMING, Queue.ACTIVE, Queue.DEFERRED])
def test_an_entry_with_a_sound_header_and_a_spoiled_body_is_removed(store, queue):
    ok = store.create(make_envelope(), b"fine", queue=queue)
    bad = store.create(make_envelope(), b"spoiled", queue=queue)
    store.update(bad, next_attempt=77.0)
    _spoil(store, bad, bytes((1, schema.QUEUE_CODE[queue])) + b"{not json")
    with pytest.raises(CorruptRecord):
        store.load(bad)
    # The queue byte is enough to refuse; a deferred entry's due time is
    # in the spoiled part, so it is handled as wholly unreadable.
    with pytest.raises(CorruptRecord if queue is Queue.DEFERRED else WrongQueue):
        store.remove(bad, src=Queue.HOLD)
    store.remove(bad, src=queue)
    assert not store.exists(bad)
    assert assert_consistent(store).keys() == {ok}
    assert store.counts()[queue] == 1
    assert store.due(float("inf")) == ([ok] if queue is Queue.DEFERRED else [])


def test_quarantine_readable_entry_moves_it(store):
    qid = store.create(make_envelope(), b"x", queue=Queue.DEFERRED)
    store.quarantine(qid)
    assert store.load(qid)[1] is Queue.CORRUPT
    assert_consistent(store)
    with pytest.raises(NoSuchEntry):
        store.quarantine(new_qid())


def test_threads_share_one_store_while_the_map_grows(tmp_path):
    import threading
    with QueueStore.open(tmp_path, map_size=256 << 10, max_map_size=64 << 20) as s:
        made, errors = [], []

        def writer(k):
            try:
                for i in range(15):
                    qid = s.create(make_envelope(), bytes([k]) * 30_000)
                    made.append((qid, k))
                    assert s.load_content(qid) == bytes([k]) * 30_000
                    list(s.list(Queue.INCOMING, batch=4))
            except Exception as e:          # reported below, in the test thread
                errors.append(e)
        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        assert s.map_size() > 256 << 10
        assert assert_consistent(s).keys() == {q for q, _ in made}
        for qid, k in made:
            assert s.load_content(qid) == bytes([k]) * 30_000


def test_move_many_and_remove_many_skip_what_does_not_apply(store):
    qids = [store.create(make_envelope(), b"x") for _ in range(6)]
    store.move(qids[0], Queue.INCOMING, Queue.HOLD)
    gone = new_qid()
    _spoil(store, qids[5])
    moved = store.move_many([gone, *qids], Queue.INCOMING, Queue.ACTIVE)
    assert moved == qids[1:5]
    assert store.load(qids[0])[1] is Queue.HOLD
    assert store.move_many(qids[1:3], None, Queue.DEFERRED) == qids[1:3]
    assert store.due(float("inf")) == sorted(qids[1:3])
    assert store.remove_many([gone, *qids], src=[Queue.DEFERRED, Queue.HOLD]) == \
        [qids[0], qids[1], qids[2]]
    assert store.remove_many(qids) == [qids[3], qids[4], qids[5]]   # corrupt one too
    assert assert_consistent(store) == {}


def test_forked_child_may_not_use_the_parents_store(store):
    qid = store.create(make_envelope(), b"x")
    pid = os.fork()
    if pid == 0:                                  # child: report through the exit code
        try:
            store.load(qid)
            code = 1
        except QueueError as e:
            code = 0 if "opened before fork" in str(e) else 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.load_content(qid) == b"x"        # the parent's store is unharmed
