"""verify_client - smtpd's side of the verify service (Postfix verify_clnt).

SYNOPSIS
    verify = VerifyClient.from_config(cfg)
    answer = await verify.query("user@example.com")   # (status, text), or (None, "")

DESCRIPTION
    reject_unverified_recipient and reject_unverified_sender ask the
    verify service ($queue_directory/private/$address_verify_service_name,
    protocol "verify") what it knows of an address. While the answer is
    "not known yet" (a probe is out), the query is repeated up to
    address_verify_poll_count times, address_verify_poll_delay apart, as
    Postfix's smtpd does, so that a probe answered within that time decides
    the very command that caused it. Only the session that asks waits.

    When the service cannot be reached or answers badly, the answer is
    (None, "") and Postfix's warning is logged: "warning: verify service
    failure"; the restriction then answers 450 "address verification
    problem" (mailsys.policy.verify). A deliberate difference: Postfix's
    smtpd tries to connect again every 10 seconds ("warning: connect #2 to
    subsystem private/verify: Connection refused", seen live) and holds the
    client meanwhile; mailsys answers at once.
"""

from __future__ import annotations

from pathlib import Path

import structlog
import trio

from mailsys.ipc import names
from mailsys.ipc.errors import IpcError
from mailsys.ipc.proto import verify as proto
from mailsys.runtime import ipc_io

__all__ = ["VerifyClient", "TIMEOUT"]

log = structlog.get_logger()

# verify answers from memory: a service that takes longer is stuck.
# (Postfix waits $ipc_timeout; the SMTP client should not.)
TIMEOUT = 10.0


class VerifyClient:
    """Queries to the verify service; see the module description."""

    def __init__(self, path: Path | str, *, service: str = names.VERIFY, poll_count: int = 3,
                 poll_delay: float = 3.0, timeout: float = TIMEOUT) -> None:
        self.path = Path(path)
        self.service = service
        self.poll_count = max(1, poll_count)
        self.poll_delay = poll_delay
        self.timeout = timeout

    @classmethod
    def from_config(cls, cfg) -> VerifyClient:
        service = cfg.address_verify_service_name
        return cls(names.private_path(cfg.path("queue_directory"), service), service=service,
                   poll_count=int(cfg.address_verify_poll_count),
                   poll_delay=float(cfg.address_verify_poll_delay))

    async def query(self, address: str) -> tuple[int | None, str]:
        count = 0
        while True:
            try:
                answer = await ipc_io.call(self.path, proto.VerifyQuery(address),
                                           protocol=proto.PROTOCOL, expect=proto.VerifyAnswer,
                                           timeout=self.timeout)
            except IpcError:
                log.warning(f"{self.service} service failure")
                return None, ""
            count += 1
            if answer.status != proto.TODO or count >= self.poll_count:
                return answer.status, answer.text
            await trio.sleep(self.poll_delay)
