"""Stored credentials: scrypt round trip, encoding, bounds; CRAM-MD5 keys."""

import base64
import hashlib
import hmac

import pytest

from mailsys.sasl.passwords import (BadCredential, ScryptHash, cram_key, cram_md5_digest,
                                    hash_password, parse_cram_key)


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


def test_cram_key_round_trip_and_digest_is_rfc2195_hmac_md5():
    key = parse_cram_key(cram_key("tanstaaftanstaaf"))
    assert key == b"tanstaaftanstaaf"
    # RFC 2195 section 2 example
    assert cram_md5_digest(key, "<1896.697170952@postoffice.reston.mci.net>") == \
        "b913a602c7eda7a495b4e6e7334d3890"
    assert cram_md5_digest(key, "<x@y>") == hmac.new(key, b"<x@y>", hashlib.md5).hexdigest()


def test_bad_cram_key():
    with pytest.raises(BadCredential):
        parse_cram_key("{CRAM-MD5-KEY}zz")
    with pytest.raises(BadCredential):
        parse_cram_key(base64.b64encode(b"x").decode())
