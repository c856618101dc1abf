"""log - read and follow the mail log.

SYNOPSIS
    mailsys log [-n N] [-f] [--id QID] [--service NAME] [--json]

DESCRIPTION
    Prints the last lines of mail.log ($maillog_file), like tail(1):

    -n N            how many lines: the last N that pass the filters.
                    Default 10, or every line with --id (a message's whole
                    history). -n 0 prints none (useful with -f).
    -f              after that, keep printing lines as they are appended,
                    across log rotation: a rename followed by a new file
                    (the old file is still read for a few seconds, since
                    postlogd switches within a second) and truncation in
                    place. Ctrl-C ends it quietly (exit status 130).
    --id QID        only the lines of one message: those whose text starts
                    with "QID: ", after an optional "warning: " (or error,
                    fatal, panic). Without -f, an ID with no line in the
                    file is one line on stderr and exit status 1, as grep.
    --service NAME  only lines logged by one program: NAME is compared with
                    the components of the tag after syslog_name, so "smtpd"
                    matches mailsys/smtpd and mailsys/submission/smtpd and
                    "submission" matches mailsys/submission/smtpd. The whole
                    tag matches too.
    --json          read mail.json instead and print its raw lines (same
                    filters, on the queue_id and tag keys).

    On a terminal, warnings are yellow and errors, fatals, panics and
    rejects ("reject: ") red; never when stdout is not a terminal or NO_COLOR
    is set. A missing log file is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import deque
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from mailsys.errors import MailsysError, UsageError
from mailsys.maillog.files import REOPEN_INTERVAL, log_paths

DEFAULT_LINES = 10
BLOCK = 64 * 1024
POLL = 0.2                               # seconds between looks at a quiet file
# How long a rotated-away file is still read: postlogd notices a rotation
# within REOPEN_INTERVAL, a process in fallback mode within the same.
DRAIN = 3 * REOPEN_INTERVAL

# "Nov 27 00:21:40 mx mailsys/smtpd[9621]: text" (also ISO or space-padded
# timestamps): the tag is the first "word[digits]: ".
_LINE = re.compile(rb"^(?:\S+\s+){1,4}?(?P<tag>[^\s\[]+)\[\d+\]: (?P<msg>.*)$")
_QID = re.compile(rb"^(?:(?:warning|error|fatal|panic): )?(?P<qid>[^:\s]+): ")
_SEVERITY = re.compile(rb"^(?:\S+\s+){1,4}?[^\s\[]+\[\d+\]: (warning|error|fatal|panic): ")

_RED, _YELLOW, _RESET = b"\x1b[31m", b"\x1b[33m", b"\x1b[0m"

Keep = Callable[[bytes], bool]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:          # argparse would exit 2
        raise UsageError(f"{message}; usage: mailsys log [-n N] [-f] [--id QID] "
                         f"[--service NAME] [--json]")


def _parse(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="mailsys log", description="Read and follow the mail log.")
    p.add_argument("-n", dest="lines", type=int, metavar="N",
                   help=f"print the last N matching lines (default {DEFAULT_LINES}, all with --id)")
    p.add_argument("-f", dest="follow", action="store_true", help="keep printing new lines")
    p.add_argument("--id", dest="qid", metavar="QID", help="only the lines of this queue ID")
    p.add_argument("--service", metavar="NAME", help="only the lines of this program")
    p.add_argument("--json", action="store_true", help="print mail.json events instead")
    args = p.parse_args(argv)
    if args.lines is not None and args.lines < 0:
        raise UsageError(f"bad line count: {args.lines}")
    return args


# --- filters ---------------------------------------------------------------

def _service_matches(tag: str, name: str) -> bool:
    parts = tag.split("/")
    return tag == name or name in parts[1:]


def _postfix_filter(qid: str | None, service: str | None) -> Keep:
    want_qid = qid.encode() if qid else None

    def keep(line: bytes) -> bool:
        if want_qid is None and service is None:
            return True
        m = _LINE.match(line)
        if m is None:
            return False
        if service is not None and not _service_matches(m["tag"].decode("utf-8", "replace"), service):
            return False
        if want_qid is not None:
            q = _QID.match(m["msg"])
            return q is not None and q["qid"] == want_qid
        return True
    return keep


def _json_filter(qid: str | None, service: str | None) -> Keep:
    def keep(line: bytes) -> bool:
        if qid is None and service is None:
            return True
        try:
            record = json.loads(line)
        except ValueError:
            return False
        if not isinstance(record, dict):
            return False
        if qid is not None and record.get("queue_id") != qid:
            return False
        return service is None or _service_matches(str(record.get("tag", "")), service)
    return keep


def _colour(line: bytes) -> bytes:
    m = _SEVERITY.match(line)
    if m is not None:
        return (_YELLOW if m[1] == b"warning" else _RED) + line + _RESET
    if b": reject: " in line:
        return _RED + line + _RESET
    return line


# --- reading ---------------------------------------------------------------

def _complete_end(f: BinaryIO) -> int:
    """The offset just past the last newline: where complete lines end."""
    pos = f.seek(0, os.SEEK_END)
    while pos > 0:
        step = min(BLOCK, pos)
        pos -= step
        f.seek(pos)
        i = f.read(step).rfind(b"\n")
        if i >= 0:
            return pos + i + 1
    return 0


def _reverse_lines(f: BinaryIO, end: int) -> Iterator[bytes]:
    """The complete lines before end (just past a newline), last first."""
    pos, rest, first = end, b"", True
    while pos > 0:
        step = min(BLOCK, pos)
        pos -= step
        f.seek(pos)
        data = f.read(step) + rest
        if first:
            data, first = data[:-1], False          # the newline that ends the last line
        lines = data.split(b"\n")
        rest = lines[0]                              # may begin in the block before
        yield from reversed(lines[1:])
    if end > 0:
        yield rest


def _tail(f: BinaryIO, count: int | None, keep: Keep) -> tuple[list[bytes], int]:
    """The last count kept lines (all when None), and where reading stopped."""
    end = _complete_end(f)
    if count is None:
        f.seek(0)
        kept = [line[:-1] for line in _forward_lines(f, end) if keep(line[:-1])]
        return kept, end
    found: deque[bytes] = deque()
    if count > 0:
        for line in _reverse_lines(f, end):
            if keep(line):
                found.appendleft(line)
                if len(found) == count:
                    break
    return list(found), end


def _forward_lines(f: BinaryIO, end: int) -> Iterator[bytes]:
    while f.tell() < end:
        yield f.readline(end - f.tell())


class _Source:
    """One open log file being followed, with its unfinished last line."""

    def __init__(self, f: BinaryIO, partial: bytes = b"") -> None:
        self.f, self.partial = f, partial
        self.drain_until: float | None = None

    def read_lines(self) -> list[bytes]:
        data = self.f.read()
        if not data:
            return []
        *lines, self.partial = (self.partial + data).split(b"\n")
        return lines

    def truncated(self) -> bool:
        return os.fstat(self.f.fileno()).st_size < self.f.tell()

    def same_file(self, path: Path) -> bool:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        mine = os.fstat(self.f.fileno())
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _follow(path: Path, f: BinaryIO, offset: int, keep: Keep, out: Callable[[list[bytes]], None]) -> None:
    f.seek(offset)
    current = _Source(f)
    draining: list[_Source] = []
    while True:
        got = False
        for src in [*draining, current]:
            lines = src.read_lines()
            if lines:
                got = True
                out([line for line in lines if keep(line)])
        now = time.monotonic()
        for src in list(draining):
            if now >= (src.drain_until or 0):
                draining.remove(src)
                src.f.close()
        if current.truncated():
            current.f.seek(0)                        # copytruncate: start again at the top
            current.partial = b""
            continue
        if not current.same_file(path) and path.exists():
            try:
                new = path.open("rb")
            except OSError:                          # gone again, or not readable yet
                pass
            else:
                current.drain_until = now + DRAIN
                draining.append(current)
                current = _Source(new)
                continue
        if not got:
            time.sleep(POLL)


# --- main ------------------------------------------------------------------

def main(argv: list[str], config_dir: Path, command: str = "log") -> int:
    args = _parse(argv)
    from mailsys.config import load
    cfg = load(config_dir)
    log_path, json_path = log_paths(cfg)
    path = json_path if args.json else log_path
    if path is None:
        what = "mail.json" if args.json else "mail.log"
        raise MailsysError(f"no {what}: maillog_file is empty, so mail is logged to standard error")
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise MailsysError(f"no mail log: {path}: No such file or directory") from None
    except OSError as e:
        raise MailsysError(f"cannot read mail log: {path}: {e.strerror}") from None

    keep = (_json_filter if args.json else _postfix_filter)(args.qid, args.service)
    count = args.lines if args.lines is not None else (None if args.qid else DEFAULT_LINES)
    colour = (not args.json and sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    stdout = sys.stdout.buffer

    def out(lines: list[bytes]) -> None:
        if lines:
            stdout.write(b"".join((_colour(line) if colour else line) + b"\n" for line in lines))
            stdout.flush()

    try:
        with f:
            lines, end = _tail(f, count, keep)
            out(lines)
            if args.qid and not lines and not args.follow and count != 0:
                raise MailsysError(f"no lines for queue ID {args.qid} in {path}")
            if args.follow:
                _follow(path, f, end, keep, out)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (| head): exit quietly, and keep Python's
        # final flush of stdout from complaining about it again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0
