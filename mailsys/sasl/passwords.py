"""passwords - the stored forms of a SASL secret, and checking them.

DESCRIPTION
    A user's entry in smtpd_sasl_users_file holds one or two credentials,
    each tagged with its scheme:

    $scrypt$n=16384,r=8,p=1$<salt>$<hash>
        hashlib.scrypt of the UTF-8 password with a random 16-byte salt;
        salt and hash in standard base64 without padding. Checked for
        PLAIN and LOGIN; useless for CRAM-MD5, whose server needs the
        shared secret itself.

    {CRAM-MD5-KEY}<hex>
        the secret itself in hex: the HMAC-MD5 key CRAM-MD5 needs.

    Why not Dovecot's {CRAM-MD5} form: Dovecot stores the two MD5 states
    reached after hashing the HMAC inner and outer pad blocks (32 bytes:
    outer a,b,c,d then inner a,b,c,d, little-endian). Using those needs an
    MD5 that can start from a given internal state, which hashlib does not
    offer, and a hand-written MD5 is not worth its risk. The Dovecot form is
    as plaintext-equivalent as this one (it lets anyone compute valid
    CRAM-MD5 responses), so nothing is lost in secrecy; the file is mode
    0600 for that reason. A {CRAM-MD5} entry is reported as unsupported.

    All comparisons are constant-time (hmac.compare_digest). scrypt
    parameters read from the file are bounded so that a bad line cannot
    make one check take unbounded memory or time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

SCRYPT_N = 16384     # 2**14: ~16 MiB, tens of milliseconds (the RFC 7914 interactive choice)
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
# Upper bounds on parameters read from a file: scrypt needs 128 * n * r
# bytes, and 1 GiB is already far more than any sane entry; refuse beyond.
_MAX_N = 1 << 20
_MAX_R = 32
_MAX_P = 16
_MAXMEM = 1 << 30

SCRYPT_PREFIX = "$scrypt$"
CRAM_KEY_PREFIX = "{CRAM-MD5-KEY}"
DOVECOT_CRAM_PREFIX = "{CRAM-MD5}"


class BadCredential(ValueError):
    """A stored credential that cannot be parsed."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise BadCredential(f"bad base64: {text!r}") from None


@dataclass(frozen=True, slots=True)
class ScryptHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def encode(self) -> str:
        return (f"{SCRYPT_PREFIX}n={self.n},r={self.r},p={self.p}"
                f"${_b64(self.salt)}${_b64(self.digest)}")

    @classmethod
    def parse(cls, text: str) -> "ScryptHash":
        if not text.startswith(SCRYPT_PREFIX):
            raise BadCredential("not a $scrypt$ hash")
        parts = text[len(SCRYPT_PREFIX):].split("$")
        if len(parts) != 3:
            raise BadCredential("expected $scrypt$params$salt$hash")
        params: dict[str, int] = {}
        for item in parts[0].split(","):
            key, _, value = item.partition("=")
            if key not in ("n", "r", "p") or not value.isdigit():
                raise BadCredential(f"bad scrypt parameter {item!r}")
            params[key] = int(value)
        if set(params) != {"n", "r", "p"}:
            raise BadCredential("scrypt needs n, r and p")
        n, r, p = params["n"], params["r"], params["p"]
        if n < 2 or n & (n - 1) or n > _MAX_N or not 1 <= r <= _MAX_R or not 1 <= p <= _MAX_P \
                or 128 * n * r > _MAXMEM // 2:
            raise BadCredential(f"scrypt parameters out of range: n={n},r={r},p={p}")
        salt, digest = _unb64(parts[1]), _unb64(parts[2])
        if not salt or len(digest) < 16:
            raise BadCredential("scrypt salt or hash too short")
        return cls(n, r, p, salt, digest)

    def verify(self, password: str) -> bool:
        candidate = hashlib.scrypt(password.encode("utf-8"), salt=self.salt, n=self.n, r=self.r,
                                   p=self.p, maxmem=_MAXMEM, dklen=len(self.digest))
        return hmac.compare_digest(candidate, self.digest)


def hash_password(password: str) -> str:
    """A new $scrypt$ credential for password, with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R,
                            p=SCRYPT_P, maxmem=_MAXMEM, dklen=HASH_BYTES)
    return ScryptHash(SCRYPT_N, SCRYPT_R, SCRYPT_P, salt, digest).encode()


def cram_key(password: str) -> str:
    """The {CRAM-MD5-KEY} credential for password."""
    return CRAM_KEY_PREFIX + password.encode("utf-8").hex()


def parse_cram_key(text: str) -> bytes:
    if not text.startswith(CRAM_KEY_PREFIX):
        raise BadCredential("not a {CRAM-MD5-KEY} entry")
    try:
        return bytes.fromhex(text[len(CRAM_KEY_PREFIX):])
    except ValueError:
        raise BadCredential("bad hex in {CRAM-MD5-KEY} entry") from None


def cram_md5_digest(key: bytes, challenge: str) -> str:
    """RFC 2195: hex HMAC-MD5 of the challenge under the shared secret."""
    return hmac.new(key, challenge.encode("utf-8"), hashlib.md5).hexdigest()


# A fixed hash checked when the user does not exist, so that an unknown user
# costs the same scrypt work as a wrong password (no user enumeration by time).
_DUMMY = ScryptHash(SCRYPT_N, SCRYPT_R, SCRYPT_P, b"\0" * SALT_BYTES, b"\0" * HASH_BYTES)


def burn_time(password: str) -> None:
    """Spend the time of one password check, for an unknown user."""
    _DUMMY.verify(password)
