"""lines - logical lines of Postfix-style configuration files.

main.cf, master.cf and texthash tables share one line syntax (Postfix
readlline()): a line whose first non-blank character is ``#`` is a comment,
also in the middle of a continued value; blank lines are ignored; a line that
starts with whitespace continues the previous logical line, the pieces being
joined with one space. ``#`` anywhere else is ordinary text. A continuation
line with nothing before it is skipped with Postfix's warning. Pure.
"""

from __future__ import annotations


from mailsys.frozen import frozen


@frozen
class LogicalLine:
    text: str        # the pieces joined with one space, outer whitespace removed
    line: int        # number of the first physical line
    last_line: int   # number of the last physical line (continuations included)


def physical_lines(text: str) -> list[str]:
    """Lines split on newline only (str.splitlines() would also split on form
    feeds and Unicode separators, which Postfix keeps inside a value)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def logical_lines(text: str, file: str, warnings: list[str] | None = None) -> list[LogicalLine]:
    """Split `text` into logical lines; warnings are appended to `warnings`."""
    out: list[LogicalLine] = []
    pieces: list[str] = []
    first = last = 0

    def flush() -> None:
        if pieces:
            out.append(LogicalLine(" ".join(pieces), first, last))
            pieces.clear()

    for number, raw in enumerate(physical_lines(text), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if raw[0].isspace():
            if not pieces:
                if warnings is not None:
                    warnings.append(f'{file}: logical line must not start with whitespace: "{raw}"')
                continue
            pieces.append(stripped)
            last = number
            continue
        flush()
        pieces.append(stripped)
        first = last = number
    flush()
    return out
