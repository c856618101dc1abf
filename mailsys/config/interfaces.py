"""interfaces - this host's own addresses, and the mynetworks they imply.

SYNOPSIS
    from mailsys.config.interfaces import own_interfaces, mynetworks

    own_interfaces(("all",), ("all",))       # every up interface's addresses
    own_interfaces(("loopback-only",), ("ipv4",))   # (IPv4Interface('127.0.0.1/8'),)
    mynetworks(("all",), ("all",), "host")
        # ('127.0.0.1/32', '192.0.2.2/32', '[::1]/128', '[fd00::2]/128', ...)

DESCRIPTION
    Postfix takes three things from the machine's network interfaces: the
    addresses "inet_interfaces = all" stands for, the netmask of each, and
    from both the default mynetworks (mynetworks_style). mailsys does the
    same here, with psutil reading the interface table (getifaddrs() and
    its netmasks, on Linux and the BSDs alike).

    own_interfaces(inet_interfaces, inet_protocols) are the addresses the
    list names, each with its interface's netmask, in Postfix's order: IPv4
    before IPv6, then interface order, no duplicates:
      all             every address of every interface that is up;
      loopback-only   127.0.0.1 and ::1;
      an address      that address ([brackets] allowed for IPv6);
      a host name     its addresses (getaddrinfo).
    inet_protocols (all, ipv4, ipv6) keeps only those families. An address
    that no interface has (Postfix stops with "no local interface found")
    keeps a host mask: mailsys leaves the refusal to the listener's bind().

    mynetworks(inet_interfaces, inet_protocols, style) is Postfix's
    mynetworks.c: per address, "host" gives the address itself (/32, /128),
    "subnet" its interface's network, "class" the IPv4 class A, B, C or D
    network (IPv6 has no classes: its subnet).

    Results are computed once per process (the interface table is read when
    first asked), as Postfix computes them once per process.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

_LOOPBACK = ("127.0.0.1", "::1")

# IPv4 classes A to D by their leading bits: (first octet below, prefix).
_CLASSES = ((128, 8), (192, 16), (224, 24), (240, 4))


@functools.cache
def _interface_table() -> tuple[IPInterface, ...]:
    """Every address of every interface that is up, IPv4 first."""
    import socket

    import psutil
    stats = psutil.net_if_stats()
    found: list[IPInterface] = []
    for name, addrs in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for a in addrs:
            if a.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            addr = a.address.split("%")[0]          # fe80::1%eth0: the scope is not ours
            prefix = _prefix(a.netmask, 32 if a.family == socket.AF_INET else 128)
            found.append(ipaddress.ip_interface(f"{addr}/{prefix}"))
    found.sort(key=lambda i: i.version)         # stable: interface order within a family
    return tuple(found)


def _prefix(netmask: str | None, bits: int) -> int:
    if not netmask:
        return bits
    return bin(int(ipaddress.ip_address(netmask))).count("1")


def _families(inet_protocols: Iterable[str]) -> frozenset[int]:
    words = {p.lower() for p in inet_protocols}
    if not words or "all" in words:
        return frozenset((4, 6))
    return frozenset(v for v, name in ((4, "ipv4"), (6, "ipv6")) if name in words)


def _named(word: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses one inet_interfaces word stands for, other than "all"."""
    w = word.strip("[]")
    if w.lower() == "loopback-only":
        return [ipaddress.ip_address(a) for a in _LOOPBACK]
    try:
        return [ipaddress.ip_address(w)]
    except ValueError:
        pass
    return _resolve(w)


@functools.cache
def _resolve_cached(name: str) -> tuple[str, ...]:
    import socket
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return ()
    return tuple(dict.fromkeys(info[4][0].split("%")[0] for info in infos))


def _resolve(name: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(a) for a in _resolve_cached(name)]


def own_interfaces(inet_interfaces: Iterable[str], inet_protocols: Iterable[str] = ("all",),
                   table: Iterable[IPInterface] | None = None) -> tuple[IPInterface, ...]:
    """The addresses inet_interfaces names, with their netmasks; see DESCRIPTION.
    table: the interface addresses to use instead of this host's."""
    families = _families(inet_protocols)
    table = _interface_table() if table is None else tuple(table)
    found: list[IPInterface] = []
    for word in inet_interfaces:
        if word.lower() == "all":
            found += table
            continue
        for addr in _named(word):
            on_host = [i for i in table if i.ip == addr]
            found.append(on_host[0] if on_host else ipaddress.ip_interface(addr))
    found = [i for i in found if i.version in families]
    found.sort(key=lambda i: i.version)
    return tuple(dict.fromkeys(found))


def own_addresses(inet_interfaces: Iterable[str], proxy_interfaces: Iterable[str] = (),
                  inet_protocols: Iterable[str] = ("all",)) -> frozenset:
    """This host's addresses as Postfix's own_inet_addr() and proxy_inet_addr()
    see them: those of inet_interfaces, and those of proxy_interfaces."""
    addrs = {i.ip for i in own_interfaces(inet_interfaces, inet_protocols)}
    for word in proxy_interfaces:
        addrs.update(_named(word))
    return frozenset(addrs)


def _network(iface: IPInterface, style: str) -> str:
    if style == "host":
        net = ipaddress.ip_network(iface.ip)
    elif style == "class" and iface.version == 4:
        first = int(iface.ip) >> 24
        prefix = next((p for below, p in _CLASSES if first < below), 32)
        net = ipaddress.ip_network(f"{iface.ip}/{prefix}", strict=False)
    else:                                       # subnet; and class for IPv6
        net = iface.network
    if net.version == 6:
        return f"[{net.network_address}]/{net.prefixlen}"
    return str(net)


def mynetworks(inet_interfaces: Iterable[str], inet_protocols: Iterable[str], style: str,
               table: Iterable[IPInterface] | None = None) -> tuple[str, ...]:
    """Postfix's default mynetworks for these settings; see DESCRIPTION."""
    own = own_interfaces(inet_interfaces, inet_protocols, table)
    return tuple(dict.fromkeys(_network(i, style.lower()) for i in own))


__all__ = ["IPInterface", "mynetworks", "own_addresses", "own_interfaces"]
