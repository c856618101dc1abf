"""anvil protocol - what smtpd asks anvil (Postfix anvil(8)).

Each smtpd process keeps one channel to anvil and asks before it answers:
AnvilConnect when a client connects (the reply carries the concurrency and
connection-rate counts), AnvilDisconnect when it goes, AnvilEvent for each
MAIL, RCPT, new TLS session and AUTH (the reply carries that rate). smtpd
compares the counts with its own limits (its -o overrides may differ per
service) through mailsys.policy.anvil, so anvil only counts. Counters are
kept per (service, client address). If anvil is down, smtpd keeps serving
and logs a warning.
"""

from __future__ import annotations


from mailsys.frozen import frozen
from mailsys.ipc.codec import message

PROTOCOL = "anvil"

# AnvilEvent.kind values
MESSAGE, RECIPIENT, NEWTLS, NEWTLS_STATUS, AUTH = "message", "recipient", "newtls", "newtls_status", "auth"


@message("anvil_connect", version=1)
@frozen
class AnvilConnect:
    service: str
    addr: str


@message("anvil_disconnect", version=1)
@frozen
class AnvilDisconnect:
    service: str
    addr: str


@message("anvil_event", version=1)
@frozen
class AnvilEvent:
    service: str
    addr: str
    kind: str                    # one of the kinds above


@message("anvil_counts", version=1)
@frozen
class AnvilCounts:
    count: int = 0               # concurrent connections (AnvilConnect)
    rate: int = 0                # the rate of the event asked about
