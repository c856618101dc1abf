"""store - the durable mail queue, one LMDB environment shared by processes.

SYNOPSIS
    from mailsys.queue import QueueStore, Queue
    store = QueueStore.open(cfg.path("queue_directory"))
    qid = store.create(envelope, content)                   # fsynced on return
    qids = store.create_many([(env1, c1), (env2, c2)])     # one fsync for all
    qids = store.create_late(take)              # the same, take() called with the lock held
    envelope, queue = store.load(qid)
    contents = store.load_contents([qid, qid2])             # one read txn
    content = store.load_small_content(qid, 65536)          # None when bigger
    store.move(qid, Queue.INCOMING, Queue.ACTIVE)
    store.update(qid, src=Queue.ACTIVE, dst=Queue.DEFERRED,
                 rcpt={0: dict(state=RcptState.DEFERRED, reason="...")},
                 next_attempt=time.time() + 300, attempts=1)
    for qid in store.due(time.time(), limit=1000): ...
    store.remove(qid, notices=[(dsn_envelope, dsn_content)])
    store.move_many(qids, Queue.INCOMING, Queue.ACTIVE)     # one commit
    store.remove_many(qids, src=Queue.HOLD)                 # postsuper -d
    store.apply_many([Update(qid, src=Queue.ACTIVE, rcpt=...),
                      Remove(qid2, src=Queue.ACTIVE),
                      Admit(Queue.INCOMING, limit=100, budget=10000)])
                                                           # one commit, outcome each
    for qid in store.list(Queue.DEFERRED): ...             # oldest first
    for envelope, queue in store.scan_all(): ...           # mailq
    store.counts(); store.next_due(); store.quarantine(qid)
    store.reader_check()                                   # qmgr's timer
    store.close()

DESCRIPTION
    QueueStore owns the queue's LMDB environment (layout in schema.py,
    values in records.py). cleanup creates entries; qmgr moves, updates and
    removes them; the admin tools read them and change them through the
    same calls (DESIGN.md contract 3). Every call is one short synchronous
    transaction begun and ended in the calling thread, so a trio service
    runs each call in a worker thread (mailsys.runtime.store_io) and never
    holds a transaction across an await; only a small read, which never
    waits for the writer, may run in place (load_small_content). Calls may
    come from many threads at once.

    Several processes open the environment at the same time; LMDB lets one
    of them write at a time and readers never wait. Every process opens it
    through QueueStore.open() with the same fixed flags (sync on, no
    writemap, max_readers=MAX_READERS); metasync is on unless the opener
    asks otherwise (see DURABILITY). A process may open a given
    store only once (LMDB forbids a second open; the second open() raises
    QueueError), and must not fork with it open: open it after fork or in
    a spawned process. Calls made from a forked child raise QueueError.

DURABILITY
    create(), create_many(), move(), update(), remove() and apply_many()
    return only after their transaction is committed and fsynced (LMDB sync=True,
    metasync=True). From then on the change survives kill -9 of any process
    and a power cut. A call that raises has changed nothing: LMDB's
    copy-on-write pages make an aborted or failed commit invisible, so no
    half-written entry or index key is ever seen. create_many() is all or
    nothing.

    A process that opens the store with metasync=False (qmgr) trades the
    second half of that for one flush per commit instead of two: its data
    pages are fsynced before the commit returns, its meta page is written
    but not flushed. LMDB keeps its integrity either way (the data is on
    disk before any meta page that points to it), and the meta page reaches
    the disk with the next commit of any process, which flushes the file
    before writing its own. Until then a power cut (not a process crash)
    may undo that process's last transaction, and only whole transactions
    in order: the store comes back as it was one commit earlier. For qmgr's
    moves, updates and removals that means a retry or a second delivery,
    which DESIGN.md contract 2 allows; entries that must survive a power
    cut the moment the call returns (cleanup's, contract 1) are written by
    a process that keeps metasync on.

FULL MAP, FULL DISK
    When a write finds the map full, the store first grows the map (it
    doubles, up to max_map_size, while the file system has room for twice
    the write plus GROW_RESERVE) and retries. When it cannot grow, or the
    disk itself is full, the call raises mailsys.errors.QueueFull (smtpd:
    452 4.3.1) with nothing changed. LMDB reports a full disk as a short
    write (EIO) at commit, so a failed write is taken for a full disk when
    the file system has less than the write plus GROW_RESERVE free; any
    other LMDB failure is a plain QueueError (451 4.3.0 queue file write
    error), again with nothing changed. With min_free (queue_minfree) set,
    new entries are refused with QueueFull before the disk gets that low,
    while queued mail still moves. A process whose map
    another process has grown adopts the new size (MapResizedError ->
    set_mapsize(0)) and retries. Resizing invalidates every transaction of
    the process, so the store holds a process-wide gate: calls share it,
    a resize takes it alone.

READERS
    Scans (list, scan_all) read in batches, each batch in a fresh short
    read transaction, so a long mailq never pins old pages. A process
    killed with a read transaction open leaves a stale reader slot;
    reader_check() clears those and qmgr calls it on its timer.

CONTENT
    The content is one LMDB value per entry. LMDB keeps a large value in
    contiguous overflow pages and reads it in place, so one value is one
    put and one get; messages are bounded by message_size_limit (10 MB by
    default), far below LMDB's 4 GB value limit. Chunking would only add
    bookkeeping. load() never touches the content pages.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import field
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from mailsys.errors import NoSuchEntry, QueueError, QueueFull
from mailsys.frozen import frozen
from mailsys.message.envelope import Envelope
from mailsys.message.qid import is_qid, new_qid
from mailsys.queue import records, schema
from mailsys.queue.schema import Queue

T = TypeVar("T")

# The first map size. LMDB reserves address space, not disk: on 64-bit a
# large map costs nothing until pages are written (py-lmdb docs, "Handling
# database growth"), and a large first size makes resizes rare.
DEFAULT_MAP_SIZE = 4 << 30
# Growth stops here, or earlier when the disk is short.
DEFAULT_MAX_MAP_SIZE = 1 << 40
# Free disk space left untouched when deciding to grow the map.
GROW_RESERVE = 16 << 20
# Reader slots are shared by all processes and fixed by the first opener:
# room for trio's 40 worker threads in each of a dozen processes, plus
# CLI tools (STYLE.md (d) item 8).
MAX_READERS = 512
# Entries per read transaction in scans.
SCAN_BATCH = 500
# How often one call retries after another process grew the map.
RESIZE_RETRIES = 64

QueueSpec = Queue | str | Iterable[Queue | str] | None


class WrongQueue(QueueError):
    """The entry is not in the queue the caller expected (someone moved it)."""

    def __init__(self, qid: str, actual: Queue, expected: frozenset[Queue]) -> None:
        names = "/".join(sorted(q.value for q in expected))
        super().__init__(f"{qid}: in queue {actual.value}, not {names}")
        self.qid = qid
        self.actual = actual


class _Gate:
    """Calls share the gate; a map resize takes it alone (writer first)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._resizing = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if not self._active:
                    self._cond.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._resizing = True
            while self._active:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()


