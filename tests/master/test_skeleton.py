"""The service skeleton in-process: load reports, stop accepting, the grace bound."""

import os
import socket

import trio

from mailsys.config import load
from mailsys.runtime import skeleton
from mailsys.runtime.handoff import ChildArgs
from mailsys.runtime.status import State, StatusDecoder


def daemon(tmp_path, handler, *, concurrency, grace):
    (tmp_path / "main.cf").write_text(f"queue_directory = {tmp_path}/q\n")
    cfg = load(tmp_path)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    port = lsock.getsockname()[1]
    r, w = os.pipe()
    args = ChildArgs(config_dir=tmp_path, service="t", type="inet", status_fd=w,
                     listen_fds=(lsock.detach(),))
    ctx = skeleton.ServiceContext("test", "t", "inet", cfg)
    return skeleton._Daemon(ctx, args, handler, "serve", concurrency, grace), port, r


def test_stuck_client_is_cut_at_the_grace_bound(tmp_path):
    cancelled = []

    async def handler(stream, ctx):
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(trio.current_time())
            raise

    d, port, status_r = daemon(tmp_path, handler, concurrency=1, grace=0.3)

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(d.main, None, None, None, None)
            client = await trio.open_tcp_stream("127.0.0.1", port)
            while d.in_flight == 0:
                await trio.sleep(0.01)
            stopped_at = trio.current_time()
            d.shutdown.set()
        await client.aclose()
        return stopped_at

    stopped_at = trio.run(main)
    assert len(cancelled) == 1 and 0.25 <= cancelled[0] - stopped_at < 2
    with os.fdopen(status_r, "rb") as f:
        states = [s.state for s in StatusDecoder().feed(f.read())]
    assert states == [State.READY, State.BUSY, State.IDLE]
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        refused = False
    except ConnectionRefusedError:
        refused = True
    assert refused                                   # the inherited listener is closed


def test_finished_client_ends_the_grace_period_early(tmp_path):
    async def handler(stream, ctx):
        data = await stream.receive_some(10)
        await trio.sleep(0.2)                        # still working when the stop comes
        await stream.send_all(data)

    d, port, status_r = daemon(tmp_path, handler, concurrency=5, grace=10)

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(d.main, None, None, None, None)
            client = await trio.open_tcp_stream("127.0.0.1", port)
            await client.send_all(b"x")
            while d.in_flight == 0:
                await trio.sleep(0.01)
            d.shutdown.set()
            start = trio.current_time()
            assert await client.receive_some(10) == b"x"
        await client.aclose()
        return trio.current_time() - start

    assert trio.run(main) < 2
    with os.fdopen(status_r, "rb") as f:
        states = [s.state for s in StatusDecoder().feed(f.read())]
    assert states == [State.READY, State.AVAIL, State.IDLE]


def test_idle_is_reported_only_when_it_lasts(tmp_path):
    async def handler(stream, ctx):
        await stream.send_all(b"hi")

    d, port, status_r = daemon(tmp_path, handler, concurrency=5, grace=1)

    async def one_client():
        client = await trio.open_tcp_stream("127.0.0.1", port)
        assert await client.receive_some(10) == b"hi"
        await client.aclose()
        while d.in_flight:
            await trio.sleep(0.001)

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(d.main, None, None, None, None)
            for _ in range(5):                       # one client after another
                await one_client()
            await trio.sleep(skeleton.IDLE_REPORT_DELAY * 2)
            await one_client()                       # after a real pause
            await trio.sleep(skeleton.IDLE_REPORT_DELAY * 2)
            d.shutdown.set()

    trio.run(main)
    with os.fdopen(status_r, "rb") as f:
        states = [s.state for s in StatusDecoder().feed(f.read())]
    assert states == [State.READY, State.AVAIL, State.IDLE, State.AVAIL, State.IDLE]


def test_a_kept_open_trigger_connection_is_read_as_it_comes(tmp_path, monkeypatch):
    monkeypatch.setattr(skeleton, "TRIGGER_IDLE", 0.3)
    runs = []

    async def handler(requests, ctx):
        runs.append(requests)

    (tmp_path / "main.cf").write_text(f"queue_directory = {tmp_path}/q\n")
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    port = lsock.getsockname()[1]
    args = ChildArgs(config_dir=tmp_path, service="t", type="inet", listen_fds=(lsock.detach(),))
    ctx = skeleton.ServiceContext("test", "t", "inet", load(tmp_path))
    d = skeleton._Daemon(ctx, args, handler, "trigger", 1, 1)

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(d.main, None, None, None, None)
            client = await trio.open_tcp_stream("127.0.0.1", port)
            for request in (b"I", b"D"):                 # the connection stays open
                await client.send_all(request)
                with trio.fail_after(2):
                    while frozenset({request}) not in runs:
                        await trio.sleep(0.01)
            with trio.fail_after(2):                      # quiet: the server closes it
                assert await client.receive_some(10) == b""
            await client.aclose()
            d.shutdown.set()

    trio.run(main)
    assert runs == [frozenset({b"I"}), frozenset({b"D"})]
