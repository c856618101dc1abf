"""protocol - the Sendmail milter protocol (version 6) as bytes, both ways.

SYNOPSIS
    data = encode(Command.HELO, cstrings("mx.example"))
    decoder = PacketDecoder(); decoder.feed(data)
    packet = decoder.next_packet()            # Packet(code, payload) or None
    reply = parse_reply(packet)               # Continue(), Reject(), AddHeader(...), ...

DESCRIPTION
    Every milter packet, in either direction, is a four-byte network-order
    length, then one command (or reply) byte, then length - 1 bytes of
    payload. Strings inside a payload are NUL-terminated; numbers are
    four-byte network-order unsigned integers (the port in CONNECT is two).

    This module holds the wire constants (commands the MTA sends, replies
    the milter sends, the SMFIF_* actions and SMFIP_* protocol flags
    exchanged in option negotiation, the macro stages of SMFIR_SETSYMLIST),
    the framing both ways, and the parsing of every reply into a frozen
    event. It is pure: no socket, no trio. mailsys.milter.client keeps the
    state of one milter conversation on top of it; mailsys.runtime.milter
    does the I/O.

    Malformed input from the peer (a truncated packet, an oversized
    length, a reply that lacks its strings) raises MilterProtocolError,
    which the runtime treats as a failed milter (milter_default_action).
"""

from __future__ import annotations

import enum
import struct

from mailsys.frozen import frozen


class MilterProtocolError(Exception):
    """The milter sent something the protocol does not allow. response
    names the reply that was out of place, as Postfix's warning names it
    ("SMFIR_ADDHEADER", "(unknown filter reply)"), when that is the fault."""

    def __init__(self, text: str, response: str = "") -> None:
        super().__init__(text)
        self.response = response


def reply_name(code: bytes) -> str:
    """SMFIR_ADDHEADER for b"h"; "(unknown filter reply)" for no reply code."""
    try:
        return "SMFIR_" + ReplyCode(code).name
    except ValueError:
        return "(unknown filter reply)"


# Postfix milter8.c refuses replies longer than this (it reads at most one
# body chunk's worth plus headroom); a replacement body arrives in packets
# of at most MILTER_CHUNK_SIZE too. A hostile or broken milter cannot make
# us buffer more than this per packet.
MAX_PACKET = 1024 * 1024
# libmilter's MILTER_CHUNK_SIZE: the largest body piece per SMFIC_BODY.
CHUNK_SIZE = 65535

PROTOCOL_VERSION = 6


class Command(bytes, enum.Enum):
    """What the MTA sends (SMFIC_*)."""
    ABORT = b"A"
    BODY = b"B"
    CONNECT = b"C"
    MACRO = b"D"
    BODYEOB = b"E"
    HELO = b"H"
    QUIT_NC = b"K"
    HEADER = b"L"
    MAIL = b"M"
    EOH = b"N"
    OPTNEG = b"O"
    QUIT = b"Q"
    RCPT = b"R"
    DATA = b"T"
    UNKNOWN = b"U"


class ReplyCode(bytes, enum.Enum):
    """What the milter sends (SMFIR_*)."""
    ADDRCPT = b"+"
    DELRCPT = b"-"
    ADDRCPT_PAR = b"2"
    SHUTDOWN = b"4"
    ACCEPT = b"a"
    REPLBODY = b"b"
    CONTINUE = b"c"
    DISCARD = b"d"
    CHGFROM = b"e"
    CONN_FAIL = b"f"
    ADDHEADER = b"h"
    INSHEADER = b"i"
    SETSYMLIST = b"l"
    CHGHEADER = b"m"
    PROGRESS = b"p"
    QUARANTINE = b"q"
    REJECT = b"r"
    SKIP = b"s"
    TEMPFAIL = b"t"
    REPLYCODE = b"y"
    OPTNEG = b"O"