@frozen
class Update:
    """One update() for apply_many(): the same arguments."""

    qid: str
    src: QueueSpec = None
    dst: Queue | str | None = None
    rcpt: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    changes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return 4096


@frozen
class Remove:
    """One remove() for apply_many(): the same arguments."""

    qid: str
    src: QueueSpec = None
    notices: tuple[tuple[Envelope, bytes], ...] = ()

    @property
    def size(self) -> int:
        return sum(len(c) + 1024 for _, c in self.notices) + 4096


@frozen
class Move:
    """One move_many() for apply_many(): the same arguments."""

    qids: tuple[str, ...]
    src: QueueSpec = None
    dst: Queue | str = Queue.ACTIVE

    @property
    def size(self) -> int:
        return 4096 * max(1, len(self.qids))


@frozen
class Admit:
    """For apply_many(): qmgr's feed of the active queue, read and moved in
    one transaction. Takes up to limit entries of src into dst: incoming
    (or any queue but deferred) oldest first, deferred those due at or
    before ``due``, soonest first. It stops before the first entry whose
    undelivered recipients exceed what is left of budget, unless that is
    the first entry and first_free is set (an empty active queue always
    takes one). Unreadable entries are put in the corrupt queue on the way.
    The outcome is an Admitted."""

    src: Queue
    limit: int
    budget: int
    dst: Queue = Queue.ACTIVE
    due: float = 0.0
    first_free: bool = False

    @property
    def size(self) -> int:
        return 4096 * max(1, self.limit)


@frozen
class Admitted:
    """What an Admit did: the envelopes moved (in order), the (queue ID,
    error) of each entry quarantined, whether it stopped at the budget, and
    whether the scan was cut at its limit (more entries may wait)."""

    moved: tuple[Envelope, ...]
    corrupt: tuple[tuple[str, str], ...]
    stopped: bool
    more: bool


# One open store per environment directory per process (STYLE.md (d) 1).
_open_lock = threading.Lock()
_open_stores: dict[str, QueueStore] = {}


def _queues(spec: QueueSpec) -> frozenset[Queue] | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        return frozenset((Queue(spec),))
    return frozenset(Queue(q) for q in spec)


