"""QueueStore.apply_many: several updates and removals in one commit, each
with its own outcome."""

import pytest
from qstore_helpers import assert_consistent, make_envelope

from mailsys.errors import NoSuchEntry
from mailsys.message.envelope import RcptState
from mailsys.message.qid import new_qid
from mailsys.queue import Admit, Admitted, Move, Queue, Remove, Update, WrongQueue


def _active(store, n=1):
    qid = store.create(make_envelope(n), b"content")
    store.move(qid, Queue.INCOMING, Queue.ACTIVE)
    return qid


def test_updates_and_removals_in_one_commit(store):
    a, b, c = _active(store, 2), _active(store), _active(store)
    out = store.apply_many([
        Update(a, src=Queue.ACTIVE, rcpt={1: dict(state=RcptState.SENT, dsn_status="2.0.0")}),
        Remove(b, src=Queue.ACTIVE),
        Update(c, src=Queue.ACTIVE, dst=Queue.DEFERRED, changes=dict(next_attempt=50.0,
                                                                    attempts=1)),
    ])
    assert out[0] == store.load(a)[0]
    assert [r.state for r in out[0].recipients] == [RcptState.PENDING, RcptState.SENT]
    assert out[1] == [] and not store.exists(b)
    assert store.load(c)[1] is Queue.DEFERRED and store.due(50.0) == [c]
    assert_consistent(store)
    assert store.counts()[Queue.ACTIVE] == store.counts()[Queue.DEFERRED] == 1


def test_a_failing_op_leaves_no_trace_and_spares_the_others(store):
    a, b = _active(store), _active(store)
    taken = _active(store)
    gone = new_qid()
    notice = (make_envelope(sender="").replace(queue_id=taken), b"dsn")   # duplicate ID
    out = store.apply_many([
        Remove(a, src=Queue.DEFERRED),                   # wrong queue
        Remove(b, src=Queue.ACTIVE, notices=(notice,)),  # drop done, then the insert fails
        Update(gone, changes=dict(attempts=1)),          # no such entry
        Remove(taken, src=Queue.ACTIVE),
    ])
    assert isinstance(out[0], WrongQueue)
    assert not isinstance(out[1], list) and "duplicate" in str(out[1])
    assert isinstance(out[2], NoSuchEntry)
    assert out[3] == []
    # b's removal was undone with its failed notice: never gone without it.
    assert store.load(a)[1] is Queue.ACTIVE and store.load(b)[1] is Queue.ACTIVE
    assert store.load_content(b) == b"content"
    assert not store.exists(taken)
    assert_consistent(store)
    assert store.counts()[Queue.ACTIVE] == 2


def test_removal_with_notice(store):
    a = _active(store)
    [out] = store.apply_many([Remove(a, src=Queue.ACTIVE,
                                     notices=((make_envelope(sender=""), b"dsn"),))])
    [notice] = out
    assert not store.exists(a)
    assert store.load(notice)[1] is Queue.INCOMING and store.load_content(notice) == b"dsn"
    assert_consistent(store)
    assert store.counts()[Queue.INCOMING] == 1


def test_bad_arguments_abort_the_whole_commit(store):
    a, b = _active(store), _active(store)
    with pytest.raises(IndexError):
        store.apply_many([Remove(a), Update(b, rcpt={7: dict(state=RcptState.SENT)})])
    assert store.exists(a) and store.exists(b)
    assert store.apply_many([]) == []


def test_load_contents_reads_several_in_one_go(store):
    a = store.create(make_envelope(), b"first")
    b = store.create(make_envelope(), b"second" * 1000)
    gone = new_qid()
    first, missing, second = store.load_contents([a, gone, b])
    assert (first, second) == (b"first", b"second" * 1000)
    assert type(first) is bytes and isinstance(missing, NoSuchEntry)
    assert store.load_contents([]) == []


