"""ipc_io - typed request/reply over Unix stream sockets, with trio.

SYNOPSIS
    chan = await connect(path, protocol="cleanup", timeout=10)
    queued = await chan.call(CleanupRequest(...), expect=Queued, timeout=10)
    await chan.aclose()

    reply = await call(path, AnvilQuery(...), expect=AnvilCounts, timeout=5)

    pool = ChannelPool(path, "cleanup", size=8)
    queued = await pool.call(request, expect=Queued, timeout=10)
    queued = await pool.call_made(lambda: request, expect=Queued, timeout=10)
    queued = await pool.call_made(make, expect=Queued, timeout=10, fds=[fd])   # SCM_RIGHTS
    async with pool.channel() as chan: ...

    await serve(stream, handler, protocol="cleanup")       # server side, one connection
    await serve(stream, handler, protocol="cleanup", pass_fds=True)   # handler(msg, fds)
    chan = await open_channel(stream, protocol="cleanup", timeout=5)   # client on a given stream

    await send_trigger(path, names.QMGR_REQ_SCAN_INCOMING, timeout=1)
    line = TriggerLine(path); await line.send(b"I", timeout=1)   # kept-open connection

DESCRIPTION
    The I/O shell around mailsys.ipc (frames, codec, messages), as
    runtime/smtp_io.py is around mailsys.smtp. A connection goes:

        server: Hello(protocol)
        client: request          server: reply or ErrorReply
        client: request          server: reply or ErrorReply   ...

    The client checks the Hello before its first request (Postfix
    RECV_ATTR_STREQ in src/global/mail_command_client.c). A channel carries
    one request at a time; concurrent callers of one channel queue on its
    lock. A service that many tasks call at once (smtpd -> cleanup) gets a
    ChannelPool: at most ``size`` connections, each reused.

    Every call runs under the caller's deadline, covering the wait for the
    lock, the write and the reply. The request is encoded before the lock is
    taken, so a request the codec refuses (TypeError, or ProtocolError for
    a frame over max_frame) leaves the channel as it was. When a call does not finish (timeout,
    cancellation, EOF, a malformed reply) the channel can no longer tell
    which reply belongs to which request, so it closes itself; later calls
    on it raise IpcUnavailable, and a pool replaces it.

    serve() runs one server connection: Hello, then request -> handler ->
    reply until EOF. The handler is ``async def handler(msg) -> reply``.
    Expected failures are returned as an ErrorReply by the handler. A
    malformed request gets ErrorReply("protocol", ...): the connection goes
    on if the frame itself was sound, and is closed if the framing was lost.
    A handler that raises has a bug: serve() sends ErrorReply("internal",
    ...) so the client is not left waiting, then re-raises, so the service
    skeleton logs the traceback and closes this one connection while the
    others carry on.

    Descriptors: a call may send open descriptors with its request
    (fds=, SCM_RIGHTS on the Unix socket, with the request's first bytes;
    the caller keeps its own copies), as Postfix's smtpd hands its milter
    connections to cleanup. A server that takes them (serve(pass_fds=True))
    calls handler(msg, fds) with those that came with that request; the
    handler owns them. Descriptors sent to a server that does not take
    them are closed by the kernel, unseen.

    Triggers (Postfix mail_trigger.c) are raw bytes, no Hello, no reply;
    send_trigger() reports failure as False and never raises for an absent
    or refusing service: a trigger is a hint, the queue is the truth.
    A TriggerLine sends a process's triggers to one service over a
    connection it keeps: the trigger server takes the bytes as they come
    (mailsys.runtime.skeleton) and closes a connection that has been quiet
    for TRIGGER_IDLE or open for TRIGGER_LIFETIME; the line never writes
    on one that may be near either, so no trigger is written into a close.

GUARANTEES
    connect / call raise IpcUnavailable (a mailsys.errors.ServiceUnavailable)
    when the socket is missing, refuses, or hangs up before answering
    (IpcLost, a subclass, when it hangs up after the request was written);
    IpcTimeout when the deadline passes; RemoteError(code, text) for an
    ErrorReply; ProtocolError for a wrong Hello, malformed frame, or a reply
    of an unexpected type. Payload blobs are written without being joined
    to the header when they are large, and received with at most one copy
    into the frame buffer (see mailsys.ipc.frames).
"""

from __future__ import annotations

import os
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from mailsys.ipc.codec import decode, encode_parts
from mailsys.ipc.errors import IpcLost, IpcTimeout, IpcUnavailable, ProtocolError, RemoteError
from mailsys.ipc.frames import MAX_FRAME, Frame, FrameDecoder
from mailsys.ipc.messages import ErrorCode, ErrorReply, Hello
from mailsys.runtime.fast_stream import FastStream, open_unix

