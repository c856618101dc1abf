"""smtpd's DNS: domain existence over a real (tiny) DNS server, and reject_unknown_* in a session."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import pytest
import trio
from structlog.testing import capture_logs

from mailsys.policy.restrictions import DnsStatus
from mailsys.runtime.smtpd_dns import PeerName, PeerNames, SmtpdDns, peer_name

sys.path.insert(0, str(Path(__file__).parent))      # _smtpd_testlib.py (tests/ is no package)
from _smtpd_testlib import PARAMS, open_session, trio_test  # noqa: E402

# name -> ("A", "192.0.2.1") | ("MX", "10 mx.example.") | "NXDOMAIN" | "SERVFAIL"
ZONE = {
    "exists.example.": ("A", "192.0.2.1"),
    "mxonly.example.": ("MX", "10 mx.exists.example."),
    "nullmx.example.": ("MX", "0 ."),
    "missing.example.": "NXDOMAIN",
    "broken.example.": "SERVFAIL",
}


async def dns_server(task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Answers UDP queries from ZONE; other types of a known name get an empty answer."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    task_status.started(sock.getsockname()[1])
    with sock:
        while True:
            data, peer = await sock.recvfrom(4096)
            query = dns.message.from_wire(data)
            q = query.question[0]
            response = dns.message.make_response(query)
            entry = ZONE.get(q.name.to_text().lower(), "NXDOMAIN")
            if entry == "NXDOMAIN":
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif entry == "SERVFAIL":
                response.set_rcode(dns.rcode.SERVFAIL)
            elif dns.rdatatype.to_text(q.rdtype) == entry[0]:
                response.answer.append(dns.rrset.from_text(q.name, 60, "IN", entry[0], entry[1]))
            await sock.sendto(response.to_wire(), peer)


@pytest.mark.parametrize("name,status", [
    ("exists.example", DnsStatus.EXISTS),
    ("mxonly.example", DnsStatus.EXISTS),
    ("nullmx.example", DnsStatus.NULL_MX),
    ("missing.example", DnsStatus.NOT_FOUND),
    ("broken.example", DnsStatus.TEMPFAIL),
])
@trio_test
async def test_domain_status(make_config, name, status):
    async with trio.open_nursery() as nursery:
        port = await nursery.start(dns_server)
        dns_ = SmtpdDns.from_config(make_config(dns_nameservers=f"127.0.0.1:{port}"))
        assert await dns_.domain_status(name) == status
        nursery.cancel_scope.cancel()


@trio_test
async def test_unknown_recipient_domain_in_a_session(make_config):
    async with trio.open_nursery() as nursery:
        port = await nursery.start(dns_server)
        cfg = make_config(**PARAMS, dns_nameservers=f"127.0.0.1:{port}",
                          mynetworks="192.0.2.0/24",
                          smtpd_recipient_restrictions="reject_unknown_recipient_domain")
        with capture_logs() as logs:
            client, _ = await open_session(nursery, cfg)
            await client.send(b"EHLO c.example\r\nMAIL FROM:<a@exists.example>\r\n"
                              b"RCPT TO:<x@missing.example>\r\nRCPT TO:<x@broken.example>\r\n"
                              b"RCPT TO:<x@exists.example>\r\n")
            got = await client.replies(5)
        nursery.cancel_scope.cancel()
    assert got[2:] == ["450 4.1.2 <x@missing.example>: Recipient address rejected: Domain not found",
                       "450 4.1.2 <x@broken.example>: Recipient address rejected: Domain not found",
                       "250 2.1.5 Ok"]
    assert sum(1 for e in logs if e["event"] == "reject") == 2


@trio_test
async def test_client_name_is_forward_confirmed():
    assert (await peer_name("127.0.0.1")).name in ("localhost", "unknown")
    assert await peer_name("not an address") == PeerName()
    # 192.0.2.0/24 (TEST-NET-1) has no PTR records.
    assert (await peer_name("192.0.2.55", timeout=3)).name == "unknown"


def resolver(monkeypatch, ptr, forward):
    """The system resolver answering ptr (a name or a gaierror) and
    forward (addresses or a gaierror), as smtpd_peer.c sees them."""
    async def getnameinfo(sockaddr, flags):
        if isinstance(ptr, Exception):
            raise ptr
        return ptr, "0"

    async def getaddrinfo(host, port, **kw):
        if isinstance(forward, Exception):
            raise forward
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in forward]
    monkeypatch.setattr(trio.socket, "getnameinfo", getnameinfo)
    monkeypatch.setattr(trio.socket, "getaddrinfo", getaddrinfo)


AGAIN = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
NONAME = socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.mark.parametrize("ptr, forward, peer, warning", [
    ("mail.example", ["192.0.2.55"], PeerName("mail.example", "mail.example", "ok", "ok"), None),
    ("mail.example", ["192.0.2.9"], PeerName("unknown", "mail.example", "forged", "ok"),
     "hostname mail.example does not resolve to address 192.0.2.55"),
    ("mail.example", NONAME, PeerName("unknown", "mail.example", "forged", "ok"),
     "hostname mail.example does not resolve to address 192.0.2.55: Name or service not known"),
    ("mail.example", AGAIN, PeerName("unknown", "mail.example", "temp", "ok"),
     "hostname mail.example does not resolve to address 192.0.2.55: "
     "Temporary failure in name resolution"),
    (AGAIN, [], PeerName("unknown", "unknown", "temp", "temp"), None),
    (NONAME, [], PeerName(), None),
    ("192.0.2.55", ["192.0.2.55"], PeerName(), None),        # a numeric name is no name
])
@trio_test
async def test_peer_name_statuses_and_warnings(monkeypatch, ptr, forward, peer, warning):
    resolver(monkeypatch, ptr, forward)
    with capture_logs() as logs:
        assert await peer_name("192.0.2.55", names=PeerNames()) == peer
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == \
        ([warning] if warning else [])


def test_peer_names_expire_and_forget_the_oldest():
    names = PeerNames(ttl=30.0, limit=2)
    names.put("192.0.2.1", "a.example", now=100.0)
    assert names.get("192.0.2.1", now=129.9) == "a.example"
    assert names.get("192.0.2.1", now=130.0) is None          # expired, and dropped
    names.put("192.0.2.1", "a.example", now=200.0)
    names.put("192.0.2.2", "b.example", now=201.0)
    names.put("192.0.2.3", "c.example", now=202.0)             # over the limit: .1 goes
    assert names.get("192.0.2.1", now=203.0) is None
    assert names.get("192.0.2.2", now=203.0) == "b.example"
    assert names.get("192.0.2.3", now=203.0) == "c.example"


@trio_test
async def test_client_name_remembers_only_confirmed_names():
    names = PeerNames()
    # A remembered name is answered without a lookup: even with no time left.
    names.put("127.0.0.1", "remembered.example", trio.current_time())
    assert (await peer_name("127.0.0.1", timeout=0, names=names)).name == "remembered.example"
    # "unknown" (no PTR) is asked again every time.
    assert (await peer_name("192.0.2.55", timeout=3, names=names)).name == "unknown"
    assert names.get("192.0.2.55", trio.current_time()) is None


@pytest.mark.parametrize("restriction, reply", [
    ("reject_unknown_client_hostname",
     "550 5.7.25 Client host rejected: cannot find your hostname, [192.0.2.7]"),
    ("reject_unknown_reverse_client_hostname", "250 2.1.5 Ok"),
])
@trio_test
async def test_a_session_of_a_client_whose_name_is_forged(make_config, restriction, reply):
    # The PTR name that does not resolve back: the client is "unknown",
    # its reverse name is the PTR name (smtpd_peer.c).
    cfg = make_config(**PARAMS, unknown_client_reject_code="550",
                      smtpd_client_restrictions=restriction)
    peer = PeerName("unknown", "mail.example", "forged", "ok")
    async with trio.open_nursery() as nursery:
        client, _ = await open_session(nursery, cfg, name="unknown", peer=peer)
        await client.send(b"EHLO c.example\r\nMAIL FROM:<a@example.org>\r\n"
                          b"RCPT TO:<b@example.test>\r\n")
        got = await client.replies(3)
        nursery.cancel_scope.cancel()
    assert got[2] == reply
