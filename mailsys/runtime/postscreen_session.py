"""postscreen_session - one client connection to postscreen: screen, then hand over or refuse.

SYNOPSIS
    await screen(stream, server)            # services/postscreen's handler

DESCRIPTION
    Postfix's postscreen.c, postscreen_early.c, postscreen_dnsbl.c and
    postscreen_misc.c for one connection, with Postfix 3.7's log lines:

    0. postscreen_upstream_proxy_protocol = haproxy: the PROXY header
       comes first, and the client and the local end are those it names
       (a version 2 LOCAL header keeps the connection's own). A header that
       is bad, unfinished in the first bytes, or missing after
       postscreen_upstream_proxy_timeout is logged "warning: haproxy read:
       REASON" and answered "421 4.3.2 No system resources", and that is
       all (no CONNECT line; Postfix 3.7, seen live).
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
    3. The cache (mailsys.runtime.postscreen_cache, records as in
       mailsys.policy.postscreen_tests): a client with a record and no test
       to do goes to smtpd, "PASS OLD [addr]:port". A test is on when its
       parameter says so (pregreet: a postscreen_greet_banner; DNSBL:
       postscreen_dnsbl_sites; the deep tests: postscreen_*_enable), and to
       do when the client never passed it or its pass expired.
    4. postscreen_allowlist_interfaces: a client that connected to a local
       address not on that list is tested but can never earn the allow
       list ("ALLOWLIST VETO [addr]:port"): it always ends in postscreen's
       own dialogue, and is never cached.
    5. The tests before the greeting, when pregreet or DNSBL is to do. The
       DNSBL lookups start; postscreen sends the "220-" line of
       postscreen_greet_banner and watches the connection for
       postscreen_greet_wait. Data before that ends is a pregreet:
       "PREGREET N after T from [addr]:port: TEXT" (N bytes, TEXT escaped),
       then postscreen_greet_action (drop: "521 5.5.1 Protocol error"). The
       bytes are only peeked at, so a client let through with "ignore"
       loses nothing. A client that hangs up: "HANGUP after T from
       [addr]:port in tests before SMTP handshake". The wait ends early
       once every early test to do has its result (a pregreet with no DNSBL
       answers to wait for, the DNSBL answers with no pregreet test to do).
       Then the DNSBL answers in hand are scored (answers still missing
       count as not listed); at or over postscreen_dnsbl_threshold: "DNSBL
       rank N for [addr]:port" and postscreen_dnsbl_action (drop: "521
       5.7.1 Service unavailable; client [addr] blocked using SITE"). A
       score at or below a negative postscreen_dnsbl_allowlist_threshold
       ends the wait at once and passes every other test still to do, each
       test's stamp lasting at least as long as the DNSBL pass.
    6. The tests after the greeting (postscreen's own SMTP engine,
       mailsys.policy.postscreen_smtp), for a client with a deep test to
       do, or one that failed a test with "enforce" (it gets every deep
       test, for the log's sake, as in Postfix). postscreen sends "220
       $smtpd_banner" itself (at once when no early test was to do), except
       to a client that pregreeted with "enforce", whose early bytes are
       read as its first commands. Every RCPT is refused with "450 4.3.2
       Service currently unavailable", or with the reply of the last test
       that failed with enforce (550 5.3.2, 550 5.5.1 Protocol error, 550
       5.7.1 ... blocked using SITE), and logged; the session ends in
       postscreen. A client that got to RCPT without a violation passed the
       deep tests: it is cached, and its next connection goes to smtpd.
       Each command line must arrive within postscreen_command_time_limit.
    7. The conclusion (Postfix psc_conclude): a client that passed every
       test to do, and failed none, is logged "PASS NEW [addr]:port" ("PASS
       OLD" when its record was written before a test was turned on); its
       passes are cached (pregreet for postscreen_greet_ttl; DNSBL for the
       answers' TTL kept between postscreen_dnsbl_min_ttl and _max_ttl,
       max_ttl when not listed at all; each deep test for its _ttl, or the
       shortest TTL of all when it failed with "ignore"); unless the session
       ends in postscreen it is handed to smtpd, whose "220 " greeting
       completes postscreen's "220-" line into one multi-line greeting. A
       test that failed with "ignore" is not passed and repeats next time;
       a client that failed any other way is not cached at all.

    Every 4xx and 5xx reply after the CONNECT line gets
    postscreen_reject_footer (or postscreen_reject_footer_maps' footer for
    it), whose $client_address, $client_port and $server_name are
    expanded; any other $name is empty, with Postfix's 'unknown macro
    name "NAME" in expansion request' warning. A client that
    postscreen_discard_ehlo_keyword_address_maps names gets its keywords
    left out of the EHLO reply instead of postscreen_discard_ehlo_keywords,
    and each EHLO logs "[addr]port: discarding EHLO keywords: ..." (sic)
    unless they include silent-discard.

    Every session that ends in postscreen logs "DISCONNECT [addr]:port".
    A hand-off that fails (smtpd not running, not taking clients within
    PASS_TIMEOUT) is logged and answered "421 4.3.2 All server ports are
    busy".
"""

