"""cidr tables: network blocks for client addresses, as Postfix's cidr_table(5)."""

from __future__ import annotations

import pytest

from mailsys.config import load
from mailsys.config.tables import open_table
from mailsys.errors import ConfigError


@pytest.fixture
def cidr(cidr_warned):
    """make(text) -> the table of a file that needs no warning."""
    def make(text: str):
        table, warnings = cidr_warned(text)
        assert warnings == []
        return table
    return make


def test_first_match_wins_across_families_and_forms(cidr):
    t = cidr("# client access\n"
             "192.0.2.7          REJECT one host\n"
             "192.0.2.0/24       OK\n"
             "[2001:db8::]/32    554 go away\n"
             "2001:db8::1        never reached\n"
             "!10.0.0.0/8        DUNNO\n"
             "0.0.0.0/0          everything else\n")
    assert t.lookup("192.0.2.7") == "REJECT one host"
    assert t.lookup("192.0.2.8") == "OK"
    assert t.lookup("2001:db8::1") == "554 go away"
    assert t.lookup("198.51.100.1") == "DUNNO"           # not in 10/8
    assert t.lookup("10.1.2.3") == "everything else"
    assert t.lookup("2001:db9::1") is None              # no IPv6 rule but the /32
    assert t.lookup("localhost") is None


def test_if_blocks_nest(cidr):
    t = cidr("if 10.0.0.0/8\nif !10.1.0.0/16\n10.0.0.0/8 outer\nendif\n10.1.2.0/24 inner\nendif\n")
    assert [t.lookup(a) for a in ("10.9.9.9", "10.1.2.3", "10.1.3.3", "11.0.0.1")] == \
        ["outer", "inner", None, None]


@pytest.fixture
def cidr_warned(tmp_path, confdir):
    """make(text) -> (table, warnings), warnings without the "cidr map FILE, " prefix."""
    cfg = load(confdir(""))

    def make(text: str):
        path = tmp_path / "access.cidr"
        path.write_text(text)
        warnings = []
        table = open_table(f"cidr:{path}", cfg, warnings.append)
        prefix = f"cidr map {path}, "
        assert all(w.startswith(prefix) for w in warnings)
        return table, [w[len(prefix):] for w in warnings]
    return make


# Postfix 3.7.11's warnings for the same lines (postmap -q), word for word.
@pytest.mark.parametrize("text, warning", [
    ("192.0.2.1/24 x\n", 'line 1: non-null host address bits in "192.0.2.1/24", perhaps you '
                         'should use "192.0.2.0/24" instead: skipping this rule'),
    ("[2001:db8::1]/32 x\n", 'line 1: non-null host address bits in "2001:db8::1/32", perhaps '
                             'you should use "2001:db8::/32" instead: skipping this rule'),
    ("192.0.2.0/33 x\n", 'line 1: bad mask length in "192.0.2.0/33": skipping this rule'),
    ("2001:db8::1/129 x\n", 'line 1: bad mask length in "2001:db8::1/129": skipping this rule'),
    ("1.2.3.0/x x\n", 'line 1: bad mask value in "1.2.3.0/x": skipping this rule'),
    ("1.2.3.4/ x\n", 'line 1: bad mask value in "1.2.3.4/": skipping this rule'),
    ("zz/8 x\n", 'line 1: bad network value in "zz/8": skipping this rule'),
    ("example.com x\n", 'line 1: bad address pattern: "example.com": skipping this rule'),
    ("1.2.3.4.5 x\n", 'line 1: bad address pattern: "1.2.3.4.5": skipping this rule'),
    ("! x\n", 'line 1: bad address pattern: "x": skipping this rule'),
    ("[2001:db8::1 x\n", "line 1: missing ']' character after \"[2001:db8::1\": skipping this rule"),
    ("[1.2.3.4]x y\n", 'line 1: garbage after "[1.2.3.4]": skipping this rule'),
    ("192.0.2.0/24\n", "line 1: no lookup result: skipping this rule"),
    ("if\n", "line 1: no address pattern: skipping this rule"),
    ("if 10.0.0.0/8 x\n", 'line 1: bad mask value in "10.0.0.0/8 x": skipping this rule'),
    ("endif\n", "line 1: ENDIF without IF: skipping this rule"),
])
def test_a_bad_line_is_skipped_with_postfixs_warning(cidr_warned, text, warning):
    t, warnings = cidr_warned("10.0.0.0/8 before\n" + text + "0.0.0.0/0 after\n")
    warning = warning.replace(f"line {warning[5]}", f"line {int(warning[5]) + 1}", 1)
    assert warning in warnings
    assert t.lookup("192.0.2.1") == "after"                 # the rules around it stand
    assert t.lookup("10.1.2.3") == "before"


def test_an_if_without_endif_encloses_the_rest(cidr_warned):
    t, warnings = cidr_warned("if 10.0.0.0/8\nif !10.1.0.0/16\n0.0.0.0/0 inner\n")
    assert warnings == ["line 2: IF has no matching ENDIF", "line 1: IF has no matching ENDIF"]
    assert [t.lookup(a) for a in ("10.2.0.1", "10.1.0.1", "11.0.0.1")] == ["inner", None, None]


def test_an_endif_with_garbage_is_skipped_and_leaves_its_if_open(cidr_warned):
    t, warnings = cidr_warned("if 10.0.0.0/8\nendif x\n0.0.0.0/0 after\n")
    assert warnings == ["line 2: garbage after ENDIF: skipping this rule",
                        "line 1: IF has no matching ENDIF"]
    assert (t.lookup("10.0.0.1"), t.lookup("192.0.2.1")) == ("after", None)


def test_a_skipped_if_leaves_its_endif_unmatched(cidr_warned):
    t, warnings = cidr_warned("if 10.0.0.0/8 junk\n10.1.1.1 inside\nendif\n")
    assert warnings[-1] == "line 3: ENDIF without IF: skipping this rule"
    assert t.lookup("10.1.1.1") == "inside"                  # as Postfix: the rule stands alone


def test_a_missing_file_is_a_configuration_error(tmp_path, confdir):
    with pytest.raises(ConfigError, match="open .*nothere.cidr"):
        open_table(f"cidr:{tmp_path / 'nothere.cidr'}", load(confdir("")))
