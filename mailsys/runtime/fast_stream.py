"""fast_stream - trio streams straight on non-blocking sockets, for the hot paths.

SYNOPSIS
    from mailsys.runtime.fast_stream import FastListener, FastStream, open_unix

    listener = FastListener(sock)              # a listening stdlib socket; now owned
    stream = await listener.accept()           # a FastStream
    stream = await open_unix(path)             # client end of a Unix stream socket
    stream = FastStream.from_trio_socket(tsock)    # after trio's own connect()

    data = await stream.receive_some(65536)    # b"" at end of stream
    await stream.send_all(b"250 2.0.0 Ok\\r\\n")
    await stream.send_all_parts([header, content])   # one sendmsg(), nothing joined
    await stream.send_all_parts(parts, fds=[fd, ...])  # Unix: descriptors ride along
    data = await stream.receive_some_fds(65536, fds)   # Unix: descriptors into fds
    await stream.send_eof()
    await stream.aclose()                      # or stream.close(), synchronous
    stream.peer                                # the client's address, from accept()
    stream.socket.getpeername()

DESCRIPTION
    trio.SocketStream makes every send and receive look as if it blocked:
    an operation the kernel completes at once is followed by a full pass of
    the scheduler (trio's _try_sync and cancel_shielded_checkpoint), inside
    a conflict detector and a contextlib error translator. An SMTP message
    is about fifteen such operations on the client connection and a few
    more on the IPC channels, so that machinery was a large part of
    smtpd's own CPU time.

    FastStream implements trio.abc.HalfCloseableStream (and FastListener
    trio.abc.Listener) directly on a non-blocking stdlib socket: the system
    call is tried first, and only on EAGAIN does the task wait, with
    trio.lowlevel.wait_readable / wait_writable, and try again.

    .socket is the stdlib socket (getpeername, getsockname, family,
    setsockopt). Its close() tells trio first (notify_closing), so a task
    waiting on it wakes with trio.ClosedResourceError, as with trio's own
    sockets; closing it directly (ipc_io and the smtp client do, to close
    under cancellation) is therefore safe.

    On a Unix socket, send_all_parts() can carry descriptors (SCM_RIGHTS)
    with the first bytes it writes, and receive_some_fds() appends those
    that arrive to a list the caller owns (close-on-exec set): the
    smtpd->cleanup channel hands milter connections over this way.

GUARANTEES
    Kept from trio.SocketStream, which the callers and their tests rely on:

      - every operation is a cancel point: it checks for cancellation
        before any byte moves, and every wait can be cancelled, so callers'
        move_on_after / fail_after fire as before;
      - fairness: after YIELD_EVERY operations in a row that completed
        without waiting, the next one on that stream (or listener) starts
        with a full checkpoint, a schedule point (a wait always is one). A
        client that floods bytes cannot starve the other tasks, and a
        deadline, which the scheduler turns into a cancellation only when
        it runs, fires at most that many operations late;
      - errors: a failing system call raises trio.BrokenResourceError
        (ECONNRESET, EPIPE, ...; __cause__ is the OSError), a closed
        socket trio.ClosedResourceError, and so does send_all() after
        send_eof(). EINTR is retried by Python itself (PEP 475). Two tasks
        sending at once get trio.BusyResourceError, as do two tasks waiting
        to receive;
      - aclose() and close() notify trio before closing, so waiters are
        woken; both are idempotent;
      - TCP sockets get trio's options: TCP_NODELAY (replies are written
        whole, and Nagle would hold the next one for the peer's ACK) and
        TCP_NOTSENT_LOWAT 16 KiB. On Linux a listener gets them itself and
        its connections inherit them.
"""

from __future__ import annotations

import array
import errno
import os
import socket
import sys
from collections.abc import Sequence

import trio
from trio.lowlevel import (checkpoint, checkpoint_if_cancelled, notify_closing, wait_readable,
                           wait_writable)

__all__ = ["FastStream", "FastListener", "open_unix", "YIELD_EVERY", "DEFAULT_RECEIVE_SIZE"]

# Operations in a row that may complete on one stream without a schedule
# point. A message is about fifteen operations per connection; sixteen keeps
# a busy session from ever costing a scheduler pass of its own, while a
# flooding peer still lets the others run every sixteen reads.
YIELD_EVERY = 16

DEFAULT_RECEIVE_SIZE = 65536          # trio's default for receive_some()

# trio's TCP_NOTSENT_LOWAT: the kernel holds at most this much unsent data,
# so "writable" means "the peer is reading" (python-trio/trio#72).
NOTSENT_LOWAT = 16384
_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", None)

# sendmsg() takes at most this many buffers at once (POSIX IOV_MAX).
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16

# At most this many descriptors are taken off one read (receive_some_fds);
# the kernel closes any beyond.
MAX_FDS = 64
_FDS_SPACE = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)

# EBADF: the socket was closed under us; ENOTSOCK: the same, elsewhere.
_CLOSED_ERRNOS = frozenset({errno.EBADF, errno.ENOTSOCK})

