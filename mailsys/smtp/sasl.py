"""sasl - the server side of SASL PLAIN, LOGIN and CRAM-MD5, as pure steps.

ServerConnection handles the SMTP framing (base64, ``334``, ``*`` cancel);
this module handles what is inside: which challenge to send next, and how to
turn the client's answers into Credentials. The policy side (smtpd) drives
it from Auth / AuthResponse events and checks the Credentials against the
password file:

    exch = sasl.start(event.mechanism, hostname)
    step = exch.step(event.initial_response)      # bytes -> send replies.auth_challenge(step)
    ...                                            # Credentials -> verify, send AUTH_OK / auth_failed()
    step = exch.step(response_event.data)

Challenge shapes: PLAIN sends an empty challenge when there was no initial
response (RFC 4616); LOGIN asks ``Username:`` then ``Password:`` (the
de-facto draft-murchison-sasl-login texts, which fail2ban's filters see
base64-encoded as ``VXNlcm5hbWU6`` / ``UGFzc3dvcmQ6``); CRAM-MD5 sends
``<random.time@hostname>`` (RFC 2195) and takes no initial response.
A malformed answer raises SaslError; the caller answers auth_failed().
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")


class SaslError(Exception):
    """The client's SASL answer is malformed (reason in str())."""


@dataclass(frozen=True, slots=True)
class Credentials:
    mechanism: str
    username: str
    authzid: str = ""
    password: str | None = None        # PLAIN, LOGIN
    challenge: bytes | None = None     # CRAM-MD5: what we sent
    digest: str | None = None          # CRAM-MD5: the client's hex HMAC-MD5

    def cram_matches(self, secret: bytes) -> bool:
        """CRAM-MD5: does the digest match HMAC-MD5(secret, challenge)?"""
        if self.challenge is None or self.digest is None:
            return False
        want = hmac.new(secret, self.challenge, hashlib.md5).hexdigest()
        return hmac.compare_digest(want, self.digest.lower())


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError(f"{what} is not UTF-8") from None


class Exchange:
    """One mechanism's dialogue; step() returns a challenge or Credentials."""

    mechanism = ""

    def step(self, data: bytes | None) -> bytes | Credentials:
        raise NotImplementedError


class Plain(Exchange):
    mechanism = "PLAIN"

    def __init__(self) -> None:
        self._asked = False

    def step(self, data: bytes | None) -> bytes | Credentials:
        if data is None:
            if self._asked:
                raise SaslError("no response")
            self._asked = True
            return b""
        parts = data.split(b"\x00")
        if len(parts) != 3 or not parts[1]:
            raise SaslError("malformed PLAIN response")
        authzid, authcid, password = (_utf8(p, "PLAIN field") for p in parts)
        return Credentials("PLAIN", authcid, authzid, password=password)


class Login(Exchange):
    mechanism = "LOGIN"

    def __init__(self) -> None:
        self._username: str | None = None

    def step(self, data: bytes | None) -> bytes | Credentials:
        if self._username is None:
            if data is None:
                return b"Username:"
            self._username = _utf8(data, "username")
            return b"Password:"
        if data is None:
            raise SaslError("no password")
        return Credentials("LOGIN", self._username, password=_utf8(data, "password"))


class CramMd5(Exchange):
    mechanism = "CRAM-MD5"

    def __init__(self, hostname: str, nonce: str | None = None) -> None:
        nonce = nonce or f"{secrets.randbits(63)}.{int(time.time())}"
        self.challenge = f"<{nonce}@{hostname}>".encode("ascii", "replace")
        self._sent = False

    def step(self, data: bytes | None) -> bytes | Credentials:
        if not self._sent:
            if data is not None:
                raise SaslError("CRAM-MD5 takes no initial response")
            self._sent = True
            return self.challenge
        if data is None:
            raise SaslError("no response")
        user, sep, digest = _utf8(data, "response").rpartition(" ")
        if not sep or not user or len(digest) != 32 or not all(
                c in "0123456789abcdefABCDEF" for c in digest):
            raise SaslError("malformed CRAM-MD5 response")
        return Credentials("CRAM-MD5", user, challenge=self.challenge, digest=digest)


def start(mechanism: str, hostname: str) -> Exchange:
    """A fresh exchange for a mechanism in MECHANISMS (SaslError otherwise)."""
    match mechanism.upper():
        case "PLAIN":
            return Plain()
        case "LOGIN":
            return Login()
        case "CRAM-MD5":
            return CramMd5(hostname)
    raise SaslError(f"unsupported mechanism {mechanism}")
