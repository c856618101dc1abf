"""Stored credentials: scrypt round trip, encoding, bounds; Dovecot {CRAM-MD5} keys."""

import base64
import hashlib
import hmac
import struct

import pytest

from mailsys.sasl.passwords import (BadCredential, CramMd5Key, ScryptHash, cram_key, hash_password,
                                    parse_cram_key)

# `doveadm pw -s CRAM-MD5` output for known passwords, as recorded in the test
# suite of krhitoshi/postfix_admin (spec/doveadm_spec.rb, spec/spec_helper.rb),
# whose Doveadm.password runs doveadm itself.
DOVEADM_CRAM_MD5 = {
    "password": "{CRAM-MD5}9186d855e11eba527a7a52ca82b313e180d62234f0acc9051b527243d41e2740",
    "dovecot": "{CRAM-MD5}2dc40f88a4c2142c3b10cc4b4d11382a648f600301b78a4070172782192898d6",
}


def test_scrypt_round_trip_and_encoding():
    text = hash_password("s3cret pässword")
    assert text.startswith("$scrypt$n=16384,r=8,p=1$")
    h = ScryptHash.parse(text)
    assert len(h.salt) == 16 and len(h.digest) == 32
    assert h.encode() == text
    assert h.verify("s3cret pässword")
    assert not h.verify("s3cret password")
    assert not h.verify("")


def test_hash_is_salted():
    assert hash_password("same") != hash_password("same")


def test_hash_matches_hashlib_scrypt_directly():
    h = ScryptHash.parse(hash_password("pw"))
    expected = hashlib.scrypt(b"pw", salt=h.salt, n=16384, r=8, p=1, dklen=32)
    assert h.digest == expected


@pytest.mark.parametrize("bad", [
    "$scrypt$n=16384,r=8$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
    "$scrypt$n=1000,r=8,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",            # n not a power of two
    "$scrypt$n=4194304,r=8,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",         # too much memory
    "$scrypt$n=16384,r=8,p=1$!!!$aGFzaGhhc2hoYXNoaGFzaA",
    "$scrypt$n=16384,r=8,p=1$c2FsdA$c2hvcnQ",                          # hash too short
    "$scrypt$n=16384,r=8,p=1$c2FsdA",
    "{SHA}abc",
])
def test_bad_scrypt_entries_are_refused(bad):
    with pytest.raises(BadCredential):
        ScryptHash.parse(bad)


@pytest.mark.parametrize("password", sorted(DOVEADM_CRAM_MD5))
def test_cram_key_is_what_doveadm_pw_prints(password):
    assert cram_key(password) == DOVEADM_CRAM_MD5[password]
    key = parse_cram_key(DOVEADM_CRAM_MD5[password])
    assert key.encode() == DOVEADM_CRAM_MD5[password]
    assert key.verify(password) and not key.verify(password + "x")
    # and a CRAM-MD5 response computed from Dovecot's stored form is the
    # ordinary HMAC-MD5 of the challenge under the password
    challenge = "<12345.1700000000@mx.example.com>"
    assert key.digest(challenge) == hmac.new(password.encode(), challenge.encode(), "md5").hexdigest()


def independent_context(password: bytes) -> bytes:
    """Dovecot's 32 bytes for a key of at most 64 bytes, computed without
    mailsys: RFC 1321's compression written out again here (with the
    alternative F and G forms) so that a mistake in md5state cannot hide."""
    import math
    t = [int(abs(math.sin(i)) * 2 ** 32) & 0xFFFFFFFF for i in range(1, 65)]
    s = [7, 12, 17, 22] * 4 + [5, 9, 14, 20] * 4 + [4, 11, 16, 23] * 4 + [6, 10, 15, 21] * 4

    def block_state(block):
        a0, b0, c0, d0 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
        m = struct.unpack("<16I", block)
        a, b, c, d = a0, b0, c0, d0
        for i in range(64):
            if i < 16:
                f, g = d ^ (b & (c ^ d)), i
            elif i < 32:
                f, g = c ^ (d & (b ^ c)), (5 * i + 1) % 16
            elif i < 48:
                f, g = b ^ c ^ d, (3 * i + 5) % 16
            else:
                f, g = c ^ (b | (~d & 0xFFFFFFFF)), (7 * i) % 16
            f = (f + a + t[i] + m[g]) & 0xFFFFFFFF
            a, d, c = d, c, b
            b = (b + ((f << s[i]) | (f >> (32 - s[i])))) & 0xFFFFFFFF
        return [(a0 + a) & 0xFFFFFFFF, (b0 + b) & 0xFFFFFFFF, (c0 + c) & 0xFFFFFFFF,
                (d0 + d) & 0xFFFFFFFF]

    padded = password.ljust(64, b"\0")
    outer = block_state(bytes(x ^ 0x5C for x in padded))
    inner = block_state(bytes(x ^ 0x36 for x in padded))
    # the reference is right if it gives hashlib's digest for a padding-only block
    assert struct.pack("<4I", *block_state(b"\x80" + b"\0" * 63)) == hashlib.md5(b"").digest()
    return struct.pack("<8I", *outer, *inner)


@pytest.mark.parametrize("password", ["tanstaaftanstaaf", "s3cret pässword", "x" * 64])
def test_cram_key_layout_matches_an_independent_reference(password):
    assert cram_key(password) == "{CRAM-MD5}" + independent_context(password.encode()).hex()


def test_cram_key_round_trip_and_rfc2195_example():
    key = parse_cram_key(cram_key("tanstaaftanstaaf"))
    assert key == CramMd5Key.from_secret(b"tanstaaftanstaaf")
    # RFC 2195 section 2 example
    assert key.digest("<1896.697170952@postoffice.reston.mci.net>") == \
        "b913a602c7eda7a495b4e6e7334d3890"
    assert key.digest("<x@y>") == hmac.new(b"tanstaaftanstaaf", b"<x@y>", hashlib.md5).hexdigest()


def test_upper_case_hex_is_read():
    text = DOVEADM_CRAM_MD5["dovecot"]
    assert parse_cram_key("{CRAM-MD5}" + text[10:].upper()) == parse_cram_key(text)


def test_legacy_cram_key_entries_are_converted_when_read():
    old = "{CRAM-MD5-KEY}" + b"password".hex()
    assert parse_cram_key(old) == parse_cram_key(DOVEADM_CRAM_MD5["password"])
    assert parse_cram_key(old).encode() == DOVEADM_CRAM_MD5["password"]


@pytest.mark.parametrize("bad", [
    "{CRAM-MD5-KEY}zz",
    "{CRAM-MD5}00ff",                                 # too short
    "{CRAM-MD5}" + "0" * 66,                          # too long
    "{CRAM-MD5}" + "g" * 64,                          # not hex
    "{CRAM-MD5}" + "0" * 62 + "  ",                   # white space inside
    base64.b64encode(b"x").decode(),
    "{PLAIN}password",
])
def test_bad_cram_key(bad):
    with pytest.raises(BadCredential):
        parse_cram_key(bad)
