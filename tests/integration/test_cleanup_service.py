"""cleanup under a real master, called the way smtpd calls it: a channel pool, many at once."""

from __future__ import annotations

import time

import pytest
import trio

from mailsys.ipc import names
from mailsys.ipc.errors import RemoteError
from mailsys.ipc.proto.cleanup import CleanupRecipient, CleanupRequest, Queued, Rejected
from mailsys.message.qid import new_qid
from mailsys.queue import QueueStore
from mailsys.runtime import ipc_io

pytestmark = pytest.mark.integration


def smtpd_request(i: int, qid: str | None = None) -> CleanupRequest:
    return CleanupRequest(
        queue_id=qid or new_qid(), sender="alice@example.com",
        recipients=(CleanupRecipient(f"rcpt{i}@example.org"),),
        content=b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i), arrival_time=time.time(),
        client_name="localhost", client_addr="127.0.0.1", helo="client.example")


def test_concurrent_smtpd_requests_are_all_queued(mailsys_instance):
    inst = mailsys_instance
    inst.write_config(master_cf=["cleanup unix - - n - 0 cleanup"])
    inst.start()
    path = names.private_path(inst.queue_dir, names.CLEANUP)
    n = 40

    async def main():
        pool = ipc_io.ChannelPool(path, "cleanup", size=8)
        replies = {}

        async def one(i):
            replies[i] = await pool.call(smtpd_request(i), expect=(Queued, Rejected), timeout=20)
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)
        # A queue ID already used is refused, and the pool goes on.
        with pytest.raises(RemoteError) as dup:
            await pool.call(smtpd_request(0, qid=replies[0].queue_id), expect=Queued, timeout=20)
        await pool.aclose()
        return replies, dup.value

    replies, dup = trio.run(main)
    assert all(isinstance(r, Queued) for r in replies.values()) and len(replies) == n
    assert dup.code == "write_error"
    # Every reply came after its commit: the entries are readable right now.
    with QueueStore.open(inst.queue_dir) as store:
        for i, reply in replies.items():
            env, _ = store.load(reply.queue_id)
            assert env.recipients[0].address == f"rcpt{i}@example.org"
            content = store.load_content(reply.queue_id)
            assert content.startswith(b"Received: from client.example (localhost [127.0.0.1])")
            assert reply.size == len(content)
    # n messages, and the refused duplicate: cleanup logs the message-id
    # as it reads the header, before the write, as Postfix's does.
    inst.wait_until(lambda: inst.log_text().count("message-id=<>") == n + 1)
