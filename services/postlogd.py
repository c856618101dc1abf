"""postlogd - the one writer of mail.log and mail.json (Postfix postlogd(8)).

SYNOPSIS
    master.cf:  postlog   unix-dgram n  -  n  -  1  postlogd

DESCRIPTION
    Every mailsys process sends its log events as datagrams to
    $queue_directory/private/postlog, the socket the master binds for this
    service, one event per line: a process sends the events of a burst
    together, and those it held while the socket's queue was full
    (mailsys.maillog.writer). postlogd hands each datagram to
    mailsys.maillog's LogSink, which renders the Postfix line and the JSON
    line of every event in it and appends them with one write per file, so
    lines from different processes never interleave or tear. A line that
    is not a log event becomes a warning line; the rest of its datagram is
    written as usual.

    postlogd holds the datagrams it receives and writes them when its
    scheduler is about to wait for more (a trio Instrument), so that the
    datagrams of one wake-up share one write per file; a SIGHUP and the
    exit write what is held first.

    Solitary (maxproc must be 1): two writers would interleave again.
    The sink reopens the files by itself when logrotate renames them; SIGHUP
    (sent by the master on a reload that keeps this process) reopens at once.
    On stop the skeleton drains the datagrams already queued, so the master's
    last lines are written.
"""

from __future__ import annotations

import trio

from mailsys.maillog.sink import LogSink
from mailsys.maillog.writer import end_of_pass_hook
from mailsys.runtime import skeleton


def open_sink(ctx: skeleton.ServiceContext) -> LogSink:
    sink = LogSink(ctx.config)
    trio.lowlevel.add_instrument(end_of_pass_hook(trio)(sink))
    return sink


async def record(datagram: bytes, ctx: skeleton.ServiceContext) -> None:
    ctx.state.hold(datagram)


def reopen(ctx: skeleton.ServiceContext) -> None:
    ctx.state.flush()
    ctx.state.reopen()


def close(ctx: skeleton.ServiceContext) -> None:
    if isinstance(ctx.state, LogSink):
        ctx.state.close()


def main() -> None:
    skeleton.run("postlogd", record, mode="dgram", solitary=True,
                 post_init=open_sink, on_reload=reopen, on_exit=close)


if __name__ == "__main__":
    main()
