"""verify - the address verification service (Postfix verify(8)).

SYNOPSIS
    master.cf:  verify    unix  -  -  n  -  1  verify

DESCRIPTION
    Serves protocol "verify" (mailsys.ipc.proto.verify) on
    $queue_directory/private/verify. It keeps what is known of each
    address in $address_verify_map (default btree:$data_directory/
    verify_cache, an LMDB file; empty or memory: this process only, see
    mailsys.runtime.map_file) and answers:

      VerifyQuery(address)    the cached status and text, or TODO
                              "Address verification in progress"; when the
                              entry is missing, stale or expired, a probe
                              goes out (at most one per address per
                              PROBE_TTL), after the answer
      VerifyUpdate(...)       a probe's result, from qmgr: stored as
                              mailsys.policy.verify_cache says

    A probe is a message with no content, from $address_verify_sender
    (mailsys.policy.verify_cache.probe_sender), to the address, handed to
    cleanup with the trace flag "mta_vrfy" (Postfix DEL_REQ_FLAG_MTA_VRFY):
    qmgr routes it with the address_verify_* settings, the delivery agent
    goes as far as the recipient's status (smtp: RCPT TO, then RSET) and
    logs "status=deliverable" or "status=undeliverable", qmgr reports the
    result here and removes the probe without a notice.

    Every $address_verify_cache_cleanup_interval (and once at start; 0:
    never) the expired entries are dropped and Postfix's line is logged:
    "cache btree:/path full cleanup: retained=N dropped=M entries".

    Solitary (maxproc 1): the cache is held in this process's memory.

BUGS
    Probes are submitted one at a time, in the order asked; Postfix's
    address_verify_pending_request_limit is not implemented.
"""

from __future__ import annotations

import time

import structlog
import trio

from mailsys.ipc.errors import IpcError
from mailsys.ipc.messages import ErrorCode, ErrorReply, Ok
from mailsys.ipc.proto import verify as proto
from mailsys.ipc.proto.cleanup import CleanupRecipient, CleanupRequest
from mailsys.message.qid import new_qid
from mailsys.policy.verify_cache import (VerifyEntry, VerifyTimes, expired, on_query, on_update,
                                         probe_sender)
from mailsys.runtime import skeleton
from mailsys.runtime.cleanup_client import submit
from mailsys.runtime.ipc_io import serve
from mailsys.runtime.map_file import MapFile

log = structlog.get_logger()

# Probes asked for and not yet handed to cleanup; past this a query still
# answers, and its probe is sent at a later query.
PROBE_BACKLOG = 1000


class Verifier:
    """The cache, the probe queue and the answers; one per process."""

    def __init__(self, cfg, table: MapFile) -> None:
        self.cfg = cfg
        self.table = table
        self.times = VerifyTimes.from_config(cfg)
        self.probes_in, self.probes_out = trio.open_memory_channel[str](PROBE_BACKLOG)

    def entry(self, address: str) -> VerifyEntry | None:
        raw = self.table.entries.get(address)
        return None if raw is None else VerifyEntry.decode(raw)

    async def handle(self, msg: object) -> object:
        if isinstance(msg, proto.VerifyQuery):
            return await self.query(msg.address)
        if isinstance(msg, proto.VerifyUpdate):
            if msg.status not in (proto.OK, proto.DEFER, proto.BOUNCE):
                log.warning(f"bad recipient status {msg.status} for recipient {msg.address}")
                return ErrorReply(ErrorCode.PROTOCOL, f"bad recipient status {msg.status}")
            new = on_update(self.entry(_key(msg.address)), msg.status, msg.text, time.time())
            if new is not None:
                await self.table.put(_key(msg.address), new.encode())
            return Ok()
        return ErrorReply(ErrorCode.PROTOCOL, f"unexpected request {type(msg).__name__}")

    async def query(self, address: str) -> proto.VerifyAnswer:
        key = _key(address)
        out = on_query(self.entry(key), time.time(), self.times)
        if out.delete:
            await self.table.delete(key)
        if out.store is not None:
            await self.table.put(key, out.store.encode())
        if out.probe:
            try:
                self.probes_in.send_nowait(address)
            except trio.WouldBlock:
                log.warning(f"too many address verification probes pending; {address} later")
        return proto.VerifyAnswer(out.status, out.text)

    async def send_probes(self) -> None:
        async for address in self.probes_out:
            await self.probe(address)

    async def probe(self, address: str) -> None:
        cfg = self.cfg
        now = time.time()
        request = CleanupRequest(
            queue_id=new_qid(),
            sender=probe_sender(cfg.address_verify_sender, cfg.address_verify_sender_ttl, now,
                                cfg.myorigin),
            recipients=(CleanupRecipient(address),), content=b"", arrival_time=now,
            origin="verify", local=True, protocol="", trace_flags=proto.MTA_VRFY)
        try:
            await submit(cfg, request)
        except IpcError as e:
            # The entry says a probe is out; the next one goes after PROBE_TTL.
            log.warning(f"cannot send address verification probe for {address}: {e}")

    async def cleanup(self) -> None:
        """Drop the expired entries; log Postfix's "full cleanup" line."""
        now = time.time()
        dropped = [k for k, v in self.table.entries.items()
                   if expired(VerifyEntry.decode(v), now, self.times)]
        await self.table.drop(dropped)
        log.info(f"cache {self.table.spec} full cleanup: retained={len(self.table.entries)} "
                 f"dropped={len(dropped)} entries")


def _key(address: str) -> str:
    # Postfix verify.c: ":" is the entry's field separator in some map types.
    return address.replace(":", "_")


async def serve_client(stream: trio.abc.Stream, ctx: skeleton.ServiceContext) -> None:
    await serve(stream, ctx.state.handle, protocol=proto.PROTOCOL)


async def background(ctx: skeleton.ServiceContext) -> None:
    verifier: Verifier = ctx.state
    interval = float(ctx.config.address_verify_cache_cleanup_interval)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(verifier.send_probes)
        while interval > 0:               # 0: no cleanup (Postfix)
            await verifier.cleanup()
            await trio.sleep(interval)


def start(ctx: skeleton.ServiceContext) -> Verifier:
    cfg = ctx.config
    return Verifier(cfg, MapFile.open(cfg.address_verify_map, cfg, param="address_verify_map"))


def stop(ctx: skeleton.ServiceContext) -> None:
    if isinstance(ctx.state, Verifier):
        ctx.state.table.close()


def main() -> None:
    skeleton.run("verify", serve_client, solitary=True, concurrency=1024, post_init=start,
                 loop=background, on_exit=stop)


if __name__ == "__main__":
    main()