class Action(enum.IntFlag):
    """SMFIF_*: what a milter may do at end of message."""
    ADDHDRS = 0x01
    CHGBODY = 0x02
    ADDRCPT = 0x04
    DELRCPT = 0x08
    CHGHDRS = 0x10
    QUARANTINE = 0x20
    CHGFROM = 0x40
    ADDRCPT_PAR = 0x80
    SETSYMLIST = 0x100


ALL_ACTIONS = Action(0x1FF)


class Proto(enum.IntFlag):
    """SMFIP_*: steps a milter does not want, replies it will not send."""
    NOCONNECT = 0x01
    NOHELO = 0x02
    NOMAIL = 0x04
    NORCPT = 0x08
    NOBODY = 0x10
    NOHDRS = 0x20
    NOEOH = 0x40
    NR_HDR = 0x80
    NOUNKNOWN = 0x100
    NODATA = 0x200
    SKIP = 0x400
    RCPT_REJ = 0x800
    NR_CONN = 0x1000
    NR_HELO = 0x2000
    NR_MAIL = 0x4000
    NR_RCPT = 0x8000
    NR_DATA = 0x10000
    NR_UNKN = 0x20000
    NR_EOH = 0x40000
    NR_BODY = 0x80000
    HDR_LEADSPC = 0x100000


# What this client can honour (Postfix milter8.c offers the same set for
# protocol 6, less the MDS_* buffer-size bits it does not use).
ALL_PROTOCOL = Proto(0x1FFFFF)


class MacroStage(enum.IntEnum):
    """SMFIM_*: the stage indexes of SMFIR_SETSYMLIST."""
    CONNECT = 0
    HELO = 1
    ENVFROM = 2
    ENVRCPT = 3
    DATA = 4
    EOM = 5
    EOH = 6


@frozen
class Packet:
    code: bytes          # one byte
    payload: bytes


def encode(code: bytes | Command | ReplyCode, payload: bytes = b"") -> bytes:
    """One packet: length, code byte, payload."""
    code = code.value if isinstance(code, enum.Enum) else code
    return struct.pack("!I", len(payload) + 1) + code + payload


def cstrings(*items: str | bytes) -> bytes:
    """NUL-terminated strings; str in UTF-8 (milters see SMTPUTF8 addresses as sent)."""
    return b"".join((s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s) + b"\0"
                    for s in items)


def split_cstrings(payload: bytes) -> list[str]:
    """The NUL-terminated strings of a payload; a missing last NUL is an error."""
    if not payload:
        return []
    if not payload.endswith(b"\0"):
        raise MilterProtocolError("string not NUL-terminated")
    return [p.decode("utf-8", "surrogateescape") for p in payload[:-1].split(b"\0")]


class PacketDecoder:
    """Packets out of a byte stream, whatever the pieces it arrives in."""

    def __init__(self, max_packet: int = MAX_PACKET) -> None:
        self._buf = bytearray()
        self._max = max_packet

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_packet(self) -> Packet | None:
        buf = self._buf
        if len(buf) < 4:
            return None
        (length,) = struct.unpack_from("!I", buf)
        if length < 1 or length > self._max:
            raise MilterProtocolError(f"bad packet length {length}")
        if len(buf) < 4 + length:
            return None
        code, payload = bytes(buf[4:5]), bytes(buf[5:4 + length])
        del buf[:4 + length]
        return Packet(code, payload)


# --- the MTA's commands ---------------------------------------------------------------

def optneg(version: int, actions: int, protocol: int) -> bytes:
    return encode(Command.OPTNEG, struct.pack("!III", version, actions, protocol))


def macros(stage_command: Command, pairs: tuple[tuple[str, str], ...]) -> bytes:
    """SMFIC_MACRO: the macros that go with the next command."""
    return encode(Command.MACRO, stage_command.value + cstrings(*(s for p in pairs for s in p)))


def connect(hostname: str, family: str, port: int, address: str) -> bytes:
    """SMFIC_CONNECT; family "4", "6", "L" (Unix socket) or "U" (unknown,
    which carries neither port nor address)."""
    payload = cstrings(hostname) + family.encode()
    if family != "U":
        payload += struct.pack("!H", port) + cstrings(address)
    return encode(Command.CONNECT, payload)


