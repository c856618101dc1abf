"""pipe_macros - the ${name} macros in the argv= of a pipe(8) entry.

SYNOPSIS
    parse_template("-d ${user}@${domain}")     # ("-d ", Macro("user"), "@", Macro("domain"))
    expand_argv(("deliver", "-f", "${sender}", "-d", "${recipient}"),
                values, recipients, flags=frozenset("hu"), delimiters="+")
    # ["deliver", "-f", "alice@example.org", "-d", "bob@example.com", "carol@example.com"]

DESCRIPTION
    Postfix's expand_argv() and parse_callback() (src/pipe/pipe.c) over
    mac_parse(3): ``$name``, ``${name}`` and ``$(name)`` are macros, ``$$``
    is one ``$``; a name that is none of the macros below, an empty name,
    or an unclosed ``${`` is a MacroError (Postfix: "unknown macro name"),
    which the agent answers with 4.3.5 "mail system configuration error".
    Expansion is not recursive: a value holding ``$`` stays as it is.

    Per request: sender (the null sender as null_sender= says), nexthop,
    size, queue_id, client_address, client_hostname, client_port,
    client_protocol, client_helo, sasl_method, sasl_username, sasl_sender.

    Per recipient: recipient, original_recipient, user, extension,
    mailbox, domain. An argument that holds one of these becomes one
    argument per recipient of the request, in order, each with that
    recipient's values; any other argument stays one. An argument whose
    ${user} would be empty is left out for that recipient (Postfix keeps
    this for Cyrus' shared mailboxes).

    Flags: q quotes the local part of ${sender}, ${recipient} and
    ${original_recipient} as RFC 822 wants (``"a b"@example.com``), not
    an empty sender; u lower-cases the local part of ${recipient} and
    ${original_recipient} (and so ${user}, ${extension}, ${mailbox}); h
    lower-cases their domain, ${domain} and ${nexthop}. ${user} and
    ${extension} split the local part at the first $recipient_delimiter
    character, as split_addr() does: not at the first character, not in
    postmaster, MAILER-DAEMON or $double_bounce_sender, and not in
    owner-NAME or NAME-request when "-" is a delimiter.

    Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mailsys.frozen import frozen
from mailsys.message.address import quote_822_local

__all__ = ["Macro", "MacroError", "MACROS", "PER_RECIPIENT", "parse_template", "expand_argv",
           "request_values", "split_addr", "fold_addr"]

PER_RECIPIENT = frozenset({"recipient", "original_recipient", "user", "extension", "mailbox",
                           "domain"})
MACROS = PER_RECIPIENT | {"nexthop", "sender", "size", "queue_id", "client_address",
                          "client_hostname", "client_port", "client_protocol", "client_helo",
                          "sasl_method", "sasl_username", "sasl_sender"}
_CLOSE = {"{": "}", "(": ")"}


class MacroError(Exception):
    """An argv= word the agent cannot expand."""


@frozen
class Macro:
    name: str


@frozen
class Recipient:
    """What a per-recipient macro reads: the address and the original one."""

    address: str
    original: str


def parse_template(text: str) -> tuple[str | Macro, ...]:
    """The literal pieces and macros of one argv= word (mac_parse)."""
    parts: list[str | Macro] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "$":
            literal.append(c)
            i += 1
            continue
        if text[i + 1:i + 2] == "$":
            literal.append("$")
            i += 2
            continue
        opener = text[i + 1:i + 2]
        if opener in _CLOSE:
            close, level, j = _CLOSE[opener], 1, i + 2
            while j < len(text) and level:
                level += {opener: 1, close: -1}.get(text[j], 0)
                j += 1
            if level:
                raise MacroError(f'missing \'{close}\' in "{text}"')
            name, i = text[i + 2:j - 1], j
        else:
            j = i + 1
            while j < len(text) and (text[j].isalnum() or text[j] == "_") and text[j].isascii():
                j += 1
            name, i = text[i + 1:j], j
        if not name:
            raise MacroError(f'empty macro name: "{text}"')
        if name not in MACROS:
            raise MacroError(f'unknown macro name: "{name}"')
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(Macro(name))
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def fold_addr(address: str, user: bool, host: bool) -> str:
    """Postfix fold_addr(3): lower-case the local part (user) and/or the
    domain (host), split at the right-most @."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address.lower() if user else address
    return f"{local.lower() if user else local}@{domain.lower() if host else domain}"


