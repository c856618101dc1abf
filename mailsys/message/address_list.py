"""address_list - find the addresses in an RFC 5322 address header and rewrite them in place.

SYNOPSIS
    from mailsys.message.address_list import rewrite_addresses

    rewrite_addresses('Joe <joe@host.example.com>, ann', qualify)
        # 'Joe <joe@example.com>, ann@example.com'
    fold_address_list("To", list_elements(' a@x ,Joe<j@y>'))
        # 'To: a@x, Joe <j@y>'

DESCRIPTION
    rewrite_addresses(value, rewrite) calls rewrite(address) for each
    address of a header value (From:, To:, Cc:, ...) and puts its answer
    where the address stood. Everything else (display names, comments,
    groups, white space and folding) stays as it was written; an address
    rewrite() leaves alone leaves the value unchanged, character for
    character.

    An address is the text inside <angle brackets> (without a source
    route "@a,@b:"), or an element of the list with no angle brackets that
    is one word: local@domain, or a bare local part. Quoted strings and
    (comments, nested) are skipped over as Postfix's tok822 scanner does;
    "name: a, b;" is a group, whose name is not an address. "<>" and an
    element with white space outside quotes (a display name without an
    address) are not addresses.

    list_elements(value) and fold_address_list(name, elements) write a
    list the way Postfix's smtp client writes a header whose addresses
    smtp_generic_maps changed (tok822_externalize() with one element a
    line, then joined while a line stays under 70 characters, each
    continuation line starting with a tab; smtp_proto.c
    smtp_header_rewrite()): the elements are the parts between the
    commas, empty ones kept (Postfix sends "To: a@x," as "To: a@x, "),
    white space outside quoted strings and comments runs together
    into one space, and a space goes before "<" and "(" that follow a word
    (Postfix 3.7.11 sends "Joe<joe@x>" as "Joe <joe@x>").
"""

from __future__ import annotations

from collections.abc import Callable


def rewrite_addresses(value: str, rewrite: Callable[[str], str], token_limit: int = 0) -> str:
    """value with each address replaced by rewrite(address); see DESCRIPTION.

    token_limit (header_address_token_limit; 0: none): only the first so
    many tokens of value are parsed, and a value that rewrite() changes
    loses everything after them, as Postfix's cleanup loses it when it
    writes back a header it parsed with tok822_parse_limit(). A value that
    no rewrite changes stays whole.
    """
    if token_limit and len(value) > token_limit:
        cut = token_cut(value, token_limit)
        if cut < len(value):
            head = rewrite_addresses(value[:cut], rewrite)
            return value if head == value[:cut] else head
    spans = address_spans(value)
    out = value
    for start, end in reversed(spans):
        new = rewrite(value[start:end])
        if new != value[start:end]:
            out = out[:start] + new + out[end:]
    return out


# smtp_proto.c smtp_header_rewrite(): lines are joined while shorter than this.
_FOLD_WIDTH = 70


def list_elements(value: str) -> list[str]:
    """The elements of an address list, white space made tok822's; see DESCRIPTION."""
    elements: list[str] = []
    out: list[str] = []
    space = False
    i, n = 0, len(value)

    def put(text: str, spaced: bool) -> None:
        if out and (space or spaced):
            out.append(" ")
        out.append(text)

    while i < n:
        c = value[i]
        if c.isspace():
            space = True
            i += 1
            continue
        if c == ",":
            elements.append("".join(out))
            out, space = [], False
            i += 1
            continue
        if c == '"':
            j = _quoted_end(value, i)
        elif c == "(":
            j = _comment_end(value, i)
        elif c == "<":
            j = value.find(">", i + 1)
            j = n if j < 0 else j + 1
        else:
            j = i + 1
        put(value[i:j], c in "<(")
        space = False
        i = j
    elements.append("".join(out))
    return elements


