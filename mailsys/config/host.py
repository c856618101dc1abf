"""host - the few facts mailsys.config takes from the host it runs on.

Postfix computes some defaults from the machine: myhostname from the
system's FQDN, and master.cf resolves port names through /etc/services
(the interface addresses are in mailsys.config.interfaces). These lookups
live here, and import the
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


def tcp_port(name: str) -> int | None:
    """The TCP port of a service name in /etc/services, or None."""
    import socket
    try:
        return socket.getservbyname(name, "tcp")
    except OSError:
        return None
