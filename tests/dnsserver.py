"""dnsserver - a small real DNS server on loopback for tests.

SYNOPSIS
    with DnsServer({"example.test": {"MX": [(10, "mx1.example.test")]},
                    "mx1.example.test": {"A": ["127.0.0.1"]},
                    "gone.test": NXDOMAIN, "broken.test": SERVFAIL,
                    "slow.test": TIMEOUT}) as dns:
        main_cf["dns_nameservers"] = dns.spec          # "127.0.0.1:PORT"

DESCRIPTION
    A UDP responder on 127.0.0.1 (a free port) in a daemon thread, built
    on dnspython's message parsing (dns.message.from_wire, make_response).
    Each name maps to a dict of record type -> records, or to one of:

      NXDOMAIN   rcode NXDOMAIN for every type
      SERVFAIL   rcode SERVFAIL for every type
      TIMEOUT    no answer at all (the client times out)

    A record type may also map to SERVFAIL: that type alone fails
    ({"MX": SERVFAIL, "A": ["192.0.2.1"]}).

    A name that is present but lacks the asked type answers NOERROR with
    no records (NODATA); an absent name answers NXDOMAIN. MX records are
    (preference, exchange) with "." for a null MX; A and AAAA records are
    address strings; "CNAME" is one target name, answered with the
    target's records of the asked type behind it. ``queries`` lists (name, type) as they arrived.
    The zone may be changed while the server runs (``dns.zone[name] = ...``).
"""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

NXDOMAIN = "NXDOMAIN"
SERVFAIL = "SERVFAIL"
TIMEOUT = "TIMEOUT"


class DnsServer:
    def __init__(self, zone: dict, ttl: int = 60) -> None:
        self.zone = {k.lower().rstrip("."): v for k, v in zone.items()}
        self.ttl = ttl
        self.queries: list[tuple[str, str]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def spec(self) -> str:
        """The dns_nameservers value that points at this server."""
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> DnsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            reply = self.answer(data)
            if reply is not None:
                self._sock.sendto(reply, peer)

    def answer(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        entry = self.zone.get(name, NXDOMAIN)
        if entry == TIMEOUT:
            return None
        if entry == NXDOMAIN:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif entry == SERVFAIL:
            response.set_rcode(dns.rcode.SERVFAIL)
        else:
            owner = question.name
            target = entry.get("CNAME")
            if target and rdtype != "CNAME":
                response.answer.append(dns.rrset.from_text_list(
                    owner, self.ttl, dns.rdataclass.IN, "CNAME", [target.rstrip(".") + "."]))
                owner = dns.name.from_text(target)
                entry = self.zone.get(target.lower().rstrip("."), {})
                entry = entry if isinstance(entry, dict) else {}
            records = entry.get(rdtype, [])
            if records == SERVFAIL:
                response.set_rcode(dns.rcode.SERVFAIL)
            elif records:
                texts = ([f"{pref} {host.rstrip('.')}." if host != "." else f"{pref} ."
                          for pref, host in records] if rdtype == "MX" else list(records))
                response.answer.append(dns.rrset.from_text_list(
                    owner, self.ttl, dns.rdataclass.IN, rdtype, texts))
        return response.to_wire()
