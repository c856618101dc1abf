"""Typed value parsers: sizes, times with per-parameter units, booleans, lists."""

import pytest

from mailsys.config.values import (BadValue, parse_bool, parse_int, parse_size, parse_time,
                                   split_list)


@pytest.mark.parametrize("text,expected", [
    ("10240000", 10240000), ("0", 0), ("50M", 50 * 1024 ** 2), ("50m", 50 * 1024 ** 2),
    ("10k", 10240), ("1G", 1024 ** 3), ("2MB", 2 * 1024 ** 2), (" 7 ", 7),
])
def test_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "1 0", "-5", "5T", "", "1.5M", "M"])
def test_bad_size(text):
    with pytest.raises(BadValue, match="bad size value"):
        parse_size(text)


@pytest.mark.parametrize("text,unit,expected", [
    ("300s", "s", 300), ("300", "s", 300), ("5m", "s", 300), ("2h", "s", 7200),
    ("5d", "s", 432000), ("1w", "s", 604800), ("5", "d", 432000), ("3", "h", 10800),
    ("0", "h", 0), ("1.5s", "s", 1.5),
])
def test_time_units(text, unit, expected):
    assert parse_time(text, unit) == expected


@pytest.mark.parametrize("text", ["soon", "5y", "s", "1 h", "-1s"])
def test_bad_time(text):
    with pytest.raises(BadValue, match="bad time value"):
        parse_time(text)


def test_int():
    assert parse_int("100") == 100
    assert parse_int("-3") == -3
    with pytest.raises(BadValue, match='bad numerical value "1 0"'):
        parse_int("1 0")


@pytest.mark.parametrize("text,expected", [("yes", True), ("no", False), ("YES", True), (" no ", False)])
def test_bool(text, expected):
    assert parse_bool(text) is expected


@pytest.mark.parametrize("text", ["true", "1", "", "y"])
def test_bad_bool(text):
    with pytest.raises(BadValue, match="bad boolean value"):
        parse_bool(text)


@pytest.mark.parametrize("text,expected", [
    ("a, b c\td\n e", ("a", "b", "c", "d", "e")),
    (" , ,a,,", ("a",)),
    ("", ()),
    ("check_policy_service { inet:127.0.0.1:9998, timeout=10s }, reject",
     ("check_policy_service", "inet:127.0.0.1:9998, timeout=10s", "reject")),
    ("inline:{ {bounce.example=error:5.1.1 mailbox unavailable} }",
     ("inline:{ {bounce.example=error:5.1.1 mailbox unavailable} }",)),
    ("{ a b }, { c }", ("a b", "c")),
    ("{a}{b}", ("{a}{b}",)),
])
def test_list(text, expected):
    assert split_list(text) == expected


@pytest.mark.parametrize("text", ["{ a", "a }", "x, {b, {c}"])
def test_list_unbalanced(text):
    with pytest.raises(BadValue):
        split_list(text)
