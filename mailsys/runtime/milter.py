"""milter - the milter client: one SMTP session's conversations with its milters.

SYNOPSIS
    milters = MilterSettings.from_config(cfg, "smtpd_milters")   # once per process
    session = MilterSession(milters, queue_dir)                  # per SMTP session
    verdict = await session.connect(hostname, addr, port, macros)
    verdict = await session.helo(name, macros) / mail(args, macros) / rcpt(args, macros)
    verdict = await session.data(macros) / unknown(command_line, macros)
    outcome = await session.message(MilterMessage.parse(content), macros)
    await session.abort(); await session.aclose()

    states, fds, where = session.handoff()                       # smtpd, end of DATA
    session = MilterSession.adopted(settings, states, fds, defaults)   # cleanup
    outcome = await session.message(msg, macros); await session.release()

DESCRIPTION
    Postfix's milter8.c for mailsys, on trio: each milter of the list
    (smtpd_milters, non_smtpd_milters) is asked in order at each stage over
    its own connection, opened at the start of the session and negotiated
    with milter_protocol, all actions and all protocol steps offered; the
    wire and the per-milter state are mailsys.milter (sans-IO).

    A milter is given in Postfix syntax: inet:host:port, unix:/path (or a
    path relative to queue_directory), or Postfix 3.0's group
    { inet:host:port, connect_timeout=10s, command_timeout=10s,
    content_timeout=60s, default_action=accept, protocol=6 } whose settings
    override the main.cf ones for that milter.

    Every wait has a deadline: milter_connect_timeout for the connection
    and the negotiation, milter_command_timeout for each reply to a
    command, milter_content_timeout for headers, body and the
    end-of-message reply. A milter that cannot be reached, times out,
    closes or breaks the protocol is logged as Postfix logs it ("warning:
    connect to Milter service inet:127.0.0.1:8891: Connection refused",
    "warning: milter inet:...: can't read SMFIC_RCPT reply packet header:
    ...") and from then on answers every stage of the session with its
    default_action (milter_default_action): tempfail "451 4.7.1 Service
    unavailable - try again later", reject "550 5.5.0 Service unavailable",
    quarantine a hold, accept nothing at all (it is left out), exactly as
    Postfix 3.7 does (seen live).

    Verdicts (Verdict): a reply for the client (reject "550 5.7.1 Command
    rejected", tempfail "451 4.7.1 Service unavailable - try again later",
    a milter's own SMFIR_REPLYCODE text, shutdown "421 4.7.0 Server
    closing connection"), hold (quarantine) or discard. The first
    milter that refuses ends the stage; the later ones are not asked. A
    milter that rejected the connection (at CONNECT or HELO) answers every
    later stage with that reply, as Postfix's do.

    Macros go before each command as the stage's milter_*_macros list (or
    the milter's SMFIR_SETSYMLIST) names them; a macro the caller has no
    value for takes its milter_macro_defaults value (Postfix 3.1), if any.
    An unknown SMTP command goes as SMFIC_UNKNOWN (unknown()), to milters
    of protocol 3 and later.

    Postfix's smtpd hands its conversations to cleanup for the header,
    body and end of message (milter8_send(), milter8_receive()): handoff()
    gives each milter's negotiated state (CleanupMilter) and connection
    descriptor, adopted() takes them up in cleanup, and release() lets
    them go there without a word, since smtpd keeps its own copies. A
    milter cleanup gave up (failed_elsewhere()) is found gone at the next
    command smtpd would send it, and logged then, as Postfix's smtpd does
    ("can't read SMFIC_MAIL reply packet header: Broken pipe", seen live).

    At end of message the header (one SMFIC_HEADER each), end of header,
    body (SMFIC_BODY pieces of 64 KB) and end of message go to each milter
    in turn, the next milter seeing the previous one's changes; the
    outcome carries the changed message and the envelope changes.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path
from typing import Any, Callable, Mapping

import structlog
import trio

from mailsys.config.tables import open_table
from mailsys.config.values import BadValue, endpoint_attributes, parse_int, parse_time
from mailsys.frozen import frozen
from mailsys.milter import protocol as p
from mailsys.milter.conversation import (Conversation, EndOfMessage, Stage, macro_defaults,
                                         macro_lists)
from mailsys.ipc.proto.cleanup import CleanupMilter
from mailsys.message.header_checks import ContentAction, screened
from mailsys.message.message_actions import first_answer
from mailsys.milter.edits import EnvelopeChanges, MilterMessage, apply, envelope_changes
from mailsys.runtime.policy_client import os_error_text
from mailsys.smtp import Reply

log = structlog.get_logger()

RECV_SIZE = 65536

# The replies Postfix's milter8.c gives (seen live with Postfix 3.7.11).
REJECT_REPLY = Reply(550, "5.7.1", "Command rejected")
TEMPFAIL_REPLY = Reply(451, "4.7.1", "Service unavailable - try again later")
DEFAULT_REJECT_REPLY = Reply(550, "5.5.0", "Service unavailable")
# SMFIR_SHUTDOWN: milter8.c answers "S", which smtpd.c check_milter_reply()
# turns into this reply, without $myhostname.
SHUTDOWN_REPLY = Reply(421, "4.7.0", "Server closing connection")

_DEFAULT_ACTIONS = ("accept", "reject", "tempfail", "quarantine")
_COMMAND_NAMES = {Stage.CONNECT: "SMFIC_CONNECT", Stage.HELO: "SMFIC_HELO",
                  Stage.MAIL: "SMFIC_MAIL", Stage.RCPT: "SMFIC_RCPT", Stage.DATA: "SMFIC_DATA",
                  Stage.HEADER: "SMFIC_HEADER", Stage.EOH: "SMFIC_EOH",
                  Stage.BODY: "SMFIC_BODY", Stage.EOM: "SMFIC_BODYEOB",
                  Stage.UNKNOWN: "SMFIC_UNKNOWN"}


@frozen
class MilterSpec:
    """One milter as configured."""
    endpoint: str                       # "inet:127.0.0.1:8891", as written
    connect_timeout: float
    command_timeout: float
    content_timeout: float
    default_action: str
    protocol: int


def _default_action(value: str) -> str:
    if value.lower() not in _DEFAULT_ACTIONS:
        raise BadValue(f'bad default_action "{value}"')
    return value.lower()


_OVERRIDES = {"connect_timeout": parse_time, "command_timeout": parse_time,
              "content_timeout": parse_time, "protocol": parse_int,
              "default_action": _default_action}


@frozen
class MilterSettings:
    """The milters of one list, with the macro lists: built once per process."""
    milters: tuple[MilterSpec, ...]
    macro_lists: Mapping[p.MacroStage | str, tuple[str, ...]]
    myhostname: str
    macro_defaults: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # milter_header_checks: the table answer for a header a milter adds.
    header_checks: Callable[[str], str | None] | None = None

    @classmethod
    def from_config(cls, cfg: Any, param: str = "smtpd_milters",
                    items: tuple[str, ...] | None = None) -> "MilterSettings":
        """The milters param names (or items, a value of that form)."""
        base = MilterSpec("", cfg.milter_connect_timeout, cfg.milter_command_timeout,
                          cfg.milter_content_timeout, cfg.milter_default_action,
                          cfg.milter_protocol)
        specs = tuple(_parse(item, base, param) for item in (cfg[param] if items is None
                                                              else items))
        lists = macro_lists({name: cfg[name] for name in (
            "milter_connect_macros", "milter_helo_macros", "milter_mail_macros",
            "milter_rcpt_macros", "milter_data_macros", "milter_end_of_header_macros",
            "milter_end_of_data_macros", "milter_unknown_command_macros")})
        try:
            defaults = macro_defaults(cfg.milter_macro_defaults)
        except ValueError as e:
            raise BadValue(f"milter_macro_defaults: {e}") from None
        # An entry it cannot use is warned about as header_body_checks.c does.
        checks = screened(first_answer([open_table(spec, cfg)
                                        for spec in cfg.milter_header_checks]),
                          "milter_header_checks", log.warning, unknown="unsupported")
        return cls(specs, lists, cfg.myhostname, defaults, checks)


def _parse(item: str, base: MilterSpec, param: str) -> MilterSpec:
    changes = endpoint_attributes(item, _OVERRIDES,
                                  lambda text: log.warning(f"{param} {item}: {text}; ignored"))
    return dataclasses.replace(base, **changes)


@frozen
class Verdict:
    """What the milters decided at one stage (None from a stage: go on)."""
    kind: str                     # "reply", "hold", "discard"
    reply: Reply | None = None
    milter: str = ""

    @property
    def closes(self) -> bool:
        """A 421: the session ends after the reply."""
        return self.reply is not None and self.reply.code == 421


@frozen
class MessageOutcome:
    """The end of message: a verdict (or None), the changed message, the
    envelope changes, and what milter_header_checks found."""
    verdict: Verdict | None
    message: MilterMessage
    changed: bool
    envelope: EnvelopeChanges
    checks: tuple[ContentAction, ...] = ()


class _Failed(Exception):
    """This milter failed; the text is what Postfix logs."""


class _Milter:
    """One milter's connection and conversation for one SMTP session."""

    def __init__(self, spec: MilterSpec, settings: MilterSettings, queue_dir: Path) -> None:
        self.spec = spec
        self.conv = Conversation(spec.endpoint, settings.macro_lists, version=spec.protocol,
                                 macro_defaults=settings.macro_defaults)
        self.stream: trio.abc.Stream | None = None
        self.decoder = p.PacketDecoder()
        self.failed = False
        # Failed while cleanup had the conversation: found out (and logged)
        # here at the next command, as Postfix's smtpd finds it.
        self.broken = False
        self.rejected: Verdict | None = None     # rejected the connection: this, ever after
        self._to_close: trio.abc.Stream | None = None
        self._queue_dir = queue_dir
        self._hostname = settings.myhostname

    @property
    def name(self) -> str:
        return self.spec.endpoint

    def default_verdict(self) -> Verdict | None:
        action = self.spec.default_action
        if action == "tempfail":
            return Verdict("reply", TEMPFAIL_REPLY, self.name)
        if action == "reject":
            return Verdict("reply", DEFAULT_REJECT_REPLY, self.name)
        if action == "quarantine":
            return Verdict("hold", None, self.name)
        return None

    async def open(self) -> None:
        """Connect and negotiate; on failure the milter is failed (logged)."""
        kind, _, where = self.spec.endpoint.partition(":")
        try:
            with trio.fail_after(self.spec.connect_timeout):
                if kind in ("unix", "local"):
                    path = Path(where) if where.startswith("/") else self._queue_dir / where
                    self.stream = await trio.open_unix_socket(str(path))
                elif kind == "inet":
                    host, _, port = where.rpartition(":")
                    self.stream = await trio.open_tcp_stream(host.strip("[]") or "localhost",
                                                             int(port))
                else:
                    raise _Failed(f"unsupported milter endpoint \"{self.spec.endpoint}\"")
        except trio.TooSlowError:
            self.fail(f"connect to Milter service {self.name}: Connection timed out")
            return
        except (OSError, ValueError) as e:
            self.fail(f"connect to Milter service {self.name}: {os_error_text(e)}")
            return
        except _Failed as e:
            self.fail(str(e))
            return
        try:
            with trio.fail_after(self.spec.connect_timeout):
                await self.stream.send_all(self.conv.negotiate())
                packet = await self._packet("SMFIC_OPTNEG")
            self.conv.negotiated(packet)
        except trio.TooSlowError:
            self.fail(f"milter {self.name}: can't read SMFIC_OPTNEG reply packet header: "
                       "Connection timed out")
        except _Failed as e:
            self.fail(str(e))
        except p.MilterProtocolError as e:
            self.fail(f"milter {self.name}: {e}")

    def fail(self, text: str) -> None:
        log.warning(text)
        self.failed = True
        if self.stream is not None:
            # Closed in aclose(): nothing more is sent on a broken conversation.
            self._to_close, self.stream = self.stream, None

    async def _packet(self, command: str) -> p.Packet:
        assert self.stream is not None
        while (packet := self.decoder.next_packet()) is None:
            try:
                data = await self.stream.receive_some(RECV_SIZE)
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as e:
                raise _Failed(f"milter {self.name}: can't read {command} reply packet header: "
                              f"{os_error_text(e)}") from None
            if not data:
                # Postfix 3.7.11's words for a milter that hung up (seen live).
                raise _Failed(f"milter {self.name}: can't read {command} reply packet header: "
                              "Application error")
            self.decoder.feed(data)
        return packet

    async def exchange(self, stage: Stage, payload: bytes, macros: Mapping[str, str] | None,
                       timeout: float) -> object | None:
        """Send one step; its reply (None when none was awaited or the
        milter does not take the step). Raises _Failed (already not logged)."""
        step = self.conv.step(stage, payload, macros)
        if step is None:
            return None
        assert self.stream is not None
        command = _COMMAND_NAMES[stage]
        try:
            with trio.fail_after(timeout):
                try:
                    await self.stream.send_all(step.data)
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as e:
                    raise _Failed(f"milter {self.name}: error writing command {command} "
                                  f"to milter: {os_error_text(e)}") from None
                if not step.expects_reply:
                    return None
                while True:
                    reply = self.conv.receive(await self._packet(command))
                    if reply is not None:
                        return reply
        except trio.TooSlowError:
            raise _Failed(f"milter {self.name}: can't read {command} reply packet header: "
                          "Connection timed out") from None
        except p.MilterProtocolError as e:
            if e.response:          # as Postfix words it (seen live)
                raise _Failed(f"milter {self.name}: unexpected filter response {e.response} "
                              f"after event {command}") from None
            raise _Failed(f"milter {self.name}: malformed reply after event {command}: "
                          f"{e}") from None

    async def send_only(self, data: bytes | None) -> None:
        """ABORT or QUIT: no reply; a failure here changes nothing."""
        if data is None or self.stream is None:
            return
        try:
            with trio.move_on_after(self.spec.command_timeout):
                await self.stream.send_all(data)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def aclose(self) -> None:
        for stream in (self.stream, self._to_close):
            if stream is not None:
                await _close_quietly(stream)
        self.stream = None
        self._to_close = None

    def handoff(self) -> tuple[CleanupMilter, int] | None:
        """This milter's state and connection descriptor for cleanup to
        continue the conversation (Postfix milter8_send()); None when
        nothing more goes to it in this message (failed, refused, or it
        accepted the connection)."""
        conv, stream = self.conv, self.stream
        if self.failed or self.rejected is not None or stream is None or conv.agreed is None \
                or conv.accepted_connection:
            return None
        agreed = conv.agreed
        lists = tuple((str(int(k)) if isinstance(k, p.MacroStage) else k, v)
                      for k, v in conv.macro_lists.items())
        state = CleanupMilter(self.name, self.spec.command_timeout, self.spec.content_timeout,
                              self.spec.default_action, agreed.version, int(agreed.actions),
                              int(agreed.protocol), lists, conv.accepted_message)
        return state, stream.socket.fileno()

    @classmethod
    def adopt(cls, state: CleanupMilter, fd: int, settings: "MilterSettings",
              macro_defaults: Mapping[str, str]) -> "_Milter":
        """The milter smtpd handed over (handoff()), on the descriptor fd,
        which it now owns (Postfix milter8_receive())."""
        spec = MilterSpec(state.endpoint, state.command_timeout, state.command_timeout,
                          state.content_timeout, state.default_action, state.version)
        lists = {(p.MacroStage(int(k)) if k.isdigit() else k): tuple(v)
                 for k, v in state.macro_lists}
        m = cls(spec, dataclasses.replace(settings, macro_lists=lists,
                                          macro_defaults=dict(macro_defaults)), Path("/"))
        m.conv.resume(p.Negotiated(state.version, p.Action(state.actions),
                                   p.Proto(state.protocol)), state.accepted_message)
        m.stream = trio.SocketStream(trio.socket.from_stdlib_socket(socket.socket(fileno=fd)))
        return m


