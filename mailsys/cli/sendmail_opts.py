"""sendmail_opts - Postfix sendmail's command line: its mode and options.

SYNOPSIS
    config_dir = prescan(argv, config_dir, complain)
    opts = parse(argv, "sendmail", warn)     # raises Fatal(text)

DESCRIPTION
    The options, modes, warnings and fatal errors of main() in Postfix's
    src/sendmail/sendmail.c, in its order, with its texts (each seen live
    with Postfix 3.7.11). The command line is read twice, as Postfix reads
    it: prescan() for -C only (glibc's getopt complains about every bad
    option), then parse() for everything (the first bad option is
    complained about again and is "fatal: usage: NAME [options]").

    A bad -N, -R or -V (DSN) value is only a warning, and the option is
    ignored; a bad -B, -X, -b, -q or -oA value, -n, and options that
    contradict the mode or -bv are fatal. Other Sendmail options are
    accepted and ignored. The mode is "enqueue" unless the command is
    called mailq or newaliases, or an option says otherwise.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from mailsys.cli.gnu_getopt import Scanner

__all__ = ["Fatal", "Options", "prescan", "parse", "notify_mask"]

# Postfix 3.7.11 sendmail.c GETOPT_LIST.
OPTIONS = "A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx"

# sendmail.c's modes (SM_MODE_*).
ENQUEUE, MAILQ, FLUSHQ, DAEMON, NEWALIAS, USER, IGNORE = (
    "enqueue", "mailq", "flushq", "daemon", "newalias", "user", "ignore")

# -b letter -> mode (none: -bv, which only sets the verify flag).
B_MODES = {"d": DAEMON, "l": DAEMON, "h": IGNORE, "H": IGNORE, "i": NEWALIAS,
           "m": ENQUEUE, "p": MAILQ, "s": USER}

NOTIFY_WORDS = ("NEVER", "SUCCESS", "FAILURE", "DELAY")     # dsn_mask.c
RET_WORDS = ("FULL", "HDRS")
ENVID_LIMIT = 100                   # sendmail.c: "too long -V option value"


class Fatal(Exception):
    """A fatal error: msg_fatal_status() in sendmail.c, the text."""


@dataclasses.dataclass
class Options:
    mode: str = ENQUEUE
    sender: str | None = None           # -f, -r
    full_name: str | None = None        # -F
    extract: bool = False               # -t
    ignore_dots: bool = False           # -i, -oi
    verify: bool = False                # -bv
    verbose: int = 0                    # -v
    encoding: str = ""                  # -B: 7BIT or 8BITMIME
    notify: tuple[str, ...] = ()        # -N
    ret: str = ""                       # -R
    envid: str = ""                     # -V
    verp: str | None = None             # -XV, -XVxy ("" for the default delimiters)
    site: str | None = None             # -qRsite
    queue_id: str | None = None         # -qIqueueid
    qtime: str | None = None            # -q<interval>
    alias_map: str | None = None        # -oAfile
    recipients: list[str] = dataclasses.field(default_factory=list)


def prescan(argv: list[str], config_dir: Path, complain: Callable[[str], None]) -> Path:
    """The configuration directory (-C); each bad option told to complain.
    -C names a directory or its main.cf (sane_dirname in sendmail.c)."""
    scan = Scanner(argv, OPTIONS)
    while True:
        if scan.head() == "-q":             # "not getopt compatible"
            scan.skip()
            continue
        opt = scan.next()
        if opt is None:
            return config_dir
        letter, value = opt
        if letter == "?":
            complain(value)
        elif letter == "C":
            path = Path(value)
            config_dir = (path.parent if path.name == "main.cf" else path).absolute()


def parse(argv: list[str], command: str, warn: Callable[[str], None],
          complain: Callable[[str], None] = lambda text: None,
          verp_filter: str = "-=+") -> Options:
    """The options of argv as sendmail.c's main() reads them; raises Fatal.
    verp_filter: $verp_delimiter_filter, for -XVxy."""
    opts = Options(mode={"mailq": MAILQ, "newaliases": NEWALIAS}.get(command, ENQUEUE))
    scan = Scanner(argv, OPTIONS)
    while True:
        arg = scan.head()
        if arg == "-q":
            if opts.mode == DAEMON:
                warn("ignoring -q option in daemon mode")
            else:
                opts.mode = FLUSHQ
            scan.skip()
            continue
        if arg == "-V" and len(scan.argv) > scan.optind + 1 \
                and len(scan.argv[scan.optind + 1]) == 2:
            warn("option -V is deprecated with Postfix 2.3; specify -XV instead")
            scan.replace(arg := "-XV")
        if arg is not None and arg.startswith("-V") and len(arg) == 4:
            warn(f"option {arg} is deprecated with Postfix 2.3; specify -X{arg[1:]} instead")
            scan.replace(arg := "-X" + arg[1:])
        if arg == "-XV":
            opts.verp = ""
            scan.skip()
            continue
        opt = scan.next()
        if opt is None:
            break
        _option(opts, *opt, warn, complain, command)
        if opt[0] == "X" and not verp_ok(opts.verp or "", verp_filter):
            raise Fatal(f"-V requires two characters from {verp_filter}")
    opts.recipients = scan.rest()
    _check(opts)
    return opts


def _option(opts: Options, c: str, value: str, warn: Callable[[str], None],
            complain: Callable[[str], None], command: str) -> None:
    """One option, as the switch in sendmail.c's main()."""
    if c == "?":
        complain(value)
        raise Fatal(f"usage: {command} [options]")
    if c == "n":
        raise Fatal(f"-{c} option not supported")
    if c == "B":
        if value not in ("8BITMIME", "7BIT"):   # RFC 1652; sendmail.c compares exactly
            raise Fatal("-B option needs 8BITMIME or 7BIT")
        opts.encoding = value
    elif c == "F":
        opts.full_name = value
    elif c == "I":
        opts.mode = NEWALIAS
    elif c == "N":
        opts.notify = notify_mask(value, warn)
        if not opts.notify:
            warn("bad -N option value -- ignored")
    elif c == "R":
        opts.ret = value.upper() if value.upper() in RET_WORDS else ""
        if not opts.ret:
            warn("bad -R option value -- ignored")
    elif c == "V":
        if len(value) > ENVID_LIMIT:
            warn("too long -V option value -- ignored")
        elif not value.isprintable() or not value.isascii():
            warn("bad syntax in -V option value -- ignored")
        else:
            opts.envid = value
    elif c == "X":
        if not value.startswith("V"):
            raise Fatal(f"unsupported: -{c}{value[:1]}")
        opts.verp = value[1:]
    elif c == "b":
        _b_option(opts, value, warn)
    elif c in "fr":                         # -r: obsoleted by -f
        opts.sender = value
    elif c == "i":
        opts.ignore_dots = True
    elif c == "o":
        if value[:1] == "A":
            if not value[1:]:
                raise Fatal("-oA requires pathname")
            opts.alias_map = value[1:]
        elif value[:1] == "i":
            opts.ignore_dots = True
    elif c == "q":
        _q_option(opts, value)
    elif c == "t":
        opts.extract = True
    elif c == "v":
        opts.verbose += 1
    # Every other option (-A -C -G -L -O -U -c -e -h -m -p -x) is ignored here.


