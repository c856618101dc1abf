"""postscreen_session - one client connection to postscreen: screen, then hand over or refuse.

SYNOPSIS
    await screen(stream, server)            # services/postscreen's handler

DESCRIPTION
    Postfix's postscreen.c, psc_early.c and psc_dnsbl.c for one connection,
    with Postfix 3.7's log lines:

      CONNECT from [addr]:port to [laddr]:lport
    1. Limits, before anything else: more than
       postscreen_client_connection_count_limit connections from this
       address ("NOQUEUE: reject: CONNECT from [addr]:port: too many
       connections", 421 4.7.0 Error: too many connections); as many
       hand-offs pending as postscreen_post_queue_limit ("all server ports
       busy", 421 4.3.2 All server ports are busy); as many clients in the
       tests as postscreen_pre_queue_limit ("all screening ports busy", 421
       4.3.2 All screening ports are busy).
    2. postscreen_access_list: permit hands the client to smtpd at once
       ("ALLOWLISTED [addr]:port"); reject logs "DENYLISTED [addr]:port"
       (WHITELISTED / BLACKLISTED with respectful_logging = no) and applies
       postscreen_denylist_action: drop answers "521 5.3.2 Service
       currently unavailable" and hangs up, enforce lets the tests run and
       refuses mail later, ignore carries on as if nothing was found.
    3. A client whose cached passes are all current goes to smtpd: "PASS
       OLD [addr]:port".
    4. The tests. The DNSBL lookups start; postscreen sends the "220-" line
       of postscreen_greet_banner (if not empty) and watches the
       connection for postscreen_greet_wait. Data before that ends is a
       pregreet: "PREGREET N after T from [addr]:port: TEXT" (N bytes, TEXT
       escaped), then postscreen_greet_action (drop: "521 5.5.1 Protocol
       error"). The bytes are only peeked at, so a client let through with
       "ignore" loses nothing. A client that hangs up: "HANGUP after T from
       [addr]:port in tests before SMTP handshake". At the end of the wait
       the DNSBL answers in hand are scored (answers still missing count as
       not listed); at or over postscreen_dnsbl_threshold: "DNSBL rank N for
       [addr]:port" and postscreen_dnsbl_action (drop: "521 5.7.1 Service
       unavailable; client [addr] blocked using SITE"). A score at or below
       a negative postscreen_dnsbl_allowlist_threshold ends the wait at
       once and passes the client.
    5. A client that failed a test with enforce gets postscreen's own SMTP
       dialogue (mailsys.policy.postscreen_smtp): every RCPT is refused
       with the first failed test's reply (550 5.3.2, 550 5.5.1 Protocol
       error, 550 5.7.1 ... blocked using SITE) and logged. A client that
       pregreeted has its early bytes read as its first commands, and is
       not sent the "220 " line (as Postfix 3.7 does).
    6. A client that passed every test: "PASS NEW [addr]:port", its passes
       cached (pregreet for postscreen_greet_ttl; DNSBL for the answers' TTL
       kept between postscreen_dnsbl_min_ttl and _max_ttl, max_ttl when not
       listed at all), and handed to smtpd, whose "220 " greeting completes
       postscreen's "220-" line into one multi-line greeting. A test that
       failed with "ignore" is not cached and repeats next time.

    Every session that ends in postscreen logs "DISCONNECT [addr]:port".
    A hand-off that fails (smtpd not running, not taking clients within
    PASS_TIMEOUT) is logged and answered "421 4.3.2 All server ports are
    busy".
"""

from __future__ import annotations

import socket
import time

import structlog
import trio

from mailsys.maillog.postfix import escape, format_tv
from mailsys.policy.postscreen_access import PERMIT, REJECT
from mailsys.policy.postscreen_dnsbl import query_domains, query_name, score_answers
from mailsys.policy.postscreen_smtp import Dialogue
from mailsys.runtime import fd_pass
from mailsys.runtime.postscreen_cache import CacheEntry
from mailsys.runtime.postscreen_server import PASS_TIMEOUT, PostscreenServer

log = structlog.get_logger()

# Bytes of a pregreet looked at (and logged, escaped) at most.
PREGREET_PEEK = 100
# Longest command line the dummy dialogue reads before it gives up.
LINE_LIMIT = 2048
CLOSE_SEND = 2.0          # time to get a last reply out before hanging up

DENYLIST_REPLY = "5.3.2 Service currently unavailable"
PREGREET_REPLY = "5.5.1 Protocol error"


def _elapsed(start: float, decimals: int) -> str:
    """Seconds since start as Postfix's psc_format_delta_time() writes them:
    two significant digits, at most delay_logging_resolution_limit decimals
    (a live Postfix 3.7 logged "after 0.6" and "after 1")."""
    delta = max(0.0, time.monotonic() - start)
    return format_tv(int(delta), int((delta % 1) * 1_000_000), 2, decimals)


