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
                 (full, hdrs) and ENVID. A bad value is a warning and the
                 option is ignored, as in Postfix's sendmail.
    -XV, -XVxy   VERP: each recipient gets the mail from its own sender,
                 owner+user=domain@origin, with $default_verp_delimiters or
                 the two given (mailsys.message.verp). The old forms
                 "-V xy" and "-Vxy" work, with Postfix's warning.
    -B type      7BIT or 8BITMIME (exactly so).
    -C dir       another configuration directory.
    Other Sendmail options (-o*, -v, -m, -x, -U, -G, -L, -O, -A, -h, -p,
    -c, -e) are accepted and ignored, as Postfix's sendmail does; -n, -X
    other than -XV, and -b letters Postfix's sendmail does not know are
    fatal errors. mailsys.cli.sendmail_opts reads the command line, with
    Postfix's texts and in its order.
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
    -bp (and the command name mailq) lists the queue, -q flushes it
    (postqueue -f), -qRsite flushes the mail for one site (postqueue -s
    site), -qIqueueid one message (postqueue -i); -qINTERVAL (a Sendmail
    daemon's queue run interval) is accepted and ignored, and -bh, -bH do
    nothing. -bd and -bl start the mail system in the background, as
    Postfix's sendmail runs "postfix start". None of these modes takes a
    recipient.

    -bi (and -I) builds the alias tables of $alias_database, as newaliases
    does (mailsys.cli.postalias); -oAfile those of file.

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

DIAGNOSTICS
    Warnings and fatal errors go to standard error as "sendmail: fatal:
    text" (the name the command was called by: mailq) and to the mail log
    as "<syslog_name>/sendmail[pid]: fatal: text", as Postfix's sendmail
    logs them (mailsys.cli.diag). Errors about the message name the sender
    and the user ID first, "alice(1000): No recipient addresses found in
    message header", the sender as given to -f or the login name.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import re
import subprocess
import sys
import time
from email.utils import getaddresses
from pathlib import Path

import trio

from mailsys.admin import access
from mailsys.cli import sendmail_opts
from mailsys.cli.diag import Diag, logger
from mailsys.config import Config, load
from mailsys.errors import ConfigError, UsageError
from mailsys.ipc.errors import IpcTimeout, IpcUnavailable, ProtocolError, RemoteError
from mailsys.ipc.proto.cleanup import CleanupRecipient, CleanupRequest, Queued, Rejected
from mailsys.ipc.proto.verify import USR_VRFY
from mailsys.maillog.files import check_prefixes
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

# One header field and its continuation lines (is_header.c; see headers.py).
_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:([^\n]*(?:\n|\Z)(?:[ \t][^\n]*(?:\n|\Z))*)")
_BAD_ADDRESS = re.compile(r"[\x00-\x1f\x7f]")


def main(argv: list[str], config_dir: Path, command: str = "sendmail") -> int:
    """Postfix sendmail.c's main(): every fatal error exits 75 (see fatal)."""
    diag = Diag(command, "sendmail")
    config_dir = sendmail_opts.prescan(argv, config_dir, _complain(command))
    try:
        cfg = load(config_dir)
        check_prefixes(cfg)         # as Postfix's sendmail, before it reads a byte
    except ConfigError as e:
        return diag.fatal(str(e), EX_TEMPFAIL)
    diag.cfg = cfg
    qdir = cfg.path("queue_directory")
    if not qdir.is_dir():           # sendmail.c: chdir(var_queue_dir), before the options
        return diag.fatal(f"chdir {qdir}: No such file or directory", EX_TEMPFAIL)
    try:
        opts = sendmail_opts.parse(argv, command, diag.warn, _complain(command),
                                   cfg.verp_delimiter_filter)
        return _run(opts, cfg, config_dir, diag)
    except sendmail_opts.Fatal as e:
        # Postfix's sendmail exits 75 on every fatal error: the msg_cleanup()
        # handler it installs, tempfail(), exits EX_TEMPFAIL before
        # msg_fatal_status() uses its own status (src/util/msg.c,
        # src/sendmail/sendmail.c; seen live with 3.7.11 for each text).
        return diag.fatal(str(e), EX_TEMPFAIL)


def _complain(command: str):
    """glibc getopt()'s line for a bad option: stderr only, never logged."""
    return lambda text: print(f"{command}: {text}", file=sys.stderr, flush=True)


def _run(opts: sendmail_opts.Options, cfg: Config, config_dir: Path, diag: Diag) -> int:
    """The mode's work, as the switch at the end of sendmail.c's main()."""
    mode, rcpts, verbose = opts.mode, opts.recipients, ["-v"] * opts.verbose
    if opts.qtime is not None and mode != sendmail_opts.DAEMON:
        return EX_OK                # -qINTERVAL: qmgr runs the queue anyway
    queue_args = None
    if mode == sendmail_opts.ENQUEUE and opts.site is not None:
        queue_args, what = ["-s", opts.site], "flush site"
    elif mode == sendmail_opts.ENQUEUE and opts.queue_id is not None:
        queue_args, what = ["-i", opts.queue_id], "flush queue_id"
    elif mode == sendmail_opts.MAILQ:
        queue_args, what = ["-p"], "display queue mode"
    elif mode == sendmail_opts.FLUSHQ:
        queue_args, what = ["-f"], "flush queue mode"
    if queue_args is not None:
        if rcpts:
            raise sendmail_opts.Fatal(f"{what} requires no recipient")
        from mailsys.cli import postqueue      # Postfix's sendmail runs postqueue
        return postqueue.main(queue_args + verbose, config_dir)
    if mode == sendmail_opts.ENQUEUE:
        return enqueue(opts, cfg, diag)
    if mode == sendmail_opts.IGNORE:
        return EX_OK
    if rcpts:
        raise sendmail_opts.Fatal(f"{NO_RECIPIENT[mode]} mode requires no recipient")
    if mode == sendmail_opts.NEWALIAS:
        from mailsys.cli import postalias
        if opts.alias_map is not None:
            return postalias.main(verbose + ["--", opts.alias_map], config_dir)
        return postalias.newaliases([], config_dir)
    if mode == sendmail_opts.USER:
        from mailsys.cli.sendmail_bs import smtp_session
        return smtp_session(cfg, sys.stdin.buffer, sys.stdout.buffer)
    return start_in_background(config_dir, opts.verbose)


# The mode names of sendmail.c's "... mode requires no recipient".
NO_RECIPIENT = {sendmail_opts.DAEMON: "daemon", sendmail_opts.NEWALIAS: "alias initialization",
                sendmail_opts.USER: "stand-alone"}


def start_in_background(config_dir: Path, verbose: int) -> int:
    """-bd, -bl: start the mail system and do not wait, as Postfix's
    sendmail runs "postfix start" (mail_run_background): 0 once started."""
    try:
        subprocess.Popen([sys.executable, "-m", "mailsys.cli.main", "-c", str(config_dir),
                          "start"], stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        return 1
    return EX_OK


def enqueue(opts: sendmail_opts.Options, cfg: Config, diag: Diag) -> int:
    """Queue one message (sendmail.c enqueue()); fatal errors exit 75."""
    verify = opts.verify
    saved_sender, sender = _sender(opts, cfg, diag)
    # sendmail.c prefixes its errors about the message with the sender and uid.
    who = f"{saved_sender}({os.getuid()}): "
    verp = opts.verp
    if verp is not None:
        # -XV alone: $default_verp_delimiters, which sendmail.c does not check.
        verp = verp or cfg.default_verp_delimiters
        if not sender:
            return _fail(f"{who}-V option requires non-null sender address", diag)
    rcpts = [recipient(a, cfg) for a in _addresses(opts.recipients)]
    recipients = [r.address for r in rcpts]
    if verify:
        # Postfix reads no message for -bv: it makes up a header that names
        # the recipients, and the report returns it.
        content = (f"From: {sender}\r\nSubject: probe\r\n"
                   f"To: {', '.join(recipients)}\r\n").encode("utf-8", "surrogateescape")
    else:
        fix_eol = cfg.sendmail_fix_line_endings
        if fix_eol not in FIX_EOL:
            return _fail(f"invalid sendmail_fix_line_endings value: {fix_eol}", diag)
        try:
            content = _read_message(sys.stdin.buffer, ignore_dots=opts.ignore_dots,
                                    fix_eol=fix_eol, line_limit=cfg.line_length_limit)
        except OSError as e:
            return _fail(f"{who}error reading input: {e.strerror or e}", diag)
    if opts.extract and not verify:
        found, content = _extract_recipients(content)
        rcpts += [recipient(a, cfg) for a in found]
        recipients = [r.address for r in rcpts]
        if not recipients:
            return _fail(f"{who}No recipient addresses found in message header", diag)
    if not recipients:
        return _fail(f"{who}Recipient addresses must be specified on the command line"
                     " or via the -t option", diag)
    request = CleanupRequest(
        queue_id=new_qid(), sender=sender,
        recipients=tuple(dataclasses.replace(r, notify=opts.notify) for r in rcpts),
        content=content, arrival_time=time.time(), origin="sendmail", local=True,
        protocol="local", uid=os.getuid(),
        fullname=opts.full_name if opts.full_name is not None else fullname(),
        envid=opts.envid, ret=opts.ret, verp_delimiters=verp or "",
        body_type=opts.encoding, filter=cfg.content_filter,
        receive_override_options=tuple(cfg.receive_override_options),
        trace_flags=USR_VRFY if verify else "")
    answered: list[bool] = []
    try:
        reply = submit(cfg, request, answered)
    except IpcUnavailable as e:
        if answered:
            # Lost after cleanup answered: it may hold the message already.
            return _fail(f"mail system is not running ({e})", diag)
        # No cleanup to talk to. As with Postfix's postdrop, the message
        # waits in the maildrop for the pickup service; sendmail succeeds.
        try:
            leave_in_maildrop(cfg, request)
        except OSError as why:
            return _fail(f"mail system is not running ({e}); cannot write to the maildrop: "
                         f"{why.strerror or why}", diag)
        reply = None
    except IpcTimeout as e:
        return _fail(f"queue file write error: {e}", diag)
    except RemoteError as e:
        if e.code == "queue_full":
            return _fail(f"queue file write error: insufficient system storage ({e.text})", diag)
        return _fail(f"queue file write error: {e.text}", diag)
    except ProtocolError as e:
        return _fail(f"internal protocol error talking to cleanup: {e}", diag)
    if isinstance(reply, Rejected):
        return _fail(f"{reply.code} {reply.enhanced} {reply.text}", diag)
    if verify:
        print(f"Mail Delivery Status Report will be mailed to <{sender}>.")
    return EX_OK


def leave_in_maildrop(cfg: Config, request: CleanupRequest) -> None:
    """The message into the maildrop, for pickup, which is poked: what
    Postfix's postdrop does when no cleanup can be reached. Raises OSError."""
    queue_dir = cfg.path("queue_directory")
    maildrop.drop(queue_dir, request)
    access.poke_pickup(queue_dir)


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


def log_pickup(cfg: Config, queue_id: str, sender: str) -> None:
    """Log "QID: uid=N from=<sender>", pickup's line, under the pickup tag."""
    logger(cfg, "pickup").info("pickup", queue_id=queue_id, uid=os.getuid(), sender=sender)


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


def _fail(text: str, diag: Diag) -> int:
    """A fatal error of enqueue(): exit status 75, as every one of
    Postfix's sendmail (see main)."""
    return diag.fatal(text, EX_TEMPFAIL)


def _sender(opts: sendmail_opts.Options, cfg: Config, diag: Diag) -> tuple[str, str]:
    """(the sender as given, or the login name; the envelope sender).
    With more than one address after -f the first is taken, after
    sendmail.c's warning."""
    if opts.sender is not None:
        given = _addresses([opts.sender])
        if len(given) > 1:
            diag.warn(f"-f option specified malformed sender: {opts.sender}")
        sender = given[0] if given else opts.sender.strip()
        if sender.startswith("<") and sender.endswith(">"):
            sender = sender[1:-1]
        if _BAD_ADDRESS.search(sender):
            raise UsageError(f"bad sender address: {opts.sender!r}")
        return sender, qualify(sender, cfg) if sender else ""
    try:
        login = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        login = f"uid{os.getuid()}"
    return login, f"{login}@{cfg.myorigin}"


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
