"""Framing: whole input, one byte at a time, random splits, limits."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsys.ipc.errors import ProtocolError
from mailsys.ipc.frames import PREFIX_SIZE, FrameDecoder, encode_frame, frame_parts


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def feed_all(decoder: FrameDecoder, chunks) -> list[tuple[bytes, bytes]]:
    out = []
    for chunk in chunks:
        out += [(f.header, f.payload.tobytes()) for f in decoder.feed(chunk)]
    return out


def test_layout_is_two_lengths_then_header_then_payload():
    assert encode_frame(b"{}", b"xyz") == struct.pack(">II", 5, 2) + b"{}xyz"


@pytest.mark.parametrize("step", [None, 1, 3, 9])
def test_feed_whole_then_bytewise_then_with_trailing_data(step):
    data = encode_frame(b"h1", b"p" * 20) + encode_frame(b"", b"") + encode_frame(b"h3")
    chunks = [data] if step is None else [data[i:i + step] for i in range(0, len(data), step)]
    decoder = FrameDecoder()
    assert feed_all(decoder, chunks) == [(b"h1", b"p" * 20), (b"", b""), (b"h3", b"")]
    assert decoder.buffered == 0
    assert decoder.feed(encode_frame(b"h4")[:5]) == []
    assert decoder.buffered == 5


@given(st.lists(st.tuples(st.binary(max_size=50), st.binary(max_size=300)), max_size=6),
       st.lists(st.integers(min_value=0), max_size=30))
def test_random_splits_give_the_same_frames(frames, cuts):
    data = b"".join(encode_frame(h, p) for h, p in frames)
    assert feed_all(FrameDecoder(), split(data, cuts)) == frames


def test_large_frame_across_many_chunks():
    payload = bytes(range(256)) * 4096          # 1 MiB
    data = encode_frame(b"big", payload)
    decoder = FrameDecoder()
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    assert feed_all(decoder, chunks) == [(b"big", payload)]


@pytest.mark.parametrize("cut", [None, 4, 10])
def test_payload_view_is_read_only(cut):
    data = encode_frame(b"h", b"abc")
    decoder = FrameDecoder()
    chunks = [data] if cut is None else [data[:cut], data[cut:]]
    [frame] = [f for c in chunks for f in decoder.feed(c)]
    assert frame.payload.readonly and frame.payload == b"abc"


def test_oversized_frame_is_rejected_from_its_prefix_alone():
    decoder = FrameDecoder(max_size=100)
    with pytest.raises(ProtocolError, match="frame too large: 101 bytes, limit 100"):
        decoder.feed(struct.pack(">II", 101, 0))
    with pytest.raises(ProtocolError):
        decoder.feed(b"")           # unusable after an error


def test_header_longer_than_frame_is_rejected():
    with pytest.raises(ProtocolError, match="header length"):
        FrameDecoder().feed(struct.pack(">II", 3, 4) + b"abc")


def test_encoding_past_the_limit_is_refused():
    with pytest.raises(ProtocolError, match="frame too large"):
        encode_frame(b"h", b"x" * 100, max_size=100)
    assert len(encode_frame(b"h", b"x" * 99, max_size=100)) == PREFIX_SIZE + 100


def test_parts_leave_blobs_uncopied():
    blob = b"x" * 1000
    parts = frame_parts(b"hdr", [blob, b"yz"])
    assert parts[1] is blob
    assert b"".join(parts) == encode_frame(b"hdr", blob + b"yz")


@given(st.binary(max_size=200), st.lists(st.integers(min_value=0), max_size=10))
def test_garbage_raises_only_protocol_error(data, cuts):
    decoder = FrameDecoder(max_size=1000)
    try:
        feed_all(decoder, split(data, cuts))
    except ProtocolError:
        pass
