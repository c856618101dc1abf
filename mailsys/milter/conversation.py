"""conversation - the state of one milter conversation, without I/O.

SYNOPSIS
    conv = Conversation(name="inet:127.0.0.1:8891", macro_lists=lists)
    out = conv.negotiate()                       # bytes: SMFIC_OPTNEG
    conv.negotiated(packet)                      # the milter's OPTNEG reply
    step = conv.step(Stage.RCPT, cstrings("<a@b>"), macro_values)
    if step is not None:                         # None: the milter does not want it
        send(step.data)
        while step.expects_reply and (verdict := conv.receive(next_packet())) is None:
            pass

DESCRIPTION
    What Postfix's milter8.c decides for each event, as data: which command
    goes to the milter at each SMTP stage, with which macros first
    (SMFIC_MACRO, sent even when empty, as Postfix does; a macro without
    a value takes its milter_macro_defaults value), whether a reply is to be awaited (the SMFIP_NR_* flags the
    milter negotiated), which stages the milter does not want at all (the
    SMFIP_NO* flags), whether it already accepted the connection or the
    message (SMFIR_ACCEPT: nothing more is sent to it until the next
    connection or message), whether it asked to skip the rest of the body
    (SMFIR_SKIP), and which modifications it may make at end of message
    (the SMFIF_* actions it negotiated). A reply that the stage or the
    negotiated actions do not allow raises MilterProtocolError, as Postfix
    treats it ("unexpected filter response") as a failed milter.

    The modifications a milter sends before its final end-of-message reply
    are collected in order; receive() returns them with the verdict
    (EndOfMessage).
"""

from __future__ import annotations

import enum
from typing import Mapping

from mailsys.config.values import split_list
from mailsys.frozen import frozen
from mailsys.milter import protocol as p
from mailsys.milter.protocol import Action, Command, MacroStage, MilterProtocolError, Proto


class Stage(enum.Enum):
    CONNECT = "connect"
    HELO = "helo"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    HEADER = "header"
    EOH = "eoh"
    BODY = "body"
    EOM = "eom"
    UNKNOWN = "unknown"


# The key of the unknown command's macro list among the SMFIM_* stages.
UNKNOWN_MACROS = "unknown"


@frozen
class _StageInfo:
    command: Command
    skip_flag: Proto              # SMFIP_NO*: do not send
    no_reply_flag: Proto          # SMFIP_NR_*: send, expect no reply
    macros: MacroStage | str | None   # the macro list sent before it
    param: str                    # Postfix's milter_*_macros parameter


_STAGES = {
    Stage.CONNECT: _StageInfo(Command.CONNECT, Proto.NOCONNECT, Proto.NR_CONN, MacroStage.CONNECT,
                              "milter_connect_macros"),
    Stage.HELO: _StageInfo(Command.HELO, Proto.NOHELO, Proto.NR_HELO, MacroStage.HELO,
                           "milter_helo_macros"),
    Stage.MAIL: _StageInfo(Command.MAIL, Proto.NOMAIL, Proto.NR_MAIL, MacroStage.ENVFROM,
                           "milter_mail_macros"),
    Stage.RCPT: _StageInfo(Command.RCPT, Proto.NORCPT, Proto.NR_RCPT, MacroStage.ENVRCPT,
                           "milter_rcpt_macros"),
    Stage.DATA: _StageInfo(Command.DATA, Proto.NODATA, Proto.NR_DATA, MacroStage.DATA,
                           "milter_data_macros"),
    # Postfix sends the end-of-header macros before each header too, and
    # the end-of-data ones before each body piece (seen live, 3.7.11).
    Stage.HEADER: _StageInfo(Command.HEADER, Proto.NOHDRS, Proto.NR_HDR, MacroStage.EOH,
                             "milter_end_of_header_macros"),
    Stage.EOH: _StageInfo(Command.EOH, Proto.NOEOH, Proto.NR_EOH, MacroStage.EOH,
                          "milter_end_of_header_macros"),
    Stage.BODY: _StageInfo(Command.BODY, Proto.NOBODY, Proto.NR_BODY, MacroStage.EOM,
                           "milter_end_of_data_macros"),
    Stage.EOM: _StageInfo(Command.BODYEOB, Proto(0), Proto(0), MacroStage.EOM,
                          "milter_end_of_data_macros"),
    # No SMFIR_SETSYMLIST stage names it: only the parameter sets its list.
    Stage.UNKNOWN: _StageInfo(Command.UNKNOWN, Proto.NOUNKNOWN, Proto.NR_UNKN, UNKNOWN_MACROS,
                              "milter_unknown_command_macros"),
}