def split_addr(local: str, delimiters: str, double_bounce: str = "double-bounce"
               ) -> tuple[str, str | None]:
    """(user, extension or None) of a local part (Postfix split_addr(3))."""
    low = local.lower()
    if not delimiters or low in ("postmaster", "mailer-daemon", double_bounce.lower()):
        return local, None
    if "-" in delimiters and (low.startswith("owner-") or (len(low) > 8 and low.endswith("-request"))):
        return local, None
    cut = min((i for i in (local.find(c) for c in delimiters) if i >= 0), default=-1)
    if cut <= 0:
        return local, None
    return local[:cut], local[cut + 1:]


def _morph(address: str, flags: frozenset[str], quote: bool) -> str:
    if quote and "q" in flags:
        address = quote_822_local(address)
    return fold_addr(address, "u" in flags, "h" in flags)


def request_values(*, sender: str, null_sender: str, nexthop: str, size: int, queue_id: str,
                   client_address: str = "", client_hostname: str = "", client_port: str = "",
                   client_protocol: str = "", client_helo: str = "", sasl_method: str = "",
                   sasl_username: str = "", sasl_sender: str = "",
                   flags: frozenset[str] = frozenset()) -> dict[str, str]:
    """The per-request macro values, the flags applied (see DESCRIPTION)."""
    sender = sender or null_sender
    return {"sender": quote_822_local(sender) if sender and "q" in flags else sender,
            "nexthop": nexthop.lower() if "h" in flags else nexthop,
            "size": str(size), "queue_id": queue_id,
            "client_address": client_address, "client_hostname": client_hostname,
            "client_port": client_port, "client_protocol": client_protocol,
            "client_helo": client_helo, "sasl_method": sasl_method,
            "sasl_username": sasl_username, "sasl_sender": sasl_sender}


def _recipient_values(rcpt: Recipient, names: set[str], flags: frozenset[str], delimiters: str,
                      double_bounce: str) -> dict[str, str] | None:
    """One recipient's values of the macros named; None: leave the argument out."""
    values: dict[str, str] = {}
    if "recipient" in names:
        values["recipient"] = _morph(rcpt.address, flags, quote=True)
    if "original_recipient" in names:
        values["original_recipient"] = _morph(rcpt.original, flags, quote=True)
    local, at, domain = _morph(rcpt.address, flags, quote=False).rpartition("@")
    if not at:
        local, domain = domain, ""
    user, ext = split_addr(local, delimiters, double_bounce)
    if "user" in names:
        if not user:
            return None
        values["user"] = user
    values["extension"] = ext or ""
    values["mailbox"] = local
    values["domain"] = domain
    return values


def expand_argv(argv: Iterable[str], values: Mapping[str, str], recipients: Iterable[Recipient],
                flags: frozenset[str] = frozenset(), delimiters: str = "",
                double_bounce: str = "double-bounce") -> list[str]:
    """The command's argument vector for one request (see DESCRIPTION);
    MacroError for a word that cannot be expanded."""
    rcpts = list(recipients)
    out: list[str] = []
    for word in argv:
        parts = parse_template(word)
        names = {p.name for p in parts if isinstance(p, Macro)}
        if not names & PER_RECIPIENT:
            out.append("".join(p if isinstance(p, str) else values[p.name] for p in parts))
            continue
        for rcpt in rcpts:
            mine = _recipient_values(rcpt, names, flags, delimiters, double_bounce)
            if mine is None:
                continue
            out.append("".join(p if isinstance(p, str) else mine.get(p.name, values.get(p.name, ""))
                               for p in parts))
    return out
