"""_extract_addr - the address in a VRFY argument, as Postfix's smtpd finds it.

SYNOPSIS
    words = smtpd_words(" <a@x>   (Joe) ")        # ['<a@x>', '(Joe)']
    extract_address("Joe <a@x.example>")           # 'a@x.example'
    extract_address("John Smith")                  # None: two addresses

DESCRIPTION
    smtpd_words() splits a command argument at spaces and tabs as
    smtpd_token.c does: not inside <...>, [...] or "..." (nested quotes
    and backslash escapes kept). smtpd.c vrfy_cmd() joins the words with
    one space (collapse_args) and answers with, and logs, that text.

    extract_address() is smtpd.c extract_addr() in its sloppy mode (as
    VRFY uses it): the text loses one pair of enclosing <>, then a
    leading "@route:" source route, and is parsed as an RFC 822 address
    list with Postfix's tok822_parse(): words side by side without an
    operator between them are separate addresses ("John Smith" is two),
    a <route-addr> after a phrase is one ("John Smith <js@x>"), comments
    do not count, "name: a;" is a group. The answer is the one address in
    its internal form (quotes and escapes removed, domain literals in
    []), "" when there is none, None when there are several.

    Postfix 3.7.11 with smtputf8_enable = no, all "501 5.1.3 Bad recipient
    address syntax": VRFY John Smith; VRFY <a@x> <b@x>; VRFY a@x, b@x;
    VRFY a b@x; VRFY <a b@x>; VRFY <>; VRFY x <>; VRFY (comment);
    VRFY ""; VRFY <a@x> SMTPUTF8. And 252: VRFY John Smith <js@x>;
    VRFY js@x (John Smith); VRFY "John Smith"@x; VRFY <@r.example:js@x>;
    VRFY <a@x; VRFY <> SMTPUTF8 (the one address SMTPUTF8).

SEE ALSO
    Postfix src/smtpd/smtpd.c extract_addr(), vrfy_cmd(), collapse_args();
    src/smtpd/smtpd_token.c; src/global/tok822_parse.c.
"""

from __future__ import annotations

from dataclasses import dataclass

_BLANK = " \t"
# tok822_opchar: the one-character operators (RFC 822 specials and % ! |).
_OPERATORS = '|"(),.:;<>@[]%!'
_WORDS = ("atom", "qstring", "domlit")


def smtpd_words(text: str) -> list[str]:
    """The words of a command argument (smtpd_token.c smtp_next_token())."""
    words: list[str] = []
    word: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        i += 1
        if c in _BLANK:
            if word:
                words.append("".join(word))
                word = []
            continue
        word.append(c)
        closing = {"<": ">", "[": "]", '"': '"'}.get(c)
        if closing is not None:
            i = _quoted(text, i, closing, word)
    if word:
        words.append("".join(word))
    return words


def _quoted(text: str, i: int, closing: str, word: list[str]) -> int:
    """Copy up to the closing character, through nested quotes and <> (smtp_quoted())."""
    wanted = [closing]
    while i < len(text):
        c = text[i]
        i += 1
        word.append(c)
        if c == "\\":
            if i < len(text):
                word.append(text[i])
                i += 1
        elif c == wanted[-1]:
            wanted.pop()
            if not wanted:
                break
        elif c == '"':
            wanted.append('"')
        elif c == "<" and wanted[-1] == ">":
            wanted.append(">")
    return i


@dataclass(slots=True)
class _Token:
    kind: str                       # atom, qstring, domlit, addr, or the operator
    text: str = ""
    parts: list["_Token"] | None = None   # an addr's tokens


