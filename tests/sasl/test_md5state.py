"""The resumable MD5 and HMAC-MD5 of md5state, against RFC 1321, hashlib and hmac."""

import hashlib
import hmac
import struct

import pytest
from hypothesis import given, settings, strategies as st

from mailsys.sasl import md5state

# RFC 1321 appendix A.5, the test suite.
RFC1321_SUITE = [
    (b"", "d41d8cd98f00b204e9800998ecf8427e"),
    (b"a", "0cc175b9c0f1b6a831c399e269772661"),
    (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
    (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
    (b"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
    (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
     "d174ab98d277d9f5a5611c2c9f419d9f"),
    (b"1234567890" * 8, "57edf4a22be3c955ac49da2e2107b67a"),
]


@pytest.mark.parametrize("data, digest", RFC1321_SUITE)
def test_rfc1321_suite(data, digest):
    assert md5state.md5(data).hex() == digest


@pytest.mark.parametrize("length", [55, 56, 57, 63, 64, 65, 119, 120, 128])
def test_padding_edges(length):
    # 55/56 and 119/120 are where the length field stops fitting in the last block.
    data = bytes(range(length))
    assert md5state.md5(data) == hashlib.md5(data).digest()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_matches_hashlib(data):
    assert md5state.md5(data) == hashlib.md5(data).digest()


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_resume_after_whole_blocks_matches_hashlib(head, tail):
    head = head[:len(head) - len(head) % 64]
    state = md5state.INITIAL_STATE
    for i in range(0, len(head), 64):
        state = md5state.compress(state, head[i:i + 64])
    assert md5state.md5_resume(state, tail, len(head)) == hashlib.md5(head + tail).digest()


def test_compress_of_nothing_but_padding_is_md5_of_empty():
    block = b"\x80" + b"\0" * 63
    assert struct.pack("<4I", *md5state.compress(md5state.INITIAL_STATE, block)) == \
        hashlib.md5(b"").digest()


def test_bad_arguments():
    with pytest.raises(ValueError):
        md5state.compress(md5state.INITIAL_STATE, b"short")
    with pytest.raises(ValueError):
        md5state.md5_resume(md5state.INITIAL_STATE, b"x", 10)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=150), st.binary(max_size=120))
def test_hmac_from_states_matches_stdlib_hmac(key, message):
    # Keys longer than 64 bytes are hashed first (RFC 2104), as hmac does.
    inner, outer = md5state.hmac_md5_states(key)
    assert md5state.hmac_md5_resume(inner, outer, message) == hmac.new(key, message, "md5").digest()


def test_rfc2104_and_rfc2195_examples():
    # RFC 2104 appendix, test vector 2; RFC 2195 section 2, the CRAM-MD5 example.
    inner, outer = md5state.hmac_md5_states(b"Jefe")
    assert md5state.hmac_md5_resume(inner, outer, b"what do ya want for nothing?").hex() == \
        "750c783e6ab0b503eaa86e310a5db738"
    inner, outer = md5state.hmac_md5_states(b"tanstaaftanstaaf")
    assert md5state.hmac_md5_resume(inner, outer, b"<1896.697170952@postoffice.reston.mci.net>").hex() \
        == "b913a602c7eda7a495b4e6e7334d3890"


def test_states_are_one_compression_of_the_padded_key_blocks():
    # The definition, spelled out independently: hashlib over key^ipad + m equals
    # resuming from the inner state after 64 bytes.
    key = b"password"
    inner, outer = md5state.hmac_md5_states(key)
    ipad = bytes(b ^ 0x36 for b in key.ljust(64, b"\0"))
    opad = bytes(b ^ 0x5C for b in key.ljust(64, b"\0"))
    assert md5state.md5_resume(inner, b"m", 64) == hashlib.md5(ipad + b"m").digest()
    assert md5state.md5_resume(outer, b"", 64) == hashlib.md5(opad).digest()
