"""best_mx - best_mx_transport: hand mail that loops back here to another transport.

SYNOPSIS
    best = BestMxPass.from_config(cfg)          # None when best_mx_transport is empty
    if best is not None and best.applies(req, results):
        status = await best.hand_over(req)      # None: the transport did not answer

DESCRIPTION
    When this host is the best MX host of a destination that is not one of
    its own domains, the smtp client finds nowhere to send the mail: Postfix
    reports "mail for X loops back to myself" (5.4.6). With
    best_mx_transport set, Postfix's smtp_connect.c passes the whole
    request instead to that transport ("transport" or "transport:nexthop",
    a master.cf service; the nexthop defaults to the request's own) with
    deliver_pass_all(); that agent delivers and logs the recipients. Not
    for the relayhost: a relayhost that loops is a configuration problem.

    Only that loop, found in the MX list before any server was talked to,
    is passed on (smtp_connect.c: recipients left over and a hard
    SMTP_HAS_LOOP_DSN). A server that answers EHLO with our own hostname
    is a loop found in the session (smtp_proto.c): at a best MX host its
    5.4.6 bounces the recipients at once, elsewhere its 4.4.6 defers them,
    and best_mx_transport is not used. Here the difference shows in the
    results: the MX-list loop has no relay (relay=none), the other names
    the server.

    hand_over() does the same over the delivery protocol to the service's
    private socket, and returns that agent's DeliveryStatus. When the
    agent cannot be reached the caller defers the recipients with
    Postfix's "mail transport unavailable" (4.3.0).

SEE ALSO
    mailsys.runtime.smtp_agent, mailsys.routing.drop_self; Postfix
    postconf(5) best_mx_transport, deliver_pass(3).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog

from mailsys.frozen import frozen
from mailsys.ipc import names
from mailsys.ipc.errors import IpcError
from mailsys.ipc.proto.deliver import (PROTOCOL, SENT, DeliverRequest, DeliveryStatus,
                                       RecipientResult)
from mailsys.routing import split_transport
from mailsys.runtime import ipc_io

log = structlog.get_logger()

# smtp.h SMTP_HAS_LOOP_DSN(): a status whose subject and detail are 4.6.
LOOP_DETAIL = ".4.6"


@frozen
class BestMxPass:
    transport: str          # the master.cf service
    nexthop: str            # "" keeps the request's
    relayhost: str          # $relayhost, never passed on
    socket: Path            # the service's private socket
    timeout: float          # ipc_timeout

    @classmethod
    def from_config(cls, cfg: Any) -> "BestMxPass | None":
        value = str(cfg.best_mx_transport).strip()
        if not value:
            return None
        transport, nexthop = split_transport(value)
        return cls(transport, nexthop, str(cfg.relayhost).strip(),
                   names.private_path(cfg.path("queue_directory"), transport),
                   float(cfg.ipc_timeout))

    def applies(self, req: DeliverRequest, results: Iterable[RecipientResult]) -> bool:
        """Whether every recipient failed with the hard loop status before
        any server was talked to, for a next hop that is not the relayhost."""
        results = list(results)
        if not results or any(r.status == SENT or r.dsn[:1] != "5" or r.dsn[1:] != LOOP_DETAIL
                              or r.relay != "none" for r in results):
            return False
        first = req.nexthop.split(",")[0].strip()
        return not self.relayhost or first != self.relayhost.split(",")[0].strip()

    async def hand_over(self, req: DeliverRequest) -> DeliveryStatus | None:
        """The request delivered by the transport; None when it did not answer."""
        request = dataclasses.replace(req, transport=self.transport,
                                      nexthop=self.nexthop or req.nexthop)
        try:
            return await ipc_io.call(self.socket, request, protocol=PROTOCOL,
                                     expect=DeliveryStatus, timeout=self.timeout)
        except IpcError as e:
            log.warning(f"{self.transport} transport: {e}", queue_id=req.queue_id)
            return None


__all__ = ["BestMxPass"]
