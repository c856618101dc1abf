"""qmgr - the queue manager's library: the scheduler and its rules.

The pure modules hold every decision qmgr makes and are tested with a fake
clock: settings.py (the main.cf values qmgr reads), backoff.py (retry times
and queue lifetimes), schedule.py (per-destination queues, recipient limits,
concurrency windows, rate delays, round-robin between destinations, dead
destinations), preempt.py (which message a busy destination serves next:
job preemption by delivery slots), incore.py (the recipients held in memory per transport, and
when a big message reads its next batch), results.py (delivery results and expiry as store changes).
manager.py is the trio side that drives them against the queue store, the
delivery agents and the bounce service, and lock.py keeps it alone on its
queue; services/qmgr.py runs it on the service skeleton (Postfix src/qmgr/,
the "nqmgr" scheduler simplified).
"""
