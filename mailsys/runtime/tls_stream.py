"""tls_stream - a trio Stream that speaks TLS over another Stream.

SYNOPSIS
    from mailsys.tls import TlsEngine, server_context
    from mailsys.runtime.tls_stream import TlsStream

    stream = TlsStream(transport, TlsEngine(ctx, server_side=True))
    await stream.handshake(cfg.smtpd_starttls_timeout)    # TlsError on failure
    data = await stream.receive_some()
    await stream.send_all(b"250 2.0.0 Ok\\r\\n")
    await stream.aclose()                                  # close_notify, then close

DESCRIPTION
    The I/O shell around mailsys.tls.TlsEngine, used by smtpd after
    STARTTLS and in wrapper mode (smtps), and by the smtp client. It reads
    the transport in 64 KiB pieces, feeds the engine and sends what the
    engine produces.

    STARTTLS: the caller has read and answered the plaintext STARTTLS
    command. Anything the client pipelined after it in plaintext must be
    DISCARDED by the caller, never handed to this stream (CVE-2011-0411:
    injected commands would run inside the TLS session). A TlsStream starts
    with empty buffers and reads only what arrives on the transport after it
    was made, so dropping the caller's own read buffer is all it takes.

    handshake(timeout) must complete before data moves. It raises TlsError
    with kind "handshake", "verify", "timeout" or "eof" (the peer closed or
    broke the connection); after a failure the stream is broken and only
    aclose() is useful. An alert the engine wants to send on failure is
    sent first, within the close timeout.

    Afterwards the stream follows trio.abc.HalfCloseableStream:
    receive_some() returns at least one byte, or b"" at end of stream;
    send_all() returns once the records are handed to the transport. A TLS
    error on either side becomes trio.BrokenResourceError (its __cause__ is
    the TlsError), as in trio's own SSLStream. The end of the transport
    counts as end of stream even without the peer's close_notify: SMTP's own
    framing (the "." line, QUIT) shows truncation, and most SMTP peers just
    close.

    One task may receive while another sends. Bytes for the transport, from
    either side (the reader produces some too: alerts, key updates), go
    through one outgoing buffer and one trio.StrictFIFOLock, so records
    reach the transport in the order the engine made them; whoever holds the
    lock sends everything queued. send_eof() and aclose() send close_notify;
    aclose() waits at most close_timeout for that, skips it when the caller
    is cancelled (aclose_forcefully) or another task is stuck sending, does
    not wait for the peer's reply (Postfix does not either), and always
    closes the transport. trio.testing.check_half_closeable_stream passes.
"""

from __future__ import annotations

import operator

import trio

from mailsys.tls import CHUNK, TlsEngine, TlsError

__all__ = ["TlsStream", "CLOSE_TIMEOUT"]

# How long aclose() may spend handing close_notify to a peer that does not
# read; one round trip on a slow link, not a reason to hold a slot.
CLOSE_TIMEOUT = 2.0

# send_all() encrypts and sends large payloads in slices this big, so a
# 50 MB message does not sit in memory twice.
SEND_SLICE = 4 * CHUNK

_NEW, _HANDSHAKING, _OPEN, _EOF_SENT, _BROKEN, _CLOSED = (
    "new", "handshaking", "open", "eof-sent", "broken", "closed")