# What accept() skips and tries again, as trio.SocketListener does: the
# client gave up or was refused between the SYN and our accept().
_IGNORABLE_ACCEPT_ERRNOS = frozenset(
    getattr(errno, name) for name in (
        "EPERM", "ECONNABORTED", "EPROTO", "ENETDOWN", "ENOPROTOOPT", "EHOSTDOWN", "ENONET",
        "EHOSTUNREACH", "EOPNOTSUPP", "ENETUNREACH", "ENOSR", "ESOCKTNOSUPPORT",
        "EPROTONOSUPPORT", "ETIMEDOUT", "ECONNRESET")
    if hasattr(errno, name))


# Linux gives an accepted TCP socket the listener's TCP_NODELAY and
# TCP_NOTSENT_LOWAT, so a listener that has them saves two system calls
# per connection.
_ACCEPT_INHERITS_OPTIONS = sys.platform.startswith("linux")


def _set_tcp_options(sock: socket.socket) -> bool:
    """trio's options on a TCP socket; False when the socket refused them.

    As trio: an option the socket refuses (a connection already reset) is
    no reason to fail the accept() that made it."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if _NOTSENT_LOWAT is not None:
            sock.setsockopt(socket.IPPROTO_TCP, _NOTSENT_LOWAT, NOTSENT_LOWAT)
    except OSError:
        return False
    return True


class _Socket(socket.socket):
    """A stdlib socket whose close() wakes trio tasks waiting on it first."""

    __slots__ = ()

    def close(self) -> None:
        if self.fileno() != -1:
            try:
                notify_closing(self)
            except RuntimeError:        # outside trio.run(): nobody can be waiting
                pass
        super().close()


def _stream_error(exc: OSError) -> Exception:
    if exc.errno in _CLOSED_ERRNOS:
        return trio.ClosedResourceError("this socket was already closed")
    return trio.BrokenResourceError(f"socket connection broken: {exc}")


def _recv_fds(sock: socket.socket, max_bytes: int, fds: list[int]) -> bytes:
    """recv(), the descriptors that came with the bytes appended to fds."""
    data, anc, _flags, _addr = sock.recvmsg(max_bytes, _FDS_SPACE, socket.MSG_CMSG_CLOEXEC)
    for level, kind, raw in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(array.array("i", raw[:len(raw) - len(raw) % 4]))
    return data


class _Paced:
    """The checkpoint at the start of every operation (see GUARANTEES)."""

    __slots__ = ("_credit",)

    async def _enter(self) -> None:
        if self._credit:
            self._credit -= 1
            await checkpoint_if_cancelled()
        else:
            self._credit = YIELD_EVERY
            await checkpoint()


class FastStream(_Paced, trio.abc.HalfCloseableStream):
    """A connected stream socket as a trio stream; see the module docstring."""

    __slots__ = ("socket", "peer", "local", "_sending", "_eof_sent")

    def __init__(self, sock: socket.socket, *, peer: object = None, local: object = None,
                 options_set: bool = False) -> None:
        """Own sock, a connected stream socket (a plain one is detached into a
        new object). peer: the address accept() gave, if any (.peer, without
        a getpeername()); local: this end's address when it is not the
        socket's own (.local; a client a proxy before postscreen connected);
        options_set: the TCP options are there already."""
        if sock.type != socket.SOCK_STREAM:
            raise ValueError("FastStream requires a SOCK_STREAM socket")
        if type(sock) is not _Socket:
            sock = _Socket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        sock.setblocking(False)
        if not options_set and sock.family in (socket.AF_INET, socket.AF_INET6):
            _set_tcp_options(sock)
        self.socket = sock
        self.peer = peer
        self.local = local
        self._credit = YIELD_EVERY
        self._sending = False
        self._eof_sent = False

    @classmethod
    def from_trio_socket(cls, tsock: trio.socket.SocketType) -> FastStream:
        """Take over a connected trio socket (trio's connect() did the waiting)."""
        family, type_, proto = tsock.family, tsock.type, tsock.proto
        return cls(_Socket(family, type_, proto, fileno=tsock.detach()))

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is None:
            max_bytes = DEFAULT_RECEIVE_SIZE
        elif max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        return await self._receive(max_bytes, None)

    async def receive_some_fds(self, max_bytes: int, fds: list[int]) -> bytes:
        """receive_some() on a Unix socket, the descriptors that come with
        the bytes appended to fds (at most MAX_FDS a read; the caller owns
        and closes them)."""
        return await self._receive(max_bytes, fds)

    async def _receive(self, max_bytes: int, fds: list[int] | None) -> bytes:
        await self._enter()
        sock = self.socket
        while True:
            try:
                return sock.recv(max_bytes) if fds is None else _recv_fds(sock, max_bytes, fds)
            except BlockingIOError:
                pass
            except OSError as e:
                raise _stream_error(e) from (None if e.errno in _CLOSED_ERRNOS else e)
            await wait_readable(sock)
            self._credit = YIELD_EVERY

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._begin_send()
        try:
            await self._enter()
            sock = self.socket
            try:
                if not data:
                    if sock.fileno() == -1:
                        raise trio.ClosedResourceError("socket was already closed")
                    return
                try:
                    sent = sock.send(data)
                except BlockingIOError:
                    sent = 0
                if sent != len(data):
                    # A partial write: the socket buffer is full. Wait for
                    # room and send the rest, uncopied.
                    await self._send_rest([memoryview(data).cast("B")], sent)
            except OSError as e:
                raise _stream_error(e) from (None if e.errno in _CLOSED_ERRNOS else e)
        finally:
            self._sending = False

    async def send_all_parts(self, parts: Sequence[bytes | bytearray | memoryview],
                             fds: Sequence[int] = ()) -> None:
        """send_all(b"".join(parts)) without the join: the parts go as one
        sendmsg() (gather I/O), and what the kernel did not take is sent as
        room comes, uncopied. For a frame whose large content would
        otherwise be copied once more only to be written. fds (a Unix
        socket): descriptors sent with the first bytes; the caller keeps
        its own."""
        self._begin_send()
        try:
            await self._enter()
            views = [memoryview(p).cast("B") for p in parts if len(p)]
            try:
                if not views:
                    if self.socket.fileno() == -1:
                        raise trio.ClosedResourceError("socket was already closed")
                    return
                anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] \
                    if fds else []
                while True:
                    try:
                        sent = self.socket.sendmsg(views[:_IOV_MAX], anc)
                        break
                    except BlockingIOError:
                        if not anc:
                            sent = 0
                            break
                    # The descriptors must go with a byte that is sent.
                    await wait_writable(self.socket)
                await self._send_rest(views, sent)
            except OSError as e:
                raise _stream_error(e) from (None if e.errno in _CLOSED_ERRNOS else e)
        finally:
            self._sending = False

    def _begin_send(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is currently sending data on this stream")
        if self._eof_sent:
            raise trio.ClosedResourceError("can't send data after sending EOF")
        self._sending = True

    async def _send_rest(self, views: list[memoryview], sent: int) -> None:
        """Drop the `sent` bytes the first try took off the front of views, then
        send the rest as room comes (halfway through a view if need be)."""
        sock = self.socket
        while True:
            while sent:
                first = views[0].nbytes
                if sent < first:
                    views[0] = views[0][sent:]
                    break
                sent -= first
                del views[0]
            if not views:
                return
            await wait_writable(sock)
            self._credit = YIELD_EVERY
            try:
                sent = sock.sendmsg(views[:_IOV_MAX])
            except BlockingIOError:
                sent = 0

    async def wait_send_all_might_not_block(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is currently sending data on this stream")
        self._sending = True
        try:
            if self.socket.fileno() == -1:
                raise trio.ClosedResourceError("socket was already closed")
            await wait_writable(self.socket)
        finally:
            self._sending = False

    async def send_eof(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is currently sending data on this stream")
        self._sending = True
        try:
            await checkpoint()
            if self._eof_sent:
                return
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError as e:
                raise _stream_error(e) from (None if e.errno in _CLOSED_ERRNOS else e)
            self._eof_sent = True
        finally:
            self._sending = False

    def close(self) -> None:
        """Close at once (waiters get ClosedResourceError); idempotent."""
        self.socket.close()

    async def aclose(self) -> None:
        self.socket.close()
        await checkpoint()


class FastListener(_Paced, trio.abc.Listener[FastStream]):
    """A listening stream socket whose accept() returns FastStreams; owns the socket."""

    __slots__ = ("socket", "_options_inherited")

    def __init__(self, sock: socket.socket) -> None:
        if sock.type != socket.SOCK_STREAM:
            raise ValueError("FastListener requires a SOCK_STREAM socket")
        sock.setblocking(False)
        self.socket = sock
        self._options_inherited = (_ACCEPT_INHERITS_OPTIONS
                                   and sock.family in (socket.AF_INET, socket.AF_INET6)
                                   and _set_tcp_options(sock))
        self._credit = YIELD_EVERY

    async def accept(self) -> FastStream:
        """The next connection; errors as trio.SocketListener.accept()."""
        await self._enter()
        sock = self.socket
        while True:
            try:
                # socket.accept() without the plain socket object it would
                # make: the connection goes straight into a _Socket.
                fd, addr = sock._accept()          # type: ignore[attr-defined]
            except BlockingIOError:
                await wait_readable(sock)
                self._credit = YIELD_EVERY
                continue
            except OSError as e:
                if e.errno in _CLOSED_ERRNOS:
                    raise trio.ClosedResourceError("this listener was already closed") from None
                if e.errno in _IGNORABLE_ACCEPT_ERRNOS:
                    continue
                raise
            return FastStream(_Socket(sock.family, sock.type, sock.proto, fileno=fd),
                              peer=addr, options_set=self._options_inherited)

    async def aclose(self) -> None:
        sock = self.socket
        if sock.fileno() != -1:
            notify_closing(sock)
            sock.close()
        await checkpoint()


async def open_unix(path: str | os.PathLike) -> FastStream:
    """Connect to a Unix stream socket; OSError when nobody listens there.

    The connect itself is trio's, as in trio.open_unix_socket()."""
    tsock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await tsock.connect(os.fspath(path))
    except BaseException:
        tsock.close()
        raise
    return FastStream.from_trio_socket(tsock)
