"""names - service names, socket paths and trigger bytes (Postfix mail_proto.h).

DESCRIPTION
    A service is reached at a Unix socket named after it: private services
    (reachable by mailsys processes only) at ``queue_directory/private/NAME``,
    public ones (reachable by local users' tools too) at
    ``queue_directory/public/NAME``, as master.cf's "private" column says.
    The master binds those sockets; clients only connect to them.

    The protocol a service announces in its Hello is, by convention, its
    service name (mailsys.runtime.ipc_io uses the socket's file name when no
    protocol is given).

    Triggers are one-byte hints written to a service socket and closed.
    qmgr folds whatever bytes it receives into flags and rescans the queue,
    which is the truth; a lost trigger only costs latency (Postfix
    src/qmgr/qmgr.c, qmgr_trigger_event).
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ANVIL", "BOUNCE", "CLEANUP", "DEFER", "LOCAL", "PICKUP", "POSTLOG", "QMGR", "RELAY", "SMTP",
    "SMTPD", "TRACE", "VERIFY", "PRIVATE_DIR", "PUBLIC_DIR", "private_path", "public_path",
    "TRIGGER_REQ_WAKEUP", "QMGR_REQ_SCAN_DEFERRED", "QMGR_REQ_SCAN_INCOMING",
    "QMGR_REQ_FLUSH_DEAD", "QMGR_REQ_SCAN_ALL",
]

# Service names, as in Postfix's default master.cf.
ANVIL = "anvil"
BOUNCE = "bounce"      # non-delivery records and notices
DEFER = "defer"        # delay records (a bounce process, as in Postfix)
TRACE = "trace"        # delivery records for DSN SUCCESS and sendmail -v (a bounce process)
CLEANUP = "cleanup"
LOCAL = "local"
PICKUP = "pickup"      # the maildrop (public, as in Postfix)
POSTLOG = "postlog"
QMGR = "qmgr"
RELAY = "relay"        # the smtp client, for relay_domains
SMTP = "smtp"
SMTPD = "smtpd"
VERIFY = "verify"      # address verification (reject_unverified_*)

PRIVATE_DIR = "private"
PUBLIC_DIR = "public"

# qmgr trigger requests (src/global/mail_proto.h).
TRIGGER_REQ_WAKEUP = b"W"        # wakeup
QMGR_REQ_SCAN_DEFERRED = b"D"    # scan deferred queue
QMGR_REQ_SCAN_INCOMING = b"I"    # scan incoming queue
QMGR_REQ_FLUSH_DEAD = b"F"       # flush dead transports and sites
QMGR_REQ_SCAN_ALL = b"A"         # ignore time stamps


def private_path(queue_dir: Path, name: str) -> Path:
    """Return the socket path of the private service ``name``."""
    return Path(queue_dir) / PRIVATE_DIR / _checked(name)


def public_path(queue_dir: Path, name: str) -> Path:
    """Return the socket path of the public service ``name``."""
    return Path(queue_dir) / PUBLIC_DIR / _checked(name)


def _checked(name: str) -> str:
    # A service name becomes one path component; anything else would let a
    # master.cf entry point a client outside the queue directory.
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise ValueError(f"bad service name {name!r}")
    return name