# The milter_*_macros parameters, by macro stage (what Postfix sends unless
# the milter asked for its own list with SMFIR_SETSYMLIST).
MACRO_PARAMS = {info.macros: info.param for info in _STAGES.values() if info.macros is not None}

# Modifications and the action each needs (SMFIF_*); ADDRCPT_PAR also
# allows plain ADDRCPT's job.
_NEEDS = {p.AddHeader: Action.ADDHDRS, p.InsertHeader: Action.ADDHDRS,
          p.ChangeHeader: Action.CHGHDRS, p.DeleteRecipient: Action.DELRCPT,
          p.ChangeSender: Action.CHGFROM, p.ReplaceBody: Action.CHGBODY,
          p.Quarantine: Action.QUARANTINE}

_MESSAGE_STAGES = frozenset({Stage.MAIL, Stage.RCPT, Stage.DATA, Stage.HEADER, Stage.EOH,
                             Stage.BODY, Stage.EOM})


@frozen
class Step:
    data: bytes                  # the packets to send (macros first)
    expects_reply: bool


@frozen
class EndOfMessage:
    """The final verdict at end of message, with the modifications before it."""
    verdict: object
    modifications: tuple[object, ...]


class Conversation:
    """One milter's side of one SMTP session (see the module description)."""

    def __init__(self, name: str, macro_lists: Mapping[MacroStage | str, tuple[str, ...]],
                 version: int = p.PROTOCOL_VERSION,
                 actions: Action = p.ALL_ACTIONS, protocol: Proto = p.ALL_PROTOCOL,
                 macro_defaults: Mapping[str, str] | None = None) -> None:
        self.name = name
        self._macro_lists = dict(macro_lists)
        self._defaults = macro_defaults or {}
        self._offer = (version, actions, protocol)
        self.agreed: p.Negotiated | None = None
        self._stage: Stage | None = None
        self.accepted_connection = False     # SMFIR_ACCEPT before MAIL: until the end
        self.accepted_message = False        # SMFIR_ACCEPT in a message: until its end
        self.skip_body = False
        self._mods: list[object] = []

    @property
    def macro_lists(self) -> dict[MacroStage | str, tuple[str, ...]]:
        """The macro names per stage, the milter's own SETSYMLIST ones included."""
        return dict(self._macro_lists)

    def resume(self, agreed: p.Negotiated, accepted_message: bool = False) -> None:
        """Take up a conversation negotiated elsewhere (smtpd's, in cleanup):
        the macro lists given at construction are the negotiated ones."""
        self.agreed = agreed
        self.accepted_message = accepted_message

    # --- negotiation ---------------------------------------------------------------

    def negotiate(self) -> bytes:
        return p.optneg(*self._offer)

    def negotiated(self, packet: p.Packet) -> p.Negotiated:
        if packet.code != p.ReplyCode.OPTNEG.value:
            raise MilterProtocolError(f"expected option negotiation, got {packet.code!r}")
        agreed = p.parse_optneg(packet.payload)
        version, actions, protocol = self._offer
        if agreed.version < 2 or agreed.version > version:
            raise MilterProtocolError(f"protocol version {agreed.version} not supported")
        if agreed.actions & ~actions or agreed.protocol & ~protocol:
            raise MilterProtocolError("requested actions or protocol options not offered")
        for stage, names in agreed.symlists:
            self._macro_lists[stage] = names
        self.agreed = agreed
        return agreed

    # --- steps -----------------------------------------------------------------------

    def wants(self, stage: Stage) -> bool:
        """Whether anything goes to this milter at stage."""
        agreed = self.agreed
        if agreed is None or self.accepted_connection:
            return False
        if stage in _MESSAGE_STAGES and self.accepted_message:
            return False
        if stage is Stage.BODY and self.skip_body:
            return False
        # Protocol 2 has no SMFIC_UNKNOWN, and only 4 has SMFIC_DATA: an
        # older milter is not sent them (Postfix milter8.c).
        if stage is Stage.UNKNOWN and agreed.version < 3 \
                or stage is Stage.DATA and agreed.version < 4:
            return False
        return not agreed.protocol & _STAGES[stage].skip_flag

    def macro_names(self, stage: Stage) -> tuple[str, ...]:
        where = _STAGES[stage].macros
        return self._macro_lists.get(where, ()) if where is not None else ()

    def step(self, stage: Stage, payload: bytes,
             macro_values: Mapping[str, str] | None = None) -> Step | None:
        """The packets for stage, or None when the milter is not to see it."""
        if not self.wants(stage):
            return None
        info = _STAGES[stage]
        data = b""
        if info.macros is not None and macro_values is not None:
            pairs = tuple((n, v) for n in self.macro_names(stage)
                          if (v := self._value(n, macro_values)) is not None)
            # Sent even when empty, as Postfix does (seen live, 3.7.11): it
            # clears what the milter kept from the last command of the stage.
            data = p.macros(info.command, pairs)
        data += p.encode(info.command, payload)
        assert self.agreed is not None
        expects = not self.agreed.protocol & info.no_reply_flag
        self._stage = stage if expects else None
        if stage is Stage.EOM:
            self._mods = []
        return Step(data, expects)

    def _value(self, name: str, values: Mapping[str, str | None]) -> str | None:
        """A macro's value, else its milter_macro_defaults value (Postfix 3.1),
        else None: not sent."""
        bare = _bare(name)
        value = values.get(bare)
        return value if value is not None else self._defaults.get(bare)

    def receive(self, packet: p.Packet) -> object | None:
        """The reply to the step awaiting one: its verdict, None while more
        is to come (progress, modifications before the end-of-message verdict)."""
        stage = self._stage
        if stage is None:
            raise MilterProtocolError(f"unexpected reply {packet.code!r}",
                                      response=p.reply_name(packet.code))
        reply = p.parse_reply(packet)
        response = p.reply_name(packet.code)
        if isinstance(reply, p.Progress):
            return None
        if isinstance(reply, (p.AddHeader, p.InsertHeader, p.ChangeHeader, p.AddRecipient,
                              p.DeleteRecipient, p.ChangeSender, p.ReplaceBody, p.Quarantine)):
            if stage is not Stage.EOM:
                raise MilterProtocolError(f"modification {type(reply).__name__} before end of message",
                                          response=response)
            self._check_allowed(reply, response)
            self._mods.append(reply)
            return None
        if isinstance(reply, p.Negotiated):
            raise MilterProtocolError("option negotiation reply out of turn", response=response)
        if isinstance(reply, p.Skip) and (stage is not Stage.BODY
                                          or not self.agreed.protocol & Proto.SKIP):
            raise MilterProtocolError("SMFIR_SKIP outside the body", response=response)
        self._stage = None
        self._note(stage, reply)
        if stage is Stage.EOM:
            mods, self._mods = tuple(self._mods), []
            return EndOfMessage(reply, mods)
        return reply

    def _check_allowed(self, mod: object, response: str) -> None:
        agreed = self.agreed
        assert agreed is not None
        if isinstance(mod, p.AddRecipient):
            need = Action.ADDRCPT_PAR if mod.args else Action.ADDRCPT | Action.ADDRCPT_PAR
            if not agreed.actions & need:
                raise MilterProtocolError("recipient added without the ADDRCPT action",
                                          response=response)
        elif not agreed.actions & _NEEDS[type(mod)]:
            raise MilterProtocolError(f"{type(mod).__name__} without its negotiated action",
                                      response=response)

    def _note(self, stage: Stage, reply: object) -> None:
        if isinstance(reply, p.Accept):
            if stage in (Stage.CONNECT, Stage.HELO):
                self.accepted_connection = True
            else:
                self.accepted_message = True
        elif isinstance(reply, p.Skip):
            self.skip_body = True

    def end_message(self) -> None:
        """The message is over (queued, rejected or aborted): the next one starts clean."""
        self.accepted_message = False
        self.skip_body = False
        self._mods = []
        self._stage = None

    def abort(self) -> bytes | None:
        """SMFIC_ABORT, when a message was begun with this milter; no reply follows."""
        self.end_message()
        if self.agreed is None or self.accepted_connection:
            return None
        return p.encode(Command.ABORT)

    def quit(self) -> bytes:
        self._stage = None
        return p.encode(Command.QUIT)


def _bare(name: str) -> str:
    """Macro values are looked up without braces: "{auth_type}" and "auth_type" alike."""
    return name[1:-1] if name.startswith("{") and name.endswith("}") else name


def macro_defaults(value: str) -> dict[str, str]:
    """milter_macro_defaults: "name=value" or "{name=value}" pairs separated
    by commas or white space (a value with commas or white space goes in
    braces, which drop the white space around "=" and inside them), by bare
    macro name. Raises ValueError (BadValue) for a pair without "=" or
    unbalanced braces."""
    out: dict[str, str] = {}
    for item in split_list(value):      # Postfix's mystrtokq() + extpar(), braces kept together
        name, eq, val = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise ValueError(f'missing "=" in "{item}"')
        out[_bare(name)] = val.strip()
    return out


def macro_lists(values: Mapping[str, str]) -> dict[MacroStage | str, tuple[str, ...]]:
    """The macro names per stage from the milter_*_macros parameter values."""
    return {stage: tuple(values.get(param, "").replace(",", " ").split())
            for stage, param in MACRO_PARAMS.items()}


__all__ = ["Stage", "Step", "EndOfMessage", "Conversation", "MACRO_PARAMS", "macro_lists",
           "macro_defaults"]
