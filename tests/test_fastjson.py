"""fastjson: orjson gives the json module's answers, or hands over to it."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsys import fastjson

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_DECODER = json.JSONDecoder()


def slow_dumps(obj):
    return _ENCODER.encode(obj).encode("utf-8", "surrogatepass")


def slow_loads(data):
    return _DECODER.decode(bytes(data).decode("utf-8", "surrogatepass"))


def reference(obj):
    return slow_loads(slow_dumps(obj))


# Any str (lone surrogates too), ints of any size, finite floats and the
# non-finite ones as callers mark them.
scalars = (st.none() | st.booleans() | st.integers() | st.text(st.characters(exclude_categories=()))
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from([math.inf, -math.inf]).map(fastjson.NonFinite))
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(documents)
def test_a_round_trip_gives_what_the_json_module_gives(doc):
    assert fastjson.loads(fastjson.dumps(doc, slow_dumps), slow_loads) == reference(doc)


@pytest.mark.parametrize("data", [
    b'"\\ud800"', b'"\\udc80x"', b'NaN', b'[Infinity, -Infinity]', b'\xef\xbb\xbf{}', b'[1e400]',
    b'123456789012345678901', b'-9223372036854775809', b'18446744073709551615',
    b'{"a":1,"a":2}', b' [1] ', b'"\xed\xb2\x80"', b'[1,]', b'', b'{"a"', b'"\xff"',
    b'"message-id <12345678901234567890@example.org>"',
    b'[0.0027017593383789062, -0.12345678901234567890123456789e-5, 1.00000000000000000000001]',
    b'[0.12345678901234567890, 123456789012345678901]', b'{"a.1234567890123456789":1}',
    b'1.5e1234567890123456789', b'[.1234567890123456789012]', b'0.1234567890123456789.5',
])
def test_loads_answers_or_refuses_as_the_json_module_does(data):
    try:
        expected = slow_loads(data)
    except ValueError:
        with pytest.raises(ValueError):
            fastjson.loads(data, slow_loads)
        return
    got = fastjson.loads(data, slow_loads)
    assert repr(got) == repr(expected)        # repr: NaN is not equal to itself


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40) | st.from_regex(rb"\A[\[\]{}\",:0-9.eE+-]{0,30}\Z"))
def test_loads_of_any_bytes(data):
    try:
        expected = ("ok", slow_loads(data))
    except (ValueError, RecursionError):
        expected = ("refused",)
    try:
        got = ("ok", fastjson.loads(data, slow_loads))
    except (ValueError, RecursionError):
        got = ("refused",)
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.from_regex(r"\A-?[0-9]{1,25}(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?\Z"),
                min_size=1, max_size=4))
def test_numbers_with_long_digit_runs_read_as_the_json_module_reads_them(numbers):
    data = ("[" + ",".join(numbers) + "]").encode()
    try:
        expected = ("ok", repr(slow_loads(data)))
    except ValueError:
        expected = ("refused",)
    try:
        got = ("ok", repr(fastjson.loads(data, slow_loads)))
    except ValueError:
        got = ("refused",)
    assert got == expected


def test_long_fractions_stay_on_the_fast_path():
    # How short delays print; a log line with four of them went to the json module.
    def refuse(data):
        raise AssertionError(f"slow path for {data!r}")
    doc = b'{"delays":[0.020426273345947266,0.0027017593383789062,0.0011560916900634766]}'
    assert fastjson.loads(doc, refuse) == json.loads(doc)


def test_what_orjson_will_not_write_goes_to_the_json_module():
    assert fastjson.dumps({"n": 2**70, "s": "\udc80", 1: fastjson.NonFinite(math.inf)}, slow_dumps) \
        == b'{"n":1180591620717411303424,"s":"\xed\xb2\x80","1":Infinity}'
    assert fastjson.dumps({"t": 1.5, "s": "\u00e9"}, slow_dumps) == '{"t":1.5,"s":"é"}'.encode()
