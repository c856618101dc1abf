"""delivery - what the delivery agents (services/smtp, services/local) share.

report.py       the per-recipient result and its Postfix "status" log line,
                with the delay= and delays=a/b/c/d bookkeeping
errors.py       DeliveryError and Postfix's split of system errors into
                deferrals and bounces (mbox_dsn)
maildir.py      writing one message into a Maildir, durably
mbox_format.py  one message as an mbox entry: From_ line, >From quoting (pure)
mbox_lock.py    dotlock, flock and fcntl locking of an mbox file
mbox.py         appending one entry to an mbox file, durably, or not at all
mailbox.py      which mailbox (Maildir or mbox) a local or virtual recipient's
                mail goes to
local.py        the local agent's work for one request (loop check, size
                limit, Maildir or mbox write), synchronous: the service runs
                it in a thread
"""
