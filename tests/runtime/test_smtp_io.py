"""SmtpPump's deadline: each read, write and answer gets smtpd_timeout of its
own, a policy waiting on another server (stop_clock) and the error sleep get
none, and a read timeout says 421."""

from __future__ import annotations

from functools import partial

import trio
import trio.testing

from mailsys.smtp import Reply, ServerConnection, replies
from mailsys.runtime.smtp_io import End, SmtpPump

TIMEOUT = 30.0


class SlowPolicy:
    """Answers every command after `delay` seconds of (mock) time, waiting
    on "another server" (the clock stopped) unless stops_clock is False."""

    def __init__(self, delay: float, *, stops_clock: bool = True) -> None:
        self.delay = delay
        self.stops_clock = stops_clock
        self.pump: SmtpPump | None = None

    async def answer(self, event):
        if self.stops_clock:
            self.pump.stop_clock()
        await trio.sleep(self.delay)
        return None

    def chunk(self, data):
        pass

    def bdat(self, event):
        pass

    def refused(self, err):
        pass

    async def start_tls(self, stream):
        return None


async def reply(stream, buf: bytearray) -> bytes:
    while b"\r\n" not in buf:
        data = await stream.receive_some(4096)
        if not data:
            return b""
        buf += data
    line, _, rest = bytes(buf).partition(b"\r\n")
    buf[:] = rest
    return line


GREETING = Reply(220, None, "mx.example.test ESMTP")


def pump_for(stream, policy) -> SmtpPump:
    """A pump serving stream with policy (which gets to know it)."""
    pump = policy.pump = SmtpPump(stream, ServerConnection(), policy, timeout=TIMEOUT,
                                  error_sleep=0, timeout_reply=replies.timeout("mx.example.test"))
    return pump


def run(main):
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def session(policy, client_script):
    """Run a pump against client_script(client_stream); the pump's End."""
    client, server = trio.testing.memory_stream_pair()
    pump = pump_for(server, policy)
    ended = []

    async def serve():
        ended.append(await pump.run(GREETING))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        await client_script(client)
    return ended[0]


def test_a_slow_answer_is_not_a_client_timeout():
    async def main():
        async def client(stream):
            buf = bytearray()
            assert (await reply(stream, buf)).startswith(b"220 ")
            await stream.send_all(b"NOOP\r\n")
            start = trio.current_time()
            assert (await reply(stream, buf)).startswith(b"250 ")
            assert trio.current_time() - start == 3 * TIMEOUT
            await trio.sleep(TIMEOUT - 1)            # the next read has its own full timeout
            await stream.send_all(b"QUIT\r\n")
            assert (await reply(stream, buf)).startswith(b"221 ")
        assert await session(SlowPolicy(3 * TIMEOUT), client) is End.QUIT
    run(main)


def test_an_answer_gets_the_timeout_of_its_own_whatever_the_read_waited():
    async def main():
        async def client(stream):
            buf = bytearray()
            assert (await reply(stream, buf)).startswith(b"220 ")
            await trio.sleep(TIMEOUT - 1)            # the read waits almost all its time
            await stream.send_all(b"NOOP\r\n")
            start = trio.current_time()
            assert (await reply(stream, buf)).startswith(b"250 ")
            assert trio.current_time() - start == TIMEOUT - 2
            await stream.send_all(b"QUIT\r\n")
            assert (await reply(stream, buf)).startswith(b"221 ")
        assert await session(SlowPolicy(TIMEOUT - 2, stops_clock=False), client) is End.QUIT
    run(main)


def test_an_answer_that_waits_past_the_timeout_without_stopping_the_clock_ends_the_session():
    async def main():
        client, server = trio.testing.memory_stream_pair()
        pump = pump_for(server, SlowPolicy(3 * TIMEOUT, stops_clock=False))
        assert await pump.send_greeting(GREETING)
        buf = bytearray()
        assert (await reply(client, buf)).startswith(b"220 ")
        await client.send_all(b"NOOP\r\n")
        start = trio.current_time()
        assert await pump.run() is End.TIMEOUT
        assert trio.current_time() - start == TIMEOUT
        # and no 421: the client was not the one that was silent
        with trio.move_on_after(1):
            await reply(client, buf)
        assert buf == b""
    run(main)


def test_a_silent_client_gets_421_after_the_timeout():
    async def main():
        async def client(stream):
            buf = bytearray()
            await reply(stream, buf)
            await stream.send_all(b"NOOP\r\n")
            assert (await reply(stream, buf)).startswith(b"250 ")
            start = trio.current_time()
            assert await reply(stream, buf) == b"421 4.4.2 mx.example.test Error: timeout exceeded"
            assert trio.current_time() - start == TIMEOUT
        assert await session(SlowPolicy(0), client) is End.TIMEOUT
    run(main)


def test_a_client_that_does_not_read_times_out_without_421():
    async def main():
        # A lockstep pair: a write waits until the other side reads.
        client, server = trio.testing.lockstep_stream_pair()
        pump = pump_for(server, SlowPolicy(0))

        async def client_side():
            assert (await client.receive_some(4096)).startswith(b"220 ")
            await client.send_all(b"NOOP\r\n")
            await trio.sleep_forever()              # and never reads the 250

        async with trio.open_nursery() as nursery:
            nursery.start_soon(client_side)
            assert await pump.send_greeting(GREETING)
            start = trio.current_time()
            assert await pump.run() is End.TIMEOUT
            assert trio.current_time() - start == TIMEOUT
            nursery.cancel_scope.cancel()
    run(main)


def test_a_trickling_client_keeps_its_session_and_silence_ends_it_in_time():
    async def main():
        async def client(stream):
            buf = bytearray()
            await reply(stream, buf)
            await stream.send_all(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
            for _ in range(3):
                await reply(stream, buf)
            # content in small pieces, each well within the timeout, for
            # several timeouts in all: every read earns a new deadline
            for _ in range(40):
                await trio.sleep(TIMEOUT / 10)
                await stream.send_all(b"x")
            start = trio.current_time()
            line = await reply(stream, buf)
            assert line == b"421 4.4.2 mx.example.test Error: timeout exceeded"
            # a kept deadline is at most a hundredth of the timeout early
            assert 0.99 * TIMEOUT <= trio.current_time() - start <= TIMEOUT
        assert await session(SlowPolicy(0), client) is End.TIMEOUT
    run(main)


def test_a_client_gone_before_the_greeting_is_a_lost_connection():
    async def main():
        client, server = trio.testing.memory_stream_pair()
        await client.aclose()
        pump = pump_for(server, SlowPolicy(0))
        assert await pump.run(GREETING) is End.LOST
    run(main)
