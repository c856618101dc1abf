"""qmgr_fixtures - helpers for the in-process qmgr tests: fake agents, envelopes."""

from __future__ import annotations

import time
from collections.abc import Callable

import trio

from mailsys.ipc.errors import IpcUnavailable
from mailsys.ipc.proto.bounce import NoticeReady, NoticeRequest, PostmasterCopy
from mailsys.ipc.proto.deliver import DeliverRequest, DeliveryStatus, RecipientResult
from mailsys.message.envelope import Envelope, Recipient
from mailsys.message.qid import new_qid
from mailsys.queue import Queue
from mailsys.routing import DomainSet, RoutingSettings

ROUTING = RoutingSettings(myhostname="mx.example.test",
                          mydestination=DomainSet.of(["mx.example.test", "example.test"]),
                          virtual_alias_domains=DomainSet.of(["alias.example"]))


def sent(req: DeliverRequest) -> DeliveryStatus:
    return DeliveryStatus(req.queue_id, tuple(
        RecipientResult(r.index, "sent", "2.0.0", "250 2.0.0 Ok", relay="fake")
        for r in req.recipients))


def all_as(status: str, dsn: str, reason: str, dead: bool = False):
    def answer(req: DeliverRequest) -> DeliveryStatus:
        return DeliveryStatus(req.queue_id, tuple(
            RecipientResult(r.index, status, dsn, reason) for r in req.recipients),
            dead_destination=dead)
    return answer


class FakeAgents:
    """Delivery agents and bounce as functions; records what they were asked."""

    def __init__(self, answer: Callable[[DeliverRequest], DeliveryStatus] = sent) -> None:
        self.answer = answer
        self.requests: list[DeliverRequest] = []
        self.notices: list[NoticeRequest] = []
        self.verified: list = []      # VerifyUpdates, as the verify service gets them
        self.delay = 0.0
        self.bounce_down = False
        self.copy_to = ""             # a postmaster copy of each notice goes here
        self.in_flight: dict[tuple[str, str], int] = {}
        self.most: dict[tuple[str, str], int] = {}
        self.release: trio.Event | None = None

    async def deliver(self, req: DeliverRequest, timeout: float) -> DeliveryStatus:
        key = (req.transport, req.nexthop)
        self.requests.append(req)
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        self.most[key] = max(self.most.get(key, 0), self.in_flight[key])
        try:
            if self.release is not None:
                await self.release.wait()
            if self.delay:
                await trio.sleep(self.delay)
            return self.answer(req)
        finally:
            self.in_flight[key] -= 1

    async def notice(self, req: NoticeRequest, timeout: float) -> NoticeReady:
        self.notices.append(req)
        if self.bounce_down:
            raise IpcUnavailable("private/bounce: cannot connect: Connection refused")
        copies = (PostmasterCopy(new_qid(), "double-bounce@example.test", self.copy_to,
                                 f"Subject: copy of {req.queue_id}\r\n\r\n".encode()),
                  ) if self.copy_to else ()
        return NoticeReady(new_qid(), "", "alice@example.com",
                           f"Subject: notice for {req.queue_id}\r\n\r\n{req.kind}\r\n".encode(),
                           copies=copies)

    async def verify(self, update, timeout: float) -> None:
        self.verified.append(update)

    async def aclose(self) -> None:
        pass


def envelope(*rcpts: str, sender: str = "alice@example.com", **kw) -> Envelope:
    return Envelope("", sender, tuple(Recipient(r) for r in rcpts),
                    arrival_time=kw.pop("arrival_time", time.time()), size=20, **kw)


async def wait_for(predicate, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not await trio.to_thread.run_sync(predicate):
            await trio.sleep(0.01)


def run(test):
    """Run an async test body with a manager in a nursery, then stop it."""
    async def main():
        async with trio.open_nursery() as nursery:
            await test(nursery)
            nursery.cancel_scope.cancel()
    trio.run(main)


def empty(store, *queues):
    return lambda: all(store.counts()[q] == 0 for q in queues or tuple(Queue))
