"""postscreen_smtp - postscreen's own SMTP dialogue with a client that failed a test.

SYNOPSIS
    d = Dialogue(hostname, reject="550 5.7.1 Service unavailable; client [192.0.2.7] ...",
                 namaddr="[192.0.2.7]:4711", size_limit=10240000)
    step = d.command(b"RCPT TO:<b@example.org>")   # Step(reply, close, log)

DESCRIPTION
    Postfix's psc_smtpd.c, for the "enforce" action: the client gets a
    dummy SMTP session that accepts EHLO/HELO and MAIL and answers every
    RCPT (and VRFY) with the reject reply, logging each refused recipient
    as Postfix does:

      NOQUEUE: reject: RCPT from [addr]:port: 550 5.7.1 Service unavailable;
        client [addr] blocked using zen.example; from=<a@b>, to=<c@d>,
        proto=ESMTP, helo=<host>

    DATA and BDAT get "554 5.5.1 Error: no valid recipients" and end the
    session ("DATA without valid RCPT from [addr]:port"). Replies and their
    order were taken from a live Postfix 3.7 postscreen: RCPT before MAIL
    "503 5.5.1 Error: need MAIL command", a second MAIL "503 5.5.1 Error:
    nested MAIL command", ETRN "458 Unable to queue messages", STARTTLS
    "502 5.5.1 Error: command not implemented" (no tlsproxy here), anything
    else "502 5.5.2 Error: command not recognized", QUIT "221 2.0.0 Bye".
    After command_limit commands the client gets "421 4.7.0 HOST Error:
    too many commands" and the session ends.

    The EHLO reply lists what Postfix's postscreen lists, without
    PIPELINING (a client that pipelines anyway is not judged here: the
    after-220 tests are not implemented, see services/postscreen BUGS).

    Pure: lines in, Steps out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Step:
    reply: bytes
    close: bool = False
    log: str = ""


def _address(arg: str) -> str:
    """The address of "TO:<a@b> NOTIFY=..." / "FROM:a@b" as Postfix logs it."""
    _, _, rest = arg.partition(":")
    word = (rest.strip().split() or [""])[0]
    if word.startswith("<"):
        end = word.find(">")
        word = word[1:end if end >= 0 else None]
    return word


class Dialogue:
    """One enforce-mode session; see the module description."""

    def __init__(self, hostname: str, *, reject: str, namaddr: str, size_limit: int = 0,
                 command_limit: int = 20) -> None:
        self.hostname = hostname
        self.reject = reject
        self.namaddr = namaddr
        self.size_limit = size_limit
        self.command_limit = command_limit
        self.commands = 0
        self.helo = ""
        self.proto = "SMTP"
        self.sender: str | None = None

    def ehlo_reply(self) -> bytes:
        lines = [self.hostname]
        if self.size_limit:
            lines.append(f"SIZE {self.size_limit}")
        else:
            lines.append("SIZE")
        lines += ["VRFY", "ETRN", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "CHUNKING"]
        return "".join(f"250{'-' if i < len(lines) - 1 else ' '}{line}\r\n"
                       for i, line in enumerate(lines)).encode()

    def command(self, line: bytes) -> Step:
        """The answer to one command line (without its CRLF)."""
        self.commands += 1
        if self.commands > self.command_limit:
            return Step(f"421 4.7.0 {self.hostname} Error: too many commands\r\n".encode(),
                        close=True)
        text = line.decode("utf-8", "replace").strip()
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if verb == "EHLO":
            self.helo, self.proto, self.sender = arg.strip(), "ESMTP", None
            return Step(self.ehlo_reply())
        if verb == "HELO":
            self.helo, self.proto, self.sender = arg.strip(), "SMTP", None
            return Step(f"250 {self.hostname}\r\n".encode())
        if verb == "MAIL":
            if self.sender is not None:
                return Step(b"503 5.5.1 Error: nested MAIL command\r\n")
            self.sender = _address(arg)
            return Step(b"250 2.1.0 Ok\r\n")
        if verb == "RCPT":
            if self.sender is None:
                return Step(b"503 5.5.1 Error: need MAIL command\r\n")
            note = (f"NOQUEUE: reject: RCPT from {self.namaddr}: {self.reject}; "
                    f"from=<{self.sender}>, to=<{_address(arg)}>, proto={self.proto}, "
                    f"helo=<{self.helo}>")
            return Step(f"{self.reject}\r\n".encode(), log=note)
        if verb in ("DATA", "BDAT"):
            return Step(b"554 5.5.1 Error: no valid recipients\r\n", close=True,
                        log=f"{verb} without valid RCPT from {self.namaddr}")
        if verb == "VRFY":
            return Step(f"{self.reject}\r\n".encode())
        if verb == "ETRN":
            return Step(b"458 Unable to queue messages\r\n")
        if verb in ("RSET", "NOOP"):
            if verb == "RSET":
                self.sender = None
            return Step(b"250 2.0.0 Ok\r\n")
        if verb == "QUIT":
            return Step(b"221 2.0.0 Bye\r\n", close=True)
        if verb == "STARTTLS":
            return Step(b"502 5.5.1 Error: command not implemented\r\n")
        return Step(b"502 5.5.2 Error: command not recognized\r\n")
