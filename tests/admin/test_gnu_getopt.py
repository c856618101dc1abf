"""The option scanner sendmail reads its command line with: glibc getopt()
with "+", one option at a time."""

from __future__ import annotations

from mailsys.cli.gnu_getopt import Scanner


def options(argv: list[str], optstring: str = "b:tv") -> tuple[list, list[str]]:
    scan = Scanner(argv, optstring)
    got = []
    while (opt := scan.next()) is not None:
        got.append(opt)
    return got, scan.rest()


def test_groups_values_and_the_end_of_options():
    assert options(["-tv", "-bs", "-b", "-x", "rcpt", "-t"]) == (
        [("t", ""), ("v", ""), ("b", "s"), ("b", "-x")], ["rcpt", "-t"])
    assert options(["-t", "--", "-v"]) == ([("t", "")], ["-v"])
    assert options(["-", "x"]) == ([], ["-", "x"])


def test_bad_options_go_on():
    assert options(["-tZv", "-b"]) == (
        [("t", ""), ("?", "invalid option -- 'Z'"), ("v", ""),
         ("?", "option requires an argument -- 'b'")], [])
    assert options(["-:"]) == ([("?", "invalid option -- ':'")], [])


def test_whole_arguments_between_options():
    scan = Scanner(["-tv", "-q", "-V", "ab"], "tvV:")
    assert scan.head() == "-tv" and scan.next() == ("t", "")
    assert scan.head() is None                  # half way through "-tv"
    assert scan.next() == ("v", "") and scan.head() == "-q"
    scan.skip()
    scan.replace("-XV")
    assert scan.head() == "-XV" and scan.rest() == ["-XV", "ab"]
