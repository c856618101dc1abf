"""qid - queue IDs: unique, sortable by arrival, shaped like Postfix's long IDs.

SYNOPSIS
    from mailsys.message.qid import new_qid, qid_time, is_qid
    qid = new_qid()            # "4jbDmW4NhRzJDXR"
    qid_time(qid)              # 1795739323.512144 (seconds since the epoch)

DESCRIPTION
    A queue ID is the name of one queue entry in every log line, in mailq
    and in DSNs. mailsys uses the shape of Postfix's long queue IDs
    (postfix-compat.md 3.1; Postfix src/global/mail_queue.h):

        SSSSSS UUUU z PPPP        15 characters, always

    SSSSSS  arrival seconds since the epoch, base 52, 6 digits (good until
            the year 2594)
    UUUU    arrival microseconds, base 52, 4 digits
    z       separator; it never occurs in the suffix
    PPPP    process ID of the creator, base 51 (the alphabet without "z"),
            4 digits (51**4 > 2**22, Linux's largest pid_max)

    The base-52 alphabet is Postfix's: the digits and the letters without
    vowels, "0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z". It is in ASCII order and
    every field has a fixed width, so string order is arrival order (across
    processes, to the precision of their clocks). The IDs match
    "[A-Za-z0-9]+", so fail2ban's "\\w+:" and pflogsumm's "[^:\\s]+" take
    them whole, and mailq's long-ID column ("%-17s") fits them with the
    status character.

GUARANTEE
    Within one process the (seconds, microseconds) pair is strictly
    increasing: when the clock has not advanced (or went back) since the
    previous ID, the previous value plus one microsecond is used instead.
    That pair is the per-process counter. Two live processes differ in the
    pid suffix, so IDs made by processes running at the same time never
    collide. A collision is left possible only when a pid is reused after
    the clock was stepped back by more than the time between the two
    processes, down to the microsecond; the queue store refuses a duplicate
    key when it creates an entry and draws a new ID, so a queue never holds
    two entries with one ID. IDs are not secrets and are not random.
"""

from __future__ import annotations

import os
import re
import threading
import time

ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
assert len(ALPHABET) == 52 and sorted(ALPHABET) == list(ALPHABET)
# The suffix must not contain the separator, so it uses base 51.
SUFFIX_ALPHABET = ALPHABET[:-1]
SEPARATOR = "z"

SECONDS_DIGITS = 6
MICROS_DIGITS = 4
PID_DIGITS = 4
QID_LENGTH = SECONDS_DIGITS + MICROS_DIGITS + 1 + PID_DIGITS

_B52 = "[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]"
_B51 = "[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]"
QID_RE = re.compile(
    f"{_B52}{{{SECONDS_DIGITS + MICROS_DIGITS}}}{SEPARATOR}{_B51}{{{PID_DIGITS}}}")

_DIGIT = {c: i for i, c in enumerate(ALPHABET)}


def _encode(value: int, width: int, alphabet: str) -> str:
    """_encode - value as exactly width digits of len(alphabet)."""
    base = len(alphabet)
    out = []
    for _ in range(width):
        value, digit = divmod(value, base)
        out.append(alphabet[digit])
    if value:
        raise ValueError(f"{value} does not fit in {width} base-{base} digits")
    return "".join(reversed(out))


def _decode(text: str, base: int) -> int:
    value = 0
    for c in text:
        value = value * base + _DIGIT[c]
    return value


class _Clock:
    """The per-process strictly increasing microsecond counter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0
        self._pid = os.getpid()

    def next(self) -> tuple[int, int]:
        now = time.time_ns() // 1000
        with self._lock:
            pid = os.getpid()
            if pid != self._pid:
                # A forked child inherits the counter, but its pid already
                # makes its IDs distinct from the parent's; keep counting.
                self._pid = pid
            if now <= self._last:
                now = self._last + 1
            self._last = now
        return now, pid


_clock = _Clock()


def new_qid() -> str:
    """new_qid - a fresh queue ID for an entry arriving now."""
    micros, pid = _clock.next()
    seconds, usec = divmod(micros, 1_000_000)
    return (_encode(seconds, SECONDS_DIGITS, ALPHABET)
            + _encode(usec, MICROS_DIGITS, ALPHABET)
            + SEPARATOR
            + _encode(pid, PID_DIGITS, SUFFIX_ALPHABET))


def is_qid(text: str) -> bool:
    """is_qid - whether text has the exact shape of a mailsys queue ID."""
    return QID_RE.fullmatch(text) is not None


# Postfix's VALID_HOSTNAME_LEN (src/util/valid_hostname.h), the longest
# name mail_queue_id_ok() accepts.
QUEUE_FILE_NAME_MAX = 255
_QUEUE_FILE_NAME_RE = re.compile(r"[A-Za-z0-9_]+")


def queue_id_ok(text: str) -> bool:
    """queue_id_ok - whether Postfix would take text as a queue file name.

    Postfix's mail_queue_id_ok() (src/global/mail_queue.c): 1 to 255
    letters, digits and "_", the syntax of short and long queue IDs and of
    fast flush log names alike. postsuper and postcat refuse anything else
    with "invalid mail queue id" and "bad mail queue ID"; a name that
    passes and is no mailsys queue ID is simply not found."""
    return (0 < len(text) <= QUEUE_FILE_NAME_MAX and text.isascii()
            and _QUEUE_FILE_NAME_RE.fullmatch(text) is not None)


def qid_time(qid: str) -> float:
    """qid_time - the arrival time encoded in a queue ID, in epoch seconds."""
    if not is_qid(qid):
        raise ValueError(f"not a queue ID: {qid!r}")
    seconds = _decode(qid[:SECONDS_DIGITS], 52)
    usec = _decode(qid[SECONDS_DIGITS:SECONDS_DIGITS + MICROS_DIGITS], 52)
    return seconds + usec / 1_000_000


def qid_pid(qid: str) -> int:
    """qid_pid - the pid of the process that made a queue ID."""
    if not is_qid(qid):
        raise ValueError(f"not a queue ID: {qid!r}")
    return _decode(qid[-PID_DIGITS:], 51)
