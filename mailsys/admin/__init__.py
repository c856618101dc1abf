"""admin - what the queue tools (postqueue, postsuper, postcat, qshape) share.

showq.py, qshape.py and postcat.py are pure renderings of queue entries
(envelopes and content in, text out); importing them loads no lmdb,
socket or trio.
access.py is the one impure module: it finds the queue from main.cf, opens
the store, tells whether the master runs and pokes qmgr.
"""
