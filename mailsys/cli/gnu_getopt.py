"""gnu_getopt - glibc's getopt(argc, argv, "+optstring"), one option at a time.

SYNOPSIS
    scan = Scanner(argv, "B:C:tv")
    while (arg := scan.head()) is not None and arg == "-q":
        scan.skip()                         # look at a whole argument first
    while (opt := scan.next()) is not None:
        letter, value = opt                 # ("?", "invalid option -- 'Z'")
    recipients = scan.rest()

DESCRIPTION
    Postfix's sendmail calls GETOPT() in a loop and looks at the next whole
    argument between calls (a bare "-q", the old "-V xy" form), and it reads
    its command line twice: once for -C alone, going on past a bad option,
    and once for real, stopping at the first (src/sendmail/sendmail.c).
    glibc's getopt() prints "invalid option -- 'Z'" each time it meets a
    bad option, so a bad option is complained about twice (seen live with
    Postfix 3.7.11). Python's getopt.getopt() reads the whole line at once
    and stops at the first error, so it can do neither; this scanner gives
    one option per call and leaves the complaint to the caller.

    As with Postfix's "+" (sys_defs.h GETOPT), options end at the first
    argument that is not one ("-" is not) or after "--". An option letter
    that takes a value takes the rest of its argument, else the next
    argument, whatever it looks like.
"""

from __future__ import annotations

__all__ = ["Scanner"]


class Scanner:
    """Options of argv (without the program name), in order."""

    def __init__(self, argv: list[str], optstring: str) -> None:
        self.argv = argv
        self.optstring = optstring
        self.optind = 0             # the next argument not yet started
        self._cluster = ""          # what is left of "-abc" being read

    def head(self) -> str | None:
        """The next argument when no option group is half read, else None."""
        if self._cluster or self.optind >= len(self.argv):
            return None
        return self.argv[self.optind]

    def skip(self) -> None:
        """Step over the argument head() returned."""
        self.optind += 1

    def replace(self, arg: str) -> None:
        """Put arg in place of the argument head() returned."""
        self.argv = [*self.argv[:self.optind], arg, *self.argv[self.optind + 1:]]

    def next(self) -> tuple[str, str] | None:
        """(letter, value) of the next option ("" when it takes none);
        ("?", glibc's complaint) for a bad one; None after the last."""
        if not self._cluster:
            if self.optind >= len(self.argv):
                return None
            arg = self.argv[self.optind]
            if arg == "--":
                self.optind += 1
                return None
            if not arg.startswith("-") or arg == "-":
                return None
            self._cluster = arg[1:]
            self.optind += 1
        letter, self._cluster = self._cluster[0], self._cluster[1:]
        where = self.optstring.find(letter)
        if letter == ":" or where < 0:
            return "?", f"invalid option -- '{letter}'"
        if self.optstring[where + 1:where + 2] != ":":
            return letter, ""
        if self._cluster:
            value, self._cluster = self._cluster, ""
        elif self.optind < len(self.argv):
            value = self.argv[self.optind]
            self.optind += 1
        else:
            return "?", f"option requires an argument -- '{letter}'"
        return letter, value

    def rest(self) -> list[str]:
        """The arguments after the options."""
        return self.argv[self.optind:]
