"""Helpers the TLS tests share: shuttling bytes between two engines."""

from __future__ import annotations

from mailsys.tls import TlsEngine, TlsError


def pump(client: TlsEngine, server: TlsEngine, *, step: int | None = None) -> None:
    """Shuttle handshake bytes between two engines until both are done.

    With `step`, every flight is fed in pieces of that many bytes (h11's
    "one byte at a time" rule: no state may depend on how TCP splits data).
    """
    to_server, _ = client.handshake_step(b"")
    client_done = server_done = False
    for _ in range(20):
        to_client, server_done = feed(server, to_server, step)
        to_server, client_done = feed(client, to_client, step)
        if client_done and server_done and not to_server:
            return
    raise AssertionError("handshake did not finish")


def feed(engine: TlsEngine, data: bytes, step: int | None) -> tuple[bytes, bool]:
    if not step or not data:
        return engine.handshake_step(data)
    out = []
    done = False
    for i in range(0, len(data), step):
        piece, done = engine.handshake_step(data[i:i + step])
        out.append(piece)
    return b"".join(out), done


def handshake_error(client: TlsEngine, server: TlsEngine) -> TlsError:
    """Run a handshake that must fail; return the client's error."""
    try:
        pump(client, server)
    except TlsError as e:
        return e
    raise AssertionError("handshake succeeded")
