"""client - ClientConnection, the sans-IO ESMTP client (Postfix smtp's protocol engine).

NAME
    ClientConnection - one outbound SMTP session, bytes in, events out.

DESCRIPTION
    The mirror image of ServerConnection: the caller (services/smtp, through
    runtime) owns the socket, the TLS layer and the clock. The core parses
    server replies, tracks the session, chooses the ESMTP parameters the
    server supports and produces every byte to write. It imports no trio,
    socket or ssl.

    Output: every method that sends something returns the bytes to write;
    replies processed by next_event() may queue more (the next RCPT without
    PIPELINING, the message body after 354). The caller writes
    ``cc.data_to_send()`` before each read, so nothing is ever left behind.

    Input: ``receive_data(bytes)`` (b"" means the server closed), then
    ``next_event()`` until it returns NEED_DATA. Events:

      Greeting(response)            the banner (``.ok`` false: "refused to talk to me")
      EhloDone(response, capabilities)   EHLO (or HELO after fallback) accepted
      EhloRejected(response)        EHLO refused: call helo() (Postfix falls back)
      HeloRejected(response)        HELO refused, or 421 to EHLO: give up on this host
      StartTlsReady(response)       220 to STARTTLS: do the handshake, then tls_started()
      StartTlsRefused(response)
      AuthDone(response)            the server's last word on auth(): ``.ok`` (235) or not
      AuthAborted(reason)           the mechanism could not answer a 334 challenge
      TransactionDone(result)       one message: per-recipient sent / deferred / bounced
      RsetDone(response), QuitDone(response)
      ConnectionLost(stage)         the server closed while a reply was awaited
      ProbeFailed(response)         a cached session failed its RSET check (below)

    A reply stream that is not SMTP raises RemoteProtocolError (its
    ``reply`` is a 421 4.5.0 stand-in to defer the recipients still in
    flight); the session is then unusable. Nothing else escapes
    next_event(); a method called in the wrong state raises
    LocalProtocolError (a bug in the caller).

    A transaction: send_mail() sends XFORWARD when asked to and offered
    (_xclient.py: Postfix's two commands, their refusal only noted in the
    result), ``MAIL FROM`` (SIZE=, BODY=, SMTPUTF8,
    RET=, ENVID= when offered), one ``RCPT TO`` per recipient (NOTIFY=,
    ORCPT= when DSN is offered) and DATA. With PIPELINING the whole group
    goes at once, DATA last (RFC 2920 3.1), and the replies are matched
    back in order; without it one command waits for the reply to the
    previous one, and DATA is not sent when no recipient was accepted.
    The body goes only after 354 and only when a recipient was accepted;
    a pipelined DATA that gets 354 after every RCPT was refused is answered
    with a lone ``.`` so the server ends an empty message with no
    recipients. A server left inside a transaction (MAIL accepted, no end
    of data) gets RSET in front of the next send_mail(); quit() needs none.

    A session taken from a connection cache is checked with RSET first
    (Postfix: "verify that a cached session is still usable"):
    send_mail(probe=True) puts RSET at the head of the group, in the same
    write as MAIL, RCPT and DATA when the server offers PIPELINING (RFC
    2920 allows RSET anywhere in a group), on its own otherwise. When the
    RSET is refused, or the server closes before answering it, nothing of
    the transaction counted: next_event() gives ProbeFailed instead of
    TransactionDone, with no recipient settled, and the connection is
    CLOSED without waiting for the other replies (the caller drops the
    socket without QUIT: a server that answered the pipelined DATA with
    354 never sees an end of data, so it keeps nothing). ``probing`` is
    true while that RSET's reply is owed: a caller whose read times out
    or whose write fails then knows the same (the session was stale, the
    message can go to a fresh connection).

    LMTP (RFC 2033; Postfix's lmtp(8) is its smtp(8) in this mode):
    ClientConnection(lmtp=True) sends LHLO where it would send EHLO, has
    no HELO to fall back to (a refused LHLO is HeloRejected: "refused to
    talk to me"), and after the final dot reads one reply per recipient
    the server accepted, in RCPT order: each recipient is sent, deferred
    or bounced by its own reply, "(in reply to end of DATA command)". A
    connection lost between those replies leaves the recipients already
    answered settled and the others undecided, as with SMTP.

    Before MAIL, send_mail() may decide on its own (no bytes sent, the
    TransactionDone event is ready at once): a message larger than the
    server's SIZE is bounced with 5.3.4, and SMTPUTF8 mail with non-ASCII
    addresses to a server without SMTPUTF8 with 5.6.7 (Postfix's texts).

EXAMPLE
    cc = ClientConnection(helo_name="mail.example.com")
    cc.receive_data(b"220 mx.example.net ESMTP\\r\\n")
    cc.next_event()           # Greeting(response=220 ...), .ok is True
    out = cc.ehlo()           # b"EHLO mail.example.com\\r\\n"
    cc.receive_data(b"250-mx.example.net\\r\\n250-PIPELINING\\r\\n250-SIZE 10240000\\r\\n"
                    b"250-8BITMIME\\r\\n250-DSN\\r\\n250 ENHANCEDSTATUSCODES\\r\\n")
    cc.next_event()           # EhloDone(capabilities=Capabilities(pipelining=True, size=10240000, ...))
    out = cc.send_mail("alice@example.com", ["bob@example.net", "carol@example.net"],
                       b"Subject: hi\\r\\n\\r\\n.leading dot\\r\\n", body_type="8BITMIME")
    # out == b"MAIL FROM:<alice@example.com> SIZE=29 BODY=8BITMIME\\r\\n"
    #        b"RCPT TO:<bob@example.net>\\r\\nRCPT TO:<carol@example.net>\\r\\nDATA\\r\\n"
    cc.receive_data(b"250 2.1.0 Ok\\r\\n250 2.1.5 Ok\\r\\n"
                    b"550 5.1.1 <carol@example.net>: Recipient address rejected: User unknown\\r\\n"
                    b"354 End data with <CR><LF>.<CR><LF>\\r\\n")
    cc.next_event()           # NEED_DATA: the body was queued after the 354
    out = cc.data_to_send()   # b"Subject: hi\\r\\n\\r\\n..leading dot\\r\\n.\\r\\n"
    cc.receive_data(b"250 2.0.0 Ok: queued as 4Xyz12\\r\\n")
    done = cc.next_event()    # TransactionDone(result)
    for r in done.result.recipients:
        r.status, r.dsn, r.text("mx.example.net[192.0.2.1]")
    # ("sent", "2.0.0", "250 2.0.0 Ok: queued as 4Xyz12")
    # ("bounced", "5.1.1", "host mx.example.net[192.0.2.1] said: 550 5.1.1 <carol@example.net>:
    #   Recipient address rejected: User unknown (in reply to RCPT TO command)")
    out = cc.quit()           # b"QUIT\\r\\n"; then QuitDone, or ConnectionLost

    A trio driver needs one loop (deadlines from ``cc.stage_timeout``):

        while True:
            if out := cc.data_to_send():
                await stream.send_all(out)
            event = cc.next_event()
            if event is not NEED_DATA:
                return event
            with trio.fail_after(cfg[cc.stage_timeout]):
                cc.receive_data(await stream.receive_some(65536))

    On a timeout or a lost connection, ``cc.settled`` holds the recipients
    the server already answered for good, ``cc.stage`` says what was going
    on in Postfix's words ("sending end of data -- message may be sent
    more than once").

    AUTH (RFC 4954): auth(mechanism) sends ``AUTH NAME [initial
    response]`` with a client_auth.ClientMechanism and answers each 334
    with the mechanism's next line, until a reply that is not 334 gives
    AuthDone. A challenge the mechanism cannot answer gives AuthAborted and
    closes the session (the server still waits for a line; Postfix gives
    up on the session too), as do more than 100 rounds (Postfix's limit).
    After a 235, ``authenticated`` is true and, when the connection was
    made with dummy_mail_auth (smtp_send_dummy_mail_auth), every MAIL FROM
    carries ``AUTH=<>`` (RFC 4954 5: the client does not vouch for the
    sender). Which mechanism, and whether to authenticate at all, is the
    caller's decision (client_auth.choose_mechanism).

WHAT IT DOES NOT DO
    BDAT/CHUNKING (Postfix's client does not send BDAT either), and
    the 8BITMIME to 7bit downgrade (an 8bit body goes as is).

SEE ALSO
    server.py (the other side), _client_reply.py (reply syntax),
    postfix-compat.md 4.2 (status texts), Postfix src/smtp/smtp_proto.c.
"""