class TlsStream(trio.abc.HalfCloseableStream):
    """TLS over `transport_stream`, driven by `engine` (see the module docstring)."""

    def __init__(self, transport_stream: trio.abc.Stream, engine: TlsEngine, *,
                 close_timeout: float = CLOSE_TIMEOUT) -> None:
        self.transport_stream = transport_stream
        self.engine = engine
        self.close_timeout = close_timeout
        self._state = _NEW
        self._outgoing = bytearray()
        self._plain = bytearray()
        self._eof = False
        self._send_lock = trio.StrictFIFOLock()
        self._receiving = False
        self._sending = False

    # -- handshake ----------------------------------------------------------------

    async def handshake(self, timeout: float) -> None:
        """Run the TLS handshake within `timeout` seconds; TlsError when it fails."""
        if self._state != _NEW:
            raise RuntimeError(f"handshake on a TLS stream that is {self._state}")
        self._state = _HANDSHAKING
        with trio.move_on_after(timeout) as scope:
            try:
                await self._handshake()
            except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
                self._state = _BROKEN
                raise TlsError("lost connection during TLS handshake", kind="eof") from e
            except BaseException:
                self._state = _BROKEN
                raise
        if scope.cancelled_caught:
            self._state = _BROKEN
            raise TlsError("timeout during TLS handshake", kind="timeout")
        self._state = _OPEN

    async def _handshake(self) -> None:
        incoming = b""
        while True:
            try:
                out, done = self.engine.handshake_step(incoming)
            except TlsError as e:
                await self._send_alert(e.outgoing)
                raise
            self._outgoing += out
            if self._outgoing:
                await self._flush()
            if done:
                break
            incoming = await self.transport_stream.receive_some(CHUNK)
            if not incoming:
                raise TlsError("connection closed during TLS handshake", kind="eof")
        # The peer's last handshake flight may carry data or session tickets too.
        plain, out = self.engine.decrypt(b"")
        self._plain += plain
        self._outgoing += out
        if self._outgoing:
            await self._flush()

    async def _send_alert(self, alert: bytes) -> None:
        if not alert:
            return
        self._outgoing += alert
        with trio.move_on_after(self.close_timeout):
            try:
                await self._flush()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    # -- receiving ------------------------------------------------------------------

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is not None:
            max_bytes = operator.index(max_bytes)
            if max_bytes < 1:
                raise ValueError("max_bytes must be >= 1")
        with _Flag(self, "_receiving", "another task is receiving on this TLS stream"):
            self._check_usable()
            if self._plain or self._eof:
                await trio.lowlevel.checkpoint()
            else:
                await self._fill()
            if not self._plain:
                return b""
            size = len(self._plain) if max_bytes is None else min(max_bytes, len(self._plain))
            chunk = bytes(self._plain[:size])
            del self._plain[:size]
            return chunk

    async def _fill(self) -> None:
        """Read the transport until there is plaintext or the stream ends."""
        while not self._plain and not self._eof:
            try:
                data = await self.transport_stream.receive_some(CHUNK)
            except trio.BrokenResourceError:
                self._break()
                raise
            if not data:
                self._eof = True
                return
            try:
                plain, out = self.engine.decrypt(data)
            except TlsError as e:
                self._break()
                raise trio.BrokenResourceError(f"TLS error: {e.reason}") from e
            self._plain += plain
            if self.engine.peer_closed:
                self._eof = True
            if out:
                self._outgoing += out
                # A writer holding the lock sends our bytes with its own;
                # waiting for it here could stall reads behind a slow peer.
                if not self._send_lock.locked():
                    await self._flush()

    # -- sending ----------------------------------------------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._sender():
            self._check_usable(sending=True)
            view = memoryview(data)
            if not view:
                await trio.lowlevel.checkpoint()
                return
            for start in range(0, len(view), SEND_SLICE):
                try:
                    self._outgoing += self.engine.encrypt(view[start:start + SEND_SLICE])
                except TlsError as e:
                    self._break()
                    raise trio.BrokenResourceError(f"TLS error: {e.reason}") from e
                await self._flush()

    async def wait_send_all_might_not_block(self) -> None:
        with self._sender():
            self._check_usable(sending=True)
            async with self._send_lock:
                await self.transport_stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        """Send close_notify; the peer sees end of stream, we may go on receiving."""
        with self._sender():
            if self._state == _EOF_SENT:
                await trio.lowlevel.checkpoint()
                return
            self._check_usable(sending=True)
            self._state = _EOF_SENT
            self._outgoing += self.engine.close_notify()
            await self._flush()

    async def _flush(self) -> None:
        """Hand every queued byte to the transport, in order."""
        async with self._send_lock:
            while self._outgoing:
                data, self._outgoing = self._outgoing, bytearray()
                try:
                    await self.transport_stream.send_all(data)
                except BaseException:
                    # Cancelled or failed mid-write: how much went out is
                    # unknown, so no later record can be trusted to fit.
                    self._break()
                    raise

    # -- closing ------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._state == _CLOSED:
            await trio.lowlevel.checkpoint()
            return
        state, self._state = self._state, _CLOSED
        try:
            if state == _OPEN and not self._send_lock.locked():
                # Not shielded: a caller that cancels (aclose_forcefully)
                # wants the connection gone now, not a polite goodbye.
                with trio.move_on_after(self.close_timeout):
                    self._outgoing += self.engine.close_notify()
                    try:
                        await self._flush()
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
        finally:
            await self.transport_stream.aclose()

    # -- state --------------------------------------------------------------------------

    def _break(self) -> None:
        if self._state != _CLOSED:
            self._state = _BROKEN

    def _check_usable(self, *, sending: bool = False) -> None:
        if self._state == _CLOSED:
            raise trio.ClosedResourceError("TLS stream is closed")
        if self._state == _BROKEN:
            raise trio.BrokenResourceError("TLS stream is broken")
        if self._state in (_NEW, _HANDSHAKING):
            raise RuntimeError("TLS stream used before its handshake completed")
        if sending and self._state == _EOF_SENT:
            raise trio.ClosedResourceError("close_notify already sent")

    def _sender(self) -> "_Flag":
        return _Flag(self, "_sending", "another task is sending on this TLS stream")


class _Flag:
    """A one-task-at-a-time guard: trio.BusyResourceError for a second task."""

    __slots__ = ("owner", "name", "message")

    def __init__(self, owner: TlsStream, name: str, message: str) -> None:
        self.owner, self.name, self.message = owner, name, message

    def __enter__(self) -> None:
        if getattr(self.owner, self.name):
            raise trio.BusyResourceError(self.message)
        setattr(self.owner, self.name, True)

    def __exit__(self, *exc: object) -> None:
        setattr(self.owner, self.name, False)