async def _close_quietly(stream: trio.abc.Stream) -> None:
    with trio.move_on_after(1, shield=True):
        try:
            await stream.aclose()
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def _verdict(milter: _Milter, reply: object, stage: Stage) -> Verdict | None:
    """A milter's reply as the session sees it; None to go on."""
    match reply:
        case None | p.Continue() | p.Accept() | p.Skip():
            return None
        case p.Reject():
            return Verdict("reply", REJECT_REPLY, milter.name)
        case p.Tempfail():
            return Verdict("reply", TEMPFAIL_REPLY, milter.name)
        case p.CustomReply(code, text):
            return Verdict("reply", _custom_reply(code, text), milter.name)
        case p.Discard():
            return Verdict("discard", None, milter.name)
        case p.Shutdown():
            return Verdict("reply", SHUTDOWN_REPLY, milter.name)
    raise _Failed(f"milter {milter.name}: unexpected filter response {reply!r}")


def _check_reply(text: str) -> Reply:
    """A milter_header_checks REJECT ("5.7.1 message content rejected") as
    the reply cleanup gives: 550, or 450 for a 4.x.x code."""
    enhanced, _, rest = text.partition(" ")
    return Reply(450 if enhanced.startswith("4") else 550, enhanced, rest)


def _is_enhanced(word: str, code: int) -> bool:
    parts = word.split(".")
    return len(parts) == 3 and all(x.isdigit() for x in parts) and parts[0] == str(code)[0]