from __future__ import annotations

import enum
import re
from collections import deque
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from mailsys.frozen import frozen
from mailsys.message.headers import bare_lf_or_dot

from . import _grammar as g
from ._client_reply import LINE_LIMIT, ReplyReader, Response
from .client_auth import AuthError, ClientMechanism
from ._xclient import (XFORWARD_NAME_ADDR, XforwardAttributes, xforward_commands,
                       xtext_encode)
from .errors import LocalProtocolError, RemoteProtocolError
from .events import NEED_DATA

__all__ = [
    "AuthAborted", "AuthDone", "Capabilities", "ClientConnection", "ClientState",
    "ConnectionLost", "DOT_CRLF", "EhloDone",
    "EhloRejected", "Greeting", "HeloRejected", "NEED_DATA", "QuitDone", "Rcpt",
    "ProbeFailed", "RecipientStatus", "Response", "RsetDone", "StartTlsReady", "StartTlsRefused",
    "TransactionDone", "TransactionResult", "XforwardAttributes", "encode_body", "refused_text",
    "said_text",
]

# Postfix's names for the command a reply answered ("... (in reply to X)"),
# smtp_proto.c xfer_request[]. An RSET that ends a transaction is the
# "final RSET"; the one that checks a cached session is the "RSET probe".
MAIL_FROM = "MAIL FROM command"
RCPT_TO = "RCPT TO command"
DATA = "DATA command"
END_OF_DATA = "end of DATA command"
FINAL_RSET = "final RSET command"
RSET_PROBE = "RSET probe"
QUIT = "QUIT command"


# ------------------------------------------------------------------ rendering

def said_text(peer: str, response: Response, in_reply_to: str) -> str:
    """``host mx.example.com[192.0.2.1] said: 550 5.1.1 <u@d>: ... (in reply to RCPT TO command)``.

    ``peer`` is Postfix's namaddr, ``host[address]``. Multi-line replies are
    joined with spaces, codes and all, as Postfix does (postfix-compat.md 4.2)."""
    return f"host {peer} said: {response.text} (in reply to {in_reply_to})"


def _greeting_words(greeting: Response) -> list[str]:
    """The words of a greeting after its code, as smtp_proto.c splits them."""
    text = "\n".join(greeting.lines)
    return re.sub(r"^[- \t\n]*[^- \t\n]*[- \t\n]?", "", text, count=1).split()


def says_esmtp(greeting: Response, myhostname: str = "") -> bool:
    """Whether a greeting names ESMTP, Postfix's test (smtp_proto.c
    smtp_helo()) for EHLO with smtp_always_send_ehlo = no: any word of the
    reply after the code, the first one too ("220 ESMTP ready"), unless
    that first one is our own myhostname."""
    words = _greeting_words(greeting)
    if words and myhostname and words[0].lower() == myhostname.lower():
        words = words[1:]
    return any(w.upper() == "ESMTP" for w in words)


def greeting_name(greeting: Response) -> str:
    """The name a greeting gives first after its code ("" if none): the
    word smtp_proto.c compares with $myhostname."""
    words = _greeting_words(greeting)
    return words[0] if words else ""


def refused_text(peer: str, response: Response) -> str:
    """``host X[a] refused to talk to me: 554 ...`` (a refused greeting or HELO)."""
    return f"host {peer} refused to talk to me: {response.text}"


# ------------------------------------------------------------------ body

_CRLF_DOT = b"\r\n."
# The end of data, as the last piece of every body (_stuff): a driver that
# pauses before it (delay_dotcrlf) knows it by identity.
DOT_CRLF = b".\r\n"


def encode_body(content: bytes, line_limit: int = 0) -> bytes:
    """The DATA bytes for ``content``: CRLF line ends, dot-stuffed, terminated.

    A bare LF becomes CRLF (as Postfix, whose queue stores lines, sends
    every line with CRLF), so no ``<LF>.<LF>`` can reach a lenient server;
    a line starting with ``.`` gets a second one (RFC 5321 4.5.2); the
    content ends with CRLF (added when missing) and ``.<CRLF>`` follows.
    ``line_limit`` (smtp_line_length_limit; 0 = off) breaks longer lines
    the way Postfix's smtp_text_out() does. Only C-level bytes operations
    unless a line is too long: a 100 KB body costs one regex search, about
    a hundred rfind() calls and a copy."""
    return b"".join(_stuff(*_normalize(content), line_limit))


def _normalize(content: bytes) -> tuple[bytes, bool]:
    """CRLF line ends, ending with CRLF (b"" stays b""); its length is
    the SIZE= value. And whether a line after the first may start with a
    dot (False: surely none does)."""
    if not content:
        return content, False
    # A bare LF, or a line that starts with a dot (after the first): the
    # only things that make a body need more than its final ".". One search
    # finds either, where counting LFs and CRLFs and looking for CRLF "."
    # took three passes (a third of the smtp agent's CPU at 100 KB).
    dots = bare_lf_or_dot(content) is not None
    if dots and content.count(b"\n") != content.count(b"\r\n"):
        content = content.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    return content, dots


