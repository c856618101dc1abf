"""PolicyClients against real policy servers on loopback and Unix sockets."""

from __future__ import annotations

import functools

import pytest
import trio
from structlog.testing import capture_logs

from mailsys.runtime.policy_client import PolicyClients, ServiceSettings

pytestmark = pytest.mark.timeout(30)

DEFAULTS = ServiceSettings(endpoint="", timeout=2, max_idle=300, max_ttl=1000, request_limit=0,
                           try_limit=2, retry_delay=0.01,
                           default_action="451 4.3.5 Server configuration problem",
                           policy_context="")


def trio_test(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return trio.run(functools.partial(fn, *args, **kwargs))
    return wrapper


class PolicyServer:
    """Answers each request with answer(attrs); counts connections and keeps the requests."""

    def __init__(self, answer=lambda attrs: "action=DUNNO\n\n", *, close_after: int = 0) -> None:
        self.answer = answer
        self.close_after = close_after      # close a connection after this many requests
        self.connections = 0
        self.requests: list[dict[str, str]] = []

    async def handle(self, stream) -> None:
        self.connections += 1
        buffer, served = b"", 0
        async with stream:
            while True:
                while b"\n\n" not in buffer:
                    data = await stream.receive_some(4096)
                    if not data:
                        return
                    buffer += data
                request, _, buffer = buffer.partition(b"\n\n")
                attrs = dict(line.split("=", 1) for line in request.decode().split("\n"))
                self.requests.append(attrs)
                reply = self.answer(attrs)
                if reply is None:
                    await trio.sleep_forever()
                await stream.send_all(reply.encode())
                served += 1
                if self.close_after and served >= self.close_after:
                    return

    async def tcp(self, nursery) -> str:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, self.handle, 0,
                                                          host="127.0.0.1"))
        return f"inet:127.0.0.1:{listeners[0].socket.getsockname()[1]}"


@trio_test
async def test_the_action_is_answered_and_the_connection_kept():
    server = PolicyServer(lambda a: f"foo=bar\naction=DEFER_IF_PERMIT Greylisted {a['sender']}\n\n")
    async with trio.open_nursery() as nursery:
        service = await server.tcp(nursery)
        clients = PolicyClients(DEFAULTS, "/nonexistent")
        answers = [await clients.query(service, {"request": "smtpd_access_policy",
                                                 "sender": f"s{i}@example.org"}) for i in range(3)]
        await clients.aclose()
        nursery.cancel_scope.cancel()
    assert answers == [f"DEFER_IF_PERMIT Greylisted s{i}@example.org" for i in range(3)]
    assert server.connections == 1
    assert server.requests[0] == {"request": "smtpd_access_policy", "sender": "s0@example.org",
                                  "policy_context": ""}


@trio_test
async def test_request_limit_and_a_server_that_closes_kept_connections():
    server = PolicyServer(lambda a: "action=OK\n\n", close_after=1)
    async with trio.open_nursery() as nursery:
        service = await server.tcp(nursery)
        clients = PolicyClients(DEFAULTS, "/nonexistent")
        with capture_logs() as logs:
            for _ in range(3):
                assert await clients.query(service, {"n": "1"}) == "OK"
        limited = f"{service}, request_limit=1"
        for _ in range(2):
            assert await clients.query(limited, {"n": "2"}) == "OK"
        await clients.aclose()
        nursery.cancel_scope.cancel()
    assert server.connections == 5 and logs == []   # a closed kept connection is no failure


@trio_test
async def test_an_unreachable_service_answers_the_default_action_after_the_tries(tmp_path):
    clients = PolicyClients(DEFAULTS, tmp_path)
    with capture_logs() as logs:
        assert await clients.query("unix:private/policy", {}) == \
            "451 4.3.5 Server configuration problem"
        assert await clients.query("unix:private/policy, default_action=DUNNO, try_limit=3",
                                   {}) == "DUNNO"
    assert [e["event"] for e in logs] == \
        ["connect to private/policy: No such file or directory",
         "problem talking to server private/policy: No such file or directory"] * 5
    assert all(e["log_level"] == "warning" for e in logs)


@trio_test
async def test_a_silent_server_times_out_and_a_reply_without_action_fails():
    silent = PolicyServer(lambda a: None)
    wordless = PolicyServer(lambda a: "result=maybe\n\n")
    async with trio.open_nursery() as nursery:
        slow, bad = await silent.tcp(nursery), await wordless.tcp(nursery)
        clients = PolicyClients(DEFAULTS, "/nonexistent")
        with capture_logs() as logs:
            with trio.fail_after(5):
                assert await clients.query(f"{slow}, timeout=0.2s, try_limit=1", {}) == \
                    "451 4.3.5 Server configuration problem"
            assert await clients.query(bad, {}) == "451 4.3.5 Server configuration problem"
        await clients.aclose()
        nursery.cancel_scope.cancel()
    name = bad.split(":", 1)[1]
    assert [e["event"] for e in logs] == [f"problem talking to server {slow.split(':', 1)[1]}: timeout"] \
        + [f"problem talking to server {name}: reply has no action= attribute"] * 2


@trio_test
async def test_a_unix_service_relative_to_the_queue_directory_and_one_line_values(tmp_path):
    server = PolicyServer(lambda a: "action=REJECT no\n\n")
    (tmp_path / "private").mkdir()
    path = tmp_path / "private" / "policy"
    async with trio.open_nursery() as nursery:
        sock = trio.socket.socket(trio.socket.AF_UNIX)
        await sock.bind(str(path))
        sock.listen()
        nursery.start_soon(trio.serve_listeners, server.handle, [trio.SocketListener(sock)])
        clients = PolicyClients(DEFAULTS, tmp_path)
        assert await clients.query("unix:private/policy, policy_context=greylist",
                                   {"helo_name": "two\r\nlines"}) == "REJECT no"
        await clients.aclose()
        nursery.cancel_scope.cancel()
    assert server.requests == [{"helo_name": "two  lines", "policy_context": "greylist"}]