def test_load_small_content_reads_only_what_fits(store):
    small = store.create(make_envelope(), b"s" * 100)
    big = store.create(make_envelope(), b"b" * 5000)
    assert store.load_small_content(small, 100) == b"s" * 100
    assert type(store.load_small_content(small, 100)) is bytes
    assert store.load_small_content(big, 4999) is None
    assert store.load_small_content(big, 5000) == b"b" * 5000
    with pytest.raises(NoSuchEntry):
        store.load_small_content(new_qid(), 100)


def test_a_move_gives_the_envelopes_it_moved(store):
    a = store.create(make_envelope(2), b"a")
    b = store.create(make_envelope(), b"b")
    held = store.create(make_envelope(), b"h", Queue.HOLD)
    [moved, removed] = store.apply_many([Move((a, new_qid(), held, b), Queue.INCOMING),
                                         Remove(a, src=Queue.ACTIVE)])
    assert [e.queue_id for e in moved] == [a, b] and len(moved[0].recipients) == 2
    assert removed == [] and not store.exists(a)
    assert store.load(b)[1] is Queue.ACTIVE and store.load(held)[1] is Queue.HOLD
    assert_consistent(store)


def test_admit_takes_incoming_oldest_first_up_to_the_limit(store):
    a, b, c = (store.create(make_envelope(), b"x") for _ in range(3))
    held = store.create(make_envelope(), b"h", Queue.HOLD)
    [got] = store.apply_many([Admit(Queue.INCOMING, limit=2, budget=100)])
    assert isinstance(got, Admitted)
    assert [e.queue_id for e in got.moved] == [a, b] and got.more and not got.stopped
    assert store.load(a)[1] is store.load(b)[1] is Queue.ACTIVE
    [got] = store.apply_many([Admit(Queue.INCOMING, limit=2, budget=100)])
    assert [e.queue_id for e in got.moved] == [c] and not got.more
    assert store.load(held)[1] is Queue.HOLD
    assert_consistent(store)
    assert store.counts()[Queue.ACTIVE] == 3 and store.counts()[Queue.INCOMING] == 0


def test_admit_stops_at_the_recipient_budget(store):
    a = store.create(make_envelope(2), b"x")
    b = store.create(make_envelope(3), b"x")
    c = store.create(make_envelope(1), b"x")
    [got] = store.apply_many([Admit(Queue.INCOMING, limit=10, budget=4)])
    assert [e.queue_id for e in got.moved] == [a] and got.stopped
    # An entry bigger than the whole budget goes in only first, and only when allowed.
    [got] = store.apply_many([Admit(Queue.INCOMING, limit=10, budget=1)])
    assert got.moved == () and got.stopped
    [got] = store.apply_many([Admit(Queue.INCOMING, limit=10, budget=1, first_free=True)])
    assert [e.queue_id for e in got.moved] == [b] and got.stopped
    assert store.load(c)[1] is Queue.INCOMING
    assert_consistent(store)


def test_admit_takes_deferred_entries_that_are_due(store):
    qids = [store.create(make_envelope(), b"x", Queue.DEFERRED) for _ in range(3)]
    for qid, due in zip(qids, (30.0, 10.0, 90.0)):
        store.update(qid, next_attempt=due)
    [got] = store.apply_many([Admit(Queue.DEFERRED, limit=10, budget=100, due=50.0)])
    assert [e.queue_id for e in got.moved] == [qids[1], qids[0]] and not got.more
    assert store.due(float("inf")) == [qids[2]]
    assert_consistent(store)


def test_admit_quarantines_unreadable_entries(store):
    ok = store.create(make_envelope(), b"fine")
    bad = store.create(make_envelope(), b"spoiled")

    def spoil(txn):
        txn.put(bad.encode(), b"\xff not a record", db=store._envelopes)
    store._write(spoil, 100)
    [got] = store.apply_many([Admit(Queue.INCOMING, limit=10, budget=100)])
    assert [e.queue_id for e in got.moved] == [ok]
    assert [qid for qid, _ in got.corrupt] == [bad] and got.corrupt[0][1]
    assert list(store.list(Queue.CORRUPT)) == [bad]
    assert store.counts()[Queue.INCOMING] == 0
