"""pcap - end-of-DATA to 250 latencies from a packet capture of SMTP sessions.

DESCRIPTION
    smtp-source reports no timings, so the latency of the DATA reply is
    read off the wire: tcpdump captures, on the loopback interface, every
    TCP segment with payload to or from the server port (headers plus the
    first bytes of payload are enough), and this module replays the capture.

    Per client connection: after the server sends a reply that starts with
    "354", every client segment with payload is message content, the last
    one carrying the final "." line; the first server reply after that is
    the answer to the end of DATA. When it starts with "250" its timestamp
    minus that of the client's last segment is one sample. smtp-source
    does not pipeline, so nothing else of the client's is on the wire in
    between. Timestamps are the kernel's capture times, so the figure
    includes neither smtp-source's nor the harness's scheduling.

    Reads classic pcap (microsecond or nanosecond, either byte order) with
    link types Ethernet (what tcpdump -i lo writes), Linux cooked v1/v2
    and BSD loopback; IPv4 and IPv6 without extension headers.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

LINK_HEADER = {1: 14, 113: 16, 276: 20, 0: 4}   # DLT_EN10MB, LINUX_SLL, LINUX_SLL2, NULL
ETHERTYPE_AT = {1: 12, 113: 14, 276: 0}
IPV4, IPV6 = 0x0800, 0x86DD


def segments(data: bytes) -> Iterator[tuple[float, int, int, bytes]]:
    """segments - (timestamp, src port, dst port, captured payload) of each TCP segment with payload."""
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError("not a pcap file")
    frac = 1e-9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF
    if linktype not in LINK_HEADER:
        raise ValueError(f"unsupported pcap link type {linktype}")
    record = struct.Struct(endian + "IIII")
    pos = 24
    while pos + 16 <= len(data):
        sec, sub, incl, _orig = record.unpack_from(data, pos)
        pkt = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        seg = _tcp_payload(pkt, linktype)
        if seg is not None:
            yield (sec + sub * frac, *seg)


def _tcp_payload(pkt: bytes, linktype: int) -> tuple[int, int, bytes] | None:
    off = LINK_HEADER[linktype]
    if linktype == 0:
        family = int.from_bytes(pkt[:4], "little") if pkt[:1] != b"\x00" else int.from_bytes(pkt[:4], "big")
        ethertype = IPV4 if family == 2 else IPV6
    else:
        at = ETHERTYPE_AT[linktype]
        ethertype = int.from_bytes(pkt[at:at + 2], "big")
    ip = pkt[off:]
    if ethertype == IPV4 and len(ip) >= 20:
        if ip[9] != 6:
            return None
        ihl = (ip[0] & 0x0F) * 4
        total = int.from_bytes(ip[2:4], "big")
        tcp = ip[ihl:]
        length = total - ihl
    elif ethertype == IPV6 and len(ip) >= 40:
        if ip[6] != 6:
            return None
        tcp = ip[40:]
        length = int.from_bytes(ip[4:6], "big")
    else:
        return None
    if len(tcp) < 20:
        return None
    doff = (tcp[12] >> 4) * 4
    if length - doff <= 0:
        return None
    sport, dport = struct.unpack_from(">HH", tcp)
    return sport, dport, bytes(tcp[doff:])


def data_latencies(data: bytes, server_port: int) -> list[float]:
    """data_latencies - seconds from the client's last DATA segment to the server's 250, per message."""
    in_data: dict[int, float | None] = {}    # client port -> time of its last content segment
    samples: list[float] = []
    for ts, sport, dport, payload in segments(data):
        if sport == server_port:
            client = dport
            if payload.startswith(b"354"):
                in_data[client] = None
            elif client in in_data:
                last = in_data.pop(client)
                if last is not None and payload.startswith(b"250"):
                    samples.append(ts - last)
        elif dport == server_port and sport in in_data:
            in_data[sport] = ts
    return samples
