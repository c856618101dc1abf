"""_extract_addr - the address in a MAIL, RCPT or VRFY argument, as Postfix's smtpd finds it.

SYNOPSIS
    words = smtpd_words(" <a@x>   (Joe) ")        # ['<a@x>', '(Joe)']
    smtpd_tokens("FROM:<a@x")                      # [('FROM:', True), ('<a@x', False)]
    extract_address("Joe <a@x.example>")           # 'a@x.example'
    extract_address("John Smith")                  # None: two addresses
    envelope_address("<@r:a@x>", strict=False)     # ('a@x', ('@r',))

DESCRIPTION
    smtpd_tokens() splits a command argument as smtpd_token.c does: at
    white space, not inside <...> or "..." (nested quotes and backslash
    escapes kept), and after a word "from:" or "to:"; a word whose <...>
    or "..." never closes is marked (Postfix: "501 5.1.7 Bad sender
    address syntax", no warning). smtpd_words() is the words alone:
    smtpd.c vrfy_cmd() joins them with one space (collapse_args) and
    answers with, and logs, that text.

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

    envelope_address() is the same for the address word of MAIL FROM and
    RCPT TO, with strict_rfc821_envelopes: strict, the word must be in <>
    and hold nothing but the address. Postfix 3.7.11 with the default
    (no) took <<a@b.example>>, <a@b.example>>, a@b.example>,
    <a(comment)@b.example> as a@b.example, <x@a@b.example> as
    "x@a"@b.example, and <>x as the sender x; it refused <a@b.example,
    <a b@c.example>, <a@b.example,c@d.example> and
    <a@b.example>BODY=8BITMIME (two addresses).

SEE ALSO
    Postfix src/smtpd/smtpd.c extract_addr(), vrfy_cmd(), collapse_args();
    src/smtpd/smtpd_token.c; src/global/tok822_parse.c.
"""

from __future__ import annotations

from dataclasses import dataclass

# ISSPACE(): the ASCII white space of C's isspace().
_SPACE = " \t\n\v\f\r"
# tok822_opchar: the one-character operators (RFC 822 specials and % ! |).
_OPERATORS = '|"(),.:;<>@[]%!'
_WORDS = ("atom", "qstring", "domlit")


def smtpd_tokens(text: str) -> list[tuple[str, bool]]:
    """The words of a command line, each with whether it is whole
    (smtpd_token.c smtp_next_token()): split at white space, except inside
    <...> (nested <> and "..." kept) and "..."; a backslash escapes the next
    character; "from:" and "to:" end a word of their own ("FROM:<a@b>" is
    two). A word whose <...> or "..." never closes is not whole
    (SMTPD_TOK_ERROR)."""
    words: list[tuple[str, bool]] = []
    word: list[str] = []
    whole = True
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        i += 1
        if c in _SPACE:
            if word:
                words.append(("".join(word), whole))
                word, whole = [], True
        elif c == "<" or c == '"':
            word.append(c)
            i, closed = _quoted(text, i, ">" if c == "<" else '"', word)
            whole = whole and closed
        elif c == ":":
            word.append(c)
            if len(word) in (3, 5) and "".join(word).lower() in ("to:", "from:"):
                words.append(("".join(word), whole))
                word, whole = [], True
        else:
            word.append(c)
            if c == "\\" and i < n:
                word.append(text[i])
                i += 1
    if word:
        words.append(("".join(word), whole))
    return words


def smtpd_words(text: str) -> list[str]:
    """The words of a command argument, as smtpd_tokens() splits them."""
    return [word for word, _whole in smtpd_tokens(text)]


def _quoted(text: str, i: int, closing: str, word: list[str]) -> tuple[int, bool]:
    """Copy up to the closing character, through nested quotes and <>
    (smtp_quoted()); whether it closed."""
    wanted = [closing]
    while i < len(text):
        c = text[i]
        i += 1
        word.append(c)
        if c == "\\":
            if i == len(text):
                break
            word.append(text[i])
            i += 1
        elif c == wanted[-1]:
            wanted.pop()
            if not wanted:
                return i, True
        elif c == '"':
            wanted.append('"')
        elif c == "<" and wanted[-1] == ">":
            wanted.append(">")
    return i, False


@dataclass(slots=True)
class _Token:
    kind: str                       # atom, qstring, domlit, addr, or the operator
    text: str = ""
    parts: list["_Token"] | None = None   # an addr's tokens


def _scan(text: str, comments: list[int]) -> list[_Token]:
    """tok822_scan(), without the comments (they never make an address:
    tok822_parse() moves them aside); their places go to comments."""
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        i += 1
        if c.isspace():
            continue
        if c == "(":
            comments.append(i - 1)
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


def _parse(text: str, comments: list[int]) -> list[_Token]:
    """tok822_parse(): the tokens, addresses grouped, from right to left."""
    tokens = [_Token("")] + _scan(text, comments) + [_Token("")]      # the two sentinels
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
    found = _extract(text)
    return None if found is None else found[0]


def envelope_address(word: str, strict: bool) -> tuple[str, tuple[str, ...]] | None:
    """extract_addr() for MAIL FROM and RCPT TO: the one address of the
    word in internal form ("" for none) and the source route it dropped
    (("@a", "@b") for <@a,@b:u@d>), or None where Postfix logs "Illegal
    address syntax": more than one address, or with strict (RFC 821
    envelopes) a word not in <>, or anything beside the address, a
    comment too."""
    found = _extract(word, strict)
    if found is None or (strict and not word.startswith("<")):
        return None
    return found


def _extract(text: str, strict: bool = False) -> tuple[str, tuple[str, ...]] | None:
    if len(text) >= 2 and text[0] == "<" and text[-1] == ">":
        text = text[1:-1]
    route: tuple[str, ...] = ()
    if text.startswith("@") and ":" in text:            # the deprecated source route
        colon = text.index(":")
        route, text = tuple(text[:colon].split(",")), text[colon + 1:]
    comments: list[int] = []
    tokens = _parse(text, comments)
    addresses = [t for t in tokens if t.kind == "addr"]
    if len(addresses) > 1:
        return None
    if strict and (comments or any(t.kind not in ("addr", "<", ">") for t in tokens)):
        return None
    return (_internal(addresses[0].parts or []) if addresses else ""), route


__all__ = ["envelope_address", "extract_address", "smtpd_tokens", "smtpd_words"]
