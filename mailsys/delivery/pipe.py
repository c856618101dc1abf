"""pipe - one delivery request to an external command (Postfix pipe(8) deliver_message()).

SYNOPSIS
    settings = PipeSettings.from_config(cfg, "dovecot", attr)
    done = deliver_request(req, content, settings)
    done.results        # one RecipientResult per recipient, relay="dovecot"
    done.notes          # warning / fatal lines to log before (or after) the status lines

DESCRIPTION
    The work of the pipe agent for one DeliverRequest, in Postfix's order;
    every recipient of the request gets the same result, since the command
    runs once for all of them:

     1. flag D or O with more than one recipient: deferred, 4.3.5 "mail
        system configuration error", and after the status lines the warning
        "pipe flag `D' requires dovecot_destination_recipient_limit = 1";
     2. a message larger than size=: bounced, 5.2.3 "message too large";
     3. flag D and a Delivered-To: header with the recipient already in the
        message: bounced, 5.4.6 "mail forwarding loop for ADDRESS";
     4. argv= expanded (mailsys.delivery.pipe_macros); a word that cannot
        be: deferred, 4.3.5, and the warning "file DIR/master.cf: service
        dovecot: unknown macro name: ..." as Postfix logs it;
     5. the command run (mailsys.delivery.command.spawn) as user= (its
        group the only one), in directory= (default $queue_directory), with
        an environment of $export_environment and PATH=/usr/bin:/bin only,
        for at most $<service>_time_limit (default $command_time_limit),
        the message on its input as mailsys.delivery.pipe_copy writes it;
     6. its end, as pipe_command(3) and pipe(8) of Postfix 3.7 read it
        (checked against one):

        exit 0                  sent, 2.0.0 "delivered via dovecot service",
                                then " (OUTPUT)" when it wrote something;
                                DSN action "relayed", or "delivered"
                                with flag X (final delivery)
        output "4.x.x text"     deferred with that status and text;
        or "5.x.x text"         bounced (only when the exit status is not 0;
                                a "2.x.x" there bounces as 5.0.0)
        75 EX_TEMPFAIL, 71      deferred, 4.3.0 "temporary failure" ...
        other <sysexits.h>      bounced, with that code's status and text
        any other status        bounced, 5.3.0 'Command died with status N: "ARGV0"'
        killed by a signal      deferred, 4.3.0 'Command died with signal N: "ARGV0"'
        the time limit          bounced, 5.3.0 'Command time limit exceeded: "ARGV0"'
        cannot be started       deferred, 4.3.0 "temporary failure. Command
                                output: pipe: fatal: pipe_command: execvp ...",
                                and that fatal line in the log
        directory= unusable     deferred, 4.3.0 "temporary failure"; the
                                reason only in the log's fatal line

        with ". Command output: OUTPUT" after the failure texts when the
        command wrote something (its first 4096 bytes, line ends and tabs
        as blanks). A failure's DSN Diagnostic-Code is "x-unix; " and the
        output, or the text of the exit status ("unknown mail system error
        N", "internal software error" for a signal or the time limit).

    The status line's relay= is the master.cf service name (relay=dovecot).

    mailsys not running as root cannot change to user=: the command then
    runs with mailsys' own rights, as the local agent's commands do. The
    working directory is entered before the change of user (Python's
    subprocess order), so a directory that user= may not enter is no failure here.
    Synchronous: the service runs it in a worker thread.
"""

from __future__ import annotations

import os

from mailsys.config.params import service_time_limit_name
from mailsys.config.values import parse_time
from mailsys.delivery.command import DSN_TEXT, SYS_EXITS, Outcome, command_env, failure, spawn
from mailsys.delivery.local import delivered_to
from mailsys.delivery.pipe_attr import PipeAttr
from mailsys.delivery.pipe_copy import copy_message
from mailsys.delivery.pipe_macros import MacroError, Recipient, expand_argv, request_values
from mailsys.delivery.report import bounced, deferred, failed, sent
from mailsys.frozen import frozen
from mailsys.ipc.proto.deliver import DeliverRequest, RecipientResult
from mailsys.message.address import unquote_822_local

__all__ = ["PipeSettings", "PipeDelivery", "Note", "deliver_request", "pipe_verdict",
           "diagnostic"]

CONFIG_ERROR = ("4.3.5", "mail system configuration error")
EX_SOFTWARE = 70


@frozen
class PipeSettings:
    service: str                   # master.cf column 1: relay=, the log texts, <service>_time_limit
    attr: PipeAttr
    time_limit: float
    env: tuple[tuple[str, str], ...]
    queue_directory: str
    config_directory: str
    delimiters: str = ""
    double_bounce: str = "double-bounce"

    @classmethod
    def from_config(cls, cfg, service: str, attr: PipeAttr) -> PipeSettings:
        try:
            limit = cfg[service_time_limit_name(service)]
        except KeyError:                 # a service name no parameter can be made of
            limit = cfg.command_time_limit
        if isinstance(limit, str):       # such a name set in main.cf all the same
            limit = parse_time(limit)
        return cls(service=service, attr=attr, time_limit=float(limit),
                   env=command_env({}, tuple(cfg.export_environment), str(cfg.config_dir)),
                   queue_directory=str(cfg.path("queue_directory")),
                   config_directory=str(cfg.config_dir),
                   delimiters=cfg.recipient_delimiter, double_bounce=cfg.double_bounce_sender)