__all__ = ["Channel", "ChannelPool", "connect", "open_channel", "call", "serve",
           "send_trigger", "TriggerLine", "TRIGGER_LIMIT", "RECV_SIZE"]

# 256 KiB per read: more than a default Linux AF_UNIX socket buffer holds
# (net.core.wmem_default, 208 KiB), so a 100 KB message takes one or two
# reads; and still small enough to allocate per read without thought.
RECV_SIZE = 256 * 1024

# Below this a frame is joined into one write (one syscall beats a copy of a
# few KB); above it blobs are written as they are, uncopied: a joined copy
# of a large message would live as long as the write waits for room in
# the socket, in every channel at once when cleanup is busy.
JOIN_LIMIT = 16 * 1024

# How long serve() may spend telling a client about a handler bug.
_ERROR_REPLY_GRACE = 1.0

# A trigger server reads at most this many bytes at a time (Postfix reads
# one buffer of 1024 in trigger_server.c).
TRIGGER_LIMIT = 1024
# The trigger server closes a connection quiet this long, or open this long;
# a TriggerLine stops writing on one at half of either.
TRIGGER_IDLE = 1.0
TRIGGER_LIFETIME = 60.0

Handler = Callable[[Any], Awaitable[Any]]


class _FrameStream:
    """A trio stream with a FrameDecoder: whole frames in, whole messages out."""

    __slots__ = ("stream", "_max_frame", "_decoder", "_frames", "fds")

    def __init__(self, stream: trio.abc.Stream, max_frame: int, *,
                 pass_fds: bool = False) -> None:
        self.stream = stream
        self._max_frame = max_frame
        self._decoder = FrameDecoder(max_frame)
        self._frames: deque[Frame] = deque()
        # Descriptors received and not yet handed on (pass_fds only).
        self.fds: list[int] | None = [] if pass_fds else None

    async def receive_frame(self) -> Frame | None:
        """Return the next frame, or None at EOF. Raises ProtocolError."""
        while not self._frames:
            if self.fds is not None:
                data = await self.stream.receive_some_fds(RECV_SIZE, self.fds)
            else:
                data = await self.stream.receive_some(RECV_SIZE)
            if not data:
                return None
            self._frames.extend(self._decoder.feed(data))
        return self._frames.popleft()

    @property
    def partial(self) -> bool:
        return bool(self._decoder.buffered or self._frames)

    def encode(self, msg: object) -> list:
        return encode_parts(msg, max_size=self._max_frame)

    async def send(self, msg: object) -> None:
        await self.send_parts(self.encode(msg))

    async def send_parts(self, parts: list, fds: Sequence[int] = ()) -> None:
        if fds:
            await self.stream.send_all_parts(parts, fds)
        elif len(parts) == 1:
            await self.stream.send_all(parts[0])
        elif sum(map(len, parts)) <= JOIN_LIMIT:
            await self.stream.send_all(b"".join(parts))
        elif isinstance(self.stream, FastStream):
            await self.stream.send_all_parts(parts)
        else:
            for part in parts:
                await self.stream.send_all(part)