def _scan(text: str) -> list[_Token]:
    """tok822_scan(), without the comments (they never make an address)."""
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        i += 1
        if c.isspace():
            continue
        if c == "(":
            i = _skip_comment(text, i)
        elif c in "[\"":
            end = "]" if c == "[" else '"'
            value, i = _collect(text, i, lambda ch: ch != end)
            i += i < n                  # COLLECT_SKIP_LAST: past the closing one
            out.append(_Token("domlit" if c == "[" else "qstring", value))
        elif c in _OPERATORS:
            out.append(_Token(c))
        else:
            value, i = _collect(text, i - 1, lambda ch: not ch.isspace() and ch not in _OPERATORS)
            # tok822_quote_atom(): an atom that needs quotes is a quoted string.
            quoted = any(ch.isspace() or not ch.isprintable() or ch in _OPERATORS for ch in value)
            out.append(_Token("qstring" if quoted else "atom", value))
    return out


def _collect(text: str, i: int, wanted) -> tuple[str, int]:
    """tok822.c COLLECT(): characters while wanted(), a backslash escaping one."""
    out = []
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 1
            if i == len(text):
                break
            c = text[i]
        elif not wanted(c):
            break
        out.append(" " if c.isspace() else c)
        i += 1
    return "".join(out), i


def _skip_comment(text: str, i: int) -> int:
    """Past the end of a (possibly nested) comment (tok822_comment())."""
    depth = 1
    while i < len(text):
        c = text[i]
        i += 1
        if c == "\\":
            i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                break
    return i


def _group(tokens: list[_Token], left: int, right: int, comma: bool) -> int:
    """tok822_group(): the tokens between left and right become one address
    (after a "," when comma); the new index of right."""
    if right - left <= 1:
        return right
    addr = _Token("addr", parts=tokens[left + 1:right])
    tokens[left + 1:right] = [_Token(",")] * comma + [addr]
    return left + 2 + comma


def _parse(text: str) -> list[_Token]:
    """tok822_parse(): the tokens, addresses grouped, from right to left."""
    tokens = [_Token("")] + _scan(text) + [_Token("")]      # the two sentinels
    word, in_group = True, False
    right = len(tokens) - 1
    tp = right - 1
    while tp > 0:
        kind = tokens[tp].kind
        if kind == ";":                                     # rh side of a named group
            _group(tokens, tp, right, True)
            right = tp
            word, in_group = True, True
        elif kind == ":" and in_group:
            tokens[tp].kind = "startgroup"
            _group(tokens, tp, right, False)
            while tp > 0 and tokens[tp].kind != ",":
                tp -= 1
            right = tp
            continue
        elif kind == ">":                                   # rh side of a <route-addr>
            _group(tokens, tp, right, True)
            right = tp
            while tp > 0 and tokens[tp].kind != "<":
                tp -= 1
            _group(tokens, tp, right, False)
            while tp > 0 and tokens[tp].kind not in (">", ";", ",", ":"):
                tp -= 1
            right = tp
            word = True
            continue
        elif kind in _WORDS:
            if not word:
                _group(tokens, tp, right, True)
                right = tp + 1                  # the "," that now follows tp
            word = False
        elif kind == ",":
            _group(tokens, tp, right, False)
            right = tp
            word = True
        else:
            word = True
        tp -= 1
    _group(tokens, 0, right, False)
    return tokens[1:-1]


def _internal(tokens: list[_Token]) -> str:
    """tok822_internalize() of an address's tokens."""
    out = []
    for t in tokens:
        if t.kind in ("atom", "qstring"):
            out.append(t.text)
        elif t.kind == "domlit":
            out.append(f"[{t.text}]")
        elif t.kind == "addr":
            out.append(_internal(t.parts or []))
        elif t.kind == "startgroup":
            out.append(":")
        else:
            out.append(t.kind)
    return "".join(out)


def extract_address(text: str) -> str | None:
    """The one address in text, internal form ("" for none); None for several."""
    if len(text) >= 2 and text[0] == "<" and text[-1] == ">":
        text = text[1:-1]
    if text.startswith("@") and ":" in text:
        text = text[text.index(":") + 1:]                   # the deprecated source route
    addresses = [t for t in _parse(text) if t.kind == "addr"]
    if len(addresses) > 1:
        return None
    return _internal(addresses[0].parts or []) if addresses else ""


__all__ = ["extract_address", "smtpd_words"]
