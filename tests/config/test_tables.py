"""Lookup tables: each type, case folding, errors, and lmdb compiled by write_lmdb."""

import pytest

from mailsys.config import load
from mailsys.config.tables import open_table, write_lmdb
from mailsys.errors import ConfigError


@pytest.fixture
def cfg(confdir):
    return load(confdir(""))


def test_texthash(tmp_path, cfg):
    src = tmp_path / "virtual"
    src.write_text("# comment\nAlice@Example.com   example.com/alice/\n\n"
                   "bob@example.com  first\n   continued\n  # not a value\n"
                   "bob@example.com  second\ncarol value # not a comment\n")
    t = open_table(f"texthash:{src}", cfg)
    assert t.lookup("alice@example.com") == "example.com/alice/"
    assert t.lookup("ALICE@EXAMPLE.COM") == "example.com/alice/"
    assert t.lookup("bob@example.com") == "first continued"      # first of duplicates wins
    assert t.lookup("carol") == "value # not a comment"
    assert t.lookup("dave") is None


def test_texthash_relative_path_and_errors(confdir):
    d = confdir("")
    (d / "maps").write_text("key value\nlonely\n")
    cfg = load(d)
    with pytest.raises(ConfigError, match=r"maps, line 2: expected format: key whitespace value"):
        open_table("texthash:etc/maps", cfg)
    with pytest.raises(ConfigError, match="No such file"):
        open_table("texthash:etc/nothere", cfg)


def test_inline(cfg):
    t = open_table("inline:{ a=1, B=2, { c = with spaces, and comma } }", cfg)
    assert (t.lookup("a"), t.lookup("b"), t.lookup("C")) == ("1", "2", "with spaces, and comma")
    assert t.lookup("d") is None
    with pytest.raises(ConfigError, match="expected name=value"):
        open_table("inline:{ novalue }", cfg)
    with pytest.raises(ConfigError, match='element "b" in'):   # spaces need { } as in Postfix
        open_table("inline:{ b = 2 }", cfg)
    with pytest.raises(ConfigError, match="bad inline table syntax"):
        open_table("inline:a=1", cfg)


def test_static(cfg):
    assert open_table("static:relay:[mx.example]:25", cfg).lookup("anything") == "relay:[mx.example]:25"
    assert open_table("static:{ two words }", cfg).lookup("x") == "two words"


def test_regexp(tmp_path, cfg):
    src = tmp_path / "re"
    src.write_text(
        "# regexp_table(5)\n"
        "/^(.*)@example\\.com$/     local:$1\n"
        "!/\\./                     no dot\n"
        "if /^x/\n"
        "/y$/i                      case-sensitive ${0} $$\n"
        "endif\n"
        "%^pct%                     other delimiter\n"
        "/^multi/   first\n"
        "   second\n")
    t = open_table(f"regexp:{src}", cfg)
    assert t.lookup("Bob@EXAMPLE.COM") == "local:Bob"
    assert t.lookup("nodot") == "no dot"
    assert t.lookup("x.y") == "case-sensitive y $"
    assert t.lookup("x.Y") is None                # i flag toggles case-insensitivity off
    assert t.lookup("a.y") is None                # if-block condition fails
    assert t.lookup("pct.x") == "other delimiter"
    assert t.lookup("multi.x") == "first second"


def test_regexp_is_posix_and_pcre_is_perl_like(tmp_path, cfg):
    posix = tmp_path / "posix"
    posix.write_text("/^[[:digit:]]+$/   digits\n/^[\\d]$/   backslash or d\n")
    t = open_table(f"regexp:{posix}", cfg)
    assert [t.lookup(k) for k in ("123", "\\", "d", "7x")] == \
        ["digits", "backslash or d", "backslash or d", None]
    folded = tmp_path / "folded"
    folded.write_text("/^Content-Type:.*name=.*\\.exe/ exe\n/^a.b$/m lines\n")
    t = open_table(f"regexp:{folded}", cfg)       # "." matches a newline unless m
    assert t.lookup('Content-Type: x;\n\tname="a.exe"') == "exe"
    assert (t.lookup("x\naxb"), t.lookup("a\nb")) == ("lines", None)
    perl = tmp_path / "perl"
    perl.write_text("/^\\d+$/   digits\n"
                    "/^a.b$/s   dotall\n"
                    "/ x y z /x   verbose\n"
                    "/b+/A   anchored\n"
                    "/(?<=q)r/   lookbehind $0\n")
    t = open_table(f"pcre:{perl}", cfg)
    assert [t.lookup(k) for k in ("123", "a\nb", "xyz", "bb", "cbb", "qr")] == \
        ["digits", "dotall", "verbose", "anchored", None, "lookbehind r"]
    (tmp_path / "ungreedy").write_text("/a+/U x\n")
    with pytest.raises(ConfigError, match="flag U"):
        open_table(f"pcre:{tmp_path / 'ungreedy'}", cfg)


@pytest.mark.parametrize("text,message", [
    ("/a/ \n", "no replacement text"),
    ("/(a/ x\n", "regexp"),
    ("/a/q x\n", 'unknown regexp option "q"'),
    ("/a x\n", "unmatched delimiter"),
    ("!/a/ $1\n", "negative match"),
    ("/(a)/ $2\n", "out of range replacement"),
    ("if /a/\n/b/ c\n", "IF has no matching ENDIF"),
    ("endif\n", "ENDIF without matching IF"),
])
def test_regexp_errors(tmp_path, cfg, text, message):
    src = tmp_path / "re"
    src.write_text(text)
    with pytest.raises(ConfigError, match=message):
        open_table(f"regexp:{src}", cfg)


def test_lmdb_round_trip_and_replacement(tmp_path, cfg):
    src = tmp_path / "transport"
    src.write_text("Example.com  smtp:[mx.example.com]:25\nslow.example  slow:\n")
    assert write_lmdb(src) == tmp_path / "transport.lmdb"
    t = open_table(f"lmdb:{src}", cfg)
    assert t.lookup("EXAMPLE.COM") == "smtp:[mx.example.com]:25"
    assert t.lookup("slow.example") == "slow:"
    assert t.lookup("other") is None
    src.write_text("example.com  relay:new\n")
    write_lmdb(src)
    assert t.lookup("example.com") == "relay:new"       # the replaced file is reopened
    assert t.lookup("slow.example") is None
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "etc") == ["transport", "transport.lmdb"]


def test_lmdb_missing_file(tmp_path, cfg):
    with pytest.raises(ConfigError, match="open database .*transport.lmdb"):
        open_table(f"lmdb:{tmp_path}/transport", cfg)


def test_unix(cfg):
    import pwd
    root = pwd.getpwuid(0)
    passwd = open_table("unix:passwd.byname", cfg)
    assert passwd.lookup(root.pw_name).split(":")[:3] == [root.pw_name, root.pw_passwd, "0"]
    assert passwd.lookup("no-such-user-here") is None
    assert open_table("unix:group.byname", cfg).lookup("no-such-group-here") is None
    with pytest.raises(ConfigError, match="unknown table: unix:hosts"):
        open_table("unix:hosts", cfg)


@pytest.mark.parametrize("spec,message", [
    ("hash:/etc/aliases", "unsupported dictionary type: hash"),
    ("nocolon", 'expecting "type:name" form'),
    ("texthash:", 'expecting "type:name" form'),
])
def test_bad_specs(cfg, spec, message):
    with pytest.raises(ConfigError, match=message):
        open_table(spec, cfg)
