"""events - what ServerConnection.next_event() hands to the caller.

Each event is a frozen, slotted dataclass; don't subclass them. An event in
REPLY_OWED needs an answer before the connection yields anything else
(next_event() returns PAUSED until then): the caller decides (policy) and
sends a Reply, or sends ``conn.default_reply()``, the canned Postfix answer.
The other events (DataChunk, Bdat, ConnectionClosed) are information only.

Order for one message over DATA:  DataStart -> 354 -> DataChunk* -> EndOfData
(or DataRejected when the core itself refuses the content: too big, bare LF).
Over BDAT, per chunk:  Bdat -> DataChunk* -> EndOfChunk (not LAST) or
EndOfData (LAST).
"""

from __future__ import annotations


from mailsys.frozen import frozen

from .replies import Reply


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA = _Sentinel("NEED_DATA")   # feed more bytes with receive_data()
PAUSED = _Sentinel("PAUSED")         # a reply is owed (or TLS is being set up)

Params = tuple[tuple[str, "str | None"], ...]


@frozen
class Helo:
    """HELO or EHLO. ``name`` is the argument as given (restrictions judge it)."""
    name: str
    extended: bool


@frozen
class MailFrom:
    """MAIL FROM. ``address`` is "" for the null sender ``<>``; source routes
    are already stripped. ``params`` keeps every parameter as sent (name
    upper-cased), the typed fields are the ones the core understood."""
    address: str
    raw: str
    params: Params = ()
    size: int | None = None
    body: str | None = None          # 7BIT or 8BITMIME
    smtputf8: bool = False
    ret: str | None = None           # FULL, HDRS
    envid: str | None = None         # xtext-decoded
    auth: str | None = None          # AUTH= as sent (printable), None for absent or AUTH=<>
    verp: str | None = None          # XVERP's two delimiters (default_verp_delimiters for XVERP)


@frozen
class RcptTo:
    """RCPT TO. ``notify`` is None when not given; ``orcpt`` is (type, address)."""
    address: str
    raw: str
    params: Params = ()
    notify: tuple[str, ...] | None = None
    orcpt: tuple[str, str] | None = None

    @property
    def dsn_orcpt(self) -> str:
        """The original recipient kept for DSN, "type;address": ORCPT as
        given, else "rfc822;" and the address as received, which Postfix's
        smtpd keeps for every recipient (postcat shows "dsn_orig_rcpt=
        rfc822;User@Example.NET" for RCPT TO:<User@Example.NET>)."""
        if self.orcpt is not None:
            return f"{self.orcpt[0]};{self.orcpt[1]}"
        return f"rfc822;{self.address}"


@frozen
class DataStart:
    """DATA with at least one accepted recipient; the default answer is 354."""


@frozen
class DataChunk:
    """Message content: dot-unstuffed, CRLF line ends (bare LF made CRLF when
    smtpd_forbid_bare_newline = normalize). Never carries a reply."""
    data: bytes


@frozen
class EndOfData:
    """The message is complete (``.`` line, or the BDAT LAST chunk). ``size``
    is the number of content bytes delivered in DataChunks; after BDAT it is
    counted as Postfix does for its reply, each line with a CRLF (a bare LF
    or a missing last line end counts as one). The policy answers, normally
    with replies.queued(qid) / replies.bdat_queued(size, qid)."""
    size: int
    bare_lf: bool = False            # a bare LF was seen (Postfix 3.9 logs notes=bare_lf)


@frozen
class DataRejected:
    """The core refused the content after reading it to the end; ``reply`` is
    the default answer and any DataChunks of this message must be discarded.
    ``reason`` is for the log: "message file too big", "bare <LF> received"."""
    reply: Reply
    reason: str
    size: int


@frozen
class Bdat:
    """A BDAT chunk of ``size`` bytes starts; its bytes follow as DataChunks."""
    size: int
    last: bool


@frozen
class EndOfChunk:
    """A BDAT chunk that is not LAST was read; default ``250 2.0.0 Ok: N bytes``."""
    size: int
    total: int


@frozen
class Rset:
    pass


@frozen
class Noop:
    pass


@frozen
class Quit:
    pass


@frozen
class Vrfy:
    """VRFY. ``argument`` is what the 252 repeats (the words joined by one
    space); ``address`` the one address in it in internal form (Postfix
    extract_addr()), the recipient the restrictions look at, or None when
    it holds none the resolver takes. That refusal, "501 5.1.3 Bad
    recipient address syntax", is the policy's to give (the default
    reply): Postfix 3.7's vrfy_cmd() counts the recipient rate and asks the
    milters first (a client over its rate gets 450 whatever it sent)."""
    argument: str
    address: str | None = ""


@frozen
class Etrn:
    domain: str


@frozen
class StartTls:
    """STARTTLS; after the 220 is sent, call conn.start_tls_done() once the
    handshake is over (pipelined plaintext has already been thrown away)."""


@frozen
class Auth:
    """AUTH. ``initial_response`` is the decoded RFC 4954 initial response
    (b"" for ``=``), None when absent. Answer with replies.auth_challenge(),
    AUTH_OK, auth_failed(...) or auth_temporary(...)."""
    mechanism: str
    initial_response: bytes | None


@frozen
class AuthResponse:
    """The client's (base64-decoded) answer to the last 334 challenge."""
    data: bytes


@frozen
class Xclient:
    """XCLIENT from an authorized proxy (smtpd_authorized_xclient_hosts).
    ``attributes``: (NAME, value) pairs, validated and normalized by the
    core (_xclient.py): unavailable names and addresses are "unknown",
    an unavailable HELO or LOGIN is "". The session restarts: the answer is
    a new greeting (normally replies.greeting(banner)); the core then
    forgets HELO (unless HELO was given), AUTH (unless LOGIN was given)
    and any transaction, as Postfix does."""
    attributes: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        for key, value in reversed(self.attributes):
            if key == name:
                return value
        return None


@frozen
class Xforward:
    """XFORWARD from an authorized content filter (smtpd_authorized_xforward_hosts):
    the original client of the next message, as (NAME, value) pairs
    normalized by the core (_xclient.py). Default answer ``250 2.0.0 Ok``."""
    attributes: tuple[tuple[str, str], ...]


@frozen
class ConnectionClosed:
    """The client closed its side (receive_data(b"") and nothing left to read)."""


Event = (Helo | MailFrom | RcptTo | DataStart | DataChunk | EndOfData | DataRejected | Bdat
         | EndOfChunk | Rset | Noop | Quit | Vrfy | Etrn | StartTls | Auth
         | AuthResponse | Xclient | Xforward | ConnectionClosed)

REPLY_OWED: tuple[type, ...] = (Helo, MailFrom, RcptTo, DataStart, EndOfData, DataRejected,
                                EndOfChunk, Rset, Noop, Quit, Vrfy, Etrn, StartTls,
                                Auth, AuthResponse, Xclient, Xforward)