def header(name: str, value: str) -> bytes:
    return encode(Command.HEADER, cstrings(name, value))


def body_chunks(body: bytes) -> list[bytes]:
    """SMFIC_BODY packets, CHUNK_SIZE bytes at most each; none for an empty body."""
    return [encode(Command.BODY, body[i:i + CHUNK_SIZE]) for i in range(0, len(body), CHUNK_SIZE)]


# --- the milter's replies ---------------------------------------------------------------

@frozen
class Negotiated:
    """The milter's answer to OPTNEG: what it will do and which steps it skips."""
    version: int
    actions: Action
    protocol: Proto
    # Macro names per stage the milter asked for (SMFIR_SETSYMLIST), else
    # the MTA's configured lists apply.
    symlists: tuple[tuple[MacroStage, tuple[str, ...]], ...] = ()


@frozen
class Continue:
    pass


@frozen
class Accept:
    pass


@frozen
class Reject:
    pass


@frozen
class Tempfail:
    pass


@frozen
class Discard:
    pass


@frozen
class Skip:
    pass


@frozen
class Progress:
    pass


@frozen
class Shutdown:
    """SMFIR_SHUTDOWN / SMFIR_CONN_FAIL: the milter gives up on this connection."""
    pass


@frozen
class CustomReply:
    """SMFIR_REPLYCODE: "550 5.7.1 text" (lines joined by CRLF when multi-line)."""
    code: int
    text: str            # everything after the code and its separator

    @property
    def permanent(self) -> bool:
        return self.code >= 500


@frozen
class AddHeader:
    name: str
    value: str


@frozen
class InsertHeader:
    index: int           # 0: before every header
    name: str
    value: str


@frozen
class ChangeHeader:
    index: int           # 1: the first header of that name; value "" deletes it
    name: str
    value: str


@frozen
class AddRecipient:
    address: str         # as the milter gave it, usually <a@b>
    args: str = ""       # ESMTP arguments (SMFIR_ADDRCPT_PAR)


@frozen
class DeleteRecipient:
    address: str


@frozen
class ChangeSender:
    address: str
    args: str = ""


@frozen
class ReplaceBody:
    chunk: bytes         # one piece; several pieces make the new body


@frozen
class Quarantine:
    reason: str


# The replies that end a step, and those that only modify the message
# (legal just before the final reply to end of message).
Verdict = Continue | Accept | Reject | Tempfail | Discard | Skip | CustomReply | Shutdown
Modification = (AddHeader | InsertHeader | ChangeHeader | AddRecipient | DeleteRecipient
                | ChangeSender | ReplaceBody | Quarantine)

_SIMPLE = {ReplyCode.CONTINUE.value: Continue(), ReplyCode.ACCEPT.value: Accept(),
           ReplyCode.REJECT.value: Reject(), ReplyCode.TEMPFAIL.value: Tempfail(),
           ReplyCode.DISCARD.value: Discard(), ReplyCode.SKIP.value: Skip(),
           ReplyCode.PROGRESS.value: Progress(), ReplyCode.SHUTDOWN.value: Shutdown(),
           ReplyCode.CONN_FAIL.value: Shutdown()}


def _strings(payload: bytes, least: int, what: str) -> list[str]:
    items = split_cstrings(payload)
    if len(items) < least:
        raise MilterProtocolError(f"{what}: {len(items)} strings, need {least}")
    return items


def _indexed(payload: bytes, what: str) -> tuple[int, str, str]:
    if len(payload) < 4:
        raise MilterProtocolError(f"{what}: no index")
    (index,) = struct.unpack_from("!I", payload)
    name, value = _strings(payload[4:], 2, what)[:2]
    return index, name, value


