"""queue - the durable mail queue (LMDB). See store.py for the contract."""

from mailsys.queue.records import CorruptRecord
from mailsys.queue.schema import SCHEMA_VERSION, Queue
from mailsys.queue.store import QueueStore, WrongQueue

__all__ = ["CorruptRecord", "Queue", "QueueStore", "SCHEMA_VERSION", "WrongQueue"]