from __future__ import annotations

import dataclasses
import re
import socket
import time

import structlog
import trio

from mailsys.smtp.errors import LocalProtocolError
from mailsys.maillog.postfix import escape, format_tv
from mailsys.policy.postscreen_access import PERMIT, REJECT
from mailsys.policy.postscreen_dnsbl import query_domains, query_name, score_answers
from mailsys.policy.postscreen_smtp import DEFER_REPLY, TEXT_LIMIT, Engine
from mailsys.policy.postscreen_tests import DEEP, DNSBL, EARLY, PREGREET, ClientTests
from mailsys.runtime import fd_pass
from mailsys.runtime.proxy_header import HaproxyTimeout, read_proxy_header
from mailsys.runtime.postscreen_server import PASS_TIMEOUT, PostscreenServer
from mailsys.smtp.ehlo_mask import discard_names, discard_text
from mailsys.smtp.haproxy import HaproxyError, Proxied
from mailsys.smtp.replies import Reply

log = structlog.get_logger()

# Bytes of a pregreet looked at (Postfix PSC_READ_BUF_SIZE - 1); the log
# shows the first 100 characters of their escaped text.
PREGREET_PEEK = 1023
RECEIVE_SIZE = 4096       # one read of the dialogue (Postfix's VSTREAM buffer)
CLOSE_SEND = 2.0          # time to get a last reply out before hanging up

