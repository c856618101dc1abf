"""fd_pass - hand a client connection to another process (master.cf type "pass").

SYNOPSIS
    ok = await send_connection(path, client_sock, timeout)     # postscreen
    stream = await receive_connection(channel, timeout)        # the pass service (smtpd)

DESCRIPTION
    Postfix's pass_connect() / LOCAL_SEND_FD() and pass_accept(): a service
    of type "pass" listens on $queue_directory/private/NAME like a unix
    service, but what arrives there is not a conversation: each connection
    carries exactly one descriptor, a client's TCP connection, sent with
    SCM_RIGHTS (socket.send_fds) beside one byte of data (Linux will not
    carry ancillary data without some). The receiver takes the descriptor,
    closes the channel, and serves the client as if it had accepted it
    itself: the peer address is the passed socket's getpeername().

    When a proxy before postscreen named the client (postscreen_upstream_
    proxy_protocol), the socket's own addresses are the proxy's: the
    message then carries the endpoints the proxy named instead of the one
    byte, as Postfix's postscreen passes them to smtpd as attributes, and
    the receiver's stream has them as .peer and .local.

    The sender waits for the receiver to close the channel (Postfix's
    postscreen waits the same way, psc_send_socket_close_event) before it
    closes its own copy of the client socket, so that the hand-off is known
    to be complete and a receiver that never takes the descriptor (a
    service at its limit, or not running) is noticed within timeout. A
    channel connection stays in the pass service's listen backlog while
    every process of it is busy: that is Postfix's "post-queue", which
    postscreen bounds with postscreen_post_queue_limit.

GUARANTEES
    receive_connection() never leaks a descriptor: anything received beyond
    the first, or with a malformed message, is closed.
"""

from __future__ import annotations

import os
import socket

import trio

from mailsys.runtime.fast_stream import FastStream, open_unix

# One byte of ordinary data carries the ancillary descriptor; or, with
# the client's endpoints, ENDPOINTS_MARK and "addr port laddr lport".
PASS_BYTE = b"P"
ENDPOINTS_MARK = b"E"
# Ordinary data read with the descriptor: room for two IPv6 endpoints.
MESSAGE_MAX = 256
# At most this many descriptors are taken off one message (one is expected;
# the rest are closed).
MAX_FDS = 4


class PassError(Exception):
    """A hand-off that did not complete (the text says why, for the log)."""


Endpoint = tuple[str, int]


async def send_connection(path: str | os.PathLike, client: socket.socket,
                          timeout: float, endpoints: tuple[Endpoint, Endpoint] | None = None,
                          ) -> None:
    """Pass client's descriptor to the pass service at path; PassError if
    that does not complete within timeout. endpoints: the client's and this
    end's (address, port) when they are not the socket's own. The caller
    still owns client and closes it afterwards (the receiver has its own
    copy then)."""
    message = PASS_BYTE
    if endpoints is not None:
        (addr, port), (laddr, lport) = endpoints
        message = ENDPOINTS_MARK + f"{addr} {port} {laddr} {lport}".encode("ascii")
    with trio.move_on_after(timeout) as scope:
        try:
            channel = await open_unix(path)
        except OSError as e:
            raise PassError(f"cannot connect to service {path}: {e.strerror}") from None
        try:
            sock = channel.socket
            while True:
                try:
                    socket.send_fds(sock, [message], [client.fileno()])
                    break
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(sock)
                except OSError as e:
                    raise PassError(f"cannot pass connection to service {path}: "
                                    f"{e.strerror}") from None
            # The receiver closes the channel once it holds the descriptor.
            try:
                while await channel.receive_some(64):
                    pass
            except trio.BrokenResourceError:
                pass
        finally:
            channel.close()
    if scope.cancelled_caught:
        raise PassError(f"timeout passing connection to service {path}")


async def receive_connection(channel: FastStream, timeout: float) -> FastStream:
    """The client connection passed over channel (which is closed here), as
    a FastStream; PassError if none arrives within timeout."""
    sock = channel.socket
    fds: list[int] = []
    try:
        with trio.move_on_after(timeout):
            while True:
                try:
                    data, fds, _flags, _addr = socket.recv_fds(sock, MESSAGE_MAX, MAX_FDS)
                    break
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(sock)
                except OSError as e:
                    raise PassError(f"receive connection: {e.strerror}") from None
        if not fds:
            raise PassError("no connection was passed")
        for extra in fds[1:]:
            os.close(extra)
        client = socket.socket(fileno=fds[0])
        fds = []
        if client.type != socket.SOCK_STREAM:
            client.close()
            raise PassError("the passed descriptor is not a stream socket")
    finally:
        for fd in fds:
            os.close(fd)
        channel.close()
    endpoints = _endpoints(data)
    if endpoints is not None:
        return FastStream(client, peer=endpoints[0], local=endpoints[1])
    try:
        peer = client.getpeername()
    except OSError:
        peer = None
    return FastStream(client, peer=peer)


def _endpoints(data: bytes) -> tuple[Endpoint, Endpoint] | None:
    """The endpoints a message names; None for the plain byte (or a
    malformed message: the socket's own addresses are the truth then)."""
    if not data.startswith(ENDPOINTS_MARK):
        return None
    try:
        addr, port, laddr, lport = data[1:].decode("ascii").split()
        return (addr, int(port)), (laddr, int(lport))
    except ValueError:
        return None
