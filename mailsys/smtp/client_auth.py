"""client_auth - the client side of SMTP AUTH: PLAIN, LOGIN and CRAM-MD5, without I/O.

NAME
    choose_mechanism, client_mechanism, filter_mechanisms - what Postfix's
    smtp(8) gets from the Cyrus SASL client library, for the three simple
    mechanisms.

DESCRIPTION
    The smtp client (ClientConnection.auth() in client.py) sends
    ``AUTH <name> [initial response]`` and hands every 334 challenge to the
    mechanism, which answers with the next base64 line. Mechanisms:

      PLAIN (RFC 4616)      initial response base64("" NUL user NUL password)
      LOGIN (draft-murchison-sasl-login)   no initial response; the first
                            challenge gets the user name, the second the
                            password, whatever their text (as Cyrus's client)
      CRAM-MD5 (RFC 2195)   no initial response; the challenge gets
                            base64(user SP hex(HMAC-MD5(password, challenge)))

    choose_mechanism() picks one of the server's mechanisms the way the
    Cyrus client does for these three: the security options
    (smtp_sasl_security_options and its TLS variants) drop every mechanism
    that lacks a property asked for, and of the rest CRAM-MD5 (it never
    sends the password) goes before PLAIN, PLAIN (it sends its credentials
    with the AUTH command) before LOGIN. Properties, as Cyrus's plug-ins
    declare them: PLAIN and LOGIN are noanonymous; CRAM-MD5 is noanonymous
    and noplaintext. None of them is noactive, nodictionary or mutual_auth,
    so asking for one of those leaves nothing ("No worthy mechs found").

    filter_mechanisms() applies smtp_sasl_mechanism_filter: a Postfix
    string list of names, "!name" exclusions and table lookups, first
    match wins, case-insensitive; no match drops the mechanism.

    Pure: no I/O. AuthError is raised for a challenge a mechanism cannot
    answer (not base64, or a step too many).

SEE ALSO
    RFC 4954 (SMTP AUTH), mailsys.sasl.server (the server side),
    Postfix src/smtp/smtp_sasl_proto.c, smtp_sasl_glue.c.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence

__all__ = ["AuthError", "ClientMechanism", "MECHANISMS", "SECURITY_OPTIONS", "choose_mechanism",
           "client_mechanism", "filter_mechanisms"]

# Cyrus SASL client plug-ins' security properties (sasl.h SASL_SEC_*), for
# the three mechanisms here, in the order the client prefers them.
MECHANISMS: dict[str, frozenset[str]] = {
    "CRAM-MD5": frozenset({"noanonymous", "noplaintext"}),
    "PLAIN": frozenset({"noanonymous"}),
    "LOGIN": frozenset({"noanonymous"}),
}
SECURITY_OPTIONS = ("noplaintext", "noactive", "nodictionary", "noanonymous", "mutual_auth")


class AuthError(Exception):
    """The mechanism cannot answer the server (the text says why)."""


def choose_mechanism(offered: Iterable[str], options: Iterable[str]) -> str | None:
    """The mechanism to use among ``offered`` under the security options, or None."""
    wanted = {o.lower() for o in options} - {"", "none"}
    offered = {m.upper() for m in offered}
    for name, props in MECHANISMS.items():
        if name in offered and wanted <= props:
            return name
    return None


def filter_mechanisms(offered: Sequence[str], patterns: Sequence[str],
                      lookup: Callable[[str, str], bool] | None = None) -> list[str]:
    """The offered mechanisms smtp_sasl_mechanism_filter keeps (all when it is empty).

    patterns: the filter's words; "/file" words already replaced by the
    file's words. lookup(table_spec, mechanism) says whether a "type:name"
    entry has the mechanism as a key (None: such entries never match)."""
    if not patterns:
        return list(offered)
    kept = []
    for mech in offered:
        for pattern in patterns:
            negate = pattern.startswith("!")
            word = pattern[1:] if negate else pattern
            if ":" in word and not word.startswith("/"):
                hit = lookup is not None and lookup(word, mech.lower())
            else:
                hit = word.lower() == mech.lower()
            if hit:
                if not negate:
                    kept.append(mech)
                break
    return kept


class ClientMechanism:
    """One exchange of one mechanism: initial() once, then respond() per 334."""

    name = ""
    __slots__ = ("user", "password", "steps")

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password
        self.steps = 0

    def initial(self) -> str | None:
        """The initial response for the AUTH command (base64), or None."""
        return None

    def respond(self, challenge: str) -> str:
        """The base64 line that answers a 334 challenge (its text after the code)."""
        self.steps += 1
        return _b64(self._answer(_unb64(challenge), self.steps))

    def _answer(self, challenge: bytes, step: int) -> bytes:
        raise AuthError("unexpected server challenge")


class _Plain(ClientMechanism):
    name = "PLAIN"
    __slots__ = ()

    def initial(self) -> str | None:
        return _b64(b"\0" + self.user.encode() + b"\0" + self.password.encode())

    def _answer(self, challenge: bytes, step: int) -> bytes:
        # RFC 4954 4: a server that wants the response itself sends "334 "
        # with nothing; PLAIN then sends what it would have sent first.
        if step == 1 and not challenge:
            return base64.b64decode(self.initial() or "")
        raise AuthError("unexpected server challenge")


class _Login(ClientMechanism):
    name = "LOGIN"
    __slots__ = ()

    def _answer(self, challenge: bytes, step: int) -> bytes:
        if step == 1:
            return self.user.encode()
        if step == 2:
            return self.password.encode()
        raise AuthError("unexpected server challenge")


class _CramMd5(ClientMechanism):
    name = "CRAM-MD5"
    __slots__ = ()

    def _answer(self, challenge: bytes, step: int) -> bytes:
        if step != 1:
            raise AuthError("unexpected server challenge")
        digest = hmac.new(self.password.encode(), challenge, hashlib.md5).hexdigest()
        return f"{self.user} {digest}".encode()


_CLASSES = {cls.name: cls for cls in (_Plain, _Login, _CramMd5)}


def client_mechanism(name: str, user: str, password: str) -> ClientMechanism:
    """A fresh exchange of mechanism ``name`` (one of MECHANISMS)."""
    try:
        return _CLASSES[name.upper()](user, password)
    except KeyError:
        raise ValueError(f"no client mechanism {name!r}") from None


def _b64(data: bytes) -> str:
    # RFC 4954 4: an empty response is sent as "=", not as an empty line.
    return base64.b64encode(data).decode("ascii") or "="


def _unb64(text: str) -> bytes:
    text = text.strip()
    if text == "=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AuthError("invalid base64 data in server challenge") from None
