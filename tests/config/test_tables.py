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
    (d / "maps").write_text("key value\nlonely\nKey other\n")
    cfg = load(d)
    warnings = []
    t = open_table("texthash:etc/maps", cfg, warnings.append)
    path = d / "maps"
    # Postfix 3.7's words; the first of a duplicated key wins.
    assert warnings == [f"{path}, line 2: expected format: key whitespace value -- ignoring this line",
                        f'{path}, line 3: duplicate entry: "key"']
    assert (t.lookup("key"), t.lookup("lonely")) == ("value", None)
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


def test_inline_regexp_and_pcre(cfg):
    """Postfix 3.7: the rules of a regexp or pcre table inline, each in braces
    (smtpd_forbidden_commands' default regexp:{{/^[^A-Z]/ Bogus}})."""
    t = open_table("regexp:{{/^[^A-Z]/ Bogus}}", cfg)
    assert [t.lookup(k) for k in (".", "1234", "-x", "foo", "FOO")] == [
        "Bogus", "Bogus", "Bogus", None, None]
    t = open_table("pcre:{ {/^a(.)/ first $1}, {!/^a/ other} }", cfg)
    assert (t.lookup("abc"), t.lookup("xyz")) == ("first b", "other")
    with pytest.raises(ConfigError, match='missing "}"'):
        open_table("regexp:{ {/a/ b}", cfg)
    with pytest.raises(ConfigError, match="bad inline table syntax"):
        open_table("regexp:{ {/a/ b} x", cfg)


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
        "/(y)$/i                    case-sensitive ${1} $(1)$1 $$\n"
        "endif\n"
        "%^pct%                     other delimiter\n"
        "/^multi/   first\n"
        "   second\n")
    t = open_table(f"regexp:{src}", cfg)
    assert t.lookup("Bob@EXAMPLE.COM") == "local:Bob"
    assert t.lookup("nodot") == "no dot"
    assert t.lookup("x.y") == "case-sensitive y yy $"
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
                    "/(?<=q)(r)/   lookbehind $1\n")
    t = open_table(f"pcre:{perl}", cfg)
    assert [t.lookup(k) for k in ("123", "a\nb", "xyz", "bb", "cbb", "qr")] == \
        ["digits", "dotall", "verbose", "anchored", None, "lookbehind r"]


# Postfix 3.7.11's warnings for the same lines (postmap -q), word for word.
@pytest.mark.parametrize("kind, text, warnings", [
    ("regexp", "/a/\n", ["line 2: no replacement text: using empty string"]),
    ("regexp", "/(a/ x\n", ["line 2: Unmatched ( or \\("]),
    ("regexp", "/[a/ x\n", ["line 2: Unmatched [, [^, [:, [., or [="]),
    ("regexp", "/[[:foo:]]/ x\n", ["line 2: Invalid character class name"]),
    ("regexp", "/x{2,1}/ x\n", ["line 2: Invalid content of \\{\\}"]),
    ("regexp", "/[b-a]/ x\n", ["line 2: Invalid range end"]),
    ("regexp", "/*a/ x\n", ["line 2: Invalid preceding regular expression"]),
    ("regexp", "/a/q x\n", ['line 2: unknown regexp option "q": skipping this rule']),
    ("regexp", "/a x\n", ['line 2: no closing regexp delimiter "/": skipping this rule']),
    ("pcre", "/a x\n", ['line 2: no closing regexp delimiter "/": ignoring this rule']),
    ("regexp", "!\n", ["line 2: no regexp: skipping this rule"]),
    ("regexp", "foo bar\n", ["line 2: ignoring unrecognized request"]),
    ("regexp", "!/a/ $1\n", ["line 2: $number found in negative match replacement text: "
                             "skipping this rule"]),
    ("regexp", "/(a)/ $2\n", ['line 2: out of range replacement index "2": skipping this rule']),
    ("regexp", "/a/ $0\n", ['line 2: out-of-range replacement index "0"',
                            "line 2: bad replacement syntax: skipping this rule"]),
    ("pcre", "/a/ $0\n", ['line 2: out of range replacement index "0"',
                          "line 2: bad replacement syntax: skipping this rule"]),
    ("regexp", "/(a)/ $1x\n", ['line 2: non-numeric replacement index "1x"',
                               "line 2: bad replacement syntax: skipping this rule"]),
    ("regexp", "/a/ x $ y\n", ['empty macro name: "x $ y"',
                               "line 2: bad replacement syntax: skipping this rule"]),
    ("regexp", "/a/ x ${1 y\n", ['truncated macro reference: "x ${1 y"',
                                 "line 2: bad replacement syntax: skipping this rule"]),
    ("regexp", "endif\n", ["line 2: ignoring ENDIF without matching IF"]),
    ("pcre", "/a(b/ x\n", ["line 2: error in regex at offset 3: missing closing parenthesis"]),
    ("pcre", "/a)/ x\n", ["line 2: error in regex at offset 1: unmatched closing parenthesis"]),
    ("pcre", "/*a/ x\n", ["line 2: error in regex at offset 0: quantifier does not follow a "
                          "repeatable item"]),
    ("pcre", "/[a/ x\n", ["line 2: error in regex at offset 2: missing terminating ] for "
                          "character class"]),
    ("pcre", "/x{2,1}/ x\n", ["line 2: error in regex at offset 5: numbers out of order in {} "
                              "quantifier"]),
    ("pcre", "/a/!/b/ x\n", ['line 2: unknown regexp option "!": skipping this rule']),
])
def test_a_bad_line_is_skipped_with_postfixs_warning(tmp_path, cfg, kind, text, warnings):
    src = tmp_path / "re"
    src.write_text("/^11$/ one\n" + text + "/^22$/ two\n")
    got = []
    t = open_table(f"{kind}:{src}", cfg, got.append)
    prefix = f"{kind} map {src}, "
    assert [w.removeprefix(prefix) for w in got] == warnings
    assert (t.lookup("11"), t.lookup("22")) == ("one", "two")      # the rules around it stand


