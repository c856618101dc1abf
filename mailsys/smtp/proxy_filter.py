"""proxy_filter - the sans-IO parts of smtpd's before-queue content filter client.

SYNOPSIS
    endpoint = parse_endpoint("inet:127.0.0.1:10025")      # or host:port, unix:/path
    lines = xforward_commands(ehlo_response, attrs)         # XFORWARD ... commands, maybe none
    stuffer = DotStuffer(); wire = stuffer.feed(chunk) ... + stuffer.end()
    text = rejected_warning(service, command, response)

DESCRIPTION
    Postfix's smtpd(8) with smtpd_proxy_filter (SMTPD_PROXY_README) talks
    SMTP to a filter instead of handing the message to cleanup: EHLO,
    XFORWARD when the filter offers it, the client's MAIL and RCPT commands
    as received, DATA, the content, ".". This module holds what that client
    decides without a socket; mailsys.runtime.smtpd_proxy does the I/O.

    parse_endpoint() reads smtpd_proxy_filter: "unix:/path", "inet:host:port"
    or "host:port"; the host (and its colon) may be left out, which means
    localhost, as Postfix's inet_connect() takes it. "[host]:port" keeps a
    literal IPv6 address whole.

    xforward_commands() answers what Postfix's smtpd_proxy.c sends after
    the EHLO reply when it names XFORWARD: one attribute for each name the
    filter listed, in Postfix's order (NAME ADDR PORT HELO IDENT PROTO
    SOURCE), each value xtext-encoded, "[UNAVAILABLE]" for what is not
    known, as many commands as the 512-octet command line needs (seen
    live with Postfix 3.7.11: "XFORWARD NAME=[UNAVAILABLE] ADDR=127.0.0.1
    PORT=50058 HELO=client.example IDENT=[UNAVAILABLE] PROTO=ESMTP
    SOURCE=LOCAL").

    DotStuffer turns message content as the server core hands it over
    (dot-unstuffed, in pieces that split lines anywhere) into DATA wire
    bytes: CRLF line ends (Postfix writes each line it read with CRLF),
    a dot doubled at the start of every line, and at the end the line end
    the content may lack and the "." line. It keeps at most one partial
    line, and no more than HOLD_LIMIT bytes of it.

    The texts of Postfix's warnings live here too, so that tests can name
    them: "proxy SERVICE rejected "COMMAND": "REPLY"" when a reply is not
    the one expected (the greeting is the command "connection request").
"""

from __future__ import annotations

from collections.abc import Mapping

from mailsys.frozen import frozen

from ._client_reply import Response
from ._xclient import xtext_encode

__all__ = ["Endpoint", "parse_endpoint", "xforward_features", "xforward_commands",
           "DotStuffer", "rejected_warning", "UNAVAILABLE", "XFORWARD_ORDER"]

UNAVAILABLE = "[UNAVAILABLE]"
# smtpd_proxy.c sends the attributes in this order, each when the filter
# names it in its XFORWARD EHLO line.
XFORWARD_ORDER = ("NAME", "ADDR", "PORT", "HELO", "IDENT", "PROTO", "SOURCE")
# smtpd_proxy.c PAYLOAD_LIMIT: 512 - strlen("250 XFORWARD\r\n"); the
# attributes go into as few commands as stay within it.
XFORWARD_PAYLOAD = 512 - len("250 XFORWARD\r\n")
# A partial line longer than this is passed on rather than held back
# (Postfix's line_length_limit default).
HOLD_LIMIT = 2048


@frozen
class Endpoint:
    """Where the filter listens: kind "inet" (host, port) or "unix" (path)."""
    kind: str
    host: str = ""
    port: str = ""
    path: str = ""


def parse_endpoint(spec: str) -> Endpoint:
    """smtpd_proxy_filter's value as an Endpoint; ValueError names what is wrong."""
    spec = spec.strip()
    if spec[:5].lower() == "unix:":
        if not spec[5:]:
            raise ValueError(f"missing socket path in {spec!r}")
        return Endpoint("unix", path=spec[5:])
    if spec[:5].lower() == "inet:":
        spec = spec[5:]
    if spec.startswith("["):
        host, sep, rest = spec[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad host in {spec!r}")
        port = rest[1:]
    else:
        host, _, port = spec.rpartition(":")
    if not port:
        raise ValueError(f"missing port in {spec!r}")
    return Endpoint("inet", host=host or "localhost", port=port)


def xforward_features(ehlo: Response) -> frozenset[str]:
    """The attribute names the EHLO reply's XFORWARD line offers (upper case)."""
    names: set[str] = set()
    for line in ehlo.lines:
        words = line[4:].split()
        if words and words[0].upper() == "XFORWARD":
            names.update(w.upper() for w in words[1:])
    return frozenset(names)


def xforward_commands(ehlo: Response, attrs: Mapping[str, str | None]) -> list[str]:
    """The XFORWARD commands for the filter that answered EHLO with ehlo;
    attrs maps an attribute name to its value, None when unknown."""
    offered = xforward_features(ehlo)
    commands: list[str] = []
    payload = ""
    for name in XFORWARD_ORDER:
        if name not in offered:
            continue
        value = attrs.get(name)
        item = f" {name}={xtext_encode(value) if value else UNAVAILABLE}"
        if payload and len(payload) + len(item) > XFORWARD_PAYLOAD:
            commands.append("XFORWARD" + payload)
            payload = ""
        payload += item
    if payload:
        commands.append("XFORWARD" + payload)
    return commands


def rejected_warning(service: str, command: str | None, response: Response) -> str:
    """Postfix's warning for a reply that was not the one expected."""
    return (f'proxy {service} rejected "{command or "connection request"}": '
            f'"{response.text}"')


class DotStuffer:
    """Content pieces in, DATA wire bytes out; see the module description."""

    __slots__ = ("_tail", "_line_start")

    def __init__(self) -> None:
        self._tail = b""          # the start of a line whose end has not come yet
        self._line_start = True   # the next byte passed on begins a line

    def feed(self, data: bytes) -> bytes:
        data = self._tail + data if self._tail else data
        cut = data.rfind(b"\n") + 1
        lines, rest = data[:cut], data[cut:]
        out = b""
        if lines:
            out = lines.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            out = self._stuff(out)
            self._line_start = True
        if len(rest) > HOLD_LIMIT:
            # A CR at the end may be the first half of a CRLF: keep it back.
            keep = 1 if rest.endswith(b"\r") else 0
            out += self._stuff(rest[:len(rest) - keep])
            self._line_start = False
            rest = rest[len(rest) - keep:]
        self._tail = rest
        return out

    def end(self) -> bytes:
        """What is left, a line end if the content did not end with one, and "."."""
        tail, self._tail = self._tail, b""
        out = self._stuff(tail) if tail else b""
        if tail or not self._line_start:
            out += b"\r\n"
        self._line_start = True
        return out + b".\r\n"

    def _stuff(self, text: bytes) -> bytes:
        if self._line_start and text.startswith(b"."):
            text = b"." + text
        return text.replace(b"\n.", b"\n..")
