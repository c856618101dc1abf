"""main.cf syntax and $name expansion, after postconf(5) and postfix-compat.md 1.1."""

import pytest

from mailsys.config import load
from mailsys.config.maincf import Expander, parse_main_cf
from mailsys.errors import ConfigError


def test_compat_example(compat_main, confdir):
    cfg = load(confdir(compat_main))
    assert cfg.raw("mydestination") == "$myhostname, localhost.${mydomain} localhost"
    assert cfg.expand(cfg.raw("mydestination")) == "mx.example.com, localhost.example.com localhost"
    assert cfg.mydestination == ("mx.example.com", "localhost.example.com", "localhost")
    assert cfg.myorigin == "example.com"
    warnings: list[str] = []
    assert cfg.expand(cfg.raw("foo"), warnings) == "$x set dflt"
    assert warnings == [f"{confdir()}/main.cf: undefined parameter: nope"]


def test_hash_after_value_is_not_a_comment(confdir):
    cfg = load(confdir("myhostname = mx.example.com # x\n"))
    assert cfg.myhostname == "mx.example.com # x"


def test_comment_inside_continuation_and_blank_lines(confdir):
    cfg = load(confdir("mydestination = a,\n\n   # gone\n\tb\n   \n  c\n"))
    assert cfg.raw("mydestination") == "a, b c"


def test_continuation_joined_with_one_space(confdir):
    cfg = load(confdir("smtpd_banner = one\n        two   \n\t three\n"))
    assert cfg.smtpd_banner == "one two three"


def test_leading_whitespace_warning():
    warnings: list[str] = []
    entries = parse_main_cf(" leading = 1\nmyhostname = a.b\n", "/e/main.cf", warnings)
    assert list(entries) == ["myhostname"]
    assert warnings == ['/e/main.cf: logical line must not start with whitespace: " leading = 1"']


def test_missing_equals_names_file_and_line(confdir):
    d = confdir("myhostname = a.b\n\nbad line here\n")
    with pytest.raises(ConfigError) as e:
        load(d)
    assert str(e.value) == f"{d}/main.cf, line 3: missing '=' after attribute name: \"bad line here\""


def test_missing_name(confdir):
    with pytest.raises(ConfigError, match="missing attribute name"):
        load(confdir("= x\n"))


def test_last_duplicate_wins(confdir):
    cfg = load(confdir("myhostname = a.example\nmyhostname = b.example\n"))
    assert cfg.myhostname == "b.example"
    assert cfg.entry("myhostname").line == 2


def test_whitespace_around_equals_and_empty_value(confdir):
    cfg = load(confdir("relayhost=   \nmyorigin\t=\texample.org\t\n"))
    assert cfg.relayhost == ""
    assert cfg.is_set("relayhost")
    assert cfg.myorigin == "example.org"


def expand(values: dict[str, str], text: str, warnings=None) -> str:
    return Expander(values.get, "main.cf").expand(text, warnings)


@pytest.mark.parametrize("text,expected", [
    ("$a", "A"), ("${a}", "A"), ("$(a)", "A"), ("x$a.y", "xA.y"), ("$a$b", "A"),
    ("${a?yes}", "yes"), ("${empty?yes}", ""), ("${a:no}", ""), ("${empty:no}", "no"),
    ("${a?{ with space }}", "with space"), ("${empty:{x:y}}", "x:y"),
    ("${a?{t}:{f}}", "t"), ("${empty?{t}:{f}}", "f"), ("${a ? {t} : {f}}", "t"),
    ("${a?x:y}", "x:y"),                 # no braces: the rest is the value (Postfix 2.x)
    ("${a?$n}", "7"), ("${a?{$n}}", "7"),
    ("$$", "$"), ("$$a", "$a"), ("cost $ 5", "cost $ 5"),
    ("${{$n} == {7} ? {eq} : {ne}}", "eq"), ("${{$n} != {7} ? {ne} : {eq}}", "eq"),
    ("${{$n} < {10} ? {lt} : {ge}}", "lt"),          # numeric: 7 < 10
    ("${{abc} < {abd} ? {lt} : {ge}}", "lt"), ("${{10} < {9a} ? {lt} : {ge}}", "lt"),  # lexical
    ("${{5} <= {5}?{le}}", "le"), ("${{5} >= {6}:{no}}", "no"), ("${{6} > {5}}", "true"),
    ("${{3.6} <level {2} ? {old} : {new}}", "new"), ("${{3.6} <level {3.10} ? {old} : {new}}", "old"),
    ("${{1} >=level {1.0.0} ? {y}}", "y"),
])
def test_expansion_forms(text, expected):
    values = {"a": "A", "b": "", "empty": "", "n": "$seven", "seven": "7"}
    assert expand(values, text) == expected


def test_expansion_is_recursive_and_lazy(confdir):
    cfg = load(confdir("myorigin = $mydomain\nmydomain = example.$tld\ntld = org\n"))
    assert cfg.myorigin == "example.org"
    assert "unused parameter: tld=org" not in " ".join(cfg.warnings)


def test_undefined_parameter_expands_empty_with_warning(confdir):
    d = confdir("myorigin = x$nope.example\n")
    cfg = load(d)
    assert cfg.myorigin == "x.example"
    assert f"{d}/main.cf: undefined parameter: nope" in cfg.warnings


def test_recursion_is_an_error(confdir):
    d = confdir("myorigin = $mydomain\nmydomain = ${myorigin}\n")
    with pytest.raises(ConfigError) as e:
        load(d)
    assert "recursive parameter expansion" in str(e.value)
    assert str(e.value).startswith(f"{d}/main.cf, line ")


def test_self_reference_is_an_error(confdir):
    with pytest.raises(ConfigError, match=r"parameter smtpd_banner: recursive parameter expansion: "
                                          r"\$smtpd_banner -> \$smtpd_banner"):
        load(confdir("smtpd_banner = $smtpd_banner x\n"))


@pytest.mark.parametrize("text", ["${a", "${{a} === {b}}", "${{a} == b}", "${a?{x}y}", "${a b}",
                                  "${{3} <level {x}}"])
def test_bad_expressions(text):
    with pytest.raises(ConfigError):
        expand({"a": "A", "b": "B"}, text)


def test_form_feed_stays_inside_a_value(confdir):
    cfg = load(confdir("smtpd_banner = a\x0cb\r\nmyhostname = x.example\r\n"))
    assert cfg.smtpd_banner == "a\x0cb"
    assert cfg.myhostname == "x.example"