def fold_address_list(name: str, elements: list[str]) -> str:
    """name: the elements, comma separated, folded as Postfix's smtp client
    folds a rewritten address header ("\n\t" between lines)."""
    text = f"{name}: " + (elements[0] if elements else "")
    width = len(text)
    last = len(elements) - 1
    for n, element in enumerate(elements[1:], 1):
        text += ","
        width += 1
        # A line ends with its comma, which counts: Postfix measures each
        # externalized line (element and comma) from the current line's start.
        comma = 1 if n < last else 0
        if width + 1 + len(element) + comma < _FOLD_WIDTH:
            text += " " + element
            width += 1 + len(element)
        else:
            text += "\n\t" + element
            width = len(element)
    return text


def address_spans(value: str) -> list[tuple[int, int]]:
    """(start, end) of each address in value, in order."""
    spans: list[tuple[int, int]] = []
    angle: tuple[int, int] | None = None
    first = last = -1                       # the element's words, comments left out
    spaced = False                          # white space between its words
    i, n = 0, len(value)

    def end_element() -> None:
        if angle is not None:
            start, end = angle
            inner = value[start:end]
            colon = inner.rfind(":") if inner.startswith("@") else -1
            start += colon + 1
            while start < end and value[start].isspace():
                start += 1
            while end > start and value[end - 1].isspace():
                end -= 1
            if start < end:
                spans.append((start, end))
        elif first >= 0 and not spaced:
            spans.append((first, last))

    while i < n:
        c = value[i]
        if c == '"':
            j = _quoted_end(value, i)
            first, last, spaced = _word(first, last, spaced, i, j)
            i = j
            continue
        if c == "(":
            i = _comment_end(value, i)
            continue
        if c == "<":
            j = value.find(">", i + 1)
            j = n if j < 0 else j
            angle = (i + 1, j)
            i = j + 1
            continue
        if c in ",;":
            end_element()
            angle, first, last, spaced = None, -1, -1, False
        elif c == ":" and angle is None:
            angle, first, last, spaced = None, -1, -1, False     # a group's name
        elif not c.isspace():
            first, last, spaced = _word(first, last, spaced, i, i + 1)
        i += 1
    end_element()
    return spans


# tok822_parse.c: each of these characters is a token of its own.
_OPERATORS = frozenset('|"(),.:;<>@[]')


def token_cut(value: str, limit: int) -> int:
    """The index after value's first ``limit`` tokens (len(value) when it has
    no more), tokens counted as Postfix's tok822_scan_limit() counts them:
    white space separates, a comment, quoted string or [domain literal] is
    one token, each operator character one, and a run of other characters
    (an atom, backslash escapes included) one."""
    i, n, count = 0, len(value), 0
    while i < n:
        c = value[i]
        if c in " \t\r\n":
            i += 1
            continue
        if c == "(":
            i = _comment_end(value, i)
        elif c == '"':
            i = _quoted_end(value, i)
        elif c == "[":
            i = _quoted_end(value, i, "]")
        elif c in _OPERATORS:
            i += 1
        else:
            while i < n and value[i] not in _OPERATORS and value[i] not in " \t\r\n":
                i += 2 if value[i] == "\\" else 1
            i = min(i, n)
        count += 1
        if count >= limit:
            return i
    return n


def _word(first: int, last: int, spaced: bool, start: int, end: int) -> tuple[int, int, bool]:
    """Extend the element's word span over value[start:end]."""
    if first < 0:
        return start, end, False
    return first, end, spaced or start > last


def _quoted_end(value: str, i: int, close: str = '"') -> int:
    """The index after the quoted string (or, close "]", the domain literal) at i."""
    j = i + 1
    while j < len(value):
        if value[j] == "\\":
            j += 2
            continue
        if value[j] == close:
            return j + 1
        j += 1
    return len(value)


def _comment_end(value: str, i: int) -> int:
    """The index after the (nested) comment that starts at i."""
    depth = 0
    j = i
    while j < len(value):
        c = value[j]
        if c == "\\":
            j += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return len(value)


__all__ = ["address_spans", "rewrite_addresses", "token_cut"]
