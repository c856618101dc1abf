"""delivery - what the delivery agents (services/smtp, services/local, services/pipe) share.

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
command.py      running a command with the message on its input, and
                Postfix's pipe_command() reading of how it ended (local's
                |command destinations and the pipe agent)
pipe_attr.py    the flags=, user=, argv= ... attributes of a pipe(8) entry
pipe_macros.py  ${recipient}, ${user}, ... in argv=, one argument per recipient
pipe_copy.py    the message as pipe(8) writes it to the command (flags B D F O R . >)
pipe.py         the pipe agent's work for one request, synchronous
"""
