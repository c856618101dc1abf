"""postscreen_smtp - postscreen's own SMTP engine: the deep protocol tests and the enforce dialogue.

SYNOPSIS
    engine = Engine(settings, namaddr="[192.0.2.7]:4711",
                    todo={"pipelining", "bare_newline"}, rcpt_reply="450 4.3.2 ...")
    engine.receive_data(data)              # b"" is the client's EOF
    while (step := engine.next_step()) is not None:
        send(step.reply); log(step.log); note(step.passed, step.failed)
        if step.close or step.hangup: break
    step = engine.time_limit()             # postscreen_command_time_limit ran out

DESCRIPTION
    Postfix's postscreen_smtpd.c. A client that has deep tests to do, or
    that failed an earlier test with "enforce", is not handed to smtpd: it
    gets this engine, which answers EHLO/HELO, MAIL, RCPT and the rest
    itself and never takes mail. Every RCPT (and VRFY) is answered with
    rcpt_reply: "450 4.3.2 Service currently unavailable" for a client that
    may come back, or the reply of the last test that failed with
    "enforce" (550 5.3.2, 550 5.5.1 Protocol error, 550 5.7.1 ... blocked
    using SITE); each refused recipient is logged:

      NOQUEUE: reject: RCPT from [addr]:port: 450 4.3.2 Service currently
        unavailable; from=<a@b>, to=<c@d>, proto=ESMTP, helo=<host>

    The tests, with Postfix 3.7's log lines (seen live):

      bare newline   a command line ending in LF without CR:
                     "BARE NEWLINE from [addr]:port after LINE"
      non-SMTP       a command word that is no SMTP command and looks like
                     a header ("Subject:") or is in
                     postscreen_forbidden_commands (or is not UTF-8 with
                     smtputf8_enable): "NON-SMTP COMMAND from [addr]:port
                     after PREVIOUS: WORD REST" (PREVIOUS is CONNECT before
                     any command, UNIMPLEMENTED after an unknown one)
      pipelining     more input already waiting after a command line (the
                     EHLO reply does not offer PIPELINING): "COMMAND
                     PIPELINING from [addr]:port after CMD: WAITING"
                     (escaped)

    Each test fires once per session, and acts by its action: drop ends the
    session (521 5.5.1 Protocol error; non-SMTP: 521 5.7.0 Error: I can
    break rules, too. Goodbye.), enforce makes rcpt_reply "550 5.5.1
    Protocol error", ignore counts the test as passed for the shortest
    postscreen TTL (Step.passed carries ("name", "min")). A test still to do
    passes when the client gets as far as RCPT (Step.passed: ("name",
    "ttl")); a later violation still fails it.

    Limits: the 21st command (postscreen_command_count_limit, QUIT exempt)
    gets "COMMAND COUNT LIMIT from [addr]:port after PREVIOUS", a line of
    line_length_limit bytes "COMMAND LENGTH LIMIT ... after PREVIOUS"; both
    are answered "421 HOST Service unavailable - try again later" and end
    the session. The caller times each command line; time_limit() gives
    "COMMAND TIME LIMIT ... after PREVIOUS" and "421 4.4.2 HOST Error:
    timeout exceeded".

    Replies, as a live Postfix 3.7 postscreen gives them: HELO/EHLO without
    a name "501 Syntax: HELO hostname"; MAIL before HELO with
    postscreen_helo_required "503 5.5.1 Error: send HELO/EHLO first";
    nested MAIL "503 5.5.1 Error: nested MAIL command"; RCPT before MAIL
    "503 5.5.1 Error: need MAIL command"; DATA "554 5.5.1 Error: no valid
    recipients" (and the session ends, "DATA without valid RCPT from
    [addr]:port"), BDAT likewise; VRFY with postscreen_disable_vrfy_command
    "502 5.5.1 VRFY command is disabled"; ETRN "458 Unable to queue
    messages"; STARTTLS when TLS is off "502 5.5.1 Error: command not
    implemented"; AUTH, XCLIENT, XFORWARD and unknown commands "502 5.5.2
    Error: command not recognized"; QUIT "221 2.0.0 Bye". The EHLO reply
    offers no PIPELINING and no AUTH.

    STARTTLS (settings.starttls: the caller has a certificate) is answered
    "220 2.0.0 Ready to start TLS" with Step.starttls set; the caller does
    the handshake and calls tls_started(), which forgets HELO and MAIL as
    RFC 3207 requires, and input that came with the STARTTLS command is
    discarded (it was sent in clear). With require_tls (postscreen_tls_
    security_level = encrypt) every command but HELO, EHLO, STARTTLS, NOOP
    and QUIT gets "530 5.7.0 Must issue a STARTTLS command first" until
    then.

    Pure: bytes in, Steps out; tables come in as lookup callables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mailsys.frozen import frozen
from mailsys.maillog.postfix import escape

PIPELINING, NON_SMTP, BARE_NEWLINE = "pipelining", "non_smtp", "bare_newline"
DROP, ENFORCE, IGNORE = "drop", "enforce", "ignore"

PROTOCOL_ERROR_DROP = "521 5.5.1 Protocol error"
PROTOCOL_ERROR_ENFORCE = "550 5.5.1 Protocol error"
NON_SMTP_DROP = "521 5.7.0 Error: I can break rules, too. Goodbye."
DEFER_REPLY = "450 4.3.2 Service currently unavailable"

# Command name -> (enabled, allowed before STARTTLS when TLS is required).
# AUTH, XCLIENT and XFORWARD are known but never offered (Postfix's table).
_COMMANDS = {
    "HELO": (True, True), "EHLO": (True, True), "STARTTLS": (True, True),
    "XCLIENT": (False, False), "XFORWARD": (False, False), "AUTH": (False, False),
    "MAIL": (True, False), "RCPT": (True, False), "DATA": (True, False),
    "BDAT": (True, False), "RSET": (True, False), "NOOP": (True, True),
    "VRFY": (True, False), "ETRN": (True, False), "QUIT": (True, True),
}
CONNECT = "CONNECT"                 # "where" before the first command
UNIMPLEMENTED = "UNIMPLEMENTED"     # "where" after an unknown command
TEXT_LIMIT = 100                    # bytes of client text a log line shows
# Postfix is_header(): a header name (printable, no space or colon), then ":".
HEADER_LIKE_RE = re.compile(r"[\x21-\x39\x3b-\x7e]+:")


@frozen
class CommandList:
    """postscreen_forbidden_commands: words (case does not matter, "!word"
    excludes) and type:table lookups of the command word; the first
    element that matches decides (Postfix string_list)."""
    items: tuple[tuple[bool, str, Any], ...]     # (negated, lowercase word, table)

    @classmethod
    def compile(cls, items: Iterable[str], opener: Callable[[str], Any]) -> "CommandList":
        compiled = []
        for item in items:
            negated = item.startswith("!")
            text = item[1:] if negated else item
            if ":" in text:
                compiled.append((negated, "", opener(text)))
            else:
                compiled.append((negated, text.lower(), None))
        return cls(tuple(compiled))

    def match(self, word: str) -> bool:
        for negated, text, table in self.items:
            hit = table.lookup(word) is not None if table is not None else word.lower() == text
            if hit:
                return not negated
        return False


@frozen
class EngineSettings:
    hostname: str                        # myhostname
    banner: str                          # smtpd_banner, after "220 "
    size_limit: int = 10240000           # message_size_limit (0: no limit)
    actions: tuple[tuple[str, str], ...] = ((PIPELINING, ENFORCE), (NON_SMTP, DROP),
                                            (BARE_NEWLINE, IGNORE))
    forbidden: CommandList = CommandList(((False, "connect", None), (False, "get", None),
                                          (False, "post", None)))
    command_filter: Any = None           # postscreen_command_filter table, or None
    command_count_limit: int = 20
    line_limit: int = 2048               # line_length_limit
    helo_required: bool = False
    disable_vrfy: bool = False           # postscreen_disable_vrfy_command: the VRFY reply
    # The EHLO reply's VRFY follows smtpd's disable_vrfy_command, not
    # postscreen's (Postfix 3.7 postscreen_smtpd.c; seen live).
    ehlo_vrfy: bool = True
    discard_ehlo: frozenset[str] = frozenset()   # upper-case keywords
    smtputf8: bool = True                # smtputf8_enable: offered, and bad UTF-8 is non-SMTP
    soft_bounce: bool = False
    starttls: bool = False               # offer STARTTLS (the caller can do TLS)
    require_tls: bool = False            # postscreen_tls_security_level = encrypt

    def action(self, test: str) -> str:
        return dict(self.actions)[test]

    def ehlo_reply(self, tls_active: bool) -> bytes:
        words = ["SIZE " + str(self.size_limit) if self.size_limit else "SIZE"]
        if self.ehlo_vrfy:
            words.append("VRFY")
        words.append("ETRN")
        if self.starttls and not tls_active:
            words.append("STARTTLS")
        words += ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN"]
        if self.smtputf8:
            words.append("SMTPUTF8")
        words.append("CHUNKING")
        words = [w for w in words if w.split()[0] not in self.discard_ehlo]
        lines = [self.hostname, *words]
        return "".join(f"250{'-' if i < len(lines) - 1 else ' '}{line}\r\n"
                       for i, line in enumerate(lines)).encode()


@frozen
class Step:
    reply: bytes = b""
    close: bool = False                  # the reply ends the session
    hangup: bool = False                 # the client went away (EOF)
    starttls: bool = False               # send reply, then start TLS
    log: tuple[str, ...] = ()
    passed: tuple[tuple[str, str], ...] = ()     # (test, "ttl" | "min")
    failed: tuple[str, ...] = ()


def _address(arg: str) -> str:
    """The address of "FROM:<a@b> SIZE=1" as Postfix's psc_extract_addr
    takes it: <...> or a bare word, quotes and backslashes undone, a
    source route dropped."""
    cp = arg.lstrip(" ")
    stop = ">" if cp.startswith("<") else " "
    if stop == ">":
        cp = cp[1:]
    out, quoted, i = [], False, 0
    while i < len(cp):
        ch = cp[i]
        if not quoted and ch == stop:
            break
        if ch == '"':
            quoted = not quoted
        else:
            if ch == "\\":
                i += 1
                if i >= len(cp):
                    break
                ch = cp[i]
            out.append(ch)
        i += 1
    addr = "".join(out)
    if addr.startswith("@") and ":" in addr:
        addr = addr.split(":", 1)[1]
    return addr


def _printable(text: str) -> str:
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def soften(reply: str) -> str:
    """soft_bounce: 5XX X.Y.Z becomes 4XX 4.Y.Z (Postfix psc_soften_reply)."""
    if reply[:1] == "5":
        reply = "4" + reply[1:]
    if reply[4:5] == "5":
        reply = reply[:4] + "4" + reply[5:]
    return reply


@dataclass(slots=True)
class Engine:
    """One session in postscreen's SMTP engine; see the module description."""
    settings: EngineSettings
    namaddr: str
    todo: set[str] = field(default_factory=set)      # deep tests still to do
    rcpt_reply: str = DEFER_REPLY
    ehlo_note: str = ""          # logged at each EHLO (discard_ehlo_keyword_address_maps)
    tls_active: bool = False
    where: str = CONNECT
    helo: str | None = None
    sender: str | None = None
    protocol: str = "SMTP"
    commands: int = 0
    passed: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)   # decided: no second report
    _buffer: bytearray = field(default_factory=bytearray)
    _eof: bool = False
    _done: bool = False

    def greeting(self) -> bytes:
        return f"220 {self.settings.banner}\r\n".encode()

    def receive_data(self, data: bytes) -> None:
        if data:
            self._buffer += data
        else:
            self._eof = True

    @property
    def pending(self) -> bytes:
        """Input received and not yet read as commands."""
        return bytes(self._buffer)

    def time_limit(self) -> Step:
        self._done = True
        return Step(f"421 4.4.2 {self.settings.hostname} Error: timeout exceeded\r\n".encode(),
                    close=True,
                    log=(f"COMMAND TIME LIMIT from {self.namaddr} after {self.where}",))

    def _active(self, test: str) -> bool:
        return test in self.todo and test not in self.skipped

    def _violation(self, test: str, note: str, drop_reply: str) -> Step | None:
        """A test failed: log it, then act by its action. A Step when the
        session ends (drop); None when it goes on."""
        self.skipped.add(test)
        self.passed.discard(test)
        action = self.settings.action(test)
        if action == DROP:
            self.failed.add(test)
            self._done = True
            return Step(f"{drop_reply}\r\n".encode(), close=True, log=(note,), failed=(test,))
        if action == ENFORCE:
            self.failed.add(test)
            self.rcpt_reply = PROTOCOL_ERROR_ENFORCE
            return None
        self.passed.add(test)
        return None

    def _overlong(self, end: int) -> bool:
        """Whether reading bytes up to index `end` (inclusive) passes
        line_length_limit: Postfix refuses to store another byte once the
        line holds line_limit bytes, except the LF right after a CR."""
        limit = self.settings.line_limit
        buf = self._buffer
        return any(buf[i - 1] != 0x0D for i in range(limit, end + 1))

    def next_step(self) -> Step | None:
        """The next thing to do, or None when more input is needed."""
        if self._done:
            return None
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > self.settings.line_limit \
                    and self._overlong(len(self._buffer) - 1):
                return self._length_limit()
            if self._eof:
                self._done = True
                return Step(hangup=True)
            return None
        if end >= self.settings.line_limit and self._overlong(end):
            return self._length_limit()
        raw = bytes(self._buffer[:end])
        del self._buffer[:end + 1]
        notes: list[str] = []
        fails: list[str] = []
        passes: list[tuple[str, str]] = []
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        elif self._active(BARE_NEWLINE):
            notes.append(f"BARE NEWLINE from {self.namaddr} after "
                         f"{escape(raw[:TEXT_LIMIT])}")
            step = self._violation(BARE_NEWLINE, notes[-1], PROTOCOL_ERROR_DROP)
            if step is not None:
                return step
            self._record(BARE_NEWLINE, fails, passes)
        step = self._command(raw, notes, fails, passes)
        return step

    def _record(self, test: str, fails: list[str], passes: list[tuple[str, str]]) -> None:
        if test in self.failed:
            fails.append(test)
        else:
            passes.append((test, "min"))

    def _length_limit(self) -> Step:
        self._done = True
        return Step(self._try_later(), close=True,
                    log=(f"COMMAND LENGTH LIMIT from {self.namaddr} after {self.where}",))

    def _try_later(self) -> bytes:
        return f"421 {self.settings.hostname} Service unavailable - try again later\r\n".encode()

    def _command(self, raw: bytes, notes: list[str], fails: list[str],
                 passes: list[tuple[str, str]]) -> Step:
        s = self.settings
        text = raw.decode("utf-8", "surrogateescape")
        if s.command_filter is not None and (not s.smtputf8 or _valid_utf8(raw)):
            replaced = s.command_filter.lookup(text.lstrip(" \t"))
            if replaced is not None:
                notes.append(f'{self.namaddr}: replacing command "{text[:TEXT_LIMIT]}" '
                             f'with "{replaced[:TEXT_LIMIT]}"')
                text = replaced
        # mystrtok(" "): the first word, the rest after the one space that ends it
        stripped = text.lstrip(" ")
        word, _, rest = stripped.partition(" ")
        name = word.upper()
        known = name in _COMMANDS
        saved_where, self.where = self.where, (name if known else UNIMPLEMENTED)

        def finish(reply: bytes | str, **kw) -> Step:
            if isinstance(reply, str):
                # soft_bounce: no 5XX reply leaves postscreen (psc_send_reply).
                reply = ((soften(reply) if s.soft_bounce else reply) + "\r\n").encode()
            return Step(reply, log=tuple(notes) + kw.pop("log", ()), failed=tuple(fails),
                        passed=tuple(passes), **kw)

        if self._active(NON_SMTP) and not known and (
                HEADER_LIKE_RE.match(word) or (s.smtputf8 and not _valid_utf8(
                    word.encode("utf-8", "surrogateescape"))) or s.forbidden.match(word)):
            rest_bytes = rest.encode("utf-8", "surrogateescape")
            notes.append(f"NON-SMTP COMMAND from {self.namaddr} after {saved_where}: "
                         f"{_printable(word)[:TEXT_LIMIT]} {escape(rest_bytes[:TEXT_LIMIT])}")
            step = self._violation(NON_SMTP, notes[-1], NON_SMTP_DROP)
            if step is not None:
                return Step(step.reply, close=True, log=tuple(notes), failed=(NON_SMTP,))
            self._record(NON_SMTP, fails, passes)
        if name != "BDAT" and self._active(PIPELINING) and self._buffer:
            notes.append(f"COMMAND PIPELINING from {self.namaddr} after "
                         f"{_printable(word)[:TEXT_LIMIT]}: "
                         f"{escape(bytes(self._buffer[:TEXT_LIMIT]))}")
            step = self._violation(PIPELINING, notes[-1], PROTOCOL_ERROR_DROP)
            if step is not None:
                return Step(step.reply, close=True, log=tuple(notes),
                            failed=tuple(fails) + (PIPELINING,))
            self._record(PIPELINING, fails, passes)
        if name == "RCPT":
            # Getting as far as RCPT passes every deep test not yet decided.
            for test in (BARE_NEWLINE, NON_SMTP, PIPELINING):
                if test in self.todo and test not in self.passed and test not in self.failed:
                    self.passed.add(test)
                    passes.append((test, "ttl"))
        self.commands += 1
        if self.commands > s.command_count_limit and name != "QUIT":
            self._done = True
            return finish(self._try_later(), close=True,
                          log=(f"COMMAND COUNT LIMIT from {self.namaddr} after {saved_where}",))
        enabled, pre_tls = _COMMANDS.get(name, (False, False))
        if not enabled:
            return finish("502 5.5.2 Error: command not recognized")
        if s.require_tls and not self.tls_active and not pre_tls:
            return finish("530 5.7.0 Must issue a STARTTLS command first")
        return getattr(self, "_" + name.lower())(rest, finish)

    # --- the commands (Postfix psc_*_cmd) ----------------------------------

    def _helo(self, rest, finish):
        name = rest.split()
        if not name:
            return finish("501 Syntax: HELO hostname")
        self.helo, self.sender = name[0], None
        return finish(f"250 {self.settings.hostname}")

    def _ehlo(self, rest, finish):
        name = rest.split()
        if not name:
            return finish("501 Syntax: EHLO hostname")
        self.helo, self.sender, self.protocol = name[0], None, "ESMTP"
        return finish(self.settings.ehlo_reply(self.tls_active),
                      log=(self.ehlo_note,) if self.ehlo_note else ())

    def _starttls(self, rest, finish):
        if rest.split():
            return finish("501 5.5.4 Syntax: STARTTLS")
        if self.tls_active:
            return finish("554 5.5.1 Error: TLS already active")
        if not self.settings.starttls or "STARTTLS" in self.settings.discard_ehlo:
            return finish("502 5.5.1 Error: command not implemented")
        if self._buffer:
            # Commands sent with STARTTLS would be read as if encrypted.
            self._buffer.clear()
        return finish("220 2.0.0 Ready to start TLS", starttls=True)

    def tls_started(self) -> None:
        """The caller finished the TLS handshake: forget the session so far."""
        self.tls_active = True
        self.helo = self.sender = None

    def _mail(self, rest, finish):
        if self.settings.helo_required and self.helo is None:
            return finish("503 5.5.1 Error: send HELO/EHLO first")
        if self.sender is not None:
            return finish("503 5.5.1 Error: nested MAIL command")
        if ":" not in rest:
            return finish("501 5.5.4 Syntax: MAIL FROM:<address>")
        self.sender = _address(rest.split(":", 1)[1])
        return finish("250 2.1.0 Ok")

    def _rcpt(self, rest, finish):
        if self.sender is None:
            return finish("503 5.5.1 Error: need MAIL command")
        if ":" not in rest:
            return finish("501 5.5.4 Syntax: RCPT TO:<address>")
        shown = soften(self.rcpt_reply) if self.settings.soft_bounce else self.rcpt_reply
        note = (f"NOQUEUE: reject: RCPT from {self.namaddr}: {shown}; "
                f"from=<{self.sender}>, to=<{_address(rest.split(':', 1)[1])}>, "
                f"proto={self.protocol}, helo=<{self.helo or ''}>")
        return finish(self.rcpt_reply, log=(note,))

    def _data(self, rest, finish):
        self._done = True
        note = (f"DATA without valid RCPT from {self.namaddr}",)
        if rest.split():
            return finish("501 5.5.4 Syntax: DATA", close=True, log=note)
        if self.sender is None:
            return finish("503 5.5.1 Error: need RCPT command", close=True, log=note)
        return finish("554 5.5.1 Error: no valid recipients", close=True, log=note)

    def _bdat(self, rest, finish):
        self._done = True
        note = (f"BDAT without valid RCPT from {self.namaddr}",)
        if "CHUNKING" in self.settings.discard_ehlo:
            return finish("502 5.5.1 Error: command not implemented", close=True, log=note)
        if not rest.split():
            return finish("501 5.5.4 Syntax: BDAT count [LAST]", close=True, log=note)
        if self.sender is None:
            return finish("554 5.5.1 Error: need MAIL command", close=True, log=note)
        return finish("554 5.5.1 Error: no valid recipients", close=True, log=note)

    def _rset(self, rest, finish):
        self.sender = None
        return finish("250 2.0.0 Ok")

    def _noop(self, rest, finish):
        return finish("250 2.0.0 Ok")

    def _vrfy(self, rest, finish):
        if not rest.split():
            return finish("501 5.5.4 Syntax: VRFY address")
        if self.settings.disable_vrfy:
            return finish("502 5.5.1 VRFY command is disabled")
        return finish(self.rcpt_reply)

    def _etrn(self, rest, finish):
        if self.settings.helo_required and self.helo is None:
            return finish("503 5.5.1 Error: send HELO/EHLO first")
        if not rest.split():
            return finish("500 Syntax: ETRN domain")
        return finish("458 Unable to queue messages")

    def _quit(self, rest, finish):
        self._done = True
        return finish("221 2.0.0 Bye", close=True)
