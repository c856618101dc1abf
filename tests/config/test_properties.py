"""Properties of the readers over generated input (Hypothesis)."""

from hypothesis import given, strategies as st

from mailsys.cli.postconf import _rewrite
from mailsys.config.maincf import Expander, parse_main_cf
from mailsys.config.values import split_list

text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=40)
names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
tokens = st.from_regex(r"[A-Za-z0-9_.:@/\[\]!-]{1,12}", fullmatch=True)


@given(text)
def test_dollar_dollar_is_a_literal_dollar(s):
    assert Expander({}.get, None).expand(s.replace("$", "$$")) == s


@given(st.lists(tokens, max_size=8), st.sampled_from([", ", " ", ",", "\t", " ,\n "]))
def test_list_split_inverts_join(items, sep):
    assert split_list(sep.join(items)) == tuple(items)


@given(st.lists(st.tuples(names, text.map(str.strip)), max_size=6), names, text.map(str.strip))
def test_edit_then_read_gives_the_value(settings, name, value):
    before = "".join(f"# note\n{n} = {v}\n  # inside\n" for n, v in settings)
    after = _rewrite(before, {name: value}, "main.cf")
    entries = parse_main_cf(after, "main.cf")
    assert entries[name].value == value
    for n, v in settings:
        if n != name:
            assert entries[n].value == parse_main_cf(before, "main.cf")[n].value
    assert after.count("# note") == len(settings)
