"""address - addresses and names as they are written into message headers.

``quote_822_local(addr)`` is Postfix's quote_822_local(3): the external form
of an address for a header (``for <...>`` in ``Received:``, an added
``From:``). A local part that is not a plain dot-atom is written as a quoted
string, ``"john doe"@example.com``; 8-bit characters are left alone, as
Postfix does by default (QUOTE_FLAG_8BITCLEAN).

``unquote_822_local(addr)`` is its inverse, Postfix's unquote_822_local(3):
the internal form, with the quotes of the local part dropped.

``phrase_text(name)`` formats a full name (``sendmail -F``) for
``From: phrase <addr>``, as Postfix's make_ascii_header_text(3) and
rfc2047_encode(3) do: control characters and runs of white space become one
space; an ASCII name without RFC 822 specials is written as is, one with
specials as a quoted string, a non-ASCII one as RFC 2047 encoded-words in
``full_name_encoding_charset`` (Q encoding, or B when most bytes would need
escaping). An empty result means "no phrase".

``comment_text(text)`` is Postfix's comment_sanitize(3) in spirit: text safe
inside ``( ... )`` in a Received: header (SASL user names).

``strip_extension(local, delimiter)`` is a local part without its address
extension: ``user+ext`` -> ``user`` at the first recipient_delimiter
character, unless that character leads.

``lookup_keys(address, delimiter, is_local)`` are the table keys Postfix's
mail_addr_find() tries for an address, in order: user+ext@domain,
user@domain, then user+ext and user when is_local(domain) (or there is no
domain), then @domain; each with the extension that key leaves out (none
for @domain: mail_addr_find() reports an unmatched extension only for a
key with the user in it, so "@domain @other" keeps user+ext whole).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

__all__ = ["quote_822_local", "unquote_822_local", "phrase_text", "comment_text", "lookup_keys", "strip_extension"]

# lex_822.h LEX_822_SPECIALS: the RFC 822 specials.
_SPECIALS_822 = '()<>@,;:\\".[]'

# A local part needs quoting when it holds a special other than ".", white
# space or a control character, or when its dots do not separate atoms
# (quote_822_local.c is_822_dot_string).
_NEEDS_QUOTE = re.compile(r'[()<>@,;:\\"\[\] \x00-\x1f\x7f]|^\.|\.\.|\.$|^$')
# A local part that is one whole quoted-string (RFC 5321 4.1.2).
QUOTED_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def quote_822_local(addr: str, *, internal: bool = False) -> str:
    """quote_822_local - ``"a b"@example.com`` for ``a b@example.com``; other
    addresses unchanged, among them one quoted already: the queue holds
    addresses as smtpd received them, ``"a b"@example.com`` (external form),
    and quoting that again gave ``"\\"a b\\""@example.com``. internal: addr
    is in the internal form for sure (a local part ``"a"`` is then quoted)."""
    at = addr.rfind("@")
    local, domain = (addr[:at], addr[at:]) if at >= 0 else (addr, "")
    if not addr or not _NEEDS_QUOTE.search(local) or (not internal and QUOTED_STRING.fullmatch(local)):
        return addr
    escaped = local.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"{domain}'


def unquote_822_local(addr: str) -> str:
    """unquote_822_local - ``a b@example.com`` for ``"a b"@example.com``: the
    internal form of an address (quotes dropped, backslash escapes undone in
    the local part), which quote_822_local() turns back."""
    if '"' not in addr and "\\" not in addr:
        return addr
    out: list[str] = []
    quoted, i, at = False, 0, -1
    while i < len(addr):
        c = addr[i]
        if c == "\\" and i + 1 < len(addr) and at < 0:
            out.append(addr[i + 1])
            i += 2
            continue
        if c == '"' and at < 0:
            quoted = not quoted
        else:
            if c == "@" and not quoted:
                at = len(out)          # the last one outside quotes splits
            out.append(c)
        i += 1
    return "".join(out)


_CNTRL_SPACE = re.compile(r"[\x00-\x20\x7f]+")
_PHRASE_SPECIALS = frozenset("%!" + _SPECIALS_822)

# rfc2047_code.c: an encoded-word is at most 75 characters; in a phrase the
# Q encoding may leave only letters, digits and "!*+-/" bare.
_ENC_WORD_MAX = 75
_Q_BARE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")


def phrase_text(name: str, charset: str = "utf-8", separator: str = "\n") -> str:
    """phrase_text - a full name as an RFC 5322 phrase; "" when nothing printable is left."""
    clean = _CNTRL_SPACE.sub(" ", name).strip()
    if not clean:
        return ""
    if clean.isascii():
        if _PHRASE_SPECIALS.isdisjoint(clean):
            return clean
        escaped = clean.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return _rfc2047_phrase(clean.encode("utf-8", "surrogateescape"), charset, separator)


def _rfc2047_phrase(data: bytes, charset: str, separator: str) -> str:
    need = sum(1 for b in data if b not in _Q_BARE)
    if len(data) >= 20 and need >= len(data) // 2:
        prolog = f"=?{charset}?B?"
        room = 3 * ((_ENC_WORD_MAX - 2 - len(prolog)) >> 2)
        words = [prolog + base64.b64encode(data[i:i + room]).decode("ascii") + "?="
                 for i in range(0, len(data), room)]
        return separator.join(words)
    prolog = f"=?{charset}?Q?"
    words: list[str] = []
    cur: list[str] = []
    avail = _ENC_WORD_MAX - 2 - len(prolog)
    for b in data:
        piece = "_" if b == 0x20 else chr(b) if b in _Q_BARE else f"={b:02X}"
        if len(piece) > avail:
            words.append(prolog + "".join(cur) + "?=")
            cur, avail = [], _ENC_WORD_MAX - 2 - len(prolog)
        cur.append(piece)
        avail -= len(piece)
    words.append(prolog + "".join(cur) + "?=")
    return separator.join(words)


def comment_text(text: str) -> str:
    """comment_text - ``text`` made safe inside a header comment.

    Control characters become "?", and parentheses are kept balanced (an
    unopened ")" is dropped, an unclosed "(" is closed at the end), and a
    trailing lone backslash is dropped, so the comment cannot end early or
    swallow what follows it.
    """
    out: list[str] = []
    depth = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 == n:
                break
            out.append(ch)
            i += 1
            ch = text[i]
            out.append("?" if ch < " " or ch == "\x7f" else ch)
            i += 1
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                i += 1
                continue
            depth -= 1
        elif ch < " " or ch == "\x7f":
            ch = "?"
        out.append(ch)
        i += 1
    out.append(")" * depth)
    return "".join(out)


def strip_extension(local: str, delimiter: str) -> str:
    """user+ext -> user at the first recipient_delimiter character (none when it leads)."""
    for i, c in enumerate(local):
        if c in delimiter:
            return local[:i] if i > 0 else local
    return local


def lookup_keys(address: str, delimiter: str,
                is_local: Callable[[str], bool]) -> list[tuple[str, str]]:
    """mail_addr_find()'s (key, extension left out) pairs for address, in order."""
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    base = strip_extension(local, delimiter)
    extension = local[len(base):]
    keys: list[tuple[str, str]] = []
    if domain:
        keys.append((f"{local}@{domain}", ""))
        if extension:
            keys.append((f"{base}@{domain}", extension))
    if not domain or is_local(domain):
        keys.append((local, ""))
        if extension:
            keys.append((base, extension))
    if domain:
        keys.append((f"@{domain}", ""))
    return keys