def parse_custom_reply(text: str) -> CustomReply:
    """SMFIR_REPLYCODE text: a 4XX or 5XX code, then " " or "-" and the rest."""
    if len(text) < 3 or not text[:3].isdigit() or text[0] not in "45" \
            or (len(text) > 3 and text[3] not in " -"):
        raise MilterProtocolError(f"malformed reply code: {text[:40]!r}")
    return CustomReply(int(text[:3]), text[4:])


def parse_reply(packet: Packet) -> object:
    """The event for one packet from the milter."""
    code, payload = packet.code, packet.payload
    simple = _SIMPLE.get(code)
    if simple is not None:
        return simple
    match code:
        case ReplyCode.REPLYCODE.value:
            return parse_custom_reply(_strings(payload, 1, "replycode")[0])
        case ReplyCode.ADDHEADER.value:
            name, value = _strings(payload, 2, "addheader")[:2]
            return AddHeader(name, value)
        case ReplyCode.INSHEADER.value:
            return InsertHeader(*_indexed(payload, "insheader"))
        case ReplyCode.CHGHEADER.value:
            return ChangeHeader(*_indexed(payload, "chgheader"))
        case ReplyCode.ADDRCPT.value:
            return AddRecipient(_strings(payload, 1, "addrcpt")[0])
        case ReplyCode.ADDRCPT_PAR.value:
            items = _strings(payload, 1, "addrcpt_par")
            return AddRecipient(items[0], items[1] if len(items) > 1 else "")
        case ReplyCode.DELRCPT.value:
            return DeleteRecipient(_strings(payload, 1, "delrcpt")[0])
        case ReplyCode.CHGFROM.value:
            items = _strings(payload, 1, "chgfrom")
            return ChangeSender(items[0], items[1] if len(items) > 1 else "")
        case ReplyCode.REPLBODY.value:
            return ReplaceBody(payload)
        case ReplyCode.QUARANTINE.value:
            return Quarantine(_strings(payload, 1, "quarantine")[0])
        case ReplyCode.OPTNEG.value:
            return parse_optneg(payload)
    raise MilterProtocolError(f"unknown reply code {code!r}", response=reply_name(code))


def parse_optneg(payload: bytes) -> Negotiated:
    """The milter's OPTNEG: version, actions, protocol, then optional symlists."""
    if len(payload) < 12:
        raise MilterProtocolError("optneg reply too short")
    version, actions, protocol = struct.unpack_from("!III", payload)
    rest = payload[12:]
    lists = []
    while rest:
        if len(rest) < 5:
            raise MilterProtocolError("truncated symbol list")
        (stage,) = struct.unpack_from("!I", rest)
        end = rest.find(b"\0", 4)
        if end < 0:
            raise MilterProtocolError("symbol list not NUL-terminated")
        try:
            where = MacroStage(stage)
        except ValueError:
            raise MilterProtocolError(f"bad symbol list stage {stage}") from None
        names = rest[4:end].decode("ascii", "replace").split()
        lists.append((where, tuple(names)))
        rest = rest[end + 1:]
    return Negotiated(version, Action(actions & ALL_ACTIONS), Proto(protocol & ALL_PROTOCOL),
                      tuple(lists))


__all__ = [
    "MilterProtocolError", "MAX_PACKET", "CHUNK_SIZE", "PROTOCOL_VERSION", "Command", "ReplyCode",
    "Action", "ALL_ACTIONS", "Proto", "ALL_PROTOCOL", "MacroStage", "Packet", "encode",
    "cstrings", "split_cstrings", "reply_name", "PacketDecoder", "optneg", "macros", "connect", "header",
    "body_chunks", "Negotiated", "Continue", "Accept", "Reject", "Tempfail", "Discard", "Skip",
    "Progress", "Shutdown", "CustomReply", "AddHeader", "InsertHeader", "ChangeHeader",
    "AddRecipient", "DeleteRecipient", "ChangeSender", "ReplaceBody", "Quarantine", "Verdict",
    "Modification", "parse_custom_reply", "parse_reply", "parse_optneg",
]
