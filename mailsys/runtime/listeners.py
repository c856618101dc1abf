"""listeners - the sockets the master opens and the children inherit.

DESCRIPTION
    Master side: endpoints(spec, cfg) says where a master.cf service listens
    and bind(endpoint) opens one socket there:

      inet        [host:]port. A service without a host listens on every
                  address of $inet_interfaces ("all", "loopback-only" or a
                  list), restricted to the families of $inet_protocols (and,
                  for "all" and "loopback-only", to those the host has). IPv6
                  sockets are IPV6_V6ONLY so that an IPv4 socket on the same
                  port can coexist. SO_REUSEADDR, so a restart does not wait
                  for TIME_WAIT.
      unix        a stream socket $queue_directory/private/NAME (private
                  column y) or public/NAME (n), mode 0666 inside the
                  directory that guards it.
      unix-dgram  a datagram socket at the same places (postlogd's postlog).
      pass        a stream socket like unix; each connection to it carries
                  one client connection passed by postscreen
                  (mailsys.runtime.fd_pass).

    A bind failure raises ListenError with Postfix's wording,
    "bind 127.0.0.1 port 2525: Address already in use".

    Child side: inherit(fd) turns a descriptor from --listen-fd back into a
    socket object, and stream_listener() wraps a stream socket in a
    mailsys.runtime.fast_stream.FastListener, whose connections are
    FastStreams (trio streams without trio.SocketStream's per-operation
    scheduling; trio has no high-level Unix listener anyway,
    python-trio/trio#279).
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import os
import socket
import stat
from pathlib import Path

from mailsys.errors import MailsysError
from mailsys.frozen import frozen
from mailsys.runtime.fast_stream import FastListener

# Linux backlog cap (net.core.somaxconn) clips this; a big backlog lets the
# kernel hold clients while a service is being (re)started or throttled.
BACKLOG = socket.SOMAXCONN

# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_UNIX_PATH = 107


class ListenError(MailsysError):
    """A listener could not be opened (port in use, bad address, path too long)."""


@frozen
class Endpoint:
    kind: str                    # "inet" | "unix" | "unix-dgram"
    host: str = ""               # inet: a numeric address
    port: int = 0
    path: str = ""               # unix, unix-dgram

    def describe(self) -> str:
        if self.kind == "inet":
            return f"{self.host} port {self.port}"
        return self.path


def _as_list(value) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v for v in value.replace(",", " ").split() if v)
    return tuple(value)


@functools.cache
def _usable(family: int, host: str) -> bool:
    """Whether this host can bind the address at all (IPv6 may be off)."""
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
    except OSError:
        return False
    return True


def _families(cfg) -> tuple[int, ...]:
    protocols = {p.lower() for p in _as_list(cfg.inet_protocols)}
    fams = []
    if protocols & {"all", "ipv4"}:
        fams.append(socket.AF_INET)
    if protocols & {"all", "ipv6"} and socket.has_ipv6:
        fams.append(socket.AF_INET6)
    return tuple(fams)


def _implicit(addresses: dict[int, str], port: int, families: tuple[int, ...]) -> list[Endpoint]:
    # Like Postfix with inet_protocols = all on a host without IPv6: an
    # address family the host cannot use is left out, not a fatal error.
    return [Endpoint("inet", addresses[f], port) for f in families if _usable(f, addresses[f])]


def _resolve(host: str, port: int, families: tuple[int, ...]) -> list[Endpoint]:
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ListenError(f"host/service {host}/{port} not found: {e.strerror}") from None
    out = []
    for family, _type, _proto, _name, addr in infos:
        if family in families:
            ep = Endpoint("inet", addr[0], port)
            if ep not in out:
                out.append(ep)
    if not out:
        raise ListenError(f"host {host}: no address in the enabled inet_protocols")
    return out


def endpoints(spec, cfg) -> tuple[Endpoint, ...]:
    """endpoints - where one master.cf service listens."""
    if spec.type == "inet":
        families = _families(cfg)
        if spec.host:
            return tuple(_resolve(spec.host, spec.port, families))
        out: list[Endpoint] = []
        for iface in _as_list(cfg.inet_interfaces):
            if iface == "all":
                cands = _implicit({socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"},
                                  spec.port, families)
            elif iface == "loopback-only":
                cands = _implicit({socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"},
                                  spec.port, families)
            else:
                cands = _resolve(iface, spec.port, families)
            out += [c for c in cands if c not in out]
        return tuple(out)
    if spec.type in ("unix", "unix-dgram"):
        return (Endpoint(spec.type, path=str(socket_path(cfg, spec.name, spec.private))),)
    if spec.type == "pass":
        # A stream socket like a unix service's; what arrives on it are
        # client connections another daemon (postscreen) hands over
        # (mailsys.runtime.fd_pass).
        return (Endpoint("unix", path=str(socket_path(cfg, spec.name, spec.private))),)
    raise ListenError(f"service {spec.name}: type {spec.type} is not supported by mailsys")


def socket_path(cfg, name: str, private: bool) -> Path:
    """$queue_directory/private/NAME or public/NAME."""
    return cfg.path("queue_directory") / ("private" if private else "public") / name


def bind(ep: Endpoint) -> socket.socket:
    """bind - open one listener; the returned socket is non-inheritable until passed on."""
    if ep.kind == "inet":
        return _bind_inet(ep)
    if len(os.fsencode(ep.path)) > MAX_UNIX_PATH:
        raise ListenError(f"bind {ep.path}: socket path longer than {MAX_UNIX_PATH} bytes;"
                          " use a shorter queue_directory")
    kind = socket.SOCK_STREAM if ep.kind == "unix" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_UNIX, kind)
    try:
        _remove_stale(ep.path)
        sock.bind(ep.path)
        # Access is guarded by the private/ or public/ directory, as in Postfix.
        os.chmod(ep.path, 0o666)
        if kind == socket.SOCK_STREAM:
            sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        raise ListenError(f"bind {ep.path}: {e.strerror}") from None
    return sock


def _bind_inet(ep: Endpoint) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(ep.host.split("%")[0]).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((ep.host, ep.port))
        sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        raise ListenError(f"bind {ep.host} port {ep.port}: {e.strerror}") from None
    return sock


def _remove_stale(path: str) -> None:
    # Only the master that holds the pid-file lock gets here, so a socket
    # left at the path belongs to a dead instance. Never remove anything else.
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(errno.EEXIST, f"{os.strerror(errno.EEXIST)} (not a socket)")
    os.unlink(path)


def close(sock: socket.socket, ep: Endpoint) -> None:
    """close - the master's copy of a listener; a unix socket's path goes too."""
    sock.close()
    if ep.kind != "inet":
        try:
            os.unlink(ep.path)
        except FileNotFoundError:
            pass


def make_dirs(cfg) -> None:
    """make_dirs - queue_directory and its private/ public/ pid/ maildrop/ subdirectories."""
    queue = cfg.path("queue_directory")
    queue.mkdir(parents=True, exist_ok=True)
    # private/: only the mail system's own user; public/: local users may
    # connect (Postfix uses 0710 with group postdrop; we have no such group);
    # maildrop/: sendmail's messages while cleanup is unreachable, written as
    # the mail system's own user, as private/ (mailsys.queue.maildrop).
    for name, mode in (("private", 0o700), ("public", 0o711), ("pid", 0o755),
                       ("maildrop", 0o700)):
        d = queue / name
        d.mkdir(exist_ok=True)
        os.chmod(d, mode)


# --- child side ------------------------------------------------------------

def inherit(fd: int) -> socket.socket:
    """inherit - a socket object for a descriptor passed by the master."""
    return socket.socket(fileno=fd)


def stream_listener(sock: socket.socket) -> FastListener:
    """stream_listener - a trio Listener over an inherited listening socket."""
    return FastListener(sock)
