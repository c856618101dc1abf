"""agents - how qmgr reaches the delivery agents and the bounce service.

Agents is what the scheduler needs: deliver(DeliverRequest) -> DeliveryStatus
on the transport's agent, notice(NoticeRequest) -> NoticeReady from bounce,
verify(VerifyUpdate) to tell the verify service a probe's result
(``private/$address_verify_service_name``, one connection per update).
IpcAgents does it over the service sockets the master binds:
``private/<transport>`` (protocol "deliver", one kept-open channel pool per
transport) and ``private/bounce`` (protocol "bounce", one connection per
notice). Tests put plain functions in its place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from mailsys.ipc import names
from mailsys.ipc.proto import bounce as bounce_proto
from mailsys.ipc.proto import deliver as deliver_proto
from mailsys.ipc.proto.bounce import NoticeReady, NoticeRequest
from mailsys.ipc.messages import Ok
from mailsys.ipc.proto import verify as verify_proto
from mailsys.ipc.proto.deliver import DeliverRequest, DeliveryStatus
from mailsys.ipc.proto.verify import VerifyUpdate
from mailsys.runtime import ipc_io

__all__ = ["Agents", "IpcAgents"]

# How long a connect to an agent or to bounce may take: they are local
# processes the master keeps running; a slower one is as good as absent.
CONNECT_TIMEOUT = 10.0
# Channels kept open to one transport's agents (each carries one request at
# a time); a transport's concurrency across destinations beyond this waits.
POOL_SIZE = 100


class Agents(Protocol):
    """How qmgr reaches the delivery agents and the bounce service."""

    async def deliver(self, request: DeliverRequest, timeout: float) -> DeliveryStatus: ...

    async def notice(self, request: NoticeRequest, timeout: float) -> NoticeReady: ...

    async def verify(self, update: VerifyUpdate, timeout: float) -> None: ...

    async def aclose(self) -> None: ...


class IpcAgents:
    """Agents over the service sockets: private/<transport>, private/bounce."""

    def __init__(self, queue_dir: Path, verify_service: str = names.VERIFY) -> None:
        self._queue_dir = Path(queue_dir)
        self._verify = verify_service            # address_verify_service_name
        self._pools: dict[str, ipc_io.ChannelPool] = {}

    async def deliver(self, request: DeliverRequest, timeout: float) -> DeliveryStatus:
        pool = self._pools.get(request.transport)
        if pool is None:
            path = names.private_path(self._queue_dir, request.transport)
            pool = ipc_io.ChannelPool(path, deliver_proto.PROTOCOL, POOL_SIZE,
                                      connect_timeout=CONNECT_TIMEOUT)
            self._pools[request.transport] = pool
        return await pool.call(request, expect=DeliveryStatus, timeout=timeout)

    async def notice(self, request: NoticeRequest, timeout: float) -> NoticeReady:
        path = names.private_path(self._queue_dir, names.BOUNCE)
        return await ipc_io.call(path, request, protocol=bounce_proto.PROTOCOL,
                                 expect=NoticeReady, timeout=timeout)

    async def verify(self, update: VerifyUpdate, timeout: float) -> None:
        path = names.private_path(self._queue_dir, self._verify)
        await ipc_io.call(path, update, protocol=verify_proto.PROTOCOL, expect=Ok,
                          timeout=timeout)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
