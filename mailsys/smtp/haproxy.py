"""haproxy - the PROXY protocol header a load balancer sends before SMTP (smtpd_upstream_proxy_protocol).

SYNOPSIS
    from mailsys.smtp.haproxy import HaproxyError, Proxied, parse_proxy

    found = parse_proxy(data, more_to_come=True)   # None: not all of it yet
    found.client_addr, found.client_port, found.length   # bytes the header takes

DESCRIPTION
    With smtpd_upstream_proxy_protocol = haproxy, Postfix's smtpd reads
    HAProxy's PROXY header (version 1 text or version 2 binary) before its
    greeting, and the client is the one the header names. parse_proxy()
    reads one from the start of data:

      version 1  "PROXY TCP4|TCP6 client server cport sport" ended by LF or
                 CRLF, at most 108 bytes
      version 2  the 12-byte signature, version 2 with the PROXY command,
                 TCP over IPv4 or IPv6; the LOCAL command (a health check
                 from the proxy itself) is Proxied(local=True): the
                 connection's own addresses stand

    Anything else is HaproxyError whose text is Postfix's reason ("bad or
    missing protocol type", "bad or missing client address", ...); smtpd
    logs "warning: haproxy read: REASON: HEADER" and answers 421. With
    more_to_come, a header not yet complete is None (wait for more);
    without, it is "missing protocol header terminator".
"""

from __future__ import annotations

import ipaddress
import struct

from mailsys.frozen import frozen

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 108                  # the longest version 1 line, terminator included


class HaproxyError(Exception):
    """A PROXY header that is not one; str() is Postfix's reason."""


@frozen
class Proxied:
    client_addr: str
    client_port: int
    server_addr: str
    server_port: int
    length: int               # bytes of data the header takes
    local: bool = False       # version 2 LOCAL: keep the connection's own addresses


def parse_proxy(data: bytes, more_to_come: bool = False) -> Proxied | None:
    """The PROXY header at the start of data; see the module description."""
    if data[:len(V2_SIGNATURE)] == V2_SIGNATURE[:len(data)] and data:
        return _version2(data, more_to_come)
    end = data.find(b"\n", 0, V1_MAX)
    if end < 0:
        if more_to_come and len(data) < V1_MAX and b"PROXY "[:len(data)] == data[:6]:
            return None
        if not data.startswith(b"PROXY "):
            raise HaproxyError("short protocol header")
        raise HaproxyError("missing protocol header terminator")
    line = data[:end].rstrip(b"\r").decode("ascii", "replace")
    words = line.split(" ")
    if words[0] != "PROXY" or len(words) < 2:
        raise HaproxyError("short protocol header")
    family = {"TCP4": 4, "TCP6": 6}.get(words[1])
    if family is None:
        raise HaproxyError("bad or missing protocol type")
    fields = words[2:] + [""] * (4 - len(words[2:]))
    client = _address(fields[0], family, "client")
    server = _address(fields[1], family, "server")
    return Proxied(client, _port(fields[2], "client"), server, _port(fields[3], "server"), end + 1)


def _address(text: str, family: int, which: str) -> str:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        addr = None
    if addr is None or addr.version != family:
        raise HaproxyError(f"bad or missing {which} address")
    return str(addr)


def _port(text: str, which: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise HaproxyError(f"bad or missing {which} port")
    return int(text)


def _version2(data: bytes, more_to_come: bool) -> Proxied | None:
    if len(data) < 16:
        if more_to_come:
            return None
        raise HaproxyError("short protocol header")
    version_command, family, length = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    if len(data) < 16 + length:
        if more_to_come:
            return None
        raise HaproxyError("short protocol header")
    if version_command >> 4 != 2:
        raise HaproxyError("unsupported protocol version")
    if version_command & 0x0F == 0:               # LOCAL
        return Proxied("", 0, "", 0, 16 + length, local=True)
    if version_command & 0x0F != 1:
        raise HaproxyError("unsupported command")
    body = data[16:16 + length]
    client: ipaddress.IPv4Address | ipaddress.IPv6Address
    server: ipaddress.IPv4Address | ipaddress.IPv6Address
    if family == 0x11 and length >= 12:          # TCP over IPv4
        client, server = ipaddress.IPv4Address(body[0:4]), ipaddress.IPv4Address(body[4:8])
        ports = struct.unpack("!HH", body[8:12])
    elif family == 0x21 and length >= 36:        # TCP over IPv6
        client, server = ipaddress.IPv6Address(body[0:16]), ipaddress.IPv6Address(body[16:32])
        ports = struct.unpack("!HH", body[32:36])
    else:
        raise HaproxyError("bad or missing protocol type")
    return Proxied(str(client), ports[0], str(server), ports[1], 16 + length)


__all__ = ["HaproxyError", "Proxied", "V2_SIGNATURE", "parse_proxy"]