def _b_option(opts: Options, value: str, warn: Callable[[str], None]) -> None:
    letter = value[:1]
    if letter == "v":
        opts.verify = True                  # expand recipients
    elif letter not in B_MODES:
        raise Fatal(f"unsupported: -b{letter}")
    else:
        if B_MODES[letter] == DAEMON and opts.mode == FLUSHQ:
            warn("ignoring -q option in daemon mode")
        opts.mode = B_MODES[letter]


def _q_option(opts: Options, value: str) -> None:
    if value[:1].isdigit():
        opts.qtime = value
    elif value[:1] == "R":
        if not value[1:]:
            raise Fatal("specify: -qRsitename")
        opts.site = value[1:]
    elif value[:1] == "I":
        if not value[1:]:
            raise Fatal("specify: -qIqueueid")
        opts.queue_id = value[1:]
    else:
        raise Fatal(f"-q{value[:1]} is not implemented")


def _check(opts: Options) -> None:
    """sendmail.c: "Look for conflicting options and arguments"."""
    if opts.extract and opts.mode != ENQUEUE:
        raise Fatal("-t can be used only in delivery mode")
    if opts.site is not None and opts.mode != ENQUEUE:
        raise Fatal("-qR can be used only in delivery mode")
    if opts.queue_id is not None and opts.mode != ENQUEUE:
        raise Fatal("-qI can be used only in delivery mode")
    if opts.verify:
        for given, letter in ((opts.extract, "t"), (opts.notify, "N"), (opts.ret, "R"),
                              (opts.verbose == 1, "v")):
            if given:
                raise Fatal(f"-{letter} option cannot be used with -bv")


def verp_ok(delimiters: str, verp_filter: str) -> bool:
    """verp_delims_verify() (src/global/verp_sender.c): two characters
    from $verp_delimiter_filter."""
    return len(delimiters) == 2 and all(c in verp_filter for c in delimiters)


def notify_mask(value: str, warn: Callable[[str], None]) -> tuple[str, ...]:
    """-N as dsn_notify_mask() reads it: words separated by commas or
    white space, any case; () for a bad value, after a warning for a word
    that is none of NEVER, SUCCESS, FAILURE, DELAY (name_mask.c)."""
    words: list[str] = []
    for word in value.replace(",", " ").split():
        if word.upper() not in NOTIFY_WORDS:
            warn(f'unknown DSN NOTIFY command value "{word}" in "{value}"')
            return ()
        if word.upper() not in words:
            words.append(word.upper())
    if "NEVER" in words and len(words) > 1:     # DSN_NOTIFY_OK
        return ()
    return tuple(words)