def test_regexp_if_blocks_and_their_mistakes(tmp_path, cfg):
    src = tmp_path / "re"
    src.write_text("if /^x/ junk\n/y$/ in-x\nendif extra\n/^a/ top\n"
                   "if !/b/\nif /c/\n/^c/ no-b-c\n")
    got = []
    t = open_table(f"regexp:{src}", cfg, got.append)
    assert [w.removeprefix(f"regexp map {src}, ") for w in got] == [
        'line 1: ignoring extra text after IF statement: "junk"',
        "line 1: do not prepend whitespace to statements between IF and ENDIF",
        "line 3: ignoring extra text after ENDIF",
        "line 6: IF has no matching ENDIF",
        "line 5: IF has no matching ENDIF"]
    assert [t.lookup(k) for k in ("x.y", "a.y", "abc", "cd", "cb", "d")] == \
        ["in-x", "top", "top", "no-b-c", None, None]


def test_regexp_second_pattern(tmp_path, cfg):
    src = tmp_path / "re"
    src.write_text("/a/!/b/ a-not-b\n/c/!!/d/ c-and-d\n")
    t = open_table(f"regexp:{src}", cfg)
    assert [t.lookup(k) for k in ("a", "ab", "cd", "c")] == ["a-not-b", None, "c-and-d", None]


def test_a_missing_file_is_a_configuration_error(tmp_path, cfg):
    with pytest.raises(ConfigError, match="open .*nothere"):
        open_table(f"regexp:{tmp_path / 'nothere'}", cfg)


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
    ("nis:mail.aliases", "unsupported dictionary type: nis"),
    ("hash:/nonexistent/aliases", "open database /nonexistent/aliases.lmdb: No such file"),
    ("nocolon", 'expecting "type:name" form'),
    ("texthash:", 'expecting "type:name" form'),
])
def test_bad_specs(cfg, spec, message):
    with pytest.raises(ConfigError, match=message):
        open_table(spec, cfg)


def test_regexp_x_flag_reads_basic_regular_expressions(tmp_path, cfg):
    # Checked against Postfix 3.7.11 (postmap -q on the same file).
    src = tmp_path / "re"
    src.write_text("/^\\(a*\\)\\(b\\{2,\\}\\)$/x [$1][$2]\n"
                   "/^c+d?$/x literal\n"
                   "/^e\\+\\(f\\?\\)$/x [$1]\n"
                   "/^\\(g\\)\\1$/x double\n"
                   "/^*h$/x star\n"
                   "/^\\(i\\|j\\)k$/x [$1]\n"
                   "/^l{2}$/x braces\n")
    got = []
    t = open_table(f"regexp:{src}", cfg, got.append)
    assert got == []
    assert [t.lookup(k) for k in ("aabbb", "c+d?", "cd", "eef", "gg", "*h", "jk", "l{2}", "ll")] == \
        ["[aa][bbb]", "literal", None, "[f]", "double", "star", "[j]", "braces", None]


def test_pcre_u_flag_inverts_greediness(tmp_path, cfg):
    # Checked against Postfix 3.7.11 with PCRE2 (postmap -q on the same file).
    src = tmp_path / "pcre"
    src.write_text("/^<(.+)>(.*)$/U [$1][$2]\n"
                   "/^a(b*)(b*?)c$/U [$1][$2]\n"
                   "/^p([q]*+)(q*)r$/U [$1][$2]\n"
                   "/^u (v *) (v*) $/Ux [$1][$2]\n"
                   "/^k(.*)(l.*)$/UU [$1][$2]\n"
                   "/^z(?x: y*)$/U scoped\n")
    got = []
    t = open_table(f"pcre:{src}", cfg, got.append)
    assert [t.lookup(k) for k in ("<a>b>c", "abbbc", "pqqr", "uvvv", "kalbl")] == \
        ["[a][b>c]", "[][bbb]", "[qq][]", "[][vvv]", "[alb][l]"]
    assert got == [f"pcre map {src}, line 6: flag U: verbose mode for part of a pattern is not "
                   "supported: skipping this rule"]
