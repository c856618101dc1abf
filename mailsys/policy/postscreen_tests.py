"""postscreen_tests - which postscreen tests a client still has to pass, and its cache record.

SYNOPSIS
    tests = ClientTests.start(cached_text, enabled, now)     # cached_text None: a new client
    tests.todo                  # {"pregreet", "dnsbl", ...} to do in this session
    tests.pass_test("pregreet", now + cfg.postscreen_greet_ttl)
    tests.fail_test("pipelining")
    if tests.passed_all(): log "PASS NEW" / "PASS OLD"
    if tests.updated(): cache.put(addr, tests.record())
    keep = retained(text, enabled, now - cfg.postscreen_cache_retention_time)

DESCRIPTION
    Postfix's postscreen_tests.c and the flag logic of psc_conclude().

    A cache record holds one time stamp per test, in this order, as
    decimal seconds since the epoch, separated by ";":

        PREGREET;DNSBL;PIPELINING;NON_SMTP;BARE_NEWLINE

    0 (NEW) means the test was never passed, 1 (DISABLED) that it was never
    passed and was disabled when the record was written; any other value
    is the time the pass expires. A shorter record (an older postscreen)
    reads its missing fields as DISABLED. The record of a client that
    passed the pregreet test with the deep tests on looked, in a live
    Postfix 3.7: "1795904552;1;1798410157;1798410157;1798410157".

    A test is to do when it is enabled and its stamp is in the past. A
    client is passed ("PASS NEW", or "PASS OLD" when its record had no NEW
    stamp) when it passed at least one test, failed none, and passed every
    test it had to do; its record is written when it passed at least one
    test and failed none. A failed test (with any action but "ignore")
    makes the whole session unpassed and unrecorded.

    The cache cleanup keeps a record while no enabled test of it would be
    to do at (now - postscreen_cache_retention_time); so a record with a
    NEW stamp for an enabled test goes at the first cleanup.

    Pure: times are the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PREGREET, DNSBL, PIPELINING, NON_SMTP, BARE_NEWLINE = (
    "pregreet", "dnsbl", "pipelining", "non_smtp", "bare_newline")
TESTS = (PREGREET, DNSBL, PIPELINING, NON_SMTP, BARE_NEWLINE)
EARLY = (PREGREET, DNSBL)                           # before the 220 greeting
DEEP = (PIPELINING, NON_SMTP, BARE_NEWLINE)         # postscreen's own SMTP dialogue

NEW = 0
DISABLED = 1


def parse_record(text: str) -> dict[str, int]:
    """The stamps of a cache record; missing or unreadable fields are DISABLED
    (Postfix's sscanf stops at the first field it cannot read)."""
    stamps = dict.fromkeys(TESTS, DISABLED)
    for name, word in zip(TESTS, text.split(";")):
        try:
            stamps[name] = int(word)
        except ValueError:
            break
    return stamps


def retained(text: str, enabled: frozenset[str], when: float) -> bool:
    """Whether the cache cleanup keeps a record (Postfix psc_cache_validator):
    no enabled test would be to do at `when`."""
    stamps = parse_record(text)
    return not any(when > stamps[name] for name in enabled)


@dataclass(slots=True)
class ClientTests:
    """One session's tests: the stamps and the todo / pass / fail sets."""
    enabled: frozenset[str]
    stamps: dict[str, int]
    todo: set[str] = field(default_factory=set)
    passed: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    new: bool = False                   # some stamp is NEW: the pass is "PASS NEW"
    expired: bool = False               # some passed test expired (Postfix CACHE_EXPIRED)

    @classmethod
    def start(cls, cached: str | None, enabled: frozenset[str], now: float) -> "ClientTests":
        """The tests of a client with this cache record (None: never seen)."""
        if cached is None:                       # psc_new_tests
            return cls(enabled, dict.fromkeys(TESTS, NEW), todo=set(enabled), new=True)
        stamps = parse_record(cached)            # psc_parse_tests
        state = cls(enabled, stamps, new=NEW in stamps.values())
        for name in TESTS:
            if name in enabled and now > stamps[name]:
                state.todo.add(name)
                if stamps[name] > DISABLED:
                    state.expired = True
        return state

    def pass_test(self, name: str, expires: float) -> None:
        self.passed.add(name)
        self.stamps[name] = int(expires)

    def fail_test(self, name: str) -> None:
        """A failed test (Postfix FAIL + UNPASS), or another verdict that
        bars the client from the allow list ("denylist", "veto"). A failed
        test's stamp becomes DISABLED, as Postfix sets it."""
        self.failed.add(name)
        self.passed.discard(name)
        if name in self.stamps:
            self.stamps[name] = DISABLED

    def allow_all(self, expires: float) -> None:
        """The DNSBL allow list (Postfix psc_allowlist_non_dnsbl): every other
        test still to do counts as passed, and every other test's stamp,
        disabled ones too, lasts at least until `expires`."""
        if self.failed:
            return
        for name in TESTS:
            if name == DNSBL:
                continue
            if name in self.todo:
                self.passed.add(name)
            if self.stamps[name] < expires:
                self.stamps[name] = int(expires)

    @property
    def deep_todo(self) -> set[str]:
        """Deep tests to do that are not passed yet."""
        return {name for name in DEEP if name in self.todo and name not in self.passed}

    def passed_all(self) -> bool:
        """Postfix's "PASS NEW/OLD" condition: some test passed, none failed,
        every test to do passed."""
        return bool(self.passed) and not self.failed and self.todo <= self.passed

    def updated(self) -> bool:
        """Whether the record is written: a pass, and no failure."""
        return bool(self.passed) and not self.failed

    def record(self) -> str:
        """The cache record (Postfix psc_print_tests): a disabled test that was
        never passed gets DISABLED, so enabling it later does not log PASS NEW
        for clients already allowed."""
        values = [DISABLED if name not in self.enabled and self.stamps[name] == NEW
                  else self.stamps[name] for name in TESTS]
        return ";".join(str(v) for v in values)
