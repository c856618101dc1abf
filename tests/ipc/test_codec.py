"""The codec: Hypothesis round-trips, the evolution rules, and hostile input."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsys.ipc.codec import FrameDecoder, decode, encode, encode_parts, message, registered
from mailsys.ipc.errors import ProtocolError
from mailsys.ipc.frames import encode_frame
from mailsys.ipc.messages import ErrorCode, ErrorReply, Hello, Ok


@dataclass(frozen=True, slots=True)
class Address:                       # nested, not registered
    local: str
    domain: str


@message("test_codec_rcpt")
@dataclass(frozen=True, slots=True)
class Rcpt:                          # nested, and registered in its own right
    address: Address
    status: str | None
    attempts: int


@message("test_codec_sample", version=3)
@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    number: int
    ratio: float
    flag: bool
    content: bytes
    nothing: None
    maybe: bytes | None
    words: tuple[str, ...]
    pair: tuple[str, int]
    blobs: tuple[bytes, ...]
    rcpts: tuple[Rcpt, ...]
    attrs: dict[str, str]
    first: Rcpt | None = None
    notes: tuple[tuple[str, str], ...] = ()


@message("test_codec_grown", version=1)
@dataclass(frozen=True, slots=True)
class Grown:
    required: str
    added_later: int = 7
    also_later: tuple[str, ...] = field(default_factory=tuple)


texts = st.text()                    # includes lone surrogates: they must survive
addresses = st.builds(Address, texts, texts)
rcpts = st.builds(Rcpt, addresses, st.none() | texts, st.integers())
samples = st.builds(
    Sample,
    text=texts, number=st.integers(), ratio=st.floats(allow_nan=False), flag=st.booleans(),
    content=st.binary(), nothing=st.none(), maybe=st.none() | st.binary(),
    words=st.lists(texts).map(tuple), pair=st.tuples(texts, st.integers()),
    blobs=st.lists(st.binary()).map(tuple), rcpts=st.lists(rcpts, max_size=4).map(tuple),
    attrs=st.dictionaries(texts, texts), first=st.none() | rcpts,
    notes=st.lists(st.tuples(texts, texts), max_size=3).map(tuple),
)
any_message = st.one_of(
    samples, rcpts,
    st.builds(Grown, texts, st.integers(), st.lists(texts).map(tuple)),
    st.builds(ErrorReply, st.sampled_from(list(ErrorCode)), texts),
    st.builds(Hello, texts), st.just(Ok()),
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def header(**head) -> bytes:
    return json.dumps(head).encode()


@given(st.lists(any_message, min_size=1, max_size=5), st.lists(st.integers(min_value=0), max_size=40))
def test_round_trip_through_random_splits(msgs, cuts):
    stream = b"".join(encode(m) for m in msgs)
    decoder = FrameDecoder()
    got = [decode(f) for chunk in split(stream, cuts) for f in decoder.feed(chunk)]
    assert got == msgs
    assert [type(m) for m in got] == [type(m) for m in msgs]
    assert decoder.buffered == 0


@given(samples)
def test_parts_join_to_the_frame(msg):
    assert b"".join(encode_parts(msg)) == encode(msg)


def test_bytes_travel_raw_not_escaped():
    content = bytes(range(256)) * 400           # ~100 KB of every byte value
    msg = sample(content=content)
    frame = encode(msg)
    assert len(frame) < len(content) + 400      # no base64, no \\u escapes
    assert content in frame
    assert decode(frame).content == content


def sample(**kw) -> Sample:
    base = dict(text="t", number=1, ratio=0.5, flag=True, content=b"c", nothing=None,
                maybe=None, words=(), pair=("p", 2), blobs=(), rcpts=(), attrs={})
    return Sample(**{**base, **kw})


def fields_of(msg) -> dict:
    frame = FrameDecoder().feed(encode(msg))[0]
    return json.loads(frame.header)


def test_unknown_extra_field_is_ignored():
    head = fields_of(Grown("x"))
    head["f"]["from_the_future"] = {"any": ["thing"]}
    assert decode(encode_frame(json.dumps(head).encode())) == Grown("x")


def test_missing_required_field_is_rejected():
    head = fields_of(ErrorReply("internal", "boom"))
    del head["f"]["text"]
    with pytest.raises(ProtocolError, match="error: missing field.*text"):
        decode(encode_frame(json.dumps(head).encode()))


def test_missing_nested_field_is_rejected():
    head = fields_of(Rcpt(Address("a", "b"), None, 1))
    del head["f"]["address"]["domain"]
    with pytest.raises(ProtocolError, match="address: missing field.*domain"):
        decode(encode_frame(json.dumps(head).encode()))


def test_missing_field_with_default_takes_the_default():
    assert decode(encode_frame(header(n="test_codec_grown", v=1, f={"required": "r"}))) == Grown("r")


def test_fields_at_their_plain_default_stay_off_the_wire():
    # a default_factory field always travels
    assert fields_of(Grown("x"))["f"] == {"required": "x", "also_later": []}
    assert fields_of(Grown("x", added_later=8))["f"] == {
        "required": "x", "added_later": 8, "also_later": []}
    assert decode(encode(Grown("x"))) == Grown("x")
    head = fields_of(sample(first=None, notes=()))["f"]
    assert "first" not in head and "notes" not in head and head["nothing"] is None
    head = fields_of(sample(notes=(("a", "b"),)))["f"]
    assert head["notes"] == [["a", "b"]]


def test_unknown_message_name_is_rejected():
    with pytest.raises(ProtocolError, match="unknown message 'no_such_message'"):
        decode(encode_frame(header(n="no_such_message", v=1, f={})))


@pytest.mark.parametrize("version", [1, 2, 4, "3", None, True])
def test_other_version_is_rejected(version):
    with pytest.raises(ProtocolError, match="version"):
        decode(encode_frame(header(n="test_codec_sample", v=version, f={})))


@pytest.mark.parametrize("f, b, payload, match", [
    ({"required": 5}, None, b"", "expected str"),
    ({"required": "r", "added_later": 1.5}, None, b"", "expected int"),
    ({"required": "r", "added_later": True}, None, b"", "expected int"),
    ({"required": "r", "also_later": "abc"}, None, b"", "expected an array"),
    ({"required": "r"}, [3], b"ab", "blobs total 3 bytes, payload has 2"),
    ({"required": "r"}, "x", b"", "blob table"),
])
def test_wrong_shapes_are_protocol_errors(f, b, payload, match):
    head = {"n": "test_codec_grown", "v": 1, "f": f}
    if b is not None:
        head["b"] = b
    with pytest.raises(ProtocolError, match=match):
        decode(encode_frame(json.dumps(head).encode(), payload))


def test_bad_blob_reference_is_rejected():
    head = fields_of(sample(content=b"abc"))
    head["f"]["content"] = 5
    with pytest.raises(ProtocolError, match="bad blob reference 5"):
        decode(encode_frame(json.dumps(head).encode(), b"abc"))


@pytest.mark.parametrize("data", [
    b"", b"\x00\x00", encode(Ok())[:-1], encode(Ok()) + b"\x00",
    encode_frame(b"not json"), encode_frame(b"[1, 2]"), encode_frame(b"\xff\xfe"),
    encode_frame(b"[" * 100000), encode_frame(b'{"n": "ok", "v": 1}'),
])
def test_truncated_or_garbage_bytes_are_protocol_errors(data):
    with pytest.raises(ProtocolError):
        decode(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20)
field_names = st.sampled_from(["text", "number", "ratio", "flag", "content", "nothing", "maybe",
                               "words", "pair", "blobs", "rcpts", "attrs", "first", "notes",
                               "address", "status", "attempts", "required", "code"])


@given(st.sampled_from(["test_codec_sample", "test_codec_rcpt", "test_codec_grown", "error", "hello"]),
       st.sampled_from([1, 3]),
       st.dictionaries(field_names, json_values),
       st.none() | st.lists(st.integers(min_value=-1, max_value=4), max_size=3) | json_values,
       st.binary(max_size=8))
def test_hostile_headers_raise_only_protocol_error(name, version, fields, blobs, payload):
    head = {"n": name, "v": version, "f": fields}
    if blobs is not None:
        head["b"] = blobs
    try:
        decode(encode_frame(json.dumps(head).encode(), payload))
    except ProtocolError:
        pass


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_protocol_error(data):
    try:
        for frame in FrameDecoder(max_size=10000).feed(data):
            decode(frame)
    except ProtocolError:
        pass


def test_encoding_a_wrong_type_is_a_local_type_error():
    with pytest.raises(TypeError, match="test_codec_grown.required: expected str, got int"):
        encode(Grown(5))     # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected bytes"):
        encode(sample(content="text"))
    with pytest.raises(TypeError, match="not a registered message"):
        encode(Address("a", "b"))


def test_str_enum_travels_as_its_value():
    got = decode(encode(ErrorReply(ErrorCode.QUEUE_FULL, "full")))
    assert got.code == "queue_full" and type(got.code) is str


def test_registration_rules():
    assert registered(Sample) == ("test_codec_sample", 3)
    with pytest.raises(ValueError, match="already used"):
        message("test_codec_sample")(Grown)
    with pytest.raises(TypeError, match="not a dataclass"):
        message("test_codec_plain")(type("Plain", (), {}))
    with pytest.raises(ValueError, match="version"):
        message("test_codec_v0", version=0)


def test_unsupported_field_type_is_refused_at_import():
    @dataclass(frozen=True)
    class Bad:
        things: list

    with pytest.raises(TypeError, match="cannot carry"):
        message("test_codec_bad")(Bad)


def test_enum_members_travel_as_plain_values_and_ints_fill_float_fields():
    import enum

    class Word(str, enum.Enum):
        HI = "hi"

    class Num(enum.IntEnum):
        TWO = 2

    msg = sample(text=Word.HI, number=Num.TWO)
    fields = fields_of(msg)["f"]
    assert type(fields["text"]) is str and type(fields["number"]) is int
    back = decode(encode(msg))
    assert type(back.text) is str and back.text == "hi"
    assert type(back.number) is int and back.number == 2
    head = fields_of(sample(ratio=1.5))
    head["f"]["ratio"] = 3
    got = decode(encode_frame(json.dumps(head).encode(), b"".join(
        encode_parts(sample(ratio=1.5))[1:])))
    assert type(got.ratio) is float and got.ratio == 3.0


def test_every_missing_field_is_named():
    head = fields_of(ErrorReply("internal", "boom"))
    del head["f"]["text"], head["f"]["code"]
    with pytest.raises(ProtocolError, match="missing field.s. code, text"):
        decode(encode_frame(json.dumps(head).encode()))