def _custom_reply(code: int, text: str) -> Reply:
    """SMFIR_REPLYCODE's text after the code: "5.7.1 text", or several
    lines ("5.7.1 one\r\n550-5.7.1 two\r\n550 5.7.1 three", as
    smfi_setmlreply sends them), as a Reply."""
    # A stray CR or LF inside a line would break the reply on the wire.
    lines = [line.replace("\r", " ").replace("\n", " ") for line in text.split("\r\n")]
    first, _, rest = lines[0].partition(" ")
    enhanced = first if _is_enhanced(first, code) else None
    out = [rest if enhanced else lines[0]]
    for line in lines[1:]:
        body = line[4:] if line[:3] == str(code) and line[3:4] in (" ", "-") else line
        if enhanced and body.startswith(enhanced + " "):
            body = body[len(enhanced) + 1:]
        out.append(body)
    return Reply(code, enhanced, tuple(out) if len(out) > 1 else out[0])


class MilterSession:
    """The milters of one SMTP session (see the module description)."""

    def __init__(self, settings: MilterSettings, queue_dir: Path) -> None:
        self.settings = settings
        self._milters = [_Milter(spec, settings, Path(queue_dir)) for spec in settings.milters]
        self._in_message = False

    @classmethod
    def adopted(cls, settings: MilterSettings, states: tuple[CleanupMilter, ...],
                fds: list[int], macro_defaults: Mapping[str, str]) -> "MilterSession":
        """The milters smtpd handed over with a message (handoff()), for
        message() and then release(); settings give milter_header_checks."""
        session = cls(dataclasses.replace(settings, milters=()), Path("/"))
        session._milters = [_Milter.adopt(state, fd, settings, macro_defaults)
                            for state, fd in zip(states, fds)]
        return session

    def handoff(self) -> tuple[tuple[CleanupMilter, ...], list[int], list[int]]:
        """The milters that take part in the rest of this message, for
        cleanup: their states, their descriptors (still ours too), and
        their places in this session (failed() takes them back)."""
        states: list[CleanupMilter] = []
        fds: list[int] = []
        where: list[int] = []
        for i, m in enumerate(self._milters):
            found = m.handoff()
            if found is not None:
                states.append(found[0])
                fds.append(found[1])
                where.append(i)
        return tuple(states), fds, where

    @property
    def failed_indexes(self) -> tuple[int, ...]:
        return tuple(i for i, m in enumerate(self._milters) if m.failed)

    async def failed_elsewhere(self, indexes: tuple[int, ...], where: list[int]) -> None:
        """Cleanup gave up these milters (handoff() places): their
        conversation is out of step, so this session closes them and gives
        them up at the next command that would go to them, as Postfix's
        smtpd finds them then (cleanup shut the connection down)."""
        for i in indexes:
            if 0 <= i < len(where):
                m = self._milters[where[i]]
                m.broken = True
                await m.aclose()

    async def release(self) -> None:
        """Let go of adopted connections without a word (smtpd still holds
        them and goes on with the session)."""
        for m in self._milters:
            await m.aclose()

    async def open(self) -> None:
        for m in self._milters:
            await m.open()

    async def _stage(self, stage: Stage, payload: bytes,
                     macros: Mapping[str, str] | None) -> Verdict | None:
        if stage is Stage.MAIL:
            self._in_message = True
        for m in self._milters:
            verdict = await self._ask(m, stage, payload, macros)
            if verdict is not None:
                if stage in (Stage.CONNECT, Stage.HELO) and verdict.kind == "reply" \
                        and not m.failed:
                    m.rejected = verdict
                return verdict
        return None

    async def _ask(self, m: _Milter, stage: Stage, payload: bytes,
                   macros: Mapping[str, str] | None) -> Verdict | None:
        if m.failed:
            return m.default_verdict()
        if m.rejected is not None:
            return m.rejected
        if m.broken:
            # Postfix 3.7.11's words (seen live): cleanup shut the
            # connection down, and smtpd's next read fails.
            m.fail(f"milter {m.name}: can't read {_COMMAND_NAMES[stage]} reply packet header: "
                   "Broken pipe")
            return m.default_verdict()
        try:
            reply = await m.exchange(stage, payload, macros, m.spec.command_timeout)
            return _verdict(m, reply, stage)
        except _Failed as e:
            m.fail(str(e))
            return m.default_verdict()

    async def connect(self, name: str, addr: str, port: int,
                      macros: Mapping[str, str]) -> Verdict | None:
        await self.open()
        family = "6" if ":" in addr else "4"
        # Postfix names an unknown client by its address in brackets (seen live).
        hostname = name if name and name != "unknown" else f"[{addr}]"
        return await self._stage(Stage.CONNECT, p.connect(hostname, family, port, addr)[5:],
                                 macros)

    async def helo(self, name: str, macros: Mapping[str, str]) -> Verdict | None:
        return await self._stage(Stage.HELO, p.cstrings(name), macros)

    async def mail(self, args: tuple[str, ...], macros: Mapping[str, str]) -> Verdict | None:
        return await self._stage(Stage.MAIL, p.cstrings(*args), macros)

    async def rcpt(self, args: tuple[str, ...], macros: Mapping[str, str]) -> Verdict | None:
        return await self._stage(Stage.RCPT, p.cstrings(*args), macros)

    async def rejected_rcpt(self, args: tuple[str, ...], macros: Mapping[str, str]) -> None:
        """A recipient smtpd refused, to the milters that asked to see
        those (SMFIP_RCPT_REJ), as Postfix's milter_rcpt_event() with
        MILTER_FLAG_WANT_RCPT_REJ: their answers change nothing, but the
        first that answers other than "continue" ends the round."""
        payload = p.cstrings(*args)
        for m in self._milters:
            agreed = m.conv.agreed
            if m.failed or m.rejected is not None or agreed is None \
                    or not agreed.protocol & p.Proto.RCPT_REJ:
                continue
            if await self._ask(m, Stage.RCPT, payload, macros) is not None:
                return

    async def data(self, macros: Mapping[str, str]) -> Verdict | None:
        return await self._stage(Stage.DATA, b"", macros)

    def other_event(self) -> Reply | None:
        """Postfix's milter_other_event(): the reply of the first milter
        that answers every command by now, having failed (its default
        action) or refused the connection at CONNECT or HELO; nothing is
        sent. Only a 4xx or 5xx reply counts (not a quarantine)."""
        for m in self._milters:
            verdict = m.default_verdict() if m.failed else m.rejected
            if verdict is not None:
                return verdict.reply if verdict.kind == "reply" else None
        return None

    async def unknown(self, command: str, macros: Mapping[str, str]) -> Verdict | None:
        """SMFIC_UNKNOWN: a command smtpd does not know, the whole line."""
        return await self._stage(Stage.UNKNOWN, p.cstrings(command), macros)

    async def message(self, msg: MilterMessage, macros: Mapping[str, str]) -> MessageOutcome:
        """Headers, body and end of message to each milter in turn."""
        env = EnvelopeChanges()
        changed = False
        hits: list[ContentAction] = []
        for m in self._milters:
            verdict, mods = await self._message_one(m, msg, macros)
            if mods:
                new = apply(msg, mods, self.settings.header_checks, hits)
                changed = changed or new != msg
                msg = new
                env = envelope_changes(mods, env)
            # A REJECT or DISCARD of milter_header_checks is the milter's
            # verdict, and the later milters are not asked (Postfix).
            stop = next((a for a in hits if a.action in ("reject", "discard")), None)
            if stop is not None:
                verdict = Verdict("discard", None, m.name) if stop.action == "discard" \
                    else Verdict("reply", _check_reply(stop.text), m.name)
            if verdict is not None:
                return MessageOutcome(verdict, msg, changed, env, tuple(hits))
        return MessageOutcome(None, msg, changed, env, tuple(hits))

    async def _message_one(self, m: _Milter, msg: MilterMessage,
                           macros: Mapping[str, str]) -> tuple[Verdict | None, tuple]:
        if m.failed:
            # Its default action answered every command before: Postfix does
            # not give the message to a milter that failed already, nor log
            # its action again at end of message (seen live: quarantine).
            return None, ()
        if m.rejected is not None:
            return m.rejected, ()
        agreed = m.conv.agreed
        leading = bool(agreed is not None and agreed.protocol & p.Proto.HDR_LEADSPC)
        timeout = m.spec.content_timeout
        try:
            for name, value in msg.milter_headers(leading_space=leading):
                reply = await m.exchange(Stage.HEADER, p.cstrings(name, value), macros, timeout)
                verdict = _verdict(m, reply, Stage.HEADER)
                if verdict is not None:
                    return verdict, ()
            verdict = _verdict(m, await m.exchange(Stage.EOH, b"", macros, timeout), Stage.EOH)
            if verdict is not None:
                return verdict, ()
            for i in range(0, len(msg.body), p.CHUNK_SIZE):
                reply = await m.exchange(Stage.BODY, msg.body[i:i + p.CHUNK_SIZE], macros,
                                         timeout)
                verdict = _verdict(m, reply, Stage.BODY)
                if verdict is not None:
                    return verdict, ()
            end = await m.exchange(Stage.EOM, b"", macros, timeout)
        except _Failed as e:
            m.fail(str(e))
            return m.default_verdict(), ()
        if end is None:                       # accepted earlier: nothing asked
            return None, ()
        assert isinstance(end, EndOfMessage)
        try:
            verdict = _verdict(m, end.verdict, Stage.EOM)
        except _Failed as e:
            m.fail(str(e))
            return m.default_verdict(), ()
        if verdict is not None and verdict.kind == "reply":
            return verdict, ()              # a refused message keeps no changes
        return verdict, end.modifications

    async def abort(self) -> None:
        """The transaction is over (RSET, refused, queued): each milter starts afresh."""
        if not self._in_message:
            for m in self._milters:
                m.conv.end_message()
            return
        self._in_message = False
        for m in self._milters:
            if not m.failed and m.rejected is None:
                await m.send_only(m.conv.abort())
            else:
                m.conv.end_message()

    async def aclose(self) -> None:
        for m in self._milters:
            if not m.failed and m.stream is not None:
                await m.send_only(m.conv.quit())
            await m.aclose()


__all__ = ["MilterSpec", "MilterSettings", "MilterSession", "Verdict", "MessageOutcome",
           "REJECT_REPLY", "TEMPFAIL_REPLY", "DEFAULT_REJECT_REPLY"]