def pipe_verdict(service: str, command: str, outcome: Outcome) -> tuple[str, str]:
    """(dsn, text) for how the command ended (see DESCRIPTION, step 6)."""
    if outcome.returncode == 0 and not outcome.timed_out:
        said = outcome.output.rstrip()
        return "2.0.0", f"delivered via {service} service" + (f" ({said})" if said else "")
    return failure(command, outcome)


def diagnostic(outcome: Outcome) -> str:
    """The DSN Diagnostic-Code of a failed command, as pipe_command(3)'s
    dsb_unix() makes it: its output (the text after a leading status
    code), else the text of its exit status."""
    if outcome.returncode > 0 and not outcome.timed_out:
        m = DSN_TEXT.match(outcome.output)
        if m:
            return f"x-unix; {m.group(4).rstrip()}"
    if outcome.output.strip():
        return f"x-unix; {outcome.output.rstrip()}"
    if outcome.timed_out or outcome.returncode < 0:
        return f"x-unix; {SYS_EXITS[EX_SOFTWARE][1]}"
    code = outcome.returncode
    return f"x-unix; {SYS_EXITS[code][1] if code in SYS_EXITS else f'unknown mail system error {code}'}"


@frozen
class Note:
    """A line for the log beside the status lines, where Postfix puts it."""

    level: str                     # "warning" or "fatal"
    text: str
    after: bool = False            # after the status lines rather than before


@frozen
class PipeDelivery:
    results: tuple[RecipientResult, ...]
    notes: tuple[Note, ...] = ()


def deliver_request(req: DeliverRequest, content: bytes, settings: PipeSettings) -> PipeDelivery:
    """Run the command once for the request: every recipient's result, and
    the warnings Postfix's pipe(8) would log with them."""
    attr, service = settings.attr, settings.service
    rcpts = req.recipients
    notes: list[Note] = []

    def every(make, *args, **kw) -> PipeDelivery:
        return PipeDelivery(tuple(make(r, *args, relay=service, **kw) for r in rcpts),
                            tuple(notes))

    for flag in "DO":
        if flag in attr.flags and len(rcpts) > 1:
            notes.append(Note("warning", f"pipe flag `{flag}' requires "
                                         f"{service}_destination_recipient_limit = 1", after=True))
            return every(deferred, *CONFIG_ERROR)
    if attr.size_limit and req.size > attr.size_limit:
        return every(bounced, "5.2.3", "message too large")
    if "D" in attr.flags and rcpts[0].address.lower() in delivered_to(content):
        return every(bounced, "5.4.6", f"mail forwarding loop for {rcpts[0].address}")
    # The queue keeps addresses as the client wrote them ('"a b"@example.com');
    # Postfix's macros and headers start from the internal form (a b@example.com).
    sender = unquote_822_local(req.sender)
    first = rcpts[0]
    values = request_values(
        sender=sender, null_sender=attr.null_sender, nexthop=req.nexthop, size=req.size,
        queue_id=req.queue_id, client_address=req.client_addr, client_hostname=req.client_name,
        client_port=str(req.client_port) if req.client_port else "",
        client_protocol=req.client_protocol, client_helo=req.client_helo,
        sasl_method=req.sasl_method, sasl_username=req.sasl_user, sasl_sender=req.sasl_sender,
        flags=attr.flags)
    try:
        argv = expand_argv(attr.argv, values,
                           [Recipient(unquote_822_local(r.address),
                                      unquote_822_local(r.orig or r.address)) for r in rcpts],
                           attr.flags, settings.delimiters, settings.double_bounce)
    except MacroError as e:
        notes.append(Note("warning", f"file {os.path.join(settings.config_directory, 'master.cf')}"
                                     f": service {service}: {e}"))
        return every(deferred, *CONFIG_ERROR)
    if not argv:                        # "${user}" alone, and no user: nothing to run
        return every(deferred, *CONFIG_ERROR)
    message = copy_message(content, flags=attr.flags, sender=sender or attr.null_sender,
                           orig_rcpt=unquote_822_local(first.orig or first.address),
                           delivered=unquote_822_local(first.address), eol=attr.eol)
    outcome = spawn(argv, message, uid=attr.uid, gid=attr.gid, env=settings.env,
                    cwd=attr.directory or settings.queue_directory,
                    time_limit=settings.time_limit, program="pipe")
    if outcome.child_error:
        notes.append(Note("fatal", outcome.child_error))
    if outcome.timed_out:
        # What Postfix's pipe_command() says when its time runs out while it
        # waits for the command (its output, or its end).
        notes.append(Note("warning", "pipe_command_read: read time limit exceeded"))
    dsn, text = pipe_verdict(service, argv[0], outcome)
    if outcome.returncode == 0 and not outcome.timed_out:
        # pipe.c: flag X (final delivery) makes the DSN action "delivered";
        # without it the command passes the mail on: "relayed".
        return every(sent, text, dsn=dsn, action="delivered" if "X" in attr.flags else "relayed")
    if dsn.startswith("2"):
        # "2.0.0 ok" from a command that failed: Postfix's bounce_append()
        # takes no success code for a bounce and puts 5.0.0 in its place.
        notes.append(Note("warning", f'bounce_append: ignoring dsn code "{dsn}"'))
        dsn = "5.0.0"
    return PipeDelivery(tuple(failed(r, dsn, text, relay=service, diagnostic=diagnostic(outcome))
                              for r in rcpts), tuple(notes))