def _stuff(content: bytes, dots: bool, line_limit: int) -> tuple[bytes, ...]:
    """Normalized content broken at line_limit, dot-stuffed and terminated
    (dots: as _normalize() said; breaking lines never starts one with a dot),
    as the pieces to send in order, DOT_CRLF last: content that needs
    no change goes as it is, not copied once more to add the end to it."""
    if not content:
        return (DOT_CRLF,)
    if line_limit:
        content = _break_long_lines(content, line_limit)
    if dots and _CRLF_DOT in content:
        content = content.replace(_CRLF_DOT, b"\r\n..")
    if content[:1] == b".":
        return (b".", content, DOT_CRLF)
    return (content, DOT_CRLF)


def _has_long_line(content: bytes, limit: int) -> bool:
    """Whether a line of content (split at CRLF) is longer than limit bytes.

    Looks only at the end of each window of limit + 2 bytes: the last CRLF
    in it ends every line that started in the window, so none of those is
    too long, and the next window starts after it; a window without CRLF is
    a line too long. A 100 KB body of short lines takes about a hundred
    C-level rfind() calls instead of a split into thousands of lines."""
    span = limit + 2
    pos, end = 0, len(content)
    while end - pos > span:
        last = content.rfind(b"\r\n", pos, pos + span)
        if last < 0:
            return True
        pos = last + 2
    return max(map(len, content[pos:].split(b"\r\n"))) > limit


def _break_long_lines(content: bytes, limit: int) -> bytes:
    """Postfix smtp_text_out(): a line longer than ``limit`` is sent as its
    first ``limit`` bytes, then CRLF, a space and the next ``limit - 1``
    bytes, and so on (the space keeps a piece from starting with a dot and
    makes it a header continuation, which does the least harm to MIME)."""
    if not _has_long_line(content, limit):
        return content
    lines = content.split(b"\r\n")
    step = limit - 1
    out = []
    for line in lines:
        if len(line) > limit:
            rest = line[limit:]
            line = b"\r\n ".join([line[:limit], *(rest[i:i + step]
                                                 for i in range(0, len(rest), step))])
        out.append(line)
    return b"\r\n".join(out)


# ------------------------------------------------------------------ data

@frozen
class Capabilities:
    """What an EHLO reply offered (all False / None after HELO).

    ``size`` is None when SIZE was not offered, 0 when offered without a
    limit. ``keywords`` holds every extension line as (KEYWORD, params)."""

    esmtp: bool = False
    pipelining: bool = False
    size: int | None = None
    starttls: bool = False
    eightbitmime: bool = False
    smtputf8: bool = False
    dsn: bool = False
    chunking: bool = False
    enhancedstatuscodes: bool = False
    auth: tuple[str, ...] = ()
    xforward: tuple[str, ...] = ()       # the XFORWARD attributes offered (NAME, ADDR, ...)
    keywords: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_ehlo(cls, response: Response) -> Capabilities:
        """Parse the EHLO reply's lines after the first (the server's name).

        As Postfix's smtp_helo(): keywords are case-insensitive, ``SIZE``
        with a non-numeric value counts as SIZE without a limit, and the
        ``AUTH=`` form of broken servers adds its mechanisms too."""
        fields: dict[str, object] = {"esmtp": True}
        auth: list[str] = []
        keywords = []
        for line in response.reply.lines[1:]:
            words = line.split()
            if not words:
                continue
            key = words[0].upper()
            keywords.append((key, " ".join(words[1:])))
            if key.startswith("AUTH="):
                words = [key[5:], *words[1:]]
                key = "AUTH"
            match key:
                case "PIPELINING":
                    fields["pipelining"] = True
                case "SIZE":
                    limit = words[1] if len(words) > 1 else ""
                    fields["size"] = int(limit) if limit.isascii() and limit.isdigit() else 0
                case "STARTTLS":
                    fields["starttls"] = True
                case "8BITMIME":
                    fields["eightbitmime"] = True
                case "SMTPUTF8":
                    fields["smtputf8"] = True
                case "DSN":
                    fields["dsn"] = True
                case "CHUNKING":
                    fields["chunking"] = True
                case "ENHANCEDSTATUSCODES":
                    fields["enhancedstatuscodes"] = True
                case "AUTH":
                    auth += [m.upper() for m in words[1:] if m and m.upper() not in auth]
                case "XFORWARD":
                    fields["xforward"] = tuple(w.upper() for w in words[1:])
        return cls(auth=tuple(auth), keywords=tuple(keywords), **fields)  # type: ignore[arg-type]

    def without(self, names: Iterable[str]) -> Capabilities:
        """These capabilities less the EHLO keywords named (lower case), as
        smtp_discard_ehlo_keywords makes the client ignore them."""
        gone = {n.upper() for n in names}
        off: dict[str, Any] = {field: False for keyword, field in _FLAGS.items()
                                  if keyword in gone}
        if "SIZE" in gone:
            off["size"] = None
        if "AUTH" in gone:
            off["auth"] = ()
        if "XFORWARD" in gone:
            off["xforward"] = ()
        keywords = tuple((k, v) for k, v in self.keywords
                         if k not in gone and not (k.startswith("AUTH=") and "AUTH" in gone))
        return dataclasses.replace(self, keywords=keywords, **off)


# EHLO keywords that are one Capabilities flag each.
_FLAGS = {"PIPELINING": "pipelining", "STARTTLS": "starttls", "8BITMIME": "eightbitmime",
          "SMTPUTF8": "smtputf8", "DSN": "dsn", "CHUNKING": "chunking",
          "ENHANCEDSTATUSCODES": "enhancedstatuscodes"}


@frozen
class Rcpt:
    """A recipient with its DSN parameters (RFC 3461), sent only when the
    server offers DSN. ``notify``: e.g. ("SUCCESS", "FAILURE") or ("NEVER",);
    ``orcpt``: the original recipient address (sent as ``rfc822;<xtext>``)."""

    address: str
    notify: tuple[str, ...] | None = None
    orcpt: str | None = None


@frozen
class RecipientStatus:
    """The final word on one recipient for this attempt.

    status: "sent", "deferred" or "bounced". ``response`` is the server
    reply that decided (None when the client decided itself: SIZE,
    SMTPUTF8), ``in_reply_to`` the command it answered."""

    address: str
    status: str
    dsn: str
    response: Response | None
    in_reply_to: str | None
    local_reason: str | None = None    # "{peer}" stands for host[address]

    def text(self, peer: str) -> str:
        """The ``(...)`` text of Postfix's delivery log line and bounce."""
        if self.response is None:
            return (self.local_reason or "").replace("{peer}", peer)
        if self.status == "sent":
            return self.response.text
        said = said_text(peer, self.response, self.in_reply_to or "")
        # smtp_trouble.c vsmtp_fill_dsn(): a reply of the wrong class where a
        # failure was expected (3xx to MAIL, 2xx to DATA) is a protocol error.
        if self.response.code // 100 not in (4, 5):
            return "Protocol error: " + said
        return said


