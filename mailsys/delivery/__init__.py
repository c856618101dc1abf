"""delivery - what the delivery agents (services/smtp, services/local) share.

report.py   the per-recipient result and its Postfix "status" log line,
            with the delay= and delays=a/b/c/d bookkeeping
maildir.py  writing one message into a Maildir, durably
mailbox.py  which Maildir a local or virtual recipient's mail goes to
local.py    the local agent's work for one request (loop check, size limit,
            Maildir write), synchronous: the service runs it in a thread
"""
