"""anvil in-process: the service over memory streams, the smtpd-side client over Unix sockets."""

from __future__ import annotations

import functools
import socket

import trio
import trio.testing
from structlog.testing import capture_logs

from mailsys.ipc.proto import anvil as proto
from mailsys.policy.anvil import Anvil
from mailsys.runtime import ipc_io, skeleton
from mailsys.runtime.anvil_client import AnvilClient
from services import anvil as service


def trio_test(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return trio.run(functools.partial(fn, *args, **kwargs))
    return wrapper


def context(cfg, counters=None) -> skeleton.ServiceContext:
    return skeleton.ServiceContext("anvil", "anvil", "unix", cfg,
                                   state=counters if counters is not None else Anvil(time_unit=60))


async def open_channel(nursery, ctx):
    """A client channel to serve_client over a memory stream pair; (channel, client stream)."""
    client, server = trio.testing.memory_stream_pair()
    nursery.start_soon(service.serve_client, server, ctx)
    chan = await ipc_io.open_channel(client, protocol="anvil", timeout=5)
    return chan


async def ask(chan, msg):
    return await chan.call(msg, expect=proto.AnvilCounts, timeout=5)


@trio_test
async def test_counts_are_shared_across_channels(make_config):
    ctx = context(make_config())
    async with trio.open_nursery() as nursery:
        a = await open_channel(nursery, ctx)
        b = await open_channel(nursery, ctx)
        assert await ask(a, proto.AnvilConnect("smtp", "192.0.2.1")) == proto.AnvilCounts(1, 1)
        assert await ask(b, proto.AnvilConnect("smtp", "192.0.2.1")) == proto.AnvilCounts(2, 2)
        # Another service or address is another counter.
        assert await ask(b, proto.AnvilConnect("submission", "192.0.2.1")) == proto.AnvilCounts(1, 1)
        for expected in (1, 2, 3):
            reply = await ask(a, proto.AnvilEvent("smtp", "192.0.2.1", proto.RECIPIENT))
            assert reply.rate == expected
        assert (await ask(b, proto.AnvilEvent("smtp", "192.0.2.1", proto.MESSAGE))).rate == 1
        await ask(a, proto.AnvilDisconnect("smtp", "192.0.2.1"))
        assert await ask(b, proto.AnvilConnect("smtp", "192.0.2.1")) == proto.AnvilCounts(2, 3)
        await a.aclose()
        await b.aclose()


@trio_test
async def test_connections_of_a_closed_channel_are_released(make_config):
    counters = Anvil(time_unit=60)
    ctx = context(make_config(), counters)
    async with trio.open_nursery() as nursery:
        dying = await open_channel(nursery, ctx)
        other = await open_channel(nursery, ctx)
        await ask(dying, proto.AnvilConnect("smtp", "192.0.2.9"))
        await ask(dying, proto.AnvilConnect("smtp", "192.0.2.9"))
        await ask(other, proto.AnvilConnect("smtp", "192.0.2.9"))
        assert counters.lookup("smtp", "192.0.2.9").count == 3
        await dying.aclose()                       # smtpd died: no AnvilDisconnect
        with trio.fail_after(5):
            while counters.lookup("smtp", "192.0.2.9").count != 1:
                await trio.sleep(0.01)
        # A disconnect for a connection this channel never made is ignored...
        await ask(other, proto.AnvilDisconnect("smtp", "192.0.2.77"))
        fresh = await open_channel(nursery, ctx)
        await ask(fresh, proto.AnvilDisconnect("smtp", "192.0.2.9"))
        assert counters.lookup("smtp", "192.0.2.9").count == 1
        # ... and the owner's own disconnect counts.
        await ask(other, proto.AnvilDisconnect("smtp", "192.0.2.9"))
        assert counters.lookup("smtp", "192.0.2.9").count == 0
        await other.aclose()
        await fresh.aclose()


@trio_test
async def test_unknown_event_kind_is_a_protocol_error(make_config):
    from mailsys.ipc.errors import RemoteError
    ctx = context(make_config())
    async with trio.open_nursery() as nursery:
        chan = await open_channel(nursery, ctx)
        try:
            await ask(chan, proto.AnvilEvent("smtp", "192.0.2.1", "bogus"))
        except RemoteError as e:
            assert e.code == "protocol"
        else:
            raise AssertionError("no error for an unknown event kind")
        # The channel goes on.
        assert (await ask(chan, proto.AnvilEvent("smtp", "192.0.2.1", proto.AUTH))).rate == 1
        await chan.aclose()


def test_statistics_are_logged_periodically_and_at_exit(make_config):
    cfg = make_config(anvil_status_update_time="600s")
    counters = Anvil(time_unit=60)
    ctx = context(cfg, counters)

    async def main():
        with capture_logs() as logs:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(service.statistics, ctx)
                counters.connect("smtp", "192.0.2.1")
                await trio.sleep(601)
                periodic = [e["event"] for e in logs]
                counters.message("smtp", "192.0.2.1")
                await trio.sleep(10)
                nursery.cancel_scope.cancel()
        return periodic, [e["event"] for e in logs]

    periodic, everything = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert any(line.startswith("statistics: max connection count 1 for (smtp:192.0.2.1)")
               for line in periodic)
    assert not any("message rate" in line for line in periodic)
    assert any(line.startswith("statistics: max message rate 1/60s for (smtp:192.0.2.1)")
               for line in everything[len(periodic):])


# --- the client ----------------------------------------------------------------


async def anvil_server(nursery, path, counters):
    """A bound anvil socket served like the skeleton does."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen()
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    ctx = skeleton.ServiceContext("anvil", "anvil", "unix", None, state=counters)

    async def accept_loop():
        async with listener:
            while True:
                stream = await listener.accept()
                nursery.start_soon(service.serve_client, stream, ctx)
    nursery.start_soon(accept_loop)


@trio_test
async def test_client_counts_through_anvil(queue_dir):
    path = queue_dir / "private" / "anvil"
    counters = Anvil(time_unit=60)
    async with trio.open_nursery() as nursery:
        await anvil_server(nursery, path, counters)
        one, two = AnvilClient(path), AnvilClient(path)
        assert await one.connect("smtp", "192.0.2.5") == proto.AnvilCounts(1, 1)
        assert await two.connect("smtp", "192.0.2.5") == proto.AnvilCounts(2, 2)
        assert await one.event("smtp", "192.0.2.5", proto.MESSAGE) == 1
        await one.disconnect("smtp", "192.0.2.5")
        assert counters.lookup("smtp", "192.0.2.5").count == 1
        await two.aclose()                        # its connection is released by anvil
        with trio.fail_after(5):
            while counters.lookup("smtp", "192.0.2.5").count:
                await trio.sleep(0.01)
        await one.aclose()
        nursery.cancel_scope.cancel()


def test_client_without_anvil_says_no_limit_and_warns_once(queue_dir):
    path = queue_dir / "private" / "anvil"
    counters = Anvil(time_unit=60)
    clock = trio.testing.MockClock()

    async def main():
        client = AnvilClient(path, retry_delay=5, warn_interval=60)
        with capture_logs() as logs:
            assert await client.connect("smtp", "192.0.2.5") == proto.AnvilCounts(0, 0)
            assert await client.event("smtp", "192.0.2.5", proto.RECIPIENT) == 0
            await client.disconnect("smtp", "192.0.2.5")       # never registered: nothing sent
            assert client.failures == 1                        # backing off: no new attempt
            clock.jump(6)
            assert await client.event("smtp", "192.0.2.5", proto.RECIPIENT) == 0
            assert client.failures == 2
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert len(warnings) == 1
        assert warnings[0]["event"].startswith("problem talking to server private/anvil: ")
        # anvil comes up: after the retry delay the client reconnects by itself.
        async with trio.open_nursery() as nursery:
            await anvil_server(nursery, path, counters)
            clock.jump(6)
            assert await client.connect("smtp", "192.0.2.5") == proto.AnvilCounts(1, 1)
            await client.disconnect("smtp", "192.0.2.5")
            assert counters.lookup("smtp", "192.0.2.5").count == 0
            await client.aclose()
            nursery.cancel_scope.cancel()

    trio.run(main, clock=clock)
