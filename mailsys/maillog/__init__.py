"""mailsys.maillog - one event stream, two renderings.

Every process logs through structlog, configured once by
mailsys.maillog.setup.configure(). Each event goes in a datagram to postlogd
(services/postlogd.py), the single writer of mail.log and mail.json (the
events of a burst share one), or is appended directly while postlogd is
unreachable.

    event.py    LogEvent: the event as it travels; the datagram codec
    postfix.py  LogEvent -> mail.log line (Postfix's format, escaping, delays)
    jsonl.py    LogEvent -> mail.json line
    files.py    where the files are; O_APPEND writes that follow rotation
    sink.py     LogSink: decode, render, append (postlogd and the fallback)
    writer.py   Writer: the process side: datagram, pending buffer, or fallback
    setup.py    configure(): the only structlog.configure call

event, postfix and jsonl are pure: no sockets, no trio.
"""
