"""sendmail - the Sendmail-compatible local submission command (Postfix sendmail(1)).

SYNOPSIS
    mailsys sendmail [-t] [-i] [-oi] [-f sender] [-F fullname] [-N dsn]
                     [-R ret] [-V envid] [-B body_type] [recipient ...]

DESCRIPTION
    Reads one message from standard input and submits it to the cleanup
    service ($queue_directory/private/cleanup) of the running mail system,
    as protocol "cleanup" with origin "sendmail": the rewrite context is
    local, so cleanup adds "Received: by host (mailsys, from userid N)"
    and whatever Message-Id, Date and From headers are missing. The
    command returns once the message is durably queued.

    -f sender    the envelope sender ("" or <> for the null sender); default
                 the login name @ $myorigin. -r is the same (obsolete).
    -F fullname  the phrase of an added From: header; without -F, $NAME or
                 the user's GECOS full name, as Postfix's sendmail takes it.
    -t           take recipients from the To:, Cc: and Bcc: headers (the
                 Resent- ones when the message has any Resent- header), in
                 addition to those on the command line, and remove Bcc:.
    -i, -oi      a line with a single "." does not end the message
                 (without them it does, as in Sendmail).
    -N, -R, -V   DSN NOTIFY (never, or success,delay,failure), RET
                 (full, hdrs) and ENVID.
    -XV, -XVxy   VERP: each recipient gets the mail from its own sender,
                 owner+user=domain@origin, with $default_verp_delimiters or
                 the two given (mailsys.message.verp).
    -B type      7BIT or 8BITMIME.
    -C dir       another configuration directory.
    Other Sendmail options (-o*, -v, -m, -n, -x, -U, -G, -L, -O, -X,
    -h, -p, -c, -e) are accepted and ignored, as Postfix's sendmail does.
    Addresses without a domain get @$myorigin (append_at_myorigin).

    Lines at the very start of the input that read "From " after any
    number of ">" (mbox and UUCP envelope lines) are dropped, as Postfix's
    sendmail drops them; the first other line ends that, and a last line
    with no line end or one of line_length_limit characters is kept.

    Line ends (sendmail_fix_line_endings, as Postfix's sendmail): always
    (the default) removes every CR before each LF, so CRLF and LF input
    are the same message; strict does so only when the first input line
    (a leading "From " line included) ends in CRLF; never keeps each CR
    as data, so the line "x<CR>" is stored as x<CR> with its own CRLF
    after it. Without -i a line "." ends the message after that: with
    the CRs kept, ".<CR>" is not such a line. Any other value is
    "fatal: invalid sendmail_fix_line_endings value: V", exit 75.

    -bs          speak SMTP on standard input and output instead
                 (mailsys.cli.sendmail_bs); each message is queued as above.

    Queue modes, carried out by postqueue as Postfix's sendmail executes it:
    -bp lists the queue (mailq), -q flushes it (postqueue -f), -qRsite
    flushes the mail for one site (postqueue -s site); -qINTERVAL (a
    Sendmail daemon's queue run interval) is accepted and ignored.

    -bi (and -I) builds the alias tables of $alias_database, as newaliases
    does (mailsys.cli.postalias).

    -bv          verify the recipients instead of sending anything: the
                 mail system finds out what would become of each one
                 (trace-only delivery: smtp goes as far as RCPT TO, local
                 looks up aliases and mailboxes) and mails the sender a
                 "Mail Delivery Status Report"; standard input is not
                 read. Prints "Mail Delivery Status Report will be mailed
                 to <sender>.", as Postfix's sendmail does.

    When cleanup cannot be reached (the mail system is stopped), the
    message goes into $queue_directory/maildrop instead, durably, and the
    command succeeds as Postfix's does through postdrop: the pickup service
    queues it once the mail system runs (mailsys.queue.maildrop,
    services/pickup.py). Only when the maildrop cannot be written either
    (no queue directory) does it fail.

    The queue ID line is logged as Postfix's pickup logs it, under the tag
    "<syslog_name>/pickup" so that pflogsumm counts the message as
    received: ``QID: uid=1000 from=<alice@example.com>``.

EXIT STATUS (sysexits.h)
    0 queued (or left in the maildrop); 75 EX_TEMPFAIL for every error, a
    bad command line, no recipients and a message cleanup refused
    included, as Postfix's sendmail exits (its cleanup handler). The
    queue modes (-bp, -q) exit as postqueue does.
"""

