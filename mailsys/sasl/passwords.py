"""passwords - the stored forms of a SASL secret, and checking them.

DESCRIPTION
    A user's entry in smtpd_sasl_users_file holds one or two credentials,
    each tagged with its scheme:

    $scrypt$n=16384,r=8,p=1$<salt>$<hash>
        hashlib.scrypt of the UTF-8 password with a random 16-byte salt;
        salt and hash in standard base64 without padding. Checked for
        PLAIN and LOGIN; useless for CRAM-MD5, whose server needs the
        HMAC key (or its precomputed states, below).

    {CRAM-MD5}<64 hex digits>
        Dovecot's CRAM-MD5 scheme, byte for byte what `doveadm pw -s
        CRAM-MD5` prints: the HMAC-MD5 precomputation of RFC 2104 section
        4, i.e. the MD5 states after compressing the 64-byte padded key
        XOR opad and key XOR ipad, in Dovecot's order (outer A, B, C, D
        then inner A, B, C, D, each word little-endian; src/lib
        hmac-cram-md5.c hmac_md5_get_cram_context). A CRAM-MD5 response
        is checked by continuing MD5 from those states (md5state.py); a
        PLAIN or LOGIN password by computing its states and comparing.
        Upper- or lower-case hex is read; lower case is written. As in
        HMAC, a password longer than 64 bytes is first replaced by its MD5.

    {CRAM-MD5-KEY}<hex>
        the older mailsys form: the secret itself in hex. Still read, and
        turned into the {CRAM-MD5} states when read, so such entries keep
        working (the line itself stays as it is until the user is
        rewritten); never written. Rewrite the user with `mailsys saslpasswd
        add --cram-md5` to drop the plaintext from the file.

    Either CRAM-MD5 form is plaintext-equivalent for CRAM-MD5 (it lets
    anyone compute valid responses), though {CRAM-MD5} does not reveal the
    password itself; the file is mode 0600 for that reason.

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
import struct

from mailsys.frozen import frozen
from mailsys.sasl import md5state

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
CRAM_PREFIX = "{CRAM-MD5}"
LEGACY_CRAM_KEY_PREFIX = "{CRAM-MD5-KEY}"
CRAM_CONTEXT_BYTES = 32        # Dovecot's CRAM_MD5_CONTEXTLEN


class BadCredential(ValueError):
    """A stored credential that cannot be parsed."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise BadCredential(f"bad base64: {text!r}") from None


@frozen
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


@frozen
class CramMd5Key:
    """A user's CRAM-MD5 secret as Dovecot stores it: the two HMAC-MD5 states."""
    inner: md5state.State
    outer: md5state.State

    @classmethod
    def from_password(cls, password: str) -> "CramMd5Key":
        return cls.from_secret(password.encode("utf-8"))

    @classmethod
    def from_secret(cls, secret: bytes) -> "CramMd5Key":
        inner, outer = md5state.hmac_md5_states(secret)
        return cls(inner, outer)

    @classmethod
    def parse(cls, text: str) -> "CramMd5Key":
        """A {CRAM-MD5} entry, or an old {CRAM-MD5-KEY} one converted."""
        if text.startswith(LEGACY_CRAM_KEY_PREFIX):
            try:
                return cls.from_secret(bytes.fromhex(text[len(LEGACY_CRAM_KEY_PREFIX):]))
            except ValueError:
                raise BadCredential("bad hex in {CRAM-MD5-KEY} entry") from None
        if not text.startswith(CRAM_PREFIX):
            raise BadCredential("not a {CRAM-MD5} entry")
        hexdigits = text[len(CRAM_PREFIX):]
        if len(hexdigits) != 2 * CRAM_CONTEXT_BYTES:
            raise BadCredential(f"{{CRAM-MD5}} needs {2 * CRAM_CONTEXT_BYTES} hex digits")
        try:
            words = struct.unpack("<8I", bytes.fromhex(hexdigits))
        except (ValueError, struct.error):      # not hex, or white space inside
            raise BadCredential("bad hex in {CRAM-MD5} entry") from None
        return cls(inner=words[4:], outer=words[:4])

    def context(self) -> bytes:
        """The 32 bytes Dovecot stores: outer state, then inner, little-endian words."""
        return struct.pack("<8I", *self.outer, *self.inner)

    def encode(self) -> str:
        return CRAM_PREFIX + self.context().hex()

    def digest(self, challenge: str) -> str:
        """RFC 2195: the hex HMAC-MD5 of the challenge under the shared secret."""
        return md5state.hmac_md5_resume(self.inner, self.outer, challenge.encode("utf-8")).hex()

    def verify(self, password: str) -> bool:
        """PLAIN / LOGIN against this entry: does password give the same states?"""
        return hmac.compare_digest(CramMd5Key.from_password(password).context(), self.context())


def cram_key(password: str) -> str:
    """The {CRAM-MD5} credential for password (what doveadm pw -s CRAM-MD5 prints)."""
    return CramMd5Key.from_password(password).encode()


def parse_cram_key(text: str) -> CramMd5Key:
    """A {CRAM-MD5} or legacy {CRAM-MD5-KEY} credential; raises BadCredential."""
    return CramMd5Key.parse(text)


# A fixed hash checked when the user does not exist, so that an unknown user
# costs the same scrypt work as a wrong password (no user enumeration by time).
_DUMMY = ScryptHash(SCRYPT_N, SCRYPT_R, SCRYPT_P, b"\0" * SALT_BYTES, b"\0" * HASH_BYTES)


def burn_time(password: str) -> None:
    """Spend the time of one password check, for an unknown user."""
    _DUMMY.verify(password)
