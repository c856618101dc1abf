"""md5state - MD5 (RFC 1321) resumable from a saved internal state.

DESCRIPTION
    HMAC-MD5 (RFC 2104) hashes the key, padded to one 64-byte block and
    XORed with ipad or opad, before anything else. RFC 2104 section 4 notes
    that the MD5 states after those two blocks can be computed once and
    stored; Dovecot's {CRAM-MD5} password scheme stores exactly them, and a
    CRAM-MD5 server then answers any challenge by continuing MD5 from the
    stored states. hashlib cannot start from a given state (no Python
    library exposes MD5 midstates), so this module holds the MD5
    compression function itself, straight from RFC 1321 section 3.4, and
    the little that HMAC needs on top of it.

    A state is four 32-bit words (A, B, C, D). compress() runs one 64-byte
    block; md5_resume() finishes a hash whose first `done` bytes (a multiple
    of 64) already went into the given state. hmac_md5_states() gives the
    (inner, outer) states for a key, hmac_md5_resume() the HMAC of a message
    from them.

    Pure computation, no I/O. Not constant-time in the data, like hashlib's
    MD5; the inputs it sees are a stored key's states and public challenges.
    Slow next to hashlib (pure Python) but a CRAM-MD5 check is three
    blocks.

SEE ALSO
    RFC 1321 (MD5), RFC 2104 (HMAC), RFC 2195 (CRAM-MD5),
    mailsys.sasl.passwords (the {CRAM-MD5} text form).
"""

from __future__ import annotations

import hashlib
import math
import struct

State = tuple[int, int, int, int]

BLOCK = 64
INITIAL_STATE: State = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)   # RFC 1321 3.3
_MASK = 0xFFFFFFFF

# RFC 1321 3.4: T[i] = floor(2**32 * abs(sin(i))), i = 1..64 (exact in a double;
# the tests check the whole function against hashlib).
_T = tuple(int(abs(math.sin(i)) * 2 ** 32) & _MASK for i in range(1, 65))
# Per-step left rotations, four per round, repeated four times in the round.
_SHIFTS = (7, 12, 17, 22) * 4 + (5, 9, 14, 20) * 4 + (4, 11, 16, 23) * 4 + (6, 10, 15, 21) * 4
# Which message word step i reads: i, 5i+1, 3i+5, 7i (mod 16) in rounds 1..4.
_WORD = tuple(i for i in range(16)) + tuple((5 * i + 1) % 16 for i in range(16)) \
    + tuple((3 * i + 5) % 16 for i in range(16)) + tuple((7 * i) % 16 for i in range(16))


def _rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _MASK


def compress(state: State, block: bytes) -> State:
    """The state after one 64-byte block (RFC 1321 3.4, one pass of step 4)."""
    if len(block) != BLOCK:
        raise ValueError("MD5 block must be 64 bytes")
    x = struct.unpack("<16I", block)
    a, b, c, d = state
    for i in range(64):
        if i < 16:
            f = (b & c) | (~b & d)          # F
        elif i < 32:
            f = (b & d) | (c & ~d)          # G
        elif i < 48:
            f = b ^ c ^ d                   # H
        else:
            f = c ^ (b | ~d)                # I
        f = (a + (f & _MASK) + _T[i] + x[_WORD[i]]) & _MASK
        a, d, c, b = d, c, b, (b + _rotl(f, _SHIFTS[i])) & _MASK
    return ((state[0] + a) & _MASK, (state[1] + b) & _MASK,
            (state[2] + c) & _MASK, (state[3] + d) & _MASK)


def md5_resume(state: State, data: bytes, done: int = 0) -> bytes:
    """The MD5 digest of (the `done` bytes that led to state) + data.

    done must be a multiple of 64: a state only exists between blocks. The
    padding (RFC 1321 3.1, 3.2) counts the total length, done included.
    """
    if done % BLOCK:
        raise ValueError("resumed MD5 needs a whole number of blocks done")
    total = done + len(data)
    data = data + b"\x80" + b"\0" * ((55 - total) % BLOCK) + struct.pack("<Q", (total * 8) & (2 ** 64 - 1))
    for offset in range(0, len(data), BLOCK):
        state = compress(state, data[offset:offset + BLOCK])
    return struct.pack("<4I", *state)


def md5(data: bytes) -> bytes:
    """Plain MD5 through this module (for checking it against hashlib)."""
    return md5_resume(INITIAL_STATE, data)


def hmac_md5_states(key: bytes) -> tuple[State, State]:
    """(inner, outer): the states after the key XOR ipad / opad block (RFC 2104)."""
    if len(key) > BLOCK:
        key = hashlib.md5(key).digest()     # RFC 2104 2: long keys are hashed first
    key = key.ljust(BLOCK, b"\0")
    inner = compress(INITIAL_STATE, bytes(k ^ 0x36 for k in key))
    outer = compress(INITIAL_STATE, bytes(k ^ 0x5C for k in key))
    return inner, outer


def hmac_md5_resume(inner: State, outer: State, message: bytes) -> bytes:
    """HMAC-MD5 of message under the key whose states these are."""
    return md5_resume(outer, md5_resume(inner, message, BLOCK), BLOCK)