from __future__ import annotations

import dataclasses
import getopt
import os
import pwd
import re
import sys
import time
from email.utils import getaddresses
from pathlib import Path

import structlog
import trio

from mailsys.admin import access
from mailsys.config import Config, load
from mailsys.errors import ConfigError, UsageError
from mailsys.ipc.errors import IpcTimeout, IpcUnavailable, ProtocolError, RemoteError
from mailsys.ipc.proto.cleanup import CleanupRecipient, CleanupRequest, Queued, Rejected
from mailsys.ipc.proto.verify import USR_VRFY
from mailsys.maillog.files import check_prefixes
from mailsys.maillog.setup import configure
from mailsys.message.headers import header_end
from mailsys.message.qid import new_qid
from mailsys.queue import maildrop
from mailsys.runtime import cleanup_client

EX_OK, EX_TEMPFAIL = 0, 75

FIX_EOL = ("always", "strict", "never")      # sendmail_fix_line_endings
_DOT_LINE = re.compile(rb"(?:\A|\n)\.(?:\n|\Z)")
_DOT_LINE_CR = re.compile(rb"(?:\A|\n)\.\r*(?:\n|\Z)")
_CRS_LF = re.compile(rb"\r+\n")
_FROM_LINE = re.compile(rb">*From [^\n]*\n")

# Postfix sendmail.c's option string.
OPTIONS = "B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx"

# One header field and its continuation lines (is_header.c; see headers.py).
_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:([^\n]*(?:\n|\Z)(?:[ \t][^\n]*(?:\n|\Z))*)")
_BAD_ADDRESS = re.compile(r"[\x00-\x1f\x7f]")


