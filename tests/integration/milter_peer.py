"""milter_peer - a small scriptable milter on loopback, for integration tests.

    peer = MilterPeer(rcpt={"bad@x.test": "r", "busy@x.test": "y421 4.7.0 Try later"},
                      eom_add=[("X-Milter", "seen")], eom_swap_rcpt=("old@x", "new@x"))
    with peer.running() as port: ...        # a thread serving 127.0.0.1:port
    peer.seen     -> [(command byte, payload)] every packet received, in order

Written straight from the protocol description with struct, sharing nothing
with mailsys.milter, so that a misreading there does not hide here. It
negotiates version 6 with all actions and no protocol flags (every step,
every reply), answers each step "continue" unless scripted:

    connect, helo, mail  reply letter ("r", "t", "a", "d") or "y<code text>"
                         for every such step
    rcpt                 {address: reply} per recipient
    data                 reply to DATA
    unknown              reply to an unknown SMTP command (SMFIC_UNKNOWN)
    eom                  reply at end of message ("c" default); before it
                         the scripted modifications: eom_add (headers),
                         eom_insert / eom_change ((index, name, value) each),
                         eom_swap_rcpt (delete one recipient, add another),
                         eom_quarantine (a reason), eom_body (new body),
                         eom_from (a new envelope sender);
                         "close" hangs up instead, "sleep<seconds>" waits
                         that long before answering

Run as a script for a live Postfix: python milter_peer.py PORT [JSON settings].
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field


def _packet(code: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload) + 1) + code + payload


def _z(*items: str) -> bytes:
    return b"".join(i.encode() + b"\0" for i in items)


@dataclass
class MilterPeer:
    connect: str = "c"
    helo: str = "c"
    mail: str = "c"
    rcpt: dict = field(default_factory=dict)
    eom: str = "c"
    eom_add: list = field(default_factory=list)
    eom_swap_rcpt: tuple | None = None
    eom_quarantine: str = ""
    eom_body: bytes = b""
    eom_from: str = ""
    eom_insert: list = field(default_factory=list)     # (index, name, value)
    eom_change: list = field(default_factory=list)     # (index, name, value); "" deletes
    data: str = "c"
    protocol: int = 0                 # SMFIP_* flags asked for in negotiation
    unknown: str = "c"
    seen: list = field(default_factory=list)
    connections: int = 0

    def _verdict(self, spec: str) -> bytes:
        if spec.startswith("y"):
            return _packet(b"y", _z(spec[1:]))
        return _packet(spec.encode())

    def _answer(self, code: bytes, payload: bytes) -> bytes:
        if code == b"O":
            return _packet(b"O", struct.pack(">III", 6, 0x1FF, self.protocol))
        if code == b"C":
            return self._verdict(self.connect)
        if code == b"H":
            return self._verdict(self.helo)
        if code == b"M":
            return self._verdict(self.mail)
        if code == b"R":
            addr = payload.split(b"\0")[0].decode().strip("<>")
            return self._verdict(self.rcpt.get(addr, "c"))
        if code == b"E":
            if self.eom.startswith("sleep"):
                time.sleep(float(self.eom[5:]))
                return _packet(b"c")
            out = b"".join(_packet(b"h", _z(n, v)) for n, v in self.eom_add)
            out += b"".join(_packet(b"i", struct.pack(">I", i) + _z(n, v))
                            for i, n, v in self.eom_insert)
            out += b"".join(_packet(b"m", struct.pack(">I", i) + _z(n, v))
                            for i, n, v in self.eom_change)
            if self.eom_swap_rcpt:
                old, new = self.eom_swap_rcpt
                out += _packet(b"-", _z(f"<{old}>")) + _packet(b"+", _z(f"<{new}>"))
            if self.eom_from:
                out += _packet(b"e", _z(f"<{self.eom_from}>"))
            if self.eom_quarantine:
                out += _packet(b"q", _z(self.eom_quarantine))
            if self.eom_body:
                out += _packet(b"b", self.eom_body)
            return out + self._verdict(self.eom)
        if code == b"T":
            return self._verdict(self.data)
        if code == b"U":
            return self._verdict(self.unknown)
        if code in (b"D", b"A", b"Q", b"K"):
            return b""
        return _packet(b"c")

    def _serve(self, conn: socket.socket) -> None:
        self.connections += 1
        buf = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while len(buf) >= 4:
                    (length,) = struct.unpack(">I", buf[:4])
                    if len(buf) < 4 + length:
                        break
                    code, payload = buf[4:5], buf[5:4 + length]
                    buf = buf[4 + length:]
                    self.seen.append((code, payload))
                    if code == b"Q" or code == b"E" and self.eom == "close":
                        return
                    out = self._answer(code, payload)
                    if out:
                        conn.sendall(out)

    @contextlib.contextmanager
    def running(self, port: int = 0):
        listener = socket.create_server(("127.0.0.1", port))
        listener.settimeout(0.1)         # closing does not wake a blocked accept()
        stop = threading.Event()

        def accept_loop() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                conn.settimeout(None)
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

        thread = threading.Thread(target=accept_loop, daemon=True)
        thread.start()
        try:
            yield listener.getsockname()[1]
        finally:
            stop.set()
            listener.close()
            thread.join(5)

    def macros(self, before: bytes) -> dict[str, str]:
        """The macros sent with the last command `before` (C, H, M, R, T, N, E, U)."""
        for code, payload in reversed(self.seen):
            if code == b"D" and payload[:1] == before:
                items = payload[1:].split(b"\0")[:-1]
                return {items[i].decode(): items[i + 1].decode() for i in range(0, len(items), 2)}
        return {}

    def headers(self) -> list[tuple[str, str]]:
        out = []
        for code, payload in self.seen:
            if code == b"L":
                name, value = payload.split(b"\0")[:2]
                out.append((name.decode(), value.decode()))
        return out


if __name__ == "__main__":
    # python milter_peer.py PORT ['{"rcpt": {...}, "eom": "y550 5.7.1 No"}']: prints every packet.
    import json
    import sys
    import time
    peer = MilterPeer(**json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}"))
    peer.seen = type("Printing", (list,), {"append": lambda self, item: print(item, flush=True)})()
    with peer.running(int(sys.argv[1])):
        while True:
            time.sleep(3600)