def _peer(sock: socket.socket, name: str) -> tuple[str, int]:
    try:
        where = sock.getpeername() if name == "peer" else sock.getsockname()
    except OSError:
        return "unknown", 0
    if isinstance(where, tuple):
        return where[0].split("%")[0], where[1]
    return "127.0.0.1", 0


class _Screen:
    """One connection's state; see the module description."""

    def __init__(self, stream, server: PostscreenServer) -> None:
        self.stream = stream
        self.server = server
        self.sock = stream.socket
        self.addr, self.port = _peer(self.sock, "peer")
        self.namaddr = f"[{self.addr}]:{self.port}"
        self.start = time.monotonic()
        self.failed: list[str] = []             # enforce replies, first one is used
        self.pregreeted = False
        self.answers: dict[str, list[str]] = {}     # DNSBL zone -> A records
        self.ttls: list[float] = []
        self.dnsbl_done = trio.Event()
        self.wait_scope: trio.CancelScope | None = None
        self.handed = False                     # smtpd has the client

    async def send(self, text: str) -> bool:
        with trio.move_on_after(CLOSE_SEND):
            try:
                await self.stream.send_all(text.encode("utf-8", "replace"))
                return True
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        return False

    def hangup(self, when: str) -> None:
        after = _elapsed(self.start, self.server.decimals)
        log.info(f"HANGUP after {after} from {self.namaddr} in tests {when} SMTP handshake")

    async def refuse_connect(self, why: str, reply: str) -> None:
        log.info(f"NOQUEUE: reject: CONNECT from {self.namaddr}: {why}")
        await self.send(reply + "\r\n")

    # --- the tests --------------------------------------------------------------

    async def run(self) -> None:
        server = self.server
        verdict = server.access.verdict(self.addr)
        if verdict == PERMIT:
            log.info(f"{server.list_word(True)} {self.namaddr}")
            await self.hand_over()
            return
        denylisted = verdict == REJECT
        if denylisted:
            log.info(f"{server.list_word(False)} {self.namaddr}")
            if server.denylist_action == "drop":
                await self.send(f"521 {DENYLIST_REPLY}\r\n")
                return
            if server.denylist_action == "enforce":
                self.failed.append(f"550 {DENYLIST_REPLY}")
        now = time.time()
        cached = server.cache.get(self.addr)
        if not self.failed and cached is not None and cached.passed(now, dnsbl=bool(server.sites)):
            log.info(f"PASS OLD {self.namaddr}")
            await self.hand_over()
            return
        server.screening += 1
        try:
            passed = await self.tests(cached or CacheEntry())
        finally:
            server.screening -= 1
        if passed is None:
            return
        if self.failed:
            await self.dialogue()
            return
        if passed:
            log.info(f"PASS NEW {self.namaddr}")
        await self.hand_over()

    async def tests(self, cached: CacheEntry) -> bool | None:
        """Run the pregreet and DNSBL tests; True when every test passed
        (the passes are cached), False when one failed with "ignore" or
        "enforce" (self.failed has the enforce replies), None when the
        session already ended (drop, hangup)."""
        server = self.server
        async with trio.open_nursery() as nursery:
            if server.sites:
                nursery.start_soon(self.lookups)
            else:
                self.dnsbl_done.set()
            if server.greet_banner and not await self.send(f"220-{server.greet_banner}\r\n"):
                nursery.cancel_scope.cancel()
                return None
            ended = await self.watch()
            nursery.cancel_scope.cancel()
        if ended:
            return None
        clean = not self.pregreeted
        score, listed_by = score_answers(server.sites, self.answers)
        if server.sites and score >= server.dnsbl_threshold:
            clean = False
            log.info(f"DNSBL rank {score} for {self.namaddr}")
            reply = (f"5.7.1 Service unavailable; client [{self.addr}] blocked using "
                     f"{server.reply_name(listed_by)}")
            if server.dnsbl_action == "drop":
                await self.send(f"521 {reply}\r\n")
                return None
            if server.dnsbl_action == "enforce":
                self.failed.append(f"550 {reply}")
        now = time.time()
        entry = CacheEntry(
            pregreet=now + server.greet_ttl if not self.pregreeted else cached.pregreet,
            dnsbl=now + self.dnsbl_ttl() if server.sites and score < server.dnsbl_threshold
            else cached.dnsbl)
        if entry != cached:
            await server.cache.put(self.addr, entry)
        return clean

    def dnsbl_ttl(self) -> float:
        server = self.server
        ttl = min(self.ttls) if self.ttls else server.dnsbl_max_ttl
        return min(server.dnsbl_max_ttl, max(server.dnsbl_min_ttl, ttl))

    async def watch(self) -> bool:
        """Watch for a pregreet until postscreen_greet_wait ends (or a DNSBL
        allow-list score ends it early); True when the session ended."""
        server = self.server
        with trio.CancelScope(deadline=trio.current_time() + server.greet_wait) as scope:
            self.wait_scope = scope
            while not self.pregreeted:
                await trio.lowlevel.wait_readable(self.sock)
                try:
                    data = self.sock.recv(PREGREET_PEEK, socket.MSG_PEEK)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.hangup("before")
                    return True
                self.pregreeted = True
                after = _elapsed(self.start, server.decimals)
                log.info(f"PREGREET {len(data)} after {after} from {self.namaddr}: {escape(data)}")
                if server.greet_action == "drop":
                    await self.send(f"521 {PREGREET_REPLY}\r\n")
                    return True
                if server.greet_action == "enforce":
                    self.failed.append(f"550 {PREGREET_REPLY}")
            # A pregreet ends the watching, not the wait for DNSBL answers.
            await trio.sleep_forever()
        return False

    async def lookups(self) -> None:
        async with trio.open_nursery() as nursery:
            for domain in query_domains(self.server.sites):
                nursery.start_soon(self.lookup, domain)
        self.dnsbl_done.set()
        score, _ = score_answers(self.server.sites, self.answers)
        threshold = self.server.allowlist_threshold
        if threshold < 0 and score <= threshold and not self.pregreeted \
                and self.wait_scope is not None:
            self.wait_scope.cancel()            # allow-listed by DNS: no need to wait

    async def lookup(self, domain: str) -> None:
        import dns.asyncbackend
        import dns.exception
        import dns.resolver
        server = self.server
        name = query_name(self.addr, domain)
        try:
            with trio.move_on_after(server.dnsbl_timeout):
                answer = await server.resolver().resolve(
                    name, "A", raise_on_no_answer=False, search=False,
                    backend=dns.asyncbackend.get_backend("trio"))
                if answer.rrset is not None:
                    self.answers[domain] = [r.address for r in answer.rrset]
                    self.ttls.append(float(answer.rrset.ttl))
        except dns.resolver.NXDOMAIN:
            pass
        except (dns.exception.DNSException, OSError) as e:
            log.warning(f"dnsbl lookup {name}: {e}")

    # --- after the tests ----------------------------------------------------------

    async def dialogue(self) -> None:
        server = self.server
        talk = Dialogue(server.hostname, reject=self.failed[0], namaddr=self.namaddr,
                        size_limit=server.size_limit, command_limit=server.command_count_limit)
        if not self.pregreeted and not await self.send(f"220 {server.smtpd_banner}\r\n"):
            return
        buffer = b""
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > LINE_LIMIT:
                    return
                data = b""
                with trio.move_on_after(server.command_time_limit) as scope:
                    try:
                        data = await self.stream.receive_some(4096)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                if scope.cancelled_caught:
                    await self.send(f"421 4.4.2 {server.hostname} Error: timeout exceeded\r\n")
                    return
                if not data:
                    self.hangup("after")
                    return
                buffer += data
                continue
            line, buffer = buffer[:end].rstrip(b"\r"), buffer[end + 1:]
            step = talk.command(line)
            if step.log:
                log.info(step.log)
            if not await self.send(step.reply.decode()) or step.close:
                return

    async def hand_over(self) -> None:
        server = self.server
        server.handing += 1
        try:
            await fd_pass.send_connection(server.smtpd_path, self.sock, PASS_TIMEOUT)
            self.handed = True
        except fd_pass.PassError as e:
            log.warning(str(e))
            await self.send("421 4.3.2 All server ports are busy\r\n")
        finally:
            server.handing -= 1


async def screen(stream, server: PostscreenServer) -> None:
    """The whole life of one connection to postscreen."""
    s = _Screen(stream, server)
    laddr, lport = _peer(s.sock, "local")
    log.info(f"CONNECT from {s.namaddr} to [{laddr}]:{lport}")
    server.per_client[s.addr] += 1
    try:
        limit = server.connection_limit
        if limit and server.per_client[s.addr] > limit:
            await s.refuse_connect("too many connections", "421 4.7.0 Error: too many connections")
        elif server.handing >= server.post_queue_limit:
            await s.refuse_connect("all server ports busy", "421 4.3.2 All server ports are busy")
        elif server.screening >= server.pre_queue_limit:
            await s.refuse_connect("all screening ports busy",
                                   "421 4.3.2 All screening ports are busy")
        else:
            await s.run()
    finally:
        server.per_client[s.addr] -= 1
        if not server.per_client[s.addr]:
            del server.per_client[s.addr]
        if not s.handed:
            log.info(f"DISCONNECT {s.namaddr}")