@frozen
class TransactionResult:
    """One message's outcome, recipients in the order they were given."""

    sender: str
    recipients: tuple[RecipientStatus, ...]
    mail: Response | None = None          # reply to MAIL FROM (None: not sent)
    data: Response | None = None          # reply to DATA
    end_of_data: Response | None = None   # reply to the final "."
    # XFORWARD commands the server refused, (reply, command): Postfix logs a
    # warning for each and delivers all the same.
    xforward_refused: tuple[tuple[Response, str], ...] = ()

    @property
    def delivered(self) -> bool:
        """True when the server took the message for at least one recipient."""
        return any(r.status == "sent" for r in self.recipients)


# ------------------------------------------------------------------ events

@frozen
class Greeting:
    response: Response

    @property
    def ok(self) -> bool:
        return self.response.code // 100 == 2


@frozen
class EhloDone:
    response: Response
    capabilities: Capabilities


@frozen
class EhloRejected:
    """EHLO got a non-2xx other than 421; Postfix then tries HELO."""
    response: Response


@frozen
class HeloRejected:
    """HELO refused, or 421 to EHLO: "host X refused to talk to me: ..."."""
    response: Response


@frozen
class StartTlsReady:
    response: Response


@frozen
class StartTlsRefused:
    response: Response


@frozen
class AuthDone:
    """The reply that ended an AUTH exchange: 235 (``ok``) or a refusal."""
    response: Response

    @property
    def ok(self) -> bool:
        return self.response.code // 100 == 2


@frozen
class AuthAborted:
    """The client gave up the AUTH exchange (``reason``); the session is CLOSED."""
    reason: str


@frozen
class TransactionDone:
    result: TransactionResult


@frozen
class RsetDone:
    response: Response


@frozen
class QuitDone:
    response: Response


@frozen
class ConnectionLost:
    """The server closed while ``stage`` (Postfix's words) was going on."""
    stage: str


@frozen
class ProbeFailed:
    """send_mail(probe=True): the RSET in front was refused (``response``)
    or the server closed before answering it (None). No recipient was
    settled; the connection is CLOSED."""
    response: Response | None


ClientEvent = (Greeting | EhloDone | EhloRejected | HeloRejected | StartTlsReady
               | StartTlsRefused | AuthDone | AuthAborted | TransactionDone | RsetDone | QuitDone | ConnectionLost
               | ProbeFailed)


# ------------------------------------------------------------------ state

class ClientState(enum.Enum):
    GREETING = "GREETING"        # waiting for the banner
    HELLO = "HELLO"              # banner ok: send ehlo() or helo()
    REFUSED = "REFUSED"          # banner or HELO refused: only quit() is left
    EHLO = "EHLO"                # EHLO/HELO sent, reply awaited
    READY = "READY"              # session up, no command in flight
    STARTTLS = "STARTTLS"        # STARTTLS sent, reply awaited
    TLS_HANDSHAKE = "TLS_HANDSHAKE"  # 220 received: caller does TLS, then tls_started()
    AUTH = "AUTH"                # AUTH exchange under way
    TRANSACTION = "TRANSACTION"  # MAIL/RCPT/DATA/body replies awaited
    RSET = "RSET"                # a bare RSET awaits its reply
    QUIT = "QUIT"                # QUIT sent
    CLOSED = "CLOSED"            # QUIT answered, 421, refused greeting, EOF or protocol error


# Every command a reply can answer, with what the caller's deadline is
# while waiting for it: Postfix's stage text (smtp_proto.c xfer_states and
# smtp_connect.c / smtp_helo()) and the parameter that bounds the wait.
class _Cmd(enum.Enum):
    GREETING = ("receiving the initial server greeting", "smtp_helo_timeout")
    EHLO = ("performing the EHLO handshake", "smtp_helo_timeout")
    LHLO = ("performing the LHLO handshake", "smtp_helo_timeout")
    HELO = ("performing the HELO handshake", "smtp_helo_timeout")
    STARTTLS = ("receiving the STARTTLS response", "smtp_starttls_timeout")
    # Postfix authenticates inside smtp_helo(), under its "performing the
    # EHLO handshake" and smtp_helo_timeout (_stage() maps this one to it;
    # an Enum value of its own keeps the member distinct).
    AUTH = ("sending AUTH", "smtp_helo_timeout")
    # smtp_proto.c has two RSETs: the one that ends a transaction (ABORT,
    # "final RSET"; here it goes in front of the next send_mail(), or in
    # place of DATA for a recipient probe) and the one that checks a cached
    # session (smtp_rset(), "RSET probe").
    FINAL_RSET = ("sending final RSET", "smtp_rset_timeout")
    RSET_PROBE = ("sending RSET probe", "smtp_rset_timeout")
    MAIL = ("sending MAIL FROM", "smtp_mail_timeout")
    RCPT = ("sending RCPT TO", "smtp_rcpt_timeout")
    DATA = ("sending DATA command", "smtp_data_init_timeout")
    DOT = ("sending end of data -- message may be sent more than once", "smtp_data_done_timeout")
    # The lone "." after a 354 with no recipient accepted: Postfix is in
    # its DOT state then too and says the same (smtp_proto.c); _stage()
    # maps this one to DOT, its own value keeps the member distinct.
    DISCARD = ("sending end of data (no recipients)", "smtp_data_done_timeout")
    QUIT = ("sending QUIT", "smtp_quit_timeout")
    XFORWARD_NAME_ADDR = ("sending XFORWARD name/address", "smtp_xforward_timeout")
    XFORWARD_PROTO_HELO = ("sending XFORWARD protocol/helo_name", "smtp_xforward_timeout")


# Postfix smtp_sasl_authenticate(): "authentication protocol loop" past this.
AUTH_MAX_STEPS = 100

_PROBE_EXPECT = (_Cmd.RSET_PROBE, 0)
# Commands whose stage Postfix words as another's (see _Cmd).
_SAME_STAGE = {_Cmd.AUTH: _Cmd.EHLO, _Cmd.DISCARD: _Cmd.DOT}

_BODY_STAGE = ("sending message body", "smtp_data_xfer_timeout")
_TLS_STAGE = ("performing the TLS handshake", "smtp_starttls_timeout")
_IDLE_STAGE = ("idle", "smtp_helo_timeout")

# Which state may send which command (the only place the rules live).
_ALLOWED = {
    "ehlo": (ClientState.HELLO,),
    "helo": (ClientState.HELLO,),
    "starttls": (ClientState.READY,),
    "auth": (ClientState.READY,),
    "send_mail": (ClientState.READY,),
    "rset": (ClientState.READY,),
    "quit": (ClientState.HELLO, ClientState.READY, ClientState.REFUSED),
}

