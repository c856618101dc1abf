"""cidr tables: network blocks for client addresses, as Postfix's cidr_table(5)."""

from __future__ import annotations

import pytest

from mailsys.config import load
from mailsys.config.tables import open_table
from mailsys.errors import ConfigError


@pytest.fixture
def cidr(tmp_path, confdir):
    cfg = load(confdir(""))

    def make(text: str):
        path = tmp_path / "access.cidr"
        path.write_text(text)
        return open_table(f"cidr:{path}", cfg)
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


@pytest.mark.parametrize("text, message", [
    ("192.0.2.1/24 x\n", 'non-null host address bits in "192.0.2.1/24", perhaps you should use '
                         '"192.0.2.0/24" instead'),
    ("192.0.2.0/33 x\n", "bad net/mask pattern"),
    ("example.com x\n", "bad net/mask pattern"),
    ("192.0.2.0/24\n", "no result"),
    ("if 10.0.0.0/8\n", "IF has no matching ENDIF"),
    ("endif\n", "ENDIF without matching IF"),
])
def test_errors_name_the_file_and_line(cidr, text, message):
    with pytest.raises(ConfigError, match=message):
        cidr(text)