class Channel:
    """A kept-open connection to one service; one request at a time."""

    def __init__(self, stream: trio.abc.Stream, *, protocol: str, name: str = "",
                 max_frame: int = MAX_FRAME) -> None:
        self._io = _FrameStream(stream, max_frame)
        self.protocol = protocol
        self.name = name or protocol          # for error messages: the path or service
        self.calls = 0                        # completed calls
        self._lock = trio.Lock()
        self._closed = False

    @property
    def usable(self) -> bool:
        """False once the channel has closed itself or been closed."""
        return not self._closed

    async def call(self, msg: object, *, expect: type | tuple[type, ...], timeout: float) -> Any:
        """Send msg, return the reply; see the module docstring for errors."""
        return await self._call_at(msg, expect, trio.current_time() + timeout)

    async def _call_at(self, msg: object, expect: type | tuple[type, ...], deadline: float,
                       fds: Sequence[int] = (), sent: Callable[[], None] | None = None) -> Any:
        parts = self._io.encode(msg)   # a bad request fails here, leaving the channel intact
        kind = type(msg).__name__
        del msg                         # _exchange lets go of the parts once they are sent
        lock = self._lock
        with trio.move_on_at(deadline) as scope:
            # A free lock (always, for a pooled channel) is taken without
            # the scheduler pass of Lock.acquire(): fair, since trio's Lock
            # is free only while nobody waits for it, and the exchange
            # checks for cancellation and waits for the reply anyway.
            try:
                lock.acquire_nowait()
            except trio.WouldBlock:
                await lock.acquire()
            try:
                if self._closed:
                    raise IpcUnavailable(f"{self.name}: channel closed")
                done = False
                try:
                    reply = await self._exchange(parts, fds, sent)
                    done = True
                finally:
                    if not done:
                        # Whatever happened, we no longer know where the
                        # next reply starts: never reuse this stream.
                        self._close_now()
                self.calls += 1
            finally:
                lock.release()
        if scope.cancelled_caught:
            raise IpcTimeout(f"{self.name}: no reply within the time limit")
        if isinstance(reply, ErrorReply):
            raise RemoteError(reply.code, reply.text)
        if not isinstance(reply, expect):
            raise ProtocolError(f"{self.name}: unexpected reply {type(reply).__name__}"
                                f" to {kind}")
        return reply

    async def _exchange(self, parts: list, fds: Sequence[int] = (),
                        sent: Callable[[], None] | None = None) -> Any:
        try:
            await self._io.send_parts(parts, fds)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            raise IpcUnavailable(f"{self.name}: connection lost: {e}") from None
        # Sent: a big request (a message's content) need not stay in this
        # process's memory while the service works on it.
        parts.clear()
        if sent is not None:
            sent()
        try:
            return await self._receive()
        except IpcUnavailable as e:
            raise IpcLost(str(e)) from None

    async def _receive(self) -> Any:
        try:
            frame = await self._io.receive_frame()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            raise IpcUnavailable(f"{self.name}: connection lost: {e}") from None
        if frame is None:
            raise IpcUnavailable(f"{self.name}: connection closed by the service"
                                 + (" in mid-reply" if self._io.partial else ""))
        return decode(frame)

    async def _read_hello(self) -> None:
        hello = await self._receive()
        if not isinstance(hello, Hello):
            raise ProtocolError(f"{self.name}: expected a protocol announcement,"
                                f" got {type(hello).__name__}")
        if hello.protocol != self.protocol:
            raise ProtocolError(f"{self.name}: service speaks protocol {hello.protocol!r},"
                                f" expected {self.protocol!r}")

    def _close_now(self) -> None:
        self._closed = True
        # A FastStream (or trio's SocketStream) closes synchronously inside
        # aclose(); closing its socket directly works under cancellation
        # too, and wakes any task waiting on it (notify_closing first).
        sock = getattr(self._io.stream, "socket", None)
        if sock is not None:
            sock.close()

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        self._close_now()
        await trio.aclose_forcefully(self._io.stream)

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def open_channel(stream: trio.abc.Stream, *, protocol: str, timeout: float,
                       name: str = "", max_frame: int = MAX_FRAME) -> Channel:
    """Wrap an already connected stream (a Unix socket, or a memory stream in
    tests) in a Channel, after reading and checking the server's Hello."""
    chan = Channel(stream, protocol=protocol, name=name, max_frame=max_frame)
    ok = False
    try:
        with trio.move_on_after(timeout) as scope:
            await chan._read_hello()
            ok = True
    finally:
        if not ok:
            await chan.aclose()
    if scope.cancelled_caught:
        raise IpcTimeout(f"{chan.name}: no protocol announcement within the time limit")
    return chan


async def _open_unix(path: Path, deadline: float) -> FastStream:
    with trio.move_on_at(deadline) as scope:
        try:
            return await open_unix(path)
        except OSError as e:
            # ENOENT (not running), ECONNREFUSED (listener gone), EACCES, a
            # path too long for sun_path: all mean "cannot reach it".
            raise IpcUnavailable(f"{path}: cannot connect: {e.strerror or e}") from None
    assert scope.cancelled_caught
    raise IpcTimeout(f"{path}: connect timed out")


async def connect(path: Path | str, *, protocol: str | None = None, timeout: float,
                  max_frame: int = MAX_FRAME) -> Channel:
    """Connect to the service socket at path and check its Hello.

    protocol defaults to the socket's file name (names.CLEANUP for
    private/cleanup), the mailsys convention.
    """
    path = Path(path)
    deadline = trio.current_time() + timeout
    stream = await _open_unix(path, deadline)
    return await open_channel(stream, protocol=protocol or path.name, name=str(path),
                              timeout=max(0.0, deadline - trio.current_time()),
                              max_frame=max_frame)