class QueueStore:
    """The queue: entries, their content, and the indexes over them."""

    def __init__(self, env: lmdb.Environment, dbs: dict[bytes, Any], path: str,
                 max_map_size: int, min_free: int = 0) -> None:
        # Use QueueStore.open(); this only assembles an opened environment.
        self._env = env
        self._meta = dbs[schema.META_DB]
        self._envelopes = dbs[schema.ENVELOPE_DB]
        self._content = dbs[schema.CONTENT_DB]
        self._queue = dbs[schema.QUEUE_DB]
        self._due = dbs[schema.DUE_DB]
        self._path = path
        self._max_map_size = max_map_size
        self._min_free = min_free
        self._gate = _Gate()
        self._pid = os.getpid()
        self._closed = False

    # -- opening and closing ------------------------------------------------

    @classmethod
    def open(cls, queue_dir: Path | str, *, map_size: int = DEFAULT_MAP_SIZE,
             max_map_size: int = DEFAULT_MAX_MAP_SIZE, min_free: int = 0,
             metasync: bool = True) -> QueueStore:
        """open - open (creating if needed) the store under queue_dir.

        min_free (Postfix queue_minfree, 0 = no check): create() and
        create_many() raise QueueFull while the file system would keep less
        than this many bytes free after the write. Only new mail is refused;
        moves, updates and removals of queued mail go on.

        metasync=False: one flush per commit, and a power cut may undo this
        process's last commit (see DURABILITY in the module description).

        The environment lives in queue_dir/lmdb. Raises QueueError when this
        process has it open already, when its schema version is not
        schema.SCHEMA_VERSION, or when LMDB cannot open it.
        """
        env_dir = Path(queue_dir) / schema.ENV_SUBDIR
        try:
            env_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise QueueError(f"cannot create queue store {env_dir}: {e.strerror}") from None
        path = os.path.realpath(env_dir)
        with _open_lock:
            other = _open_stores.get(path)
            if other is not None and not other._closed and other._pid == os.getpid():
                raise QueueError(f"queue store {path} is already open in this process")
            try:
                env = lmdb.Environment(
                    path, map_size=map_size, subdir=True, readonly=False,
                    metasync=metasync, sync=True, map_async=False, mode=0o600,
                    create=True, readahead=False, writemap=False, meminit=False,
                    max_readers=MAX_READERS, max_dbs=schema.MAX_DBS, lock=True)
            except lmdb.Error as e:
                raise QueueError(f"cannot open queue store {path}: {e}") from None
            try:
                dbs = cls._open_dbs(env, path)
            except BaseException:
                env.close()
                raise
            store = cls(env, dbs, path, max(max_map_size, map_size), min_free)
            _open_stores[path] = store
        return store

    @staticmethod
    def _open_dbs(env: lmdb.Environment, path: str) -> dict[bytes, Any]:
        try:
            with env.begin(write=True) as txn:
                meta = env.open_db(schema.META_DB, txn=txn)
                found = txn.get(schema.VERSION_KEY, db=meta)
                if found is None:
                    # Only an empty environment may be claimed for this
                    # schema. The main database's keys are the names of
                    # the named ones; meta was just made by this txn.
                    if any(name != schema.META_DB
                           for name in txn.cursor().iternext(values=False)):
                        raise QueueError(
                            f"queue store {path} has no schema version and is not empty")
                    txn.put(schema.VERSION_KEY, str(schema.SCHEMA_VERSION).encode(), db=meta)
                elif found != str(schema.SCHEMA_VERSION).encode():
                    raise QueueError(
                        f"queue store {path} has schema version "
                        f"{found.decode(errors='replace')}; this mailsys reads "
                        f"version {schema.SCHEMA_VERSION}")
                dbs = {name: env.open_db(name, txn=txn) for name in schema.ALL_DBS}
        except lmdb.Error as e:
            raise QueueError(f"cannot open queue store {path}: {e}") from None
        return dbs

    def close(self) -> None:
        """close - close the environment. No call may be running or follow."""
        with _open_lock:
            if self._closed:
                return
            self._closed = True
            if _open_stores.get(self._path) is self:
                del _open_stores[self._path]
        if self._pid == os.getpid():
            self._env.close()

    def __enter__(self) -> QueueStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> str:
        return self._path

    # -- transactions -------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise QueueError(f"queue store {self._path} is closed")
        if self._pid != os.getpid():
            raise QueueError(f"queue store {self._path} was opened before fork; "
                             f"open it again in this process")

    def _read(self, fn: Callable[[lmdb.Transaction], T], *, buffers: bool = False) -> T:
        self._check_usable()
        for _ in range(RESIZE_RETRIES):
            try:
                with self._gate.shared(), self._env.begin(buffers=buffers) as txn:
                    return fn(txn)
            except lmdb.MapResizedError:
                self._adopt_map_size()
            except lmdb.Error as e:
                raise QueueError(f"queue store {self._path}: {e}") from None
        raise QueueError(f"queue store {self._path}: map keeps being resized")

    def _write(self, fn: Callable[[lmdb.Transaction], T], size: int | Callable[[], int]) -> T:
        """Run fn in one write transaction and commit it, growing the map
        when it is full. size is about how many bytes fn writes (or a
        function that tells, once fn has run)."""
        self._check_usable()
        for _ in range(RESIZE_RETRIES):
            try:
                with self._gate.shared():
                    seen = self._env.info()["map_size"]
                    with self._env.begin(write=True) as txn:
                        result = fn(txn)
                return result
            except lmdb.MapResizedError:
                self._adopt_map_size()
            except lmdb.MapFullError:
                if not self._grow(seen, size() if callable(size) else size):
                    raise QueueFull(f"queue store {self._path} is full "
                                    f"(map size {seen} bytes)") from None
            except lmdb.Error as e:
                # LMDB reports a short page write as EIO, and that is how a
                # full disk shows: tell it apart by the room left.
                if isinstance(e, lmdb.DiskError) or self._disk_short(
                        size() if callable(size) else size):
                    raise QueueFull(f"queue store {self._path}: "
                                    f"no space left on device") from None
                raise QueueError(f"queue store {self._path}: {e}") from None
        raise QueueError(f"queue store {self._path}: map keeps being resized")

    def _disk_short(self, size: int) -> bool:
        """Whether the file system lacks room for size bytes plus the reserve."""
        try:
            st = os.statvfs(self._path)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < size + GROW_RESERVE

    def _check_min_free(self, size: int) -> None:
        """QueueFull when new mail of size bytes would leave less than
        min_free (queue_minfree) bytes on the file system."""
        if not self._min_free:
            return
        try:
            st = os.statvfs(self._path)
        except OSError:
            return
        if st.f_bavail * st.f_frsize < size + self._min_free:
            raise QueueFull(f"queue store {self._path}: less than queue_minfree "
                            f"({self._min_free} bytes) free")

    def _adopt_map_size(self) -> None:
        with self._gate.alone():
            self._env.set_mapsize(0)

    def _grow(self, seen: int, size: int) -> bool:
        """Grow the map after a MapFullError at map size seen; False when
        it may not grow."""
        with self._gate.alone():
            current = self._env.info()["map_size"]
            if current > seen:
                return True          # another thread grew it meanwhile
            if current >= self._max_map_size:
                return False
            if self._disk_short(2 * size):
                return False
            page = self._env.stat()["psize"]
            new = min(self._max_map_size, max(2 * current, current + 4 * size))
            new -= new % page
            if new <= current:
                return False
            self._env.set_mapsize(new)
            return True

    def map_size(self) -> int:
        """map_size - the current map size in bytes."""
        self._check_usable()
        return self._env.info()["map_size"]

    def reader_check(self) -> int:
        """reader_check - clear reader slots of dead processes; how many."""
        self._check_usable()
        try:
            return self._env.reader_check()
        except lmdb.Error as e:
            raise QueueError(f"queue store {self._path}: {e}") from None

    # -- index upkeep: every write goes through these two -------------------

    def _count(self, txn: lmdb.Transaction, queue: Queue, delta: int) -> None:
        key = schema.count_key(queue)
        n = schema.unpack_count(txn.get(key, db=self._meta)) + delta
        txn.put(key, schema.pack_count(n), db=self._meta)

    def _link(self, txn: lmdb.Transaction, env: Envelope, queue: Queue) -> None:
        txn.put(schema.queue_key(queue, env.queue_id), b"", db=self._queue)
        if queue is Queue.DEFERRED:
            txn.put(schema.due_key(env.next_attempt, env.queue_id), b"", db=self._due)
        self._count(txn, queue, +1)

    def _unlink(self, txn: lmdb.Transaction, env: Envelope, queue: Queue) -> None:
        self._unlink_key(txn, env.queue_id, queue, env.next_attempt)

    def _unlink_key(self, txn: lmdb.Transaction, qid: str, queue: Queue,
                    next_attempt: float) -> None:
        txn.delete(schema.queue_key(queue, qid), db=self._queue)
        if queue is Queue.DEFERRED:
            txn.delete(schema.due_key(next_attempt, qid), db=self._due)
        self._count(txn, queue, -1)

    def _unlink_raw(self, txn: lmdb.Transaction, qid: str) -> None:
        """_unlink without a readable envelope: find the index keys by
        looking. The due scan is linear, but only corrupt entries need it."""
        for queue in Queue:
            if txn.delete(schema.queue_key(queue, qid), db=self._queue):
                self._count(txn, queue, -1)
        suffix = qid.encode()
        cur = txn.cursor(db=self._due)
        stale = [k for k in cur.iternext(values=False) if k.endswith(suffix)]
        for key in stale:
            txn.delete(key, db=self._due)

    def _raw(self, txn: lmdb.Transaction, qid: str) -> bytes:
        value = txn.get(qid.encode(), db=self._envelopes)
        if value is None:
            raise NoSuchEntry(f"{qid}: no such queue entry")
        return bytes(value)

    def _get(self, txn: lmdb.Transaction, qid: str) -> tuple[Envelope, Queue]:
        return records.decode(qid, self._raw(txn, qid))

    def _insert(self, txn: lmdb.Transaction, env: Envelope, content: bytes,
                queue: Queue) -> str:
        given = env.queue_id
        if given and not is_qid(given):
            raise QueueError(f"not a queue ID: {given!r}")
        while True:
            if not given:
                env = env.replace(queue_id=new_qid())
            if txn.put(env.queue_id.encode(), records.encode(env, queue),
                       db=self._envelopes, overwrite=False):
                break
            if given:
                raise QueueError(f"{given}: duplicate queue ID")
            # An ID drawn here collided (see qid.py): draw another.
        txn.put(env.queue_id.encode(), content, db=self._content)
        self._link(txn, env, queue)
        return env.queue_id

    # -- operations ---------------------------------------------------------

    def create(self, envelope: Envelope, content: bytes,
               queue: Queue | str = Queue.INCOMING) -> str:
        """create - add an entry; its queue ID once durably committed.

        envelope.queue_id may be empty (a new ID is drawn) or an ID from
        new_qid() (as cleanup does to log it before the commit); an ID
        already in the queue raises QueueError.
        """
        q = Queue(queue)
        self._check_min_free(len(content) + 1024)
        return self._write(lambda txn: self._insert(txn, envelope, content, q),
                           len(content) + 1024)

    def create_many(self, items: Iterable[tuple[Envelope, bytes]],
                    queue: Queue | str = Queue.INCOMING) -> list[str]:
        """create_many - add entries in one transaction, one fsync (group
        commit); their IDs, in order, once committed. All or nothing."""
        q = Queue(queue)
        items = list(items)
        size = sum(len(c) + 1024 for _, c in items)
        self._check_min_free(size)
        return self._write(
            lambda txn: [self._insert(txn, e, c, q) for e, c in items], size)

    def create_late(self, take: Callable[[], Iterable[tuple[Envelope, bytes]]],
                    queue: Queue | str = Queue.INCOMING) -> list[str]:
        """create_late - create_many of the entries take() returns, take()
        being called once the write transaction has begun, so with the
        writer lock held: a group commit keeps gathering entries while it
        waits for a writer of another process. take() is called exactly
        once (not at all when the store is unusable); all or nothing."""
        q = Queue(queue)
        items: list[tuple[Envelope, bytes]] | None = None

        def size() -> int:
            return sum(len(c) + 1024 for _, c in items or ())

        def fn(txn: lmdb.Transaction) -> list[str]:
            nonlocal items
            if items is None:           # not again when a full map made _write retry
                items = list(take())
                self._check_min_free(size())
            return [self._insert(txn, e, c, q) for e, c in items]
        return self._write(fn, size)

    def load(self, qid: str) -> tuple[Envelope, Queue]:
        """load - an entry's envelope and the queue it is in."""
        return self._read(lambda txn: self._get(txn, qid))

    def load_content(self, qid: str, limit: int | None = None) -> bytes:
        """load_content - an entry's content (at most limit bytes of it)."""
        def fn(txn: lmdb.Transaction) -> bytes:
            view = txn.get(qid.encode(), db=self._content)
            if view is None:
                raise NoSuchEntry(f"{qid}: no such queue entry")
            # The view dies with the transaction: copy (STYLE.md (d) 13).
            return bytes(view if limit is None else view[:limit])
        return self._read(fn, buffers=True)

    def load_small_content(self, qid: str, max_size: int) -> bytes | None:
        """load_small_content - an entry's content when it is at most
        max_size bytes; None, without reading it, when it is larger. (The
        size comes from the value's node: the content pages are touched
        only when they are copied.)"""
        def fn(txn: lmdb.Transaction) -> bytes | None:
            view = txn.get(qid.encode(), db=self._content)
            if view is None:
                raise NoSuchEntry(f"{qid}: no such queue entry")
            return bytes(view) if len(view) <= max_size else None
        return self._read(fn, buffers=True)

    def load_contents(self, qids: Iterable[str]) -> list[bytes | QueueError]:
        """load_contents - several entries' content in one read transaction,
        each a copy, or NoSuchEntry for an entry that is not there."""
        qids = list(qids)

        def fn(txn: lmdb.Transaction) -> list[bytes | QueueError]:
            out: list[bytes | QueueError] = []
            for qid in qids:
                view = txn.get(qid.encode(), db=self._content)
                out.append(NoSuchEntry(f"{qid}: no such queue entry") if view is None
                           else bytes(view))
            return out
        return self._read(fn, buffers=True)

    def exists(self, qid: str) -> bool:
        return self._read(lambda txn: txn.get(qid.encode(), db=self._envelopes) is not None)

    def update(self, qid: str, *, src: QueueSpec = None, dst: Queue | str | None = None,
               rcpt: Mapping[int, Mapping[str, Any]] | None = None,
               **changes: Any) -> Envelope:
        """update - change an entry's envelope and maybe its queue, atomically.

        changes are Envelope fields to replace; rcpt maps recipient index
        to Recipient fields to replace; dst moves the entry. src, when
        given (a queue or several), must hold the entry or WrongQueue is
        raised with nothing changed. Returns the new envelope.
        """
        op = Update(qid, src, dst, rcpt or {}, changes)
        return self._write(lambda txn: self._update_in(txn, op), 4096)

    def _update_in(self, txn: lmdb.Transaction, op: Update) -> Envelope:
        changes = op.changes
        if "queue_id" in changes or ("recipients" in changes and op.rcpt):
            raise QueueError("update: queue_id cannot change; give recipients or rcpt, not both")
        expected = _queues(op.src)
        target = Queue(op.dst) if op.dst is not None else None
        old, queue = self._get(txn, op.qid)
        if expected is not None and queue not in expected:
            raise WrongQueue(op.qid, queue, expected)
        new = old.replace(**changes) if changes else old
        for index, fields in op.rcpt.items():
            new = new.with_recipient(index, **fields)
        new_queue = target or queue
        txn.put(op.qid.encode(), records.encode(new, new_queue), db=self._envelopes)
        if new_queue is not queue or (queue is Queue.DEFERRED
                                      and new.next_attempt != old.next_attempt):
            self._unlink(txn, old, queue)
            self._link(txn, new, new_queue)
        return new

    def _relocate(self, txn: lmdb.Transaction, qid: str, expected: frozenset[Queue] | None,
                  target: Queue, strict: bool) -> tuple[Queue, Envelope] | None:
        """Move one entry inside txn; the queue it was in and its envelope,
        or None when it was skipped (missing, elsewhere, unreadable) and
        not strict."""
        try:
            value = self._raw(txn, qid)
            env, queue = records.decode(qid, value)
        except (NoSuchEntry, records.CorruptRecord):
            if strict:
                raise
            return None
        if expected is not None and queue not in expected:
            if strict:
                raise WrongQueue(qid, queue, expected)
            return None
        if queue is not target:
            txn.put(qid.encode(), records.requeue(value, target), db=self._envelopes)
            self._unlink(txn, env, queue)
            self._link(txn, env, target)
        return queue, env

    def _drop(self, txn: lmdb.Transaction, qid: str, expected: frozenset[Queue] | None,
              strict: bool) -> bool:
        """Delete one entry inside txn; False when it was skipped (missing
        or elsewhere) and not strict. Unreadable entries are deleted too:
        postsuper -d must reach them."""
        try:
            value = self._raw(txn, qid)
            queue = records.decode_queue(value)
            # Only the due index needs more of the envelope than its queue.
            due = (records.decode(qid, value)[0].next_attempt if queue is Queue.DEFERRED
                   else 0.0)
        except NoSuchEntry:
            if strict:
                raise
            return False
        except records.CorruptRecord:
            if expected is not None and not self._in_queues(txn, qid, expected):
                if strict:
                    raise
                return False
            self._unlink_raw(txn, qid)
        else:
            if expected is not None and queue not in expected:
                if strict:
                    raise WrongQueue(qid, queue, expected)
                return False
            self._unlink_key(txn, qid, queue, due)
        txn.delete(qid.encode(), db=self._envelopes)
        txn.delete(qid.encode(), db=self._content)
        return True

    def move(self, qid: str, src: QueueSpec, dst: Queue | str) -> Queue:
        """move - move an entry from src (a queue, several, or None for any)
        to dst; the queue it was in. WrongQueue when src does not hold it."""
        expected, target = _queues(src), Queue(dst)
        return self._write(
            lambda txn: self._relocate(txn, qid, expected, target, True)[0], 4096)

    def move_many(self, qids: Iterable[str], src: QueueSpec, dst: Queue | str) -> list[str]:
        """move_many - move the entries that are in src (None: any queue) to
        dst, in one transaction; the IDs moved. Entries that are gone, in
        another queue, or unreadable are skipped (qmgr's incoming -> active
        batches; postsuper -h/-H ALL)."""
        expected, target, qids = _queues(src), Queue(dst), list(qids)

        return self._write(lambda txn: [e.queue_id for e in self._move_in(
            txn, Move(tuple(qids), expected, target))], 4096 * max(1, len(qids)))

    def _move_in(self, txn: lmdb.Transaction, op: Move) -> list[Envelope]:
        """The envelopes of the entries op moved (not those already in dst)."""
        expected, target = _queues(op.src), Queue(op.dst)
        out = []
        for qid in op.qids:
            found = self._relocate(txn, qid, expected, target, False)
            if found is not None and found[0] is not target:
                out.append(found[1])
        return out

    def _admit_in(self, txn: lmdb.Transaction, op: Admit) -> Admitted:
        src, dst = Queue(op.src), Queue(op.dst)
        qids = (self._due_in(txn, op.due, op.limit) if src is Queue.DEFERRED
                else self._batch_in(txn, src, None, op.limit))
        moved: list[Envelope] = []
        corrupt: list[tuple[str, str]] = []
        budget, stopped = op.budget, False
        for qid in qids:
            try:
                value = self._raw(txn, qid)
                env, queue = records.decode(qid, value)
            except NoSuchEntry:
                continue                  # an index key without its record
            except records.CorruptRecord as e:
                self._quarantine_in(txn, qid)
                corrupt.append((qid, str(e)))
                continue
            if queue is not src:
                continue
            n = len(env.pending)
            if n > budget and (moved or not op.first_free):
                stopped = True
                break
            if src is not dst:
                txn.put(qid.encode(), records.requeue(value, dst), db=self._envelopes)
                self._unlink(txn, env, src)
                self._link(txn, env, dst)
            moved.append(env)
            budget -= n
        return Admitted(tuple(moved), tuple(corrupt), stopped, len(qids) >= op.limit)

    def remove(self, qid: str, *, src: QueueSpec = None,
               notices: Iterable[tuple[Envelope, bytes]] = ()) -> list[str]:
        """remove - delete an entry, and in the same transaction create the
        notices (bounces, DSNs) it leaves behind in the incoming queue, so
        an entry never goes without its notice (DESIGN.md contract 2).
        Returns the notices' queue IDs. NoSuchEntry, or WrongQueue when src
        does not hold it."""
        op = Remove(qid, src, tuple(notices))
        return self._write(lambda txn: self._remove_in(txn, op), op.size)

    def _remove_in(self, txn: lmdb.Transaction, op: Remove) -> list[str]:
        self._drop(txn, op.qid, _queues(op.src), True)
        return [self._insert(txn, e, c, Queue.INCOMING) for e, c in op.notices]

    def apply_many(self, ops: Iterable[Update | Remove | Move | Admit]) -> list[Any]:
        """apply_many - several update(), remove() and move_many() calls in
        one transaction, one fsync (qmgr's group commit); each op's outcome
        in order: what update() or remove() would return, or the QueueError
        it would raise; for a Move, the envelopes of the entries it moved
        (move_many's rules: the others are skipped); for an Admit, an
        Admitted. Each op runs in its own nested transaction, so one
        that fails (NoSuchEntry, WrongQueue, a duplicate notice ID) leaves
        no trace and does not fail the others. A failure of the commit
        itself (QueueFull, a write error) raises, with nothing changed."""
        ops = list(ops)

        def fn(txn: lmdb.Transaction) -> list[Any]:
            out: list[Any] = []
            for op in ops:
                try:
                    with self._env.begin(write=True, parent=txn) as child:
                        out.append(self._update_in(child, op) if isinstance(op, Update)
                                   else self._move_in(child, op) if isinstance(op, Move)
                                   else self._admit_in(child, op) if isinstance(op, Admit)
                                   else self._remove_in(child, op))
                except QueueError as e:
                    out.append(e)
            return out
        return self._write(fn, sum(op.size for op in ops) + 4096)

    def remove_many(self, qids: Iterable[str], src: QueueSpec = None) -> list[str]:
        """remove_many - delete the entries that are in src (None: any
        queue) in one transaction; the IDs removed. Missing IDs are skipped
        (postsuper -d)."""
        expected, qids = _queues(src), list(qids)
        return self._write(
            lambda txn: [q for q in qids if self._drop(txn, q, expected, False)],
            4096 * max(1, len(qids)))

    def _in_queues(self, txn: lmdb.Transaction, qid: str, queues: frozenset[Queue]) -> bool:
        return any(txn.get(schema.queue_key(q, qid), db=self._queue) is not None
                   for q in queues)

    def quarantine(self, qid: str) -> None:
        """quarantine - put an entry whose record cannot be read (load()
        raised CorruptRecord) in the corrupt queue, out of qmgr's way,
        keeping its bytes for inspection. Readable entries are simply
        moved there."""
        self._write(lambda txn: self._quarantine_in(txn, qid), 4096)

    def _quarantine_in(self, txn: lmdb.Transaction, qid: str) -> None:
        value = self._raw(txn, qid)
        try:
            env, queue = records.decode(qid, value)
        except records.CorruptRecord:
            self._unlink_raw(txn, qid)
            txn.put(schema.queue_key(Queue.CORRUPT, qid), b"", db=self._queue)
            self._count(txn, Queue.CORRUPT, +1)
            return
        if queue is not Queue.CORRUPT:
            txn.put(qid.encode(), records.requeue(value, Queue.CORRUPT), db=self._envelopes)
            self._unlink(txn, env, queue)
            self._link(txn, env, Queue.CORRUPT)

    # -- scans --------------------------------------------------------------

    def _batch(self, queue: Queue, after: str | None, limit: int) -> list[str]:
        return self._read(lambda txn: self._batch_in(txn, queue, after, limit))

    def _batch_in(self, txn: lmdb.Transaction, queue: Queue, after: str | None,
                  limit: int) -> list[str]:
        prefix = schema.queue_prefix(queue)
        start = prefix if after is None else schema.queue_key(queue, after) + b"\0"
        cut = len(prefix)
        out: list[str] = []
        cur = txn.cursor(db=self._queue)
        if not cur.set_range(start):
            return out
        for key in cur.iternext(values=False):
            if not key.startswith(prefix) or len(out) >= limit:
                break
            out.append(key[cut:].decode())
        return out

    def list(self, queue: Queue | str, *, batch: int = SCAN_BATCH) -> Iterator[str]:
        """list - the IDs of the entries in queue, oldest first, read in
        batches, each in its own short read transaction. An entry moved
        during the scan may be missed or seen in its new queue too."""
        q = Queue(queue)
        after = None
        while True:
            qids = self._batch(q, after, batch)
            yield from qids
            if len(qids) < batch:
                return
            after = qids[-1]

    def due(self, before: float, limit: int = SCAN_BATCH) -> list[str]:
        """due - up to limit deferred entries whose next attempt is at or
        before `before`, soonest first."""
        return self._read(lambda txn: self._due_in(txn, before, limit))

    def _due_in(self, txn: lmdb.Transaction, before: float, limit: int) -> list[str]:
        bound = schema.due_bound(before)
        out: list[str] = []
        for key in txn.cursor(db=self._due).iternext(values=False):
            if key >= bound or len(out) >= limit:
                break
            out.append(schema.due_qid(key))
        return out

    def next_due(self) -> float | None:
        """next_due - the earliest next attempt in the deferred queue."""
        def fn(txn: lmdb.Transaction) -> float | None:
            cur = txn.cursor(db=self._due)
            return schema.due_time(cur.key()) if cur.first() else None
        return self._read(fn)

    def counts(self) -> dict[Queue, int]:
        """counts - the number of entries in each queue."""
        def fn(txn: lmdb.Transaction) -> dict[Queue, int]:
            return {q: schema.unpack_count(txn.get(schema.count_key(q), db=self._meta))
                    for q in Queue}
        return self._read(fn)

    def scan_all(self, queues: Iterable[Queue | str] = (
            Queue.ACTIVE, Queue.INCOMING, Queue.DEFERRED, Queue.HOLD),
            *, batch: int = SCAN_BATCH,
            on_corrupt: Callable[[str, records.CorruptRecord], None] | None = None,
            ) -> Iterator[tuple[Envelope, Queue]]:
        """scan_all - every entry's envelope, queue by queue (mailq's order
        by default), oldest first within a queue, in batched reads. An
        unreadable record raises CorruptRecord, or, when on_corrupt is
        given, is passed to it with its queue ID and skipped (as showq
        warns and goes on)."""
        for queue in map(Queue, queues):
            after = None
            while True:
                qids = self._batch(queue, after, batch)

                def fn(txn: lmdb.Transaction, qids: list[str] = qids
                       ) -> list[tuple[Envelope, Queue]]:
                    out = []
                    for qid in qids:
                        value = txn.get(qid.encode(), db=self._envelopes)
                        if value is None:
                            continue           # removed since the batch was read
                        try:
                            env, now_in = records.decode(qid, value)
                        except records.CorruptRecord as e:
                            if on_corrupt is None:
                                raise
                            on_corrupt(qid, e)
                            continue
                        if now_in is queue:    # else moved: seen in its new queue
                            out.append((env, now_in))
                    return out
                yield from self._read(fn)
                if len(qids) < batch:
                    break
                after = qids[-1]
