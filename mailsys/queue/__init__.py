"""queue - the durable mail queue (LMDB). See store.py for the contract."""

from mailsys.queue.records import CorruptRecord
from mailsys.queue.schema import SCHEMA_VERSION, Queue
from mailsys.queue.store import Admit, Admitted, Move, QueueStore, Remove, Update, WrongQueue

__all__ = ["Admit", "Admitted", "CorruptRecord", "Move", "Queue", "QueueStore", "Remove", "SCHEMA_VERSION", "Update", "WrongQueue"]