def main(argv: list[str], config_dir: Path, command: str = "sendmail") -> int:
    try:
        opts = _parse(argv)
    except UsageError as e:
        return _fail(str(e))
    if "queue" in opts:
        if not opts["queue"]:
            return 0                    # -qINTERVAL: qmgr runs the queue anyway
        from mailsys.cli import postqueue
        return postqueue.main(opts["queue"], opts.get("C", config_dir),
                              "mailq" if opts["queue"] == ["-p"] else "postqueue")
    if opts.get("b") == "i":
        from mailsys.cli.postalias import newaliases
        return newaliases([], opts.get("C", config_dir))
    cfg = load(opts.get("C", config_dir))
    try:
        check_prefixes(cfg)         # as Postfix's sendmail, before it reads a byte
    except ConfigError as e:
        return _fail(str(e))
    if opts.get("b") == "s":
        from mailsys.cli.sendmail_bs import smtp_session
        return smtp_session(cfg, sys.stdin.buffer, sys.stdout.buffer)
    verify = opts.get("b") == "v"
    sender = _sender(opts, cfg)
    verp = opts.get("XV")
    if verp is not None:
        # Postfix sendmail's words (seen live), exit status 75 for both.
        verp = verp or cfg.default_verp_delimiters
        if len(verp) != 2 or any(c not in cfg.verp_delimiter_filter for c in verp):
            return _fail(f"-V requires two characters from {cfg.verp_delimiter_filter}")
        if not sender:
            return _fail(f"({os.getuid()}): -V option requires non-null sender address")
    rcpts = [recipient(a, cfg) for a in _addresses(opts["rcpt"])]
    recipients = [r.address for r in rcpts]
    if verify:
        # Postfix reads no message for -bv: it makes up a header that names
        # the recipients, and the report returns it.
        content = (f"From: {sender}\r\nSubject: probe\r\n"
                   f"To: {', '.join(recipients)}\r\n").encode("utf-8", "surrogateescape")
    else:
        fix_eol = cfg.sendmail_fix_line_endings
        if fix_eol not in FIX_EOL:
            return _fail(f"invalid sendmail_fix_line_endings value: {fix_eol}")
        try:
            content = _read_message(sys.stdin.buffer, ignore_dots="i" in opts, fix_eol=fix_eol,
                                    line_limit=cfg.line_length_limit)
        except OSError as e:
            return _fail(f"cannot read the message: {e.strerror or e}")
    if "t" in opts and not verify:
        found, content = _extract_recipients(content)
        rcpts += [recipient(a, cfg) for a in found]
        recipients = [r.address for r in rcpts]
        if not recipients:
            return _fail("No recipient addresses found in message header")
    if not recipients:
        return _fail("Recipient addresses must be specified on the command line"
                     " or via the -t option")
    notify = _notify(opts.get("N", ""))
    request = CleanupRequest(
        queue_id=new_qid(), sender=sender,
        recipients=tuple(dataclasses.replace(r, notify=notify) for r in rcpts),
        content=content, arrival_time=time.time(), origin="sendmail", local=True,
        protocol="local", uid=os.getuid(),
        fullname=opts["F"] if "F" in opts else fullname(),
        envid=opts.get("V", ""), ret=opts.get("R", "").upper(), verp_delimiters=verp or "",
        body_type=opts.get("B", "").upper(), filter=cfg.content_filter,
        receive_override_options=tuple(cfg.receive_override_options),
        trace_flags=USR_VRFY if verify else "")
    answered: list[bool] = []
    try:
        reply = submit(cfg, request, answered)
    except IpcUnavailable as e:
        if answered:
            # Lost after cleanup answered: it may hold the message already.
            return _fail(f"mail system is not running ({e})")
        # No cleanup to talk to. As with Postfix's postdrop, the message
        # waits in the maildrop for the pickup service; sendmail succeeds.
        try:
            maildrop.drop(cfg.path("queue_directory"), request)
        except OSError as why:
            return _fail(f"mail system is not running ({e}); cannot write to the maildrop: "
                         f"{why.strerror or why}")
        access.poke_pickup(cfg.path("queue_directory"))
        reply = None
    except IpcTimeout as e:
        return _fail(f"queue file write error: {e}")
    except RemoteError as e:
        if e.code == "queue_full":
            return _fail(f"queue file write error: insufficient system storage ({e.text})")
        return _fail(f"queue file write error: {e.text}")
    except ProtocolError as e:
        return _fail(f"internal protocol error talking to cleanup: {e}")
    if isinstance(reply, Rejected):
        return _fail(f"{reply.code} {reply.enhanced} {reply.text}")
    if verify:
        print(f"Mail Delivery Status Report will be mailed to <{sender}>.")
    return EX_OK


def submit(cfg: Config, request: CleanupRequest,
           answered: list[bool] | None = None) -> Queued | Rejected:
    """Hand one message to cleanup; Queued once it is durably queued.
    Raises mailsys.ipc.errors.IpcError subclasses (see ipc_io). answered,
    if given, gets True once cleanup has answered the connection.

    The pickup line is logged once cleanup has answered the connection and
    before the message is sent, as Postfix's pickup logs it when it opens
    its cleanup stream: it must come before qmgr's "from=" line, or
    pflogsumm does not count the message as received."""
    return trio.run(_submit, cfg, request, [] if answered is None else answered)


_configured = False


def log_pickup(cfg: Config, queue_id: str, sender: str) -> None:
    """Log "QID: uid=N from=<sender>", pickup's line, under the pickup tag."""
    global _configured
    if not _configured:
        configure(cfg, "pickup")
        _configured = True
    structlog.get_logger().info("pickup", queue_id=queue_id, uid=os.getuid(), sender=sender)


