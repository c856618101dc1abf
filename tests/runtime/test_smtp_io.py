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


def pump_for(stream, policy, **options) -> SmtpPump:
    """A pump serving stream with policy (which gets to know it)."""
    pump = policy.pump = SmtpPump(stream, ServerConnection(), policy, timeout=TIMEOUT,
                                  error_sleep=0, timeout_reply=replies.timeout("mx.example.test"),
                                  **options)
    return pump


def run(main):
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def session(policy, client_script, **options):
    """Run a pump against client_script(client_stream); the pump's End."""
    client, server = trio.testing.memory_stream_pair()
    pump = pump_for(server, policy, **options)
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


# --- smtpd_per_request_deadline -------------------------------------------------

async def deadline_session(client_script):
    """session() with smtpd_per_request_deadline = yes, smtpd_min_data_rate = 500."""
    return await session(SlowPolicy(0), client_script, per_request=True, min_data_rate=500)


async def trickle(stream, data: bytes, every: float) -> None:
    """Send data one piece at a time until the server hangs up."""
    try:
        for i in range(len(data)):
            await stream.send_all(data[i:i + 1])
            await trio.sleep(every)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


def test_with_the_deadline_a_trickled_command_line_gets_smtpd_timeout_in_all():
    async def main():
        async def client(stream):
            buf = bytearray()
            await reply(stream, buf)
            start = trio.current_time()
            async with trio.open_nursery() as nursery:
                # a byte every tenth of the timeout: each read is in time,
                # the line as a whole is not
                nursery.start_soon(trickle, stream, b"EHLO " + b"x" * 40 + b"\r\n", TIMEOUT / 10)
                line = await reply(stream, buf)
                nursery.cancel_scope.cancel()
            assert line == b"421 4.4.2 mx.example.test Error: timeout exceeded"
            assert TIMEOUT <= trio.current_time() - start <= TIMEOUT * 1.01
        assert await deadline_session(client) is End.TIMEOUT
    run(main)


def test_with_the_deadline_each_command_gets_a_deadline_of_its_own():
    async def main():
        async def client(stream):
            buf = bytearray()
            await reply(stream, buf)
            # five commands, each taking most of the timeout: none too slow
            for _ in range(5):
                await stream.send_all(b"NO")
                await trio.sleep(TIMEOUT * 0.9)
                await stream.send_all(b"OP\r\n")
                assert await reply(stream, buf) == b"250 2.0.0 Ok"
            await stream.send_all(b"QUIT\r\n")
            assert (await reply(stream, buf)).startswith(b"221")
        assert await deadline_session(client) is End.QUIT
    run(main)


async def open_data(stream, buf) -> None:
    await reply(stream, buf)
    await stream.send_all(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
    for _ in range(3):
        await reply(stream, buf)


def test_with_the_deadline_content_slower_than_min_data_rate_runs_out_of_time():
    async def main():
        async def client(stream):
            buf = bytearray()
            await open_data(stream, buf)
            start = trio.current_time()
            # 200 bytes/s in whole lines against 500: each second costs 1 s
            # and earns 0.4 s, so the 30 s last 30 / 0.6 = 50 s
            async def send():
                try:
                    while True:
                        await stream.send_all(b"y" * 48 + b"\r\n")
                        await trio.sleep(0.25)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                line = await reply(stream, buf)
                nursery.cancel_scope.cancel()
            assert line == b"421 4.4.2 mx.example.test Error: timeout exceeded"
            assert 49 <= trio.current_time() - start <= 51
        assert await deadline_session(client) is End.TIMEOUT
    run(main)


def test_with_the_deadline_content_at_min_data_rate_goes_on_and_silence_ends_it():
    async def main():
        async def client(stream):
            buf = bytearray()
            await open_data(stream, buf)
            # 1000 bytes/s for five timeouts: the time earned is capped at
            # smtpd_timeout, never used up
            for _ in range(int(5 * TIMEOUT * 4)):
                await stream.send_all(b"z" * 248 + b"\r\n")
                await trio.sleep(0.25)
            start = trio.current_time()
            line = await reply(stream, buf)
            assert line == b"421 4.4.2 mx.example.test Error: timeout exceeded"
            # what was earned never goes beyond smtpd_timeout from now
            assert TIMEOUT - 0.25 <= trio.current_time() - start <= TIMEOUT
        assert await deadline_session(client) is End.TIMEOUT
    run(main)


def test_without_the_deadline_a_trickled_command_line_keeps_the_session():
    async def main():
        async def client(stream):
            buf = bytearray()
            await reply(stream, buf)
            await trickle(stream, b"NOOP\r\n", TIMEOUT / 2)
            assert await reply(stream, buf) == b"250 2.0.0 Ok"
            await stream.send_all(b"QUIT\r\n")
            assert (await reply(stream, buf)).startswith(b"221")
        assert await session(SlowPolicy(0), client) is End.QUIT
    run(main)
