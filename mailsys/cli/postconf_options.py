"""postconf_options - postconf's command line, checked as Postfix's postconf(1) checks it.

SYNOPSIS
    from mailsys.cli.postconf_options import parse

    inv = parse(["-n", "-f"])      # Invocation(mode="-p", flags={"-n", "-f"}, ...)
    inv.edit                       # "-e", "-X", "-#" or None
    inv.hide                       # "-h", "-H" or None

DESCRIPTION
    Each postconf invocation has one mode, given by one option, and the
    modifiers that the mode takes (Postfix's postconf.c keeps both in a
    "compatibility matrix"):

        -p        main.cf parameters (the default): -d -e -f -h -H -n -o -x -X -#
        -M        master.cf entries: -e -f -o -x -X -#
        -F        their fields: -e -f -h -H -o -x
        -P        their -o parameters: -e -f -h -H -o -x -X
        -b, -t    the bounce templates; -m table types; -l locking methods;
                  -a, -A SASL server and client types; -T mode, TLS
                  information (one -T only): no modifiers

    Of -d -e -n -X -# at most one goes, and neither -f, -x nor -h goes
    with an edit (-e -X -#), nor -h with -H, nor -o (override a main.cf
    parameter for this command) with -d or an edit. A command line that breaks these rules gets
    Postfix's words, "specify one of -d -n" or "with option -M, do not
    specify -h", the options named in the order Postfix names them.

    As in Postfix, whose GETOPT() stops at the first argument that is not
    an option, options come first: in "postconf relayhost -h" the -h is a
    parameter name. A first argument with "=" in it makes the main.cf and
    master.cf modes edit, as if -e were given ("The -e option is no longer
    needed with Postfix version 2.8 and later"). -v is accepted, as
    Postfix's verbose logging switch; mailsys's postconf has nothing more
    to say with it.

    -C class,... (builtin, service, user or all, apart by commas or
    whitespace, in any case; the last -C counts) chooses which main.cf
    parameters a listing shows; see mailsys.cli.postconf. As in Postfix,
    which never enters -C in its matrix, it is accepted with every mode
    and ignored where it means nothing (with -M, or with names).

    An -o argument is read as Postfix reads it: the name and the value
    lose the whitespace around them, and one without a name or without "="
    is "invalid parameter override: ARG: missing attribute name" (or
    "missing '=' after attribute name").

    parse() raises UsageError with Postfix's message; for an option
    getopt() does not know, or one without its value, it first prints
    glibc getopt()'s own line ("postconf: invalid option -- 'Z'") and the
    message is the usage line.
"""

from __future__ import annotations

import getopt
import re
import sys
from pathlib import Path

from mailsys.cli.getopt_errors import complaint
from mailsys.errors import UsageError
from mailsys.frozen import frozen

OPTSTRING = "aAbc:C:defFhHlmMno:pPtT:vxX#"

# The usage line's entries, in Postfix's order (postconf.c usage()).
# Postfix 3.7's line has "-c param_class" for -C, a slip not copied here.
USAGE_OPTIONS = (
    "-a (server SASL types)",
    "-A (client SASL types)",
    "-b (bounce templates)",
    "-c config_dir",
    "-C param_class",
    "-d (parameter defaults)",
    "-e (edit configuration)",
    "-f (fold lines)",
    "-F (master.cf fields)",
    "-h (no names)",
    "-H (no values)",
    "-l (lock types)",
    "-m (map types)",
    "-M (master.cf)",
    "-n (non-default parameters)",
    "-o name=value (override parameter value)",
    "-p (main.cf, default)",
    "-P (master.cf parameters)",
    "-t (bounce templates)",
    "-T compile-version|run-version|public-key-algorithms",
    "-v (verbose)",
    "-x (expand parameter values)",
    "-X (exclude)",
    "-# (comment-out)",
)
USAGE = "usage: postconf" + "".join(f" [{entry}]" for entry in USAGE_OPTIONS) + " [name...]"

# The options in the order Postfix's messages name them (pcf_compat_names).
ORDER = ("-a", "-A", "-b", "-C", "-d", "-e", "-f", "-F", "-h", "-H", "-l", "-m", "-M",
         "-n", "-o", "-p", "-P", "-t", "-T", "-x", "-X", "-#")