async def _submit(cfg: Config, request: CleanupRequest, answered: list[bool]
                  ) -> Queued | Rejected:
    def connected() -> None:
        answered.append(True)
        log_pickup(cfg, request.queue_id, request.sender)
    return await cleanup_client.submit(cfg, request, on_connect=connected)


def fullname() -> str:
    """The invoking user's personal name, as Postfix's fullname() finds it:
    $NAME, else the GECOS field of the password entry up to the first ",",
    ";" or "%", each "&" the login name with its first letter capitalized;
    "" when there is none. cleanup puts it in the From: header it adds
    (Postfix 3.7.11: "From: root <root@host>" for root's mail)."""
    name = os.environ.get("NAME")
    if name is not None:
        return name
    try:
        entry = pwd.getpwuid(os.getuid())
    except KeyError:
        return ""
    gecos = entry.pw_gecos
    for stop in ",;%":
        gecos = gecos.split(stop, 1)[0]
    login = entry.pw_name
    return gecos.replace("&", login[:1].upper() + login[1:])


def _fail(text: str) -> int:
    """Postfix's sendmail exits 75 on every fatal error: the msg_cleanup()
    handler it installs, tempfail(), exits EX_TEMPFAIL before
    msg_fatal_status() uses its own status (sendmail.c; seen live with
    3.7.11 for a usage error, no recipients, an unsupported -b)."""
    print(f"sendmail: fatal: {text}", file=sys.stderr)
    return EX_TEMPFAIL


def _parse(argv: list[str]) -> dict:
    # A bare -q (flush the queue) takes no argument, unlike -qRsite and -q1h.
    argv = [x for a in argv for x in ((a, "") if a == "-q" else (a,))]
    try:
        pairs, rest = getopt.getopt(argv, OPTIONS)
    except getopt.GetoptError as e:
        raise UsageError(f"{e}; usage: sendmail [-t] [-i] [-f sender] [-F fullname]"
                         " [recipient ...]") from None
    opts: dict = {"rcpt": rest}
    for flag, value in pairs:
        key = flag[1]
        if key == "b" and value == "p":
            opts["queue"] = ["-p"]
            continue
        if key == "I":
            opts["b"] = "i"
            continue
        if key == "b" and value not in ("m", "d", "D", "s", "i", "v"):
            raise UsageError(f"-b{value} is not supported by mailsys sendmail")
        if key == "b":
            opts["b"] = value
        if key == "q":
            opts["queue"] = _queue_run(value)
            continue
        if key == "o" and value == "i" or key == "i":
            opts["i"] = True
        elif key == "r":
            opts["f"] = value
        elif key == "C":
            opts["C"] = Path(value).absolute()
        elif key in "FfNRVBt":
            opts[key] = value if key != "t" else True
        elif key == "X" and value.startswith("V"):
            opts["XV"] = value[1:]          # VERP, with its own delimiters or the default
    for key, allowed in (("R", ("full", "hdrs")), ("B", ("7bit", "8bitmime"))):
        if key in opts and opts[key].lower() not in allowed:
            raise UsageError(f"bad -{key} option value: {opts[key]!r}")
    return opts


def _queue_run(value: str) -> list[str]:
    """The postqueue arguments of -q, -qRsite; none for -qINTERVAL."""
    if not value:
        return ["-f"]
    if value[0] == "R" and value[1:]:
        return ["-s", value[1:]]
    if value[0].isdigit():
        return []
    raise UsageError(f"-q{value[0]} is not implemented")


def _notify(value: str) -> tuple[str, ...]:
    words = tuple(w.strip().upper() for w in value.split(",") if w.strip())
    if any(w not in ("NEVER", "SUCCESS", "FAILURE", "DELAY") for w in words) or (
            "NEVER" in words and len(words) > 1):
        raise UsageError(f"bad -N option value: {value!r}")
    return words