# Text that must never reach the command line: a CR, LF or NUL would end
# or forge a command (the client's own smuggling risk). A HELO name is one
# word; an address may hold blanks inside a quoted local part.
_BAD_ADDRESS_RE = re.compile(r"[\x00\r\n]")
_BAD_HELO_RE = re.compile(r"[\x00-\x20\x7f<>]")
_xtext = xtext_encode


class _Txn:
    """The transaction in flight: what was asked and what came back so far."""

    __slots__ = ("sender", "rcpts", "body", "mail", "data", "dot", "accepted", "settled",
                 "mail_failed", "xforward", "xforward_refused", "rcpt_only", "data_only")

    def __init__(self, sender: str, rcpts: tuple[Rcpt, ...], rcpt_only: bool = False,
                 data_only: bool = False) -> None:
        self.sender = sender
        self.rcpts = rcpts
        self.rcpt_only = rcpt_only                     # a verification probe: no DATA
        self.data_only = data_only                     # a verification probe: no content
        self.body: tuple[bytes, ...] = ()              # encoded (_stuff), sent after 354
        self.mail: Response | None = None
        self.data: Response | None = None
        self.dot: Response | None = None
        self.accepted: list[int] = []                  # RCPTs answered 2xx, in order
        self.settled: dict[int, RecipientStatus] = {}  # final per-recipient answers
        self.mail_failed = False
        self.xforward: list[str] = []                  # what each XFORWARD sent answers, in order
        self.xforward_refused: list[tuple[Response, str]] = []

    def settle(self, i: int, response: Response, in_reply_to: str) -> None:
        """Recipient i is decided by ``response`` (the first decision stands)."""
        if i in self.settled:
            return
        klass = response.code // 100
        if klass == 2 and (in_reply_to == END_OF_DATA
                           or self.rcpt_only and in_reply_to == RCPT_TO):
            status, dsn = "sent", response.dsn
        elif klass == 3 and self.data_only and in_reply_to == DATA:
            status, dsn = "sent", "2.0.0"          # Postfix: "deliverable (354 ...)", 2.0.0
        elif klass in (4, 5):
            status, dsn = ("deferred" if klass == 4 else "bounced"), response.dsn
        else:
            # A reply of the wrong class where a failure is handled (3xx to
            # MAIL, 2xx to DATA): smtp_trouble.c makes it a protocol error, 5.5.0.
            status, dsn = "bounced", "5.5.0"
        self.settled[i] = RecipientStatus(self.rcpts[i].address, status, dsn, response,
                                          in_reply_to)

    def settle_all(self, response: Response, in_reply_to: str) -> None:
        for i in range(len(self.rcpts)):
            self.settle(i, response, in_reply_to)

    def settle_locally(self, dsn: str, reason: str) -> None:
        """The client itself decides for every recipient (SIZE, SMTPUTF8)."""
        status = "deferred" if dsn.startswith("4") else "bounced"
        for i, r in enumerate(self.rcpts):
            self.settled[i] = RecipientStatus(r.address, status, dsn, None, None, reason)

    def result(self) -> TransactionResult:
        return TransactionResult(self.sender,
                                 tuple(self.settled[i] for i in range(len(self.rcpts))),
                                 self.mail, self.data, self.dot, tuple(self.xforward_refused))