async def call(path: Path | str, msg: object, *, protocol: str | None = None,
               expect: type | tuple[type, ...], timeout: float,
               max_frame: int = MAX_FRAME) -> Any:
    """One-shot: connect, call, close; the whole under one deadline."""
    deadline = trio.current_time() + timeout
    chan = await connect(path, protocol=protocol, timeout=timeout, max_frame=max_frame)
    async with chan:
        return await chan._call_at(msg, expect, deadline)


class ChannelPool:
    """Up to ``size`` kept-open channels to one service, shared by many tasks.

    ``pool.call()`` retries once, on a fresh connection, when a reused
    channel turns out to be dead (the service restarted, or closed an idle
    connection): the request may then run twice if the service died while
    handling it, which the at-least-once contract allows. A fresh
    connection that fails is not retried.
    """

    def __init__(self, path: Path | str, protocol: str | None = None, size: int = 4, *,
                 connect_timeout: float = 10.0, max_frame: int = MAX_FRAME) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.path = Path(path)
        self.protocol = protocol or self.path.name
        self.size = size
        self._connect_timeout = connect_timeout
        self._max_frame = max_frame
        self._slots = trio.Semaphore(size)
        self._idle: list[Channel] = []
        self._closed = False

    @asynccontextmanager
    async def channel(self, *, timeout: float | None = None) -> AsyncIterator[Channel]:
        """Borrow a channel: an idle one, or a new connection (within timeout)."""
        deadline = trio.current_time() + (self._connect_timeout if timeout is None else timeout)
        chan = await self._take(deadline)
        try:
            yield chan
        finally:
            self._give(chan)

    async def _take(self, deadline: float, *, fresh: bool = False) -> Channel:
        """A slot and a channel in it; the caller hands both back with _give().

        Plain methods rather than a context manager, and no cancel scope when
        a slot is free: this runs for every message smtpd passes to cleanup.
        Taking a free slot without a checkpoint is fair (trio's Semaphore
        has a value only while nobody waits) and the call that follows
        checkpoints."""
        if self._closed:
            raise IpcUnavailable(f"{self.path}: channel pool closed")
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            with trio.move_on_at(deadline) as scope:
                await self._slots.acquire()
            if scope.cancelled_caught:
                raise IpcTimeout(f"{self.path}: no free channel within the time limit") from None
        try:
            while self._idle and not fresh:
                candidate = self._idle.pop()
                if candidate.usable:
                    return candidate
            return await connect(self.path, protocol=self.protocol,
                                 timeout=max(0.0, deadline - trio.current_time()),
                                 max_frame=self._max_frame)
        except BaseException:
            self._slots.release()
            raise

    @property
    def busy(self) -> bool:
        """True when every channel is in use: a call now would wait."""
        return self._slots.value == 0

    def _give(self, chan: Channel) -> None:
        if chan.usable and not self._closed:
            self._idle.append(chan)
        else:
            chan._close_now()
        self._slots.release()

    async def call(self, msg: object, *, expect: type | tuple[type, ...], timeout: float) -> Any:
        """Call on a pooled channel; one retry if a reused channel was dead."""
        return await self.call_made(lambda: msg, expect=expect, timeout=timeout)

    async def call_made(self, make: Callable[[], object], *, expect: type | tuple[type, ...],
                        timeout: float, fds: Sequence[int] = (),
                        sent: Callable[[], None] | None = None) -> Any:
        """call() with the request built by make() once a channel is free.

        A caller with a large request (smtpd's message content, spooled to
        a file) need not hold it in memory while it waits for a channel.
        make() runs again for the retry. fds go with the request (see the
        module description). sent, if given, is called once the request
        is written whole, before the reply: the caller may let go of what
        make() needs then, and there is no retry after that point (the
        service had the request; the reply's failure stands)."""
        deadline = trio.current_time() + timeout
        chan = await self._take(deadline)
        reused = chan.calls > 0
        whole = False

        def handed_over() -> None:
            nonlocal whole
            whole = True
            assert sent is not None
            sent()
        try:
            return await chan._call_at(make(), expect, deadline, fds,
                                       handed_over if sent is not None else None)
        except IpcUnavailable:
            if not reused or whole:
                raise
        finally:
            self._give(chan)
        chan = await self._take(deadline, fresh=True)
        try:
            return await chan._call_at(make(), expect, deadline, fds, sent)
        finally:
            self._give(chan)

    async def aclose(self) -> None:
        """Close every idle channel; channels in use close when returned."""
        self._closed = True
        idle, self._idle = self._idle, []
        for chan in idle:
            chan._close_now()
        await trio.lowlevel.checkpoint()