def _sender(opts: dict, cfg: Config) -> str:
    if "f" in opts:
        sender = opts["f"].strip()
        if sender.startswith("<") and sender.endswith(">"):
            sender = sender[1:-1]
        if _BAD_ADDRESS.search(sender):
            raise UsageError(f"bad sender address: {opts['f']!r}")
        return qualify(sender, cfg) if sender else ""
    try:
        login = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        login = f"uid{os.getuid()}"
    return f"{login}@{cfg.myorigin}"


def qualify(addr: str, cfg: Config) -> str:
    return recipient(addr, cfg).address


def recipient(addr: str, cfg: Config, **kw: object) -> CleanupRecipient:
    """addr as cleanup gets it: without <>, qualified with @$myorigin;
    an address that had no domain keeps the name given as its original
    recipient, as Postfix's cleanup does ("to=<bob@host>, orig_to=<bob>").
    kw: CleanupRecipient's other fields."""
    addr = addr.strip()
    if addr.startswith("<") and addr.endswith(">"):
        addr = addr[1:-1]
    if not addr or _BAD_ADDRESS.search(addr):
        raise UsageError(f"bad address syntax: {addr!r}")
    if "@" not in addr and cfg.append_at_myorigin:
        return CleanupRecipient(f"{addr}@{cfg.myorigin}", orig=addr, **kw)  # type: ignore[arg-type]
    return CleanupRecipient(addr, **kw)  # type: ignore[arg-type]


def _read_message(stream, *, ignore_dots: bool, fix_eol: str = "always",
                  line_limit: int = 2048) -> bytes:
    """The message on stdin; without -i a line "." ends it. Leading mbox
    "From " lines are dropped, as Postfix's sendmail does (_skip_from).
    Line ends as sendmail_fix_line_endings (fix_eol) says: see the module
    description."""
    data = stream.read()
    if fix_eol == "strict":
        line, newline, _ = data.partition(b"\n")
        strip_cr = bool(newline) and line.endswith(b"\r")
    else:
        strip_cr = fix_eol == "always"
    data = _skip_from(data, line_limit)
    if not ignore_dots:
        m = (_DOT_LINE_CR if strip_cr else _DOT_LINE).search(data)
        if m is not None:
            data = data[:m.start() + (1 if m.group().startswith(b"\n") else 0)]
    if b"\r\n" not in data:
        return data
    if strip_cr:
        return _CRS_LF.sub(b"\n", data)
    # Storage is CRLF (mailsys.message.headers): a CR that is data goes before it.
    return data.replace(b"\r\n", b"\r\r\n")


def _skip_from(data: bytes, line_limit: int) -> bytes:
    """data without the lines at its very start that read "From " after
    any number of ">" (mbox and UUCP envelope lines), as Postfix's sendmail
    skips them: only whole lines, ended by LF and shorter than
    line_length_limit; the first other line ends the skipping."""
    pos = 0
    while (m := _FROM_LINE.match(data, pos)) is not None and m.end() - pos <= line_limit:
        pos = m.end()
    return data[pos:]


def _extract_recipients(content: bytes) -> tuple[list[str], bytes]:
    """-t: the addresses in To/Cc/Bcc (Resent-* when present), and the
    content without its Bcc headers."""
    end = header_end(content)
    fields = [(m.group(1).lower(), m.group(2), m.start(), m.end())
              for m in _FIELD.finditer(content, 0, end)]
    resent = any(name.startswith(b"resent-") for name, *_ in fields)
    wanted = ((b"resent-to", b"resent-cc", b"resent-bcc") if resent
              else (b"to", b"cc", b"bcc"))
    values = [v.decode("utf-8", "replace").replace("\r", "").replace("\n", "")
              for name, v, *_ in fields if name in wanted]
    found = _addresses(values)
    kept, pos = [], 0
    for name, _, start, stop in fields:
        if name in (b"bcc", b"resent-bcc"):
            kept.append(content[pos:start])
            pos = stop
    kept.append(content[pos:])
    return found, b"".join(kept)


def _addresses(texts: list[str]) -> list[str]:
    """The addresses in header values or arguments ("Bob <b@x>, c@y")."""
    return [addr for _, addr in getaddresses(texts) if addr]