class ClientConnection:
    """One SMTP session, client side. Not thread-safe; one per connection.

    helo_name: the EHLO/HELO argument (smtp_helo_name, default $myhostname).
    pipelining: use PIPELINING when offered (False: never, as a
    smtp_discard_ehlo_keywords entry would do). line_limit: the longest
    reply line kept (line_length_limit). body_line_limit: break longer body
    lines (smtp_line_length_limit, Postfix default 998; 0 = send them as
    they are). tls_active: the connection is already encrypted (smtps
    wrapper mode); starttls() is then refused. lmtp: speak LMTP (RFC
    2033) instead: LHLO, and one reply per accepted recipient after the
    final dot. dummy_mail_auth: add ``AUTH=<>`` to MAIL FROM once
    authenticated (smtp_send_dummy_mail_auth). discard: EHLO keywords to
    ignore in the server's reply (smtp_discard_ehlo_keywords), lower case.
    reply_filter: smtp_reply_filter, a function given each reply line as
    received that returns the line to read instead (None: keep it)."""

    def __init__(self, helo_name: str, *, pipelining: bool = True,
                 line_limit: int = LINE_LIMIT, body_line_limit: int = 0,
                 tls_active: bool = False, lmtp: bool = False,
                 dummy_mail_auth: bool = False, discard: Iterable[str] = (),
                 reply_filter: Callable[[str], str | None] | None = None) -> None:
        if not helo_name or _BAD_HELO_RE.search(helo_name):
            raise LocalProtocolError(f"bad HELO name {helo_name!r}")
        if line_limit < 64:
            raise LocalProtocolError("line_limit below 64 cannot hold an SMTP reply")
        if body_line_limit and body_line_limit < 2:
            raise LocalProtocolError("body_line_limit must be 0 (off) or at least 2")
        self.body_line_limit = body_line_limit
        self.helo_name = helo_name
        self.use_pipelining = pipelining
        self.tls_active = tls_active
        self.lmtp = lmtp
        self.dummy_mail_auth = dummy_mail_auth
        self.discard = frozenset(w.lower() for w in discard)
        self.authenticated = False
        self._mechanism: ClientMechanism | None = None
        self.state = ClientState.GREETING
        self.capabilities = Capabilities()
        self._line_limit = line_limit
        self._reply_filter = reply_filter
        self._reader = ReplyReader(line_limit, reply_filter)
        self._eof = False
        self._lost: ConnectionLost | ProbeFailed | None = None
        self._out: list[bytes] = []
        self._events: deque[ClientEvent] = deque()
        self._expect: deque[tuple[_Cmd, int]] = deque()   # commands sent, replies owed
        self._todo: deque[tuple[bytes, _Cmd, int]] = deque()  # not yet sent (no PIPELINING)
        self._txn: _Txn | None = None
        self._body_pending = False       # the body is in the outbox, not yet taken
        self._in_txn = False             # the server may still hold a MAIL transaction
        self._expect.append((_Cmd.GREETING, 0))

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes | bytearray) -> None:
        """Add bytes from the server; b"" means it closed the connection."""
        if self._eof:
            if data:
                raise LocalProtocolError("data received after end of file")
            return
        if not data:
            self._eof = True
            return
        if self.state is ClientState.TLS_HANDSHAKE:
            raise LocalProtocolError("plaintext received during the TLS handshake")
        self._reader.feed(data)

    def next_event(self) -> ClientEvent | object:
        """The next event, or NEED_DATA. Raises RemoteProtocolError, nothing else."""
        while not self._events:
            if not self._expect:
                # Nothing is owed: unsolicited bytes (a 421 before an idle
                # timeout, say) wait and answer the next command, as in Postfix.
                return self._end() if self._eof else NEED_DATA
            try:
                response = self._reader.next_reply()
            except RemoteProtocolError:
                self._close()
                raise
            if response is None:
                return self._end() if self._eof else NEED_DATA
            self._dispatch(response)
        return self._events.popleft()

    def _end(self) -> ConnectionLost | ProbeFailed:
        """The server closed: one ConnectionLost (ProbeFailed while the probe's
        reply was owed), the same one on every later call."""
        if self._lost is None:
            if self.probing:
                self._txn = None
                self._lost = ProbeFailed(None)
            else:
                self._lost = ConnectionLost(self.stage)
            self._close()
        return self._lost

    # ----------------------------------------------------------------- output

    def data_to_send(self) -> bytes:
        """Everything queued for the server, in order; b"" when nothing is."""
        out = self.data_parts()
        if not out:
            return b""
        return b"".join(out) if len(out) > 1 else out[0]

    def data_parts(self) -> list[bytes]:
        """data_to_send() as the pieces it joins, in order: a message's
        content comes as it was given (DOT_CRLF apart), not copied."""
        out, self._out = self._out, []
        self._body_pending = False
        return out

    @property
    def stage(self) -> str:
        """What is going on, in Postfix's words, for "lost connection with X while ..."."""
        return self._stage()[0]

    @property
    def stage_timeout(self) -> str:
        """The Postfix parameter that bounds the current wait (smtp_rcpt_timeout, ...)."""
        return self._stage()[1]

    @property
    def stage_info(self) -> tuple[str, str]:
        """(stage, stage_timeout) at once, for a driver that needs both."""
        return self._stage()

    def _stage(self) -> tuple[str, str]:
        if self._body_pending:
            return _BODY_STAGE
        if self.state is ClientState.TLS_HANDSHAKE:
            return _TLS_STAGE
        if self._expect:
            cmd = self._expect[0][0]
            return _SAME_STAGE.get(cmd, cmd).value
        if self._todo:
            return _SAME_STAGE.get(self._todo[0][1], self._todo[0][1]).value
        return _IDLE_STAGE

    @property
    def closed(self) -> bool:
        return self.state is ClientState.CLOSED

    @property
    def unread(self) -> int:
        """Bytes the server sent that no reply owed has taken yet (after
        STARTTLS and EHLO: what a server answered to commands we never
        sent, smtp_tls_block_early_mail_reply)."""
        return self._reader.buffered

    @property
    def replies_owed(self) -> int:
        """Replies to commands already sent that have not come yet; a driver
        that keeps one deadline per request and its response
        (smtp_per_request_deadline) starts a new one when this changes."""
        return len(self._expect)

    @property
    def in_transaction(self) -> bool:
        """The server may hold a MAIL transaction: the next send_mail() starts with RSET."""
        return self._in_txn

    @property
    def probing(self) -> bool:
        """send_mail(probe=True)'s RSET is sent and its reply still owed."""
        return self._txn is not None and bool(self._expect) and self._expect[0] == _PROBE_EXPECT

    @property
    def settled(self) -> tuple[RecipientStatus, ...]:
        """Recipients of the transaction in flight that already have a final answer."""
        if self._txn is None:
            return ()
        return tuple(self._txn.settled[i] for i in sorted(self._txn.settled))

    # --------------------------------------------------------------- commands

    def _check(self, method: str) -> None:
        if self.state not in _ALLOWED[method]:
            raise LocalProtocolError(f"can't {method}() in state {self.state.value}")

    def _send(self, line: str, cmd: _Cmd, index: int = 0) -> None:
        self._out.append(line.encode("utf-8", "surrogateescape") + b"\r\n")
        self._expect.append((cmd, index))

    def ehlo(self) -> bytes:
        """EHLO, or LHLO in LMTP mode (RFC 2033 4.1)."""
        self._check("ehlo")
        self.state = ClientState.EHLO
        if self.lmtp:
            self._send(f"LHLO {self.helo_name}", _Cmd.LHLO)
        else:
            self._send(f"EHLO {self.helo_name}", _Cmd.EHLO)
        return self.data_to_send()

    def helo(self) -> bytes:
        self._check("helo")
        if self.lmtp:
            raise LocalProtocolError("LMTP has no HELO (RFC 2033 4.1)")
        self.state = ClientState.EHLO
        self._send(f"HELO {self.helo_name}", _Cmd.HELO)
        return self.data_to_send()

    def starttls(self) -> bytes:
        self._check("starttls")
        if self.tls_active:
            raise LocalProtocolError("TLS is already active")
        if not self.capabilities.starttls:
            raise LocalProtocolError("the server did not offer STARTTLS")
        self.state = ClientState.STARTTLS
        self._send("STARTTLS", _Cmd.STARTTLS)
        return self.data_to_send()

    def tls_started(self) -> None:
        """The TLS handshake after 220 succeeded: forget everything learnt in
        plaintext (RFC 3207 4.2) and start over with ehlo()."""
        if self.state is not ClientState.TLS_HANDSHAKE:
            raise LocalProtocolError("tls_started() without a 220 to STARTTLS")
        self.tls_active = True
        self.capabilities = Capabilities()
        self._in_txn = False
        # Plaintext the server (or a man in the middle) sent after its 220
        # must never be read as a reply inside TLS (CVE-2011-0411, client side).
        self._reader = ReplyReader(self._line_limit, self._reply_filter)
        self.state = ClientState.HELLO

    def auth(self, mechanism: ClientMechanism) -> bytes:
        """AUTH with ``mechanism`` (and its initial response, when it has one)."""
        self._check("auth")
        if not self.capabilities.auth:
            raise LocalProtocolError("the server did not offer AUTH")
        self.state = ClientState.AUTH
        self._mechanism = mechanism
        first = mechanism.initial()
        self._send(f"AUTH {mechanism.name} {first}" if first is not None
                   else f"AUTH {mechanism.name}", _Cmd.AUTH)
        return self.data_to_send()

    def rset(self) -> bytes:
        self._check("rset")
        self.state = ClientState.RSET
        # A lone RSET is Postfix's smtp_rset(), the RSET probe (smtp_proto.c).
        self._send("RSET", _Cmd.RSET_PROBE)
        return self.data_to_send()

    def quit(self) -> bytes:
        self._check("quit")
        self.state = ClientState.QUIT
        self._send("QUIT", _Cmd.QUIT)
        return self.data_to_send()

    def send_mail(self, sender: str, recipients: Iterable[str | Rcpt], body: bytes, *,
                  size: int | None = None, body_type: str | None = None,
                  smtputf8: bool = False, ret: str | None = None,
                  envid: str | None = None, probe: bool = False,
                  xforward: XforwardAttributes | None = None,
                  utf8_addresses: bool | None = None, rcpt_only: bool = False,
                  data_only: bool = False) -> bytes:
        """Start one message; returns the bytes to write now.

        sender: the envelope sender, "" for the null sender. recipients:
        addresses or Rcpt. body: the message content (headers and body; LF
        or CRLF line ends; dot-stuffing is done here). size: SIZE= value,
        by default the content size with CRLF line ends. body_type:
        "7BIT" / "8BITMIME" (sent as BODY= when 8BITMIME is offered).
        smtputf8: the message needs SMTPUTF8 (sent when offered). ret
        ("FULL"/"HDRS") and envid: DSN parameters, sent when DSN is offered.
        probe: the session comes from a cache; RSET goes first and its
        failure gives ProbeFailed (see the module description). xforward:
        the original client's attributes, sent with XFORWARD before MAIL
        when the server offers XFORWARD (smtp_send_xforward_command; a
        refusal does not stop the delivery). utf8_addresses: whether the
        message's addresses need SMTPUTF8, when the caller knows better than
        the addresses given (they were rewritten after the queue: Postfix
        decides on the queued ones). rcpt_only: an address verification
        probe (Postfix smtp_address_verify_target = rcpt): RSET takes the
        place of DATA, and a recipient the server accepts counts as sent
        with that reply. data_only: a probe that stops at DATA instead
        (smtp_address_verify_target = data): a 354 makes every accepted
        recipient sent with that reply (2.0.0), and the connection is
        CLOSED without an end of data, so the server keeps nothing (the
        caller hangs up without QUIT, as Postfix 3.7 does, seen live).
        Nothing is sent when the client decides by itself (SIZE, SMTPUTF8).
        """
        self._check("send_mail")
        rcpts = tuple(r if isinstance(r, Rcpt) else Rcpt(r) for r in recipients)
        if not rcpts:
            raise LocalProtocolError("send_mail() needs at least one recipient")
        for address in (sender, *(r.address for r in rcpts)):
            if _BAD_ADDRESS_RE.search(address):
                raise LocalProtocolError(f"address {address!r} cannot go on a command line")
        if not all(r.address for r in rcpts):
            raise LocalProtocolError("a recipient address cannot be empty")
        if body_type is not None and body_type.upper() not in ("7BIT", "8BITMIME"):
            raise LocalProtocolError(f"body_type must be 7BIT or 8BITMIME, not {body_type!r}")
        if ret is not None and not g.RET_RE.match(ret):
            raise LocalProtocolError(f"RET must be FULL or HDRS, not {ret!r}")
        for r in rcpts:
            if r.notify is not None and not g.NOTIFY_RE.match(",".join(r.notify)):
                raise LocalProtocolError(f"bad NOTIFY {r.notify!r}")
        caps = self.capabilities
        txn = _Txn(sender, rcpts, rcpt_only and not data_only, data_only)
        self._txn = txn
        self.state = ClientState.TRANSACTION
        # One normalizing pass gives both the SIZE= value and the body.
        body, dots = _normalize(body)
        if size is None:
            size = len(body)

        # Local decisions first, as Postfix's smtp_xfer() makes them.
        if caps.size and size > caps.size:
            txn.settle_locally("5.3.4", f"message size {size} exceeds size limit {caps.size}"
                               " of server {peer}")
            self._finish()
            return self.data_to_send()
        if utf8_addresses is None:
            utf8_addresses = not all(a.isascii() for a in (sender, *(r.address for r in rcpts)))
        if smtputf8 and not caps.smtputf8 and utf8_addresses:
            txn.settle_locally("5.6.7", "SMTPUTF8 is required, but was not offered by host {peer}")
            self._finish()
            return self.data_to_send()

        txn.body = _stuff(body, dots, self.body_line_limit)
        mail = f"MAIL FROM:<{sender}>"
        if caps.size is not None:
            mail += f" SIZE={size}"
        if body_type is not None and caps.eightbitmime:
            mail += f" BODY={body_type.upper()}"
        if caps.dsn:
            if envid:
                mail += f" ENVID={_xtext(envid)}"
            if ret:
                mail += f" RET={ret.upper()}"
        if smtputf8 and caps.smtputf8:
            mail += " SMTPUTF8"
        if self.dummy_mail_auth and self.authenticated:
            mail += " AUTH=<>"
        commands: list[tuple[str, _Cmd, int]] = []
        if probe:
            commands.append(("RSET", _Cmd.RSET_PROBE, 0))    # also ends a held transaction
        elif self._in_txn:
            commands.append(("RSET", _Cmd.FINAL_RSET, 0))
        if xforward is not None and caps.xforward:
            for line, what in xforward_commands(xforward, caps.xforward):
                cmd = _Cmd.XFORWARD_NAME_ADDR if what == XFORWARD_NAME_ADDR \
                    else _Cmd.XFORWARD_PROTO_HELO
                commands.append((line, cmd, len(txn.xforward)))
                txn.xforward.append(what)
        commands.append((mail, _Cmd.MAIL, 0))
        for i, r in enumerate(rcpts):
            rcpt = f"RCPT TO:<{r.address}>"
            if caps.dsn:                # in Postfix's order: ORCPT, then NOTIFY
                if r.orcpt:
                    rcpt += f" ORCPT=rfc822;{_xtext(r.orcpt)}"
                if r.notify:
                    rcpt += " NOTIFY=" + ",".join(n.upper() for n in r.notify)
            commands.append((rcpt, _Cmd.RCPT, i))
        commands.append(("RSET", _Cmd.FINAL_RSET, 0) if txn.rcpt_only else ("DATA", _Cmd.DATA, 0))
        if caps.pipelining and self.use_pipelining:
            for line, cmd, i in commands:
                self._send(line, cmd, i)
        else:
            self._todo.extend((line.encode("utf-8", "surrogateescape") + b"\r\n", cmd, i) for line, cmd, i in commands)
            self._next_command()
        return self.data_to_send()

    def _next_command(self) -> None:
        """Without PIPELINING: send the next command once nothing is owed."""
        txn = self._txn
        while self._todo and not self._expect:
            line, cmd, i = self._todo.popleft()
            if txn is not None and cmd is _Cmd.DATA and not txn.accepted:
                # Every recipient refused: no DATA; the server keeps the
                # MAIL transaction, so the next send_mail() sends RSET.
                continue
            self._out.append(line)
            self._expect.append((cmd, i))

    # --------------------------------------------------------------- replies

    def _dispatch(self, response: Response) -> None:
        cmd, index = self._expect.popleft()
        ok = response.code // 100 == 2
        match cmd:
            case _Cmd.GREETING:
                self._events.append(Greeting(response))
                self.state = ClientState.HELLO if ok else ClientState.REFUSED
                self._closing(response)
            case _Cmd.EHLO:
                if ok:
                    self._hello_done(response, Capabilities.from_ehlo(response))
                elif response.closes:
                    self._events.append(HeloRejected(response))
                    self._close()
                else:
                    self.state = ClientState.HELLO
                    self._events.append(EhloRejected(response))
            case _Cmd.HELO | _Cmd.LHLO:
                # A refused LHLO ends the session as a refused HELO does:
                # LMTP has nothing to fall back to (Postfix smtp_helo()).
                if ok:
                    self._hello_done(response, Capabilities.from_ehlo(response)
                                     if cmd is _Cmd.LHLO else Capabilities())
                else:
                    self._events.append(HeloRejected(response))
                    self.state = ClientState.REFUSED
                    self._closing(response)
            case _Cmd.STARTTLS:
                if ok:
                    self.state = ClientState.TLS_HANDSHAKE
                    self._events.append(StartTlsReady(response))
                else:
                    self.state = ClientState.READY
                    self._events.append(StartTlsRefused(response))
                    self._closing(response)
            case _Cmd.AUTH:
                self._auth_reply(response, index)
            case _Cmd.QUIT:
                self._events.append(QuitDone(response))
                self._close()
            case _Cmd.FINAL_RSET | _Cmd.RSET_PROBE if self._txn is None:
                self._events.append(RsetDone(response))
                if ok:
                    self._in_txn = False
                self.state = ClientState.READY
                self._closing(response)
            case _:
                self._transaction_reply(cmd, index, response)

    def _auth_reply(self, response: Response, step: int) -> None:
        mechanism = self._mechanism
        assert mechanism is not None
        if response.code == 334 and not response.closes:
            if step >= AUTH_MAX_STEPS:
                self._auth_abort("authentication protocol loop")
                return
            challenge = response.lines[-1][4:] if response.lines else ""
            try:
                answer = mechanism.respond(challenge)
            except AuthError as e:
                self._auth_abort(str(e))
                return
            self._send(answer, _Cmd.AUTH, step + 1)
            return
        self._mechanism = None
        self.state = ClientState.READY
        if response.code // 100 == 2:
            self.authenticated = True
        self._events.append(AuthDone(response))
        self._closing(response)

    def _auth_abort(self, reason: str) -> None:
        self._mechanism = None
        self._events.append(AuthAborted(reason))
        self._close()

    def _hello_done(self, response: Response, caps: Capabilities) -> None:
        if self.discard:
            caps = caps.without(self.discard)
        self.capabilities = caps
        self.state = ClientState.READY
        self._events.append(EhloDone(response, caps))

    def _closing(self, response: Response) -> None:
        if response.closes:
            self._close()

    def _transaction_reply(self, cmd: _Cmd, index: int, response: Response) -> None:
        txn = self._txn
        assert txn is not None
        klass = response.code // 100
        match cmd:
            case _Cmd.FINAL_RSET | _Cmd.RSET_PROBE:
                if klass == 2:
                    self._in_txn = False
                elif cmd is _Cmd.RSET_PROBE:
                    # The cached session is not usable: nothing counted, and
                    # the replies still owed are not worth waiting for.
                    self._txn = None
                    self._close()
                    self._events.append(ProbeFailed(response))
                    return
            case _Cmd.XFORWARD_NAME_ADDR | _Cmd.XFORWARD_PROTO_HELO:
                if klass != 2:
                    txn.xforward_refused.append((response, txn.xforward[index]))
            case _Cmd.MAIL:
                txn.mail = response
                if klass == 2:
                    self._in_txn = True
                else:
                    txn.mail_failed = True
                    txn.settle_all(response, MAIL_FROM)
                    self._todo.clear()     # no RCPT or DATA without a sender
            case _Cmd.RCPT:
                if txn.mail_failed:
                    pass                   # a pipelined 503: MAIL's reply already decided
                elif klass == 2:
                    txn.accepted.append(index)
                    if txn.rcpt_only:
                        txn.settle(index, response, RCPT_TO)
                else:
                    txn.settle(index, response, RCPT_TO)
            case _Cmd.DATA:
                txn.data = response
                if klass == 3 and txn.data_only and txn.accepted and not txn.mail_failed:
                    for i in txn.accepted:
                        txn.settle(i, response, DATA)
                    self._finish()
                    self._close()          # the server waits for content that never comes
                    return
                if klass == 3:
                    if txn.accepted and not txn.mail_failed:
                        self._out.extend(txn.body)
                        self._body_pending = True
                        if self.lmtp:
                            # RFC 2033 4.2: one reply per accepted RCPT,
                            # in the order the RCPTs were accepted.
                            self._expect.extend((_Cmd.DOT, i) for i in txn.accepted)
                        else:
                            self._expect.append((_Cmd.DOT, 0))
                    else:
                        # RFC 2920 3.1 says a server must refuse this DATA; one
                        # that does not gets an empty message with no recipients.
                        self._out.append(DOT_CRLF)
                        self._expect.append((_Cmd.DISCARD, 0))
                elif txn.accepted and not txn.mail_failed:
                    for i in txn.accepted:
                        txn.settle(i, response, DATA)
                # else: 554 5.5.1 / 503 5.5.1 "no valid recipients" - expected.
            case _Cmd.DOT:
                txn.dot = response
                self._in_txn = False
                if self.lmtp:
                    txn.settle(index, response, END_OF_DATA)
                else:
                    for i in txn.accepted:
                        txn.settle(i, response, END_OF_DATA)
            case _Cmd.DISCARD:
                self._in_txn = False
        if response.closes:
            # 421: the server is leaving; what it has not answered is
            # deferred with this reply, and no more replies will come.
            in_reply_to = {_Cmd.FINAL_RSET: FINAL_RSET, _Cmd.MAIL: MAIL_FROM, _Cmd.RCPT: RCPT_TO,
                           _Cmd.DATA: DATA, _Cmd.DOT: END_OF_DATA}.get(cmd, END_OF_DATA)
            if cmd in (_Cmd.XFORWARD_NAME_ADDR, _Cmd.XFORWARD_PROTO_HELO):
                in_reply_to = txn.xforward[index]
            txn.settle_all(response, in_reply_to)
            self._expect.clear()
            self._todo.clear()
            self._finish()
            self._close()
            return
        self._next_command()
        if not self._expect and not self._todo:
            self._finish()

    def _finish(self) -> None:
        # Every recipient is settled by now: refused by MAIL or RCPT, or
        # answered by DATA or end of DATA, or deferred by a 421.
        txn = self._txn
        assert txn is not None
        self._events.append(TransactionDone(txn.result()))
        self._txn = None
        if self.state is ClientState.TRANSACTION:
            self.state = ClientState.READY

    def _close(self) -> None:
        self.state = ClientState.CLOSED
        self._expect.clear()
        self._todo.clear()
