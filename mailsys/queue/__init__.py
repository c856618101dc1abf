"""queue - the durable mail queue (LMDB). See store.py for the contract."""

from mailsys.queue.records import CorruptRecord
from mailsys.queue.schema import SCHEMA_VERSION, Queue
from mailsys.queue.store import QueueStore, Remove, Update, WrongQueue

__all__ = ["CorruptRecord", "Queue", "QueueStore", "Remove", "SCHEMA_VERSION", "Update", "WrongQueue"]
