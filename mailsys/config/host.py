"""host - the few facts mailsys.config takes from the host it runs on.

Postfix computes some defaults from the machine: myhostname from the
system's FQDN, mynetworks from its own addresses, and master.cf resolves
port names through /etc/services. These lookups live here, and import the
socket module only when one is first asked for, so that the rest of
mailsys.config stays pure (STYLE.md, layering) and importing it stays cheap.
Results are cached for the life of the process.
"""

from __future__ import annotations

import functools


@functools.cache
def fqdn() -> str:
    """The system's fully qualified name (``name.localdomain`` if it has no dot)."""
    import socket
    name = socket.getfqdn() or socket.gethostname() or "localhost"
    return name if "." in name else f"{name}.localdomain"


@functools.cache
def own_networks() -> tuple[str, ...]:
    """This host's non-loopback addresses as /32 and [v6]/128 networks."""
    import socket
    found: list[str] = []
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        infos = []
    for family, *_, sockaddr in infos:
        addr = sockaddr[0]
        if family == socket.AF_INET and not addr.startswith("127."):
            net = f"{addr}/32"
        elif family == socket.AF_INET6 and addr != "::1":
            net = f"[{addr.split('%')[0]}]/128"
        else:
            continue
        if net not in found:
            found.append(net)
    return tuple(found)


def tcp_port(name: str) -> int | None:
    """The TCP port of a service name in /etc/services, or None."""
    import socket
    try:
        return socket.getservbyname(name, "tcp")
    except OSError:
        return None