MODES = frozenset({"-a", "-A", "-b", "-l", "-m", "-t", "-T", "-p", "-M", "-F", "-P"})
EDITS = ("-e", "-X", "-#")
# Options of which one at the most may be given (pcf_incompat_options): the
# modes, then modifiers that contradict each other.
EXCLUSIVE = (
    MODES,
    frozenset({"-d", "-e", "-n", "-#", "-X"}),
    frozenset({"-f", "-e", "-#", "-X"}),
    frozenset({"-x", "-e", "-#", "-X"}),
    frozenset({"-o", "-d", "-e", "-#", "-X"}),
    frozenset({"-h", "-e", "-#", "-X", "-H"}),
)
# The modifiers each mode takes (pcf_compat_options); other modes take none.
COMPATIBLE = {
    "-p": frozenset({"-d", "-e", "-f", "-h", "-H", "-n", "-o", "-x", "-X", "-#"}),
    "-M": frozenset({"-e", "-f", "-o", "-x", "-X", "-#"}),
    "-F": frozenset({"-e", "-f", "-h", "-H", "-o", "-x"}),
    "-P": frozenset({"-e", "-f", "-h", "-H", "-o", "-x", "-X"}),
}
# The modes whose arguments may be name=value edits.
EDITABLE = frozenset({"-p", "-M", "-F", "-P"})
# The classes of main.cf parameters -C selects (Postfix 2.9 and later).
CLASSES = frozenset({"builtin", "service", "user"})


@frozen
class Invocation:
    """One postconf command line, checked."""
    mode: str                   # "-p", "-M", "-F", "-P", "-b", "-t", "-m", "-l", "-a", "-A", "-T"
    flags: frozenset[str]       # the modifiers: "-d", "-f", "-n", "-x", "-e" ...
    names: tuple[str, ...]      # the arguments after the options
    config_dir: Path | None     # -c
    overrides: tuple[tuple[str, str], ...] = ()     # -o name=value, in order
    classes: frozenset[str] = CLASSES               # -C: "builtin", "service", "user"
    tls: str = ""                                   # -T mode

    @property
    def edit(self) -> str | None:
        """-e, -X or -#: how the arguments change main.cf or master.cf."""
        return next((flag for flag in EDITS if flag in self.flags), None)

    @property
    def hide(self) -> str | None:
        """-h (values without names) or -H (names without values)."""
        return next((flag for flag in ("-h", "-H") if flag in self.flags), None)


def parse(argv: list[str]) -> Invocation:
    """The command line, or UsageError with Postfix's message."""
    try:
        opts, names = getopt.getopt(argv, OPTSTRING)
    except getopt.GetoptError as e:
        line = complaint(e)
        if line is not None:
            print(f"postconf: {line}", file=sys.stderr)
        raise UsageError(USAGE) from None
    given: set[str] = set()
    config_dir = None
    overrides = []
    classes = CLASSES
    tls = ""
    for flag, value in opts:
        if flag == "-c":
            config_dir = Path(value).absolute()
        elif flag == "-C":
            classes = _classes(value)
        elif flag == "-T":
            if "-T" in given:
                raise UsageError("At most one -T <mode> option may be specified")
            given.add(flag)
            tls = value
        elif flag == "-o":
            given.add(flag)
            overrides.append(value)
        elif flag in ("-b", "-t") and given & {"-b", "-t"}:
            raise UsageError("specify one of -b and -t")
        elif flag != "-v":
            given.add(flag)
    if not given & MODES:
        given.add("-p")
    if given & EDITABLE and names and "=" in names[0]:
        given.add("-e")
    _check(given)
    if "-e" in given and not names:
        raise UsageError("-e requires name=value argument")
    mode = next(iter(given & MODES))
    return Invocation(mode, frozenset(given - MODES), tuple(names), config_dir,
                      tuple(_override(arg) for arg in overrides), classes, tls)


def _classes(arg: str) -> frozenset[str]:
    """-C class,...: words apart by commas or whitespace, in any case."""
    found: set[str] = set()
    for word in re.findall(r"[^, \t\r\n]+", arg):
        if word.lower() == "all":
            found |= CLASSES
        elif word.lower() in CLASSES:
            found.add(word.lower())
        else:
            raise UsageError(f'unknown -C option value "{word}" in "{arg}"')
    return frozenset(found)


def _check(given: set[str]) -> None:
    """Postfix's pcf_check_exclusive_options() and pcf_check_compat_options()."""
    for group in EXCLUSIVE:
        if len(given & group) > 1:
            raise UsageError(f"specify one of {_named(given & group)}")
    mode = next(iter(given & MODES))
    excess = given - {mode} - COMPATIBLE.get(mode, frozenset())
    if excess:
        raise UsageError(f"with option {mode}, do not specify {_named(excess)}")


def _override(arg: str) -> tuple[str, str]:
    """-o name=value, read as Postfix's split_nameval() reads it."""
    name, eq, value = arg.partition("=")
    name = name.strip()
    if not name:
        reason = "missing attribute name"
    elif not eq or any(c.isspace() for c in name):
        reason = "missing '=' after attribute name"
    else:
        return name, value.strip()
    raise UsageError(f"invalid parameter override: {arg}: {reason}")


def _named(options: set[str]) -> str:
    return " ".join(option for option in ORDER if option in options)


__all__ = ["CLASSES", "Invocation", "USAGE", "parse"]