_ENHANCED_RE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")

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

    def __init__(self, stream, server: PostscreenServer,
                 proxied: Proxied | None = None) -> None:
        self.stream = stream
        self.server = server
        self.sock = stream.socket
        # The client a proxy before postscreen names is the client.
        self.proxied = proxied
        if proxied is None:
            self.addr, self.port = _peer(self.sock, "peer")
            self.laddr, self.lport = _peer(self.sock, "local")
        else:
            self.addr, self.port = proxied.client_addr, proxied.client_port
            self.laddr, self.lport = proxied.server_addr, proxied.server_port
        self.namaddr = f"[{self.addr}]:{self.port}"
        self.start = time.monotonic()           # of the current test phase (Postfix BEGIN_TESTS)
        self.tests: ClientTests | None = None
        self.noforward = False                  # the session ends in postscreen
        self.rcpt_reply = DEFER_REPLY           # the last "enforce" reply wins, as in Postfix
        self.pregreeted = False
        self.answers: dict[str, list[str]] = {}     # DNSBL zone -> A records
        self.ttls: list[float] = []
        self.dnsbl_done = trio.Event()
        self.dnsbl_scored = False
        self.pregreet_done = False
        self.wait_scope: trio.CancelScope | None = None
        self.handed = False                     # smtpd has the client

    async def send(self, text: str | bytes) -> bool:
        data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
        if data[:1] in (b"4", b"5") and (self.server.reject_footer
                                         or self.server.reject_footer_maps):
            data = self.with_footer(data)
        with trio.move_on_after(CLOSE_SEND):
            try:
                await self.stream.send_all(data)
                return True
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        return False

    def with_footer(self, data: bytes) -> bytes:
        """A one-line "CODE [x.y.z] text" reply with postscreen_reject_footer."""
        line = data.decode("utf-8", "replace").rstrip("\r\n")
        code, _, text = line.partition(" ")
        enhanced, _, rest = text.partition(" ")
        if not _ENHANCED_RE.fullmatch(enhanced):
            enhanced, rest = "", text
        try:
            reply = Reply(int(code), enhanced or None, rest)
        except (ValueError, LocalProtocolError):
            return data
        return self.server.footer_for(reply, self.addr, self.port).render()

    def hangup(self, when: str) -> None:
        after = _elapsed(self.start, self.server.decimals)
        log.info(f"HANGUP after {after} from {self.namaddr} in tests {when} SMTP handshake")

    async def refuse_connect(self, why: str, reply: str) -> None:
        log.info(f"NOQUEUE: reject: CONNECT from {self.namaddr}: {why}")
        await self.send(reply + "\r\n")

    def enforce(self, test: str, reply: str) -> None:
        """A test failed with "enforce": the dialogue refuses every recipient."""
        assert self.tests is not None
        self.tests.fail_test(test)
        self.rcpt_reply = reply
        self.noforward = True

    async def act(self, test: str, action: str, reply: str) -> bool:
        """A test failed: its action with reply ("5.x.y text"); True when
        that ended the session (drop: 521 and hang up)."""
        assert self.tests is not None
        if action == "drop":
            self.tests.fail_test(test)
            await self.send(f"521 {reply}\r\n")
            return True
        if action == "enforce":
            self.enforce(test, f"550 {reply}")
        return False        # ignore: not failed, not passed; tested again next time

    # --- the tests --------------------------------------------------------------

    async def run(self) -> None:
        server = self.server
        verdict = server.access.verdict(self.addr)
        if verdict == PERMIT:
            log.info(f"{server.list_word(True)} {self.namaddr}")
            await self.hand_over()
            return
        denied = verdict == REJECT
        if denied:
            log.info(f"{server.list_word(False)} {self.namaddr}")
            if server.denylist_action == "drop":
                await self.send(f"521 {DENYLIST_REPLY}\r\n")
                return
        now = time.time()
        failed = denied and server.denylist_action == "enforce"
        # A client already failed does not look in the cache (Postfix).
        cached = None if failed else server.cache.get(self.addr)
        self.tests = tests = ClientTests.start(cached, server.enabled, now)
        if failed:
            self.enforce("denylist", f"550 {DENYLIST_REPLY}")
        if cached is not None and not tests.todo and not failed:
            log.info(f"PASS OLD {self.namaddr}")
            await self.hand_over()
            return
        if not server.interfaces.match("unknown", self.laddr):
            # A backup MX address: tests, but never the allow list (Postfix
            # postscreen_allowlist_interfaces).
            tests.fail_test("veto")
            self.noforward = True
            log.info(f"{'ALLOWLIST' if server.respectful else 'WHITELIST'} VETO {self.namaddr}")
        server.screening += 1
        try:
            if tests.todo & set(EARLY):
                if not await self.early_tests():
                    return
            if self.noforward or tests.failed or tests.deep_todo:
                await self.deep_tests()
            else:
                await self.conclude()
        finally:
            server.screening -= 1

    async def conclude(self) -> None:
        """Postfix psc_conclude: log the blessing, remember the passes, and
        hand the client over unless the session ends here."""
        tests = self.tests
        assert tests is not None
        if tests.passed_all():
            log.info(f"PASS {'NEW' if tests.new else 'OLD'} {self.namaddr}")
        if tests.updated():
            await self.server.cache.put(self.addr, tests.record())
        if not self.noforward:
            await self.hand_over()

    async def early_tests(self) -> bool:
        """The pregreet and DNSBL tests (Postfix postscreen_early.c); False
        when the session already ended (drop, hangup)."""
        server, tests = self.server, self.tests
        assert tests is not None
        self.start = time.monotonic()
        pregreet = PREGREET in tests.todo
        async with trio.open_nursery() as nursery:
            if DNSBL in tests.todo:
                nursery.start_soon(self.lookups)
            else:
                self.dnsbl_done.set()
            if pregreet and not await self.send(f"220-{server.greet_banner}\r\n"):
                nursery.cancel_scope.cancel()
                self.hangup("before")
                return False
            ended = await self.watch(pregreet)
            nursery.cancel_scope.cancel()
        if ended:
            return False
        now = time.time()
        if pregreet and not self.pregreeted and PREGREET not in tests.passed:
            tests.pass_test(PREGREET, now + server.greet_ttl)
        if DNSBL in tests.todo:
            score, listed_by = self.score()
            if score < server.dnsbl_threshold:
                tests.pass_test(DNSBL, now + self.dnsbl_ttl())
            else:
                log.info(f"DNSBL rank {score} for {self.namaddr}")
                reply = (f"5.7.1 Service unavailable; client [{self.addr}] blocked using "
                         f"{server.reply_name(listed_by)}")
                if await self.act(DNSBL, server.dnsbl_action, reply):
                    return False
        return True

    def score(self) -> tuple[int, str]:
        """The DNSBL score (answers still missing count as not listed); a
        score at or below a negative allow-list threshold passes the other
        tests too (Postfix psc_allowlist_non_dnsbl), once."""
        server, tests = self.server, self.tests
        assert tests is not None
        score, listed_by = score_answers(server.sites, self.answers)
        if not self.dnsbl_scored:
            self.dnsbl_scored = True
            threshold = server.allowlist_threshold
            if threshold < 0 and score <= threshold and score < server.dnsbl_threshold:
                tests.allow_all(time.time() + self.dnsbl_ttl())
        return score, listed_by

    def dnsbl_ttl(self) -> float:
        server = self.server
        ttl = min(self.ttls) if self.ttls else server.dnsbl_max_ttl
        return min(server.dnsbl_max_ttl, max(server.dnsbl_min_ttl, ttl))

    def early_done(self) -> bool:
        """Every early test to do has its result: the wait can end."""
        tests = self.tests
        assert tests is not None
        return ((PREGREET not in tests.todo or self.pregreet_done or PREGREET in tests.passed)
                and (DNSBL not in tests.todo or self.dnsbl_done.is_set()))

    async def watch(self, pregreet: bool) -> bool:
        """Watch for a pregreet until postscreen_greet_wait ends, or until
        every early test has its result; True when the session ended."""
        server, tests = self.server, self.tests
        assert tests is not None
        with trio.CancelScope(deadline=trio.current_time() + server.greet_wait) as scope:
            self.wait_scope = scope
            while pregreet and not self.pregreet_done and PREGREET not in tests.passed:
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
                self.pregreeted = self.pregreet_done = True
                after = _elapsed(self.start, server.decimals)
                log.info(f"PREGREET {len(data)} after {after} from {self.namaddr}: "
                         f"{escape(data)[:TEXT_LIMIT]}")
                if await self.act(PREGREET, server.greet_action, PREGREET_REPLY):
                    return True
            # The pregreet test has its result; the DNSBL answers may not.
            if not self.early_done():
                await self.dnsbl_done.wait()
                if not self.early_done():
                    await trio.sleep_forever()
        return False

    async def lookups(self) -> None:
        async with trio.open_nursery() as nursery:
            for domain in query_domains(self.server.sites):
                nursery.start_soon(self.lookup, domain)
        self.score()
        self.dnsbl_done.set()
        if self.early_done() and self.wait_scope is not None:
            self.wait_scope.cancel()            # nothing left to wait for

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

    # --- postscreen's own SMTP engine ---------------------------------------------

    async def deep_tests(self) -> None:
        """The tests after the 220 greeting (Postfix postscreen_smtpd.c): the
        client never reaches smtpd in this session; one that passes is
        allowed on its next connection."""
        server, tests = self.server, self.tests
        assert tests is not None
        self.noforward = True
        self.start = time.monotonic()
        # A client that failed a test before gets every deep test, for the
        # log's sake (Postfix does the same).
        todo = set(DEEP) if tests.failed else tests.deep_todo
        settings, ehlo_note = server.engine, ""
        words = server.discarded_keywords(self.addr)
        if words is not None:
            # The map's keywords instead of postscreen_discard_ehlo_keywords,
            # logged at each EHLO unless silent ("[addr]port", as Postfix 3.7).
            settings = dataclasses.replace(
                settings, discard_ehlo=frozenset(k.upper() for k in discard_names(words)))
            text = discard_text(words)
            ehlo_note = f"[{self.addr}]{self.port}: {text}" if text else ""
        engine = Engine(settings, self.namaddr, todo=todo, rcpt_reply=self.rcpt_reply,
                        ehlo_note=ehlo_note)
        # A pregreeting client is not sent the greeting: its early commands
        # are read as the dialogue's first (Postfix 3.7).
        if PREGREET not in tests.failed and not await self.send(engine.greeting()):
            self.hangup("after")
            await self.conclude()
            return
        while True:
            deadline = trio.current_time() + server.command_time_limit
            while (step := engine.next_step()) is None:
                data = b""
                with trio.move_on_at(deadline) as scope:
                    try:
                        data = await self.stream.receive_some(RECEIVE_SIZE)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                if scope.cancelled_caught:
                    step = engine.time_limit()
                    break
                engine.receive_data(data)
            now = time.time()
            for test, kind in step.passed:
                tests.pass_test(test, now + (server.ttls[test] if kind == "ttl"
                                             else server.min_ttl))
            for test in step.failed:
                tests.fail_test(test)
            for line in step.log:
                log.info(line)
            if step.hangup:
                self.hangup("after")
                await self.conclude()
                return
            if not await self.send(step.reply):
                self.hangup("after")
                await self.conclude()
                return
            if step.close:
                await self.conclude()
                return
            if step.starttls and not await self.start_tls(engine):
                await self.conclude()
                return

    async def start_tls(self, engine: Engine) -> bool:
        """The TLS handshake after "220 2.0.0 Ready to start TLS"; False when
        it failed and the session is over (Postfix's tlsproxy logs
        "SSL_accept error from ..." the same way)."""
        from mailsys.runtime.tls_stream import TlsStream
        from mailsys.tls import TlsEngine, TlsError
        tls = TlsStream(self.stream, TlsEngine(self.server.tls_context, server_side=True))
        try:
            await tls.handshake(self.server.starttls_timeout)
        except TlsError as e:
            log.info(f"SSL_accept error from {self.namaddr}: {e}")
            return False
        self.stream = tls
        engine.tls_started()
        return True

    async def hand_over(self) -> None:
        server = self.server
        server.handing += 1
        try:
            endpoints = None
            if self.proxied is not None:
                endpoints = ((self.addr, self.port), (self.laddr, self.lport))
            await fd_pass.send_connection(server.smtpd_path, self.sock, PASS_TIMEOUT, endpoints)
            self.handed = True
        except fd_pass.PassError as e:
            log.warning(str(e))
            await self.send("421 4.3.2 All server ports are busy\r\n")
        finally:
            server.handing -= 1


async def screen(stream, server: PostscreenServer) -> None:
    """The whole life of one connection to postscreen."""
    proxied = None
    if server.upstream_proxy:
        proxied = await _proxy_header(stream, server)
        if proxied is None:
            return
        if proxied.local:           # the proxy's own health check
            proxied = None
    s = _Screen(stream, server, proxied)
    log.info(f"CONNECT from {s.namaddr} to [{s.laddr}]:{s.lport}")
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


async def _proxy_header(stream, server: PostscreenServer) -> Proxied | None:
    """postscreen_upstream_proxy_protocol: the PROXY header, or None when
    there is none to be had; the client is then told, as Postfix's
    postscreen tells it (seen live: no CONNECT line, no footer)."""
    try:
        return await read_proxy_header(stream, server.upstream_proxy_timeout, patient=False)
    except HaproxyTimeout:
        log.warning("haproxy read: time limit exceeded")
    except HaproxyError as e:
        log.warning(f"haproxy read: {e}")
    with trio.move_on_after(CLOSE_SEND):
        try:
            await stream.send_all(b"421 4.3.2 No system resources\r\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    return None
