"""postconf_master - postconf's master.cf forms: -F and -P, and the -M, -F, -P edits.

SYNOPSIS
    mailsys postconf [-h|-H] -F [service[/type[/field]] ...]
    mailsys postconf -Fe service/type/field=value ...
    mailsys postconf [-f] [-h|-H] -P [service[/type[/parameter]] ...]
    mailsys postconf -Pe service/type/parameter=value ...
    mailsys postconf -PX service/type/parameter ...
    mailsys postconf -Me service/type=entry ...
    mailsys postconf -MX service/type ...
    mailsys postconf -M# service/type ...

DESCRIPTION
    As Postfix's postconf(1):

    -F prints each service's eight fields as ``service/type/field = value``
    (service, type, private, unprivileged, chroot, wakeup, process_limit,
    command, the last with its arguments); -P prints each ``-o`` setting as
    ``service/type/parameter = value``, sorted by parameter name within a
    service; -h leaves out the names, -H the values. A request
    names service, service/type or service/type/field, where ``*`` or a
    missing part matches anything. Output follows master.cf's order, and
    for each service the requests' order; a request that matches no
    service gets ``postconf: warning: unmatched request: "..."``.

    -Fe sets a field, -Pe sets an -o parameter (replaced where it stands,
    else added after the last -o), -PX removes one; -Me replaces a service's
    whole entry, or appends it when there is none (an entry that names
    another service than its service/type is refused, where Postfix would
    write it as it stands); -MX removes an entry and
    -M# comments out each of its lines. A request for a service/type that
    is not there gets ``postconf: warning: unmatched service_name/type``,
    except -Me, which adds it, and -MX and -M#, which are quiet about it.

    An edited entry is written back the way Postfix writes it, as postconf
    -Mf prints it: the fields in postconf -M's columns, each ``-o
    name=value`` before the first non-option argument on a line of its own
    indented by four spaces, other arguments folded before 80 columns. Other
    lines, comments included, stay as they are. The new master.cf is
    checked as the master would read it (with main.cf's parameters) before
    it replaces the old one, atomically, so a bad field or -o value never
    reaches the file: the error names the field or parameter.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from mailsys.config import load
from mailsys.config.files import replace_file
from mailsys.config.lines import physical_lines
from mailsys.config.maincf import references
from mailsys.config.mastercf import FIELD_NAMES, MasterLine, parse_master_text, split_master_text
from mailsys.config.params import service_parameter_names
from mailsys.errors import ConfigError, UsageError

MASTER_WIDTHS = (10, 5, 7, 7, 7, 7, 7)
# Postfix's postconf.h: PCF_LINE_LIMIT "try to fold longer lines",
# PCF_INDENT_TEXT for the continuation lines.
LINE_LIMIT = 80
INDENT = "    "
_WORDS = re.compile(r"[^ \t\r\n]+")    # between PCF_SEPARATORS " \t\r\n"


def warn(message: str) -> None:
    print(f"postconf: warning: {message}", file=sys.stderr)


def _columns(fields: tuple[str, ...], command: str) -> str:
    """The fields in their columns (postconf -M's); a field that overflows
    its column pushes the next one along, one space after it."""
    line = ""
    column = 0
    for value, width in zip((*fields, command), (*MASTER_WIDTHS, 0)):
        if line:
            line += " " * max(column - len(line), 1)
        line += value
        column += width + 1
    return line


def _width(text: str) -> int:
    """Columns as Postfix counts them: bytes (strlen)."""
    return len(text.encode("utf-8", "surrogateescape"))


def _gap(line_len: int, fits: bool, fold: bool) -> tuple[str, int]:
    """What goes before the next word, and the line length after it: one
    space, or with fold, when the word does not fit, a new indented line.
    (Postfix's two callers differ in how they decide that a word fits.)"""
    if fits or not fold:
        return " ", line_len + 1
    return "\n" + INDENT, len(INDENT)


def format_setting(name: str, value: str, hide: str | None = None) -> str:
    """A setting as postconf prints it: ``name = value`` (``name =`` when
    the value is empty), with hide "-h" the value only, with "-H" the name
    only (Postfix 3.1 and later)."""
    if hide == "-h":
        return value
    if hide == "-H":
        return name
    return f"{name} = {value}" if value else f"{name} ="


def print_line(text: str, fold: bool = False) -> str:
    """text with its words one space apart; with fold, broken into lines
    of under LINE_LIMIT columns where the next word would reach it, each
    continuation indented by INDENT (Postfix's pcf_print_line(), used by
    postconf for main.cf parameters and -P). Postfix normalizes the
    whitespace also without -f. A word longer than a line stays whole."""
    out: list[str] = []
    line_len = 0
    for word in _WORDS.findall(text):
        if line_len > 0:
            gap, line_len = _gap(line_len, line_len + _width(word) < LINE_LIMIT, fold)
            out.append(gap)
        out.append(word)
        line_len += _width(word)
    return "".join(out)


def format_master(fields: tuple[str, ...], command: tuple[str, ...], fold: bool = False) -> str:
    """One master.cf service the way postconf -M prints it (Postfix's
    pcf_print_master_entry()): the fields in their columns, then the
    arguments one space apart. With fold (-Mf, and every entry postconf
    writes back), each "-o value" pair gets a line of its own, indented,
    and other arguments move to a new indented line when they would reach
    LINE_LIMIT columns. Only the options before the first non-option
    argument pair up with a value, as the daemon's getopt() reads them: a
    pipe(8) argv= may hold "-o" words of its own."""
    out = [_columns(fields, command[0])]
    line_len = _width(out[0])
    in_options = True
    i = 1
    while i < len(command):
        arg = command[i]
        arg_len = _width(arg)
        value = None
        if in_options:
            if not arg.startswith("-") or arg == "--":
                in_options = False
            # Postfix's strchr("o", arg[1]) also matches the NUL of a lone "-".
            elif arg[1:2] in ("o", "") and i + 1 < len(command):
                value = command[i + 1]
                line_len = LINE_LIMIT          # a line of its own
                arg_len += _width(value) + 1
        if line_len > len(INDENT):
            gap, line_len = _gap(line_len, line_len + 1 + arg_len < LINE_LIMIT, fold)
            out.append(gap)
        out.append(arg)
        line_len += _width(arg)
        if value is not None:
            out.append(" " + value)
            line_len = LINE_LIMIT              # and nothing after it
            i += 1
        i += 1
    return "".join(out)


def format_entry(fields: tuple[str, ...], command: tuple[str, ...]) -> list[str]:
    """A service as postconf's edits write it: the lines of postconf -Mf
    (Postfix's edit code prints the entry with PCF_FOLD_LINE)."""
    return format_master(fields, command, fold=True).split("\n")


def _options(command: tuple[str, ...]) -> list[tuple[int, str, str]]:
    """The -o settings of a command: (index of the value token, name, value).
    They end at the first argument that is not an option, as the daemon's
    getopt() reads them: a pipe(8) argv= may hold -o words of its own."""
    found = []
    i = 1
    while i < len(command) - 1 and command[i].startswith("-"):
        if command[i] == "-o":
            text = command[i + 1]
            if text.startswith("{") and text.endswith("}"):
                text = text[1:-1].strip()
            name, eq, value = text.partition("=")
            if eq:
                found.append((i + 1, name.strip(), value.strip()))
            i += 2
        else:
            i += 1
    return found


# -- reading ------------------------------------------------------------------------

@dataclass
class _Master:
    path: Path
    text: str
    entries: list[MasterLine]


def _read(config_dir: Path) -> _Master:
    path = config_dir / "master.cf"
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise ConfigError(f"open {path}: {e.strerror}") from None
    warnings: list[str] = []
    entries = split_master_text(text, str(path), warnings)
    for w in warnings:
        warn(w)
    return _Master(path, text, entries)


def _parts(request: str, most: int) -> list[str]:
    parts = request.split("/")
    if len(parts) > most or not all(parts):
        raise UsageError(f'bad request: "{request}"')
    return parts + ["*"] * (most - len(parts))


def _same(pattern: str, value: str) -> bool:
    return pattern == "*" or pattern == value


def master_names(config_dir: Path) -> tuple[set[str], set[str]]:
    """What master.cf adds to main.cf's names, for postconf's listings:
    the names its -o values refer to with $name, which make a main.cf
    name=value used (Postfix's postconf_user.c scans each service's -o
    settings as it scans main.cf), and the parameters of its services
    (relay_destination_concurrency_limit for a relay service that runs
    smtp: Postfix's postconf_service.c). No master.cf, no names."""
    if not (config_dir / "master.cf").exists():
        return set(), set()
    referenced: set[str] = set()
    services: set[str] = set()
    for ml in _read(config_dir).entries:
        for _, _, value in _options(ml.command):
            referenced |= references(value)
        services.update(service_parameter_names(ml.fields[0], ml.command[0]))
    return referenced, services


# -- showing ------------------------------------------------------------------------

def show_master(config_dir: Path, requests: list[str], fold: bool = False) -> int:
    """postconf [-f] -M [service[/type] ...]"""
    master = _read(config_dir)
    wanted = [(r, _parts(r, 2)) for r in requests]
    matched: set[str] = set()
    out = []
    for ml in master.entries:
        hits = [r for r, (s, t) in wanted if _same(s, ml.fields[0]) and _same(t, ml.fields[1])]
        if requests and not hits:
            continue
        matched.update(hits)
        out.append(format_master(ml.fields, ml.command, fold))
    return _finish(out, requests, matched)


def show_fields(config_dir: Path, requests: list[str], hide: str | None = None) -> int:
    """postconf [-h|-H] -F [service[/type[/field]] ...]"""
    return _show(config_dir, requests, hide, _fields, lambda line: line)


def show_parameters(config_dir: Path, requests: list[str], hide: str | None = None,
                    fold: bool = False) -> int:
    """postconf [-f] [-h|-H] -P [service[/type[/parameter]] ...]"""
    # Postfix lists a service's parameters by name, not in master.cf's order,
    # and prints each with pcf_print_line(), as main.cf parameters.
    return _show(config_dir, requests, hide,
                 lambda ml: sorted((name, value) for _, name, value in _options(ml.command)),
                 lambda line: print_line(line, fold))


def _fields(ml: MasterLine) -> list[tuple[str, str]]:
    return list(zip(FIELD_NAMES, ml.fields + (" ".join(ml.command),)))


def _show(config_dir: Path, requests: list[str], hide: str | None, pairs, printed) -> int:
    master = _read(config_dir)
    wanted = [(r, _parts(r, 3)) for r in requests] or [("", ["*", "*", "*"])]
    matched: set[str] = set()
    out = []
    for ml in master.entries:
        service, type_ = ml.fields[0], ml.fields[1]
        for request, (s, t, f) in wanted:
            if not (_same(s, service) and _same(t, type_)):
                continue
            for name, value in pairs(ml):
                if _same(f, name):
                    matched.add(request)
                    out.append(printed(format_setting(f"{service}/{type_}/{name}", value, hide)))
    return _finish(out, requests, matched)


def _finish(out: list[str], requests: list[str], matched: set[str]) -> int:
    for r in requests:
        if r not in matched:
            warn(f'unmatched request: "{r}"')
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return 0


# -- editing ------------------------------------------------------------------------

DELETE = None
COMMENT_OUT = "#"


class _Edits:
    """New text for entries of one master.cf, applied together at the end."""

    def __init__(self, master: _Master) -> None:
        self.master = master
        self.entries = {(ml.fields[0], ml.fields[1]): ml for ml in master.entries}
        self.changed: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]] | str | None] = {}
        self.added: list[tuple[tuple[str, ...], tuple[str, ...]]] = []

    def current(self, key: tuple[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        if key in self.changed:
            entry = self.changed[key]
            return entry if isinstance(entry, tuple) else None
        ml = self.entries.get(key)
        return (ml.fields, ml.command) if ml is not None else None

    def set(self, key: tuple[str, str], entry) -> None:
        if key in self.entries:
            self.changed[key] = entry
        elif isinstance(entry, tuple):
            self.added = [a for a in self.added if (a[0][0], a[0][1]) != key] + [entry]

    def text(self) -> str:
        lines = physical_lines(self.master.text)
        spans = {(ml.fields[0], ml.fields[1]): (ml.line.line, ml.line.last_line)
                 for ml in self.master.entries}
        # From the bottom up, so that earlier line numbers stay true.
        for key, (first, last) in sorted(spans.items(), key=lambda kv: -kv[1][0]):
            if key not in self.changed:
                continue
            entry = self.changed[key]
            old = lines[first - 1:last]
            kept = [ln for ln in old[1:] if ln.strip().startswith("#") or not ln.strip()]
            if entry is DELETE:
                new = kept
            elif entry == COMMENT_OUT:
                new = ["#" + ln if ln.strip() and not ln.strip().startswith("#") else ln for ln in old]
            else:
                new = format_entry(*entry) + kept
            lines[first - 1:last] = new
        for entry in self.added:
            lines += format_entry(*entry)
        return "\n".join(lines) + "\n" if lines else ""

    def write(self, config_dir: Path) -> None:
        text = self.text()
        cfg = load(config_dir)
        warnings: list[str] = []
        parse_master_text(text, str(self.master.path), cfg, warnings)
        replace_file(self.master.path, text)
        for w in warnings:
            if "unused parameter" in w:
                warn(w)


def _assignment(arg: str, what: str) -> tuple[str, str]:
    name, eq, value = arg.partition("=")
    if not eq:
        raise UsageError(f"missing '=' after {what}: \"{arg}\"")
    return name.strip(), value.strip()


def edit_fields(config_dir: Path, args: list[str]) -> int:
    """postconf -Fe service/type/field=value ..."""
    edits = _Edits(_read(config_dir))
    for arg in args:
        where, value = _assignment(arg, "attribute name")
        service, type_, field = _exact(where, 3, arg)
        if field not in FIELD_NAMES:
            raise UsageError(f'invalid service attribute name: "{field}"')
        entry = edits.current((service, type_))
        if entry is None:
            warn(f'unmatched service_name/type: "{arg}"')
            continue
        fields, command = entry
        if field == "command":
            try:
                command = split_master_text(f"x x x x x x x {value}", "postconf -Fe")[0].command
            except (ConfigError, IndexError):
                raise UsageError(f'bad command in "{arg}"') from None
        else:
            if not value or any(c.isspace() for c in value):
                raise UsageError(f'bad {field} value in "{arg}"')
            fields = tuple(value if name == field else old
                           for name, old in zip(FIELD_NAMES, fields))
        edits.set((service, type_), (fields, command))
    edits.write(config_dir)
    return 0


def edit_parameters(config_dir: Path, args: list[str], delete: bool = False) -> int:
    """postconf -Pe service/type/parameter=value ... and -PX service/type/parameter ..."""
    edits = _Edits(_read(config_dir))
    for arg in args:
        if delete:
            where, value = arg, ""
        else:
            where, value = _assignment(arg, "parameter name")
            if any(c.isspace() for c in value):
                raise UsageError("-Pe does not accept whitespace in parameter value")
        service, type_, name = _exact(where, 3, arg)
        entry = edits.current((service, type_))
        if entry is None:
            warn(f'unmatched service_name/type: "{arg}"')
            continue
        fields, command = entry
        tokens = list(command)
        options = [(i, n) for i, n, _ in _options(command) if n == name]
        if delete:
            for i, _ in reversed(options):
                del tokens[i - 1:i + 1]
        elif options:
            tokens[options[0][0]] = f"{name}={value}"
            for i, _ in reversed(options[1:]):
                del tokens[i - 1:i + 1]
        else:
            last = max((i for i, _, _ in _options(command)), default=0)
            tokens[last + 1:last + 1] = ["-o", f"{name}={value}"]
        edits.set((service, type_), (fields, tuple(tokens)))
    edits.write(config_dir)
    return 0


def edit_entries(config_dir: Path, args: list[str], action: str) -> int:
    """postconf -Me service/type=entry, -MX service/type, -M# service/type."""
    edits = _Edits(_read(config_dir))
    for arg in args:
        if action == "e":
            where, text = _assignment(arg, "service_name/type")
        else:
            where, text = arg, ""
        service, type_ = _exact(where, 2, arg, "-Me, -MX or -M# requires service_name/type")
        if action == "e":
            try:
                parsed = split_master_text(text, "postconf -Me")
            except ConfigError:
                parsed = []
            if len(parsed) != 1:
                raise UsageError(f'bad field count: "{arg}"')
            new = parsed[0]
            if (new.fields[0], new.fields[1]) != (service, type_):
                raise UsageError(f'service name/type mismatch: "{arg}"')
            edits.set((service, type_), (new.fields, new.command))
        elif edits.current((service, type_)) is not None:
            edits.set((service, type_), DELETE if action == "X" else COMMENT_OUT)
    edits.write(config_dir)
    return 0


def _exact(where: str, parts: int, arg: str, message: str | None = None) -> list[str]:
    found = where.split("/")
    if len(found) != parts or not all(found) or "*" in found:
        raise UsageError(message or f'bad service/type/name: "{arg}"')
    return found


__all__ = ["edit_entries", "edit_fields", "edit_parameters", "format_entry", "format_master",
           "format_setting", "print_line", "show_fields", "show_master", "show_parameters"]
