"""dovecot - the client side of Dovecot's authentication protocol, without I/O.

SYNOPSIS
    hello = handshake_request(os.getpid())          # send first
    hs = Handshake()
    for line in lines: done = hs.feed(line)         # until DONE
    names = usable(hs.mechanisms, ["noanonymous"])  # what EHLO offers
    send(auth_request(1, "PLAIN", service="smtp", local="127.0.0.1",
                      remote="192.0.2.1", secured=False, initial="AGJvYgBwdw=="))
    result = reply(line, 1)                         # Challenge, Success, Failure or None
    send(continue_request(1, client_line))

DESCRIPTION
    With smtpd_sasl_type = dovecot, smtpd does no password checking of its
    own: each AUTH exchange is relayed to Dovecot's auth server (its
    "auth" service, unix_listener private/auth), as Postfix's
    xsasl_dovecot_server.c does. The conversation (Dovecot's "Auth
    protocol", version 1.2):

        -> VERSION 1 2 / CPID <pid>
        <- VERSION 1 2 / MECH PLAIN plaintext / MECH LOGIN plaintext /
           MECH CRAM-MD5 dictionary active / SPID .. / CUID .. / COOKIE .. / DONE
        -> AUTH <id> PLAIN service=smtp nologin lip=.. rip=.. [secured] [resp=<base64>]
        <- CONT <id> <base64>   (-> CONT <id> <client's base64>)
        <- OK <id> user=alice   or   FAIL <id> [user=alice] [reason=...]

    fields separated by TAB, one request or reply per line. A mechanism
    whose properties the security options forbid is not offered:
    smtpd_sasl_security_options "noplaintext" drops those Dovecot marks
    "plaintext", and so on for noanonymous, nodictionary and noactive;
    "forward_secrecy" and "mutual_auth" keep only mechanisms that have the
    property. Dovecot's "private" mechanisms are never offered.

    A FAIL's reason= becomes the text of the 535 reply and of the log line;
    without one Postfix says "(reason unavailable)". Its user= is the
    sasl_username of the log line.

SEE ALSO
    Postfix SASL_README ("Postfix SMTP server with Dovecot SASL"),
    Dovecot's doc/auth-protocol.txt.
"""

from __future__ import annotations


from mailsys.frozen import frozen
from mailsys.sasl.server import Challenge, Failure, Result, Success

MAJOR, MINOR = 1, 2
NO_REASON = "(reason unavailable)"
# The reason of an OK without a user name (xsasl_dovecot_server.c).
BACKEND_ERROR = "Authentication backend error"

# smtpd_sasl_security_options word -> the Dovecot property it concerns, and
# whether the option forbids it (no...) or requires it.
_OPTIONS = {
    "noplaintext": ("plaintext", False),
    "noactive": ("active", False),
    "nodictionary": ("dictionary", False),
    "noanonymous": ("anonymous", False),
    "forward_secrecy": ("forward-secrecy", True),
    "mutual_auth": ("mutual-auth", True),
}


class ProtocolError(Exception):
    """The auth server said something this client cannot go on from."""


@frozen
class Mechanism:
    name: str
    properties: frozenset[str]


def handshake_request(pid: int) -> bytes:
    return f"VERSION\t{MAJOR}\t{MINOR}\nCPID\t{pid}\n".encode("ascii")


class Handshake:
    """The server's half of the handshake, fed line by line."""

    def __init__(self) -> None:
        self.mechanisms: list[Mechanism] = []
        self.done = False

    def feed(self, line: str) -> bool:
        """Take one line (without its newline); True once DONE has come."""
        command, _, rest = line.partition("\t")
        if command == "VERSION":
            major, _, _ = rest.partition("\t")
            if not major.isdigit():
                raise ProtocolError("Protocol version error")
            if int(major) != MAJOR:
                raise ProtocolError(f"Protocol version mismatch ({major} vs. {MAJOR})")
        elif command == "MECH" and rest:
            name, *props = rest.split("\t")
            properties = frozenset(p.lower() for p in props)
            if "private" not in properties:
                self.mechanisms.append(Mechanism(name.upper(), properties))
        elif command == "DONE":
            self.done = True
        return self.done


def check_options(options: list[str] | tuple[str, ...], param: str) -> None:
    """Refuse a word smtpd_sasl_security_options does not know (Postfix: fatal)."""
    for word in options:
        if word.lower() not in _OPTIONS:
            raise ValueError(f"unknown {param} value \"{word}\"")


def usable(mechanisms: list[Mechanism], options: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The mechanism names the security options allow, in the server's order."""
    forbidden = set()
    required = set()
    for word in options:
        prop, needed = _OPTIONS[word.lower()]
        (required if needed else forbidden).add(prop)
    return tuple(m.name for m in mechanisms
                 if required <= m.properties and not forbidden & m.properties)


def auth_request(request_id: int, mechanism: str, *, service: str, local: str, remote: str,
                 secured: bool, initial: str | None) -> bytes:
    """The AUTH line; initial is the client's base64 text as sent ("=" for empty)."""
    line = (f"AUTH\t{request_id}\t{mechanism}\tservice={service}\tnologin"
            f"\tlip={local}\trip={remote}")
    if secured:
        line += "\tsecured"
    if initial is not None:
        line += f"\tresp={initial}"
    return _line(line)


def continue_request(request_id: int, data: str) -> bytes:
    return _line(f"CONT\t{request_id}\t{data}")


def _line(text: str) -> bytes:
    if "\n" in text:
        raise ValueError("a newline inside a request")
    return (text + "\n").encode("utf-8")


def reply(line: str, request_id: int, mechanism: str) -> Result | None:
    """What one reply line means for the request; None for a line to skip
    (another request's, or one this client does not know)."""
    command, _, rest = line.partition("\t")
    if command not in ("OK", "CONT", "FAIL"):
        return None
    rid, _, args = rest.partition("\t")
    if not rid.isdigit() or int(rid) != request_id:
        return None
    if command == "CONT":
        return Challenge(args)
    user = reason = None
    for arg in args.split("\t") if args else ():
        if arg.startswith("user="):
            user = arg[5:]
        elif arg.startswith("reason="):
            reason = arg[7:]
    if command == "OK":
        # xsasl_dovecot_server.c: a login without a user name is refused
        # ("missing Dovecot server OK username field", which smtpd logs).
        return Success(mechanism, user) if user is not None else Failure(mechanism, BACKEND_ERROR)
    return Failure(mechanism, reason or NO_REASON, user)


__all__ = ["Handshake", "Mechanism", "ProtocolError", "BACKEND_ERROR", "NO_REASON", "auth_request",
           "check_options", "continue_request", "handshake_request", "reply", "usable"]