async def serve(stream: trio.abc.Stream, handler: Handler, *, protocol: str | None = None,
                max_frame: int = MAX_FRAME, idle_timeout: float | None = None,
                pass_fds: bool = False) -> None:
    """Serve one client connection until EOF; see the module docstring.

    protocol defaults to the file name of the Unix socket the stream was
    accepted on. idle_timeout, if given, closes a connection that sends
    nothing for that long. pass_fds: the stream is a FastStream on a Unix
    socket and the handler is called as handler(msg, fds).
    """
    protocol = protocol or _local_name(stream)
    io = _FrameStream(stream, max_frame, pass_fds=pass_fds)
    try:
        await io.send(Hello(protocol))
        while True:
            if idle_timeout is None:    # no cancel scope per request when there is no limit
                frame = await _next_request(io)
            else:
                frame = None
                with trio.move_on_after(idle_timeout):
                    frame = await _next_request(io)
            if frame is None:
                return          # EOF, idle too long, or the framing was lost
            fds: list[int] = []
            if io.fds:
                fds, io.fds = io.fds, []
            try:
                request = decode(frame)
            except ProtocolError as e:
                _close_fds(fds)
                # A sound frame with a bad message: the stream is still in step.
                await io.send(ErrorReply(ErrorCode.PROTOCOL, str(e)))
                continue
            # Neither the frame nor the request stays referenced here while
            # the handler runs: its buffer goes now, and the handler may let
            # go of the request (a message's content) before it waits.
            frame = None
            kind = type(request).__name__
            try:
                if pass_fds:
                    pending, request = handler(request, fds), None
                else:
                    pending, request = handler(request), None
                reply = await pending
                if reply is None:
                    raise TypeError(f"handler returned None for {kind}")
                parts = io.encode(reply)    # an unencodable reply is the handler's bug too
            except Exception as e:
                await _try_send(io, ErrorReply(ErrorCode.INTERNAL, f"{type(e).__name__}: {e}"))
                raise
            await io.send_parts(parts)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return          # the client went away; nothing to answer
    finally:
        if io.fds:
            _close_fds(io.fds)
        await trio.aclose_forcefully(stream)


def _close_fds(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    fds.clear()


async def _next_request(io: _FrameStream) -> Frame | None:
    try:
        return await io.receive_frame()
    except ProtocolError as e:
        # The frame boundaries are lost: answer, then hang up.
        await _try_send(io, ErrorReply(ErrorCode.PROTOCOL, str(e)))
        return None


async def _try_send(io: _FrameStream, msg: object) -> None:
    with trio.move_on_after(_ERROR_REPLY_GRACE, shield=True):
        try:
            await io.send(msg)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def _local_name(stream: trio.abc.Stream) -> str:
    sock = getattr(stream, "socket", None)
    if sock is not None and sock.family == socket.AF_UNIX:
        name = sock.getsockname()
        if isinstance(name, bytes):
            name = os.fsdecode(name)
        if name:
            return Path(name).name
    raise TypeError("serve(): protocol= is required for a stream that is not"
                    " a named Unix socket")


async def send_trigger(path: Path | str, data: bytes, *, timeout: float) -> bool:
    """Write trigger bytes to the service at path and close. True if written.

    Never raises for a missing, refusing or slow service: returns False.
    """
    with trio.move_on_after(timeout):
        try:
            stream = await open_unix(path)
        except OSError:
            return False
        try:
            await stream.send_all(data)
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        finally:
            await trio.aclose_forcefully(stream)
    return False


class TriggerLine:
    """Trigger bytes to one service over a kept-open connection.

    send() writes on the connection it keeps, and opens a new one when it
    has none, when the last write is TRIGGER_IDLE / 2 old or the connection
    TRIGGER_LIFETIME / 2 (the server closes it at the full time: a write
    racing that close would be lost), or when a write fails, once. Like
    send_trigger() it never raises for a missing, refusing or slow service:
    False then, and the next send() tries a fresh connection.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self._stream: FastStream | None = None
        self._opened = self._used = 0.0

    async def send(self, data: bytes, *, timeout: float) -> bool:
        with trio.move_on_after(timeout):
            for _ in range(2):
                now = trio.current_time()
                if self._stream is not None and (now - self._used > TRIGGER_IDLE / 2 or
                                                 now - self._opened > TRIGGER_LIFETIME / 2):
                    self.close()
                if self._stream is None:
                    try:
                        self._stream = await open_unix(self.path)
                    except OSError:
                        return False
                    self._opened = trio.current_time()
                try:
                    await self._stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self.close()        # the server went away: once more, on a new one
                    continue
                self._used = trio.current_time()
                return True
            return False
        self.close()                    # a write cut short leaves the stream out of step
        return False

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
