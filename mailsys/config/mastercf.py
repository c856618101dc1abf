"""mastercf - read master.cf into one ServiceSpec per service.

master.cf has Postfix's columns (master(5)):

    # service type  private unpriv  chroot  wakeup  maxproc command + args
    smtp      inet  n       -       n       -       -       smtpd
    submission inet n       -       n       -       -       smtpd
      -o syslog_name=mailsys/submission
      -o { smtpd_recipient_restrictions = permit_sasl_authenticated, reject }

Comments and continuation lines follow main.cf (mailsys.config.lines).
``-`` selects the built-in default: private y, unpriv y, chroot n, wakeup 0,
maxproc $default_process_limit. ``{ a b }`` groups one argument;
``-o name=value`` and ``-o { name = value with spaces }`` override main.cf for
that service only, and are checked against the parameter table like main.cf
itself, so a bad -o value fails at start-up naming master.cf, line and
parameter.

An inet service is ``port``, ``host:port`` or ``[v6addr]:port``, where port
may be a name from /etc/services. Differences from Postfix, on purpose: the
same service name and type twice is an error (Postfix silently keeps the
last, hiding a typo), and mailsys never chroots, so a ``y`` in the chroot
column is accepted with a warning rather than honoured.
"""

from __future__ import annotations

from pathlib import Path

from mailsys.config.host import tcp_port
from mailsys.config.lines import LogicalLine, logical_lines, physical_lines
from mailsys.config.values import BadValue, split_list
from mailsys.errors import ConfigError
from mailsys.frozen import frozen

TYPES = ("inet", "unix", "unix-dgram", "pass")
FIELD_NAMES = ("service", "type", "private", "unprivileged", "chroot", "wakeup",
               "process_limit", "command")


@frozen
class ServiceSpec:
    """One master.cf service."""
    name: str            # as written in column 1 ("127.0.0.1:2525", "smtp", "cleanup")
    type: str            # "inet" | "unix" | "unix-dgram" | "pass"
    private: bool
    unpriv: bool
    chroot: bool
    wakeup: int          # seconds, 0 = none
    wakeup_lazy: bool    # "N?" form: no wakeup before first use
    maxproc: int         # "-" resolved to default_process_limit; 0 = unlimited
    command: str         # "smtpd"
    args: tuple[str, ...]                   # arguments other than -o pairs
    overrides: tuple[tuple[str, str], ...]  # the -o name=value pairs, in order
    host: str            # inet only: "" = all interfaces, else the host part
    port: int            # inet only, resolved via /etc/services when a name; 0 otherwise
    file: str
    line: int


@frozen
class MasterLine:
    """One master.cf logical line split into fields, before interpretation."""
    fields: tuple[str, ...]    # the 7 columns before the command, as written
    command: tuple[str, ...]   # command and its arguments, braces kept
    line: LogicalLine


def split_master_text(text: str, file: str, warnings: list[str] | None = None) -> list[MasterLine]:
    """master.cf text -> MasterLines; fewer than 8 fields is Postfix's 'bad field count'."""
    out = []
    for ll in logical_lines(text, file, warnings):
        tokens = _tokens(ll, file)
        if len(tokens) < 8:
            raise ConfigError("bad field count", file=file, line=ll.line)
        out.append(MasterLine(tuple(tokens[:7]), tuple(tokens[7:]), ll))
    return out


def _tokens(ll: LogicalLine, file: str) -> list[str]:
    """Whitespace-separated tokens; a { ... } group is one token, braces kept."""
    try:
        split_list(ll.text, " \t")           # only to check the braces balance
    except BadValue as e:
        raise ConfigError(str(e), file=file, line=ll.line) from None
    tokens: list[str] = []
    i, text = 0, ll.text
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        start, level = i, 0
        while i < len(text) and (level or not text[i].isspace()):
            level += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        tokens.append(text[start:i])
    return tokens


def parse_master_cf(path: Path, cfg, warnings: list[str] | None = None) -> tuple[ServiceSpec, ...]:
    """Every service in master.cf at `path`; -o values are validated with `cfg`.

    Warnings (chroot ignored, lines starting with whitespace, unused -o
    parameters) are appended to `warnings` when given.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise ConfigError(f"open {file}: {e.strerror}") from None
    return parse_master_text(text, file, cfg, warnings)


def parse_master_text(text: str, file: str, cfg,
                      warnings: list[str] | None = None) -> tuple[ServiceSpec, ...]:
    """parse_master_cf() on master.cf text; `file` names it in errors."""
    physical = physical_lines(text)
    seen: dict[tuple[str, str], int] = {}
    services = []
    for ml in split_master_text(text, file, warnings):
        spec = _service(ml, cfg, file, physical, warnings)
        key = (spec.name, spec.type)
        if key in seen:
            raise ConfigError(f'duplicate service "{spec.name}/{spec.type}" (first defined at line {seen[key]})',
                              file=file, line=spec.line)
        seen[key] = spec.line
        services.append(spec)
    return tuple(services)


def _service(ml: MasterLine, cfg, file: str, physical: list[str],
             warnings: list[str] | None) -> ServiceSpec:
    name, type_, private, unpriv, chroot, wakeup, maxproc = ml.fields
    line = ml.line.line

    def invalid(field: str, value: str) -> ConfigError:
        return ConfigError(f'invalid {field} field "{value}" in "{ml.line.text}"', file=file, line=line)

    if type_ not in TYPES:
        raise invalid("type", type_)
    if type_ == "inet" and private != "n":
        # Postfix: an inet socket is reachable by anyone, so "private" would lie.
        raise ConfigError(f'inet service cannot be private in "{ml.line.text}"', file=file, line=line)
    flags = {}
    for field, value, default in (("private", private, True), ("unprivileged", unpriv, True),
                                  ("chroot", chroot, False)):
        if value not in ("y", "n", "-"):
            raise invalid(field, value)
        flags[field] = default if value == "-" else value == "y"
    if flags["chroot"] and warnings is not None:
        warnings.append(f"{file}, line {line}: service {name}/{type_}: "
                        "chroot is not supported by mailsys; the service runs without it")
    lazy = wakeup.endswith("?")
    digits = wakeup[:-1] if lazy else wakeup
    if wakeup == "-":
        wake = 0
    elif digits.isdigit():
        wake = int(digits)
    else:
        raise invalid("wakeup", wakeup)
    if maxproc == "-":
        procs = int(cfg.default_process_limit)
    elif maxproc.isdigit():
        procs = int(maxproc)
    else:
        raise invalid("process_limit", maxproc)
    command, args, overrides = _command(ml, file, line)
    host, port = _address(name, file, line) if type_ == "inet" else ("", 0)
    if overrides:
        _check_overrides(cfg, overrides, file, ml.line, physical, warnings)
    return ServiceSpec(name, type_, flags["private"], flags["unprivileged"], flags["chroot"], wake,
                       lazy, procs, command, args, overrides, host, port, file, line)


def _command(ml: MasterLine, file: str, line: int):
    """command, args (braces removed), -o overrides.

    As Postfix's daemons read their command line (getopt with "+"), the
    options end at the first word that is not one: an -o after it belongs
    to the arguments (``argv=/usr/sbin/sendmail -oi -f ${sender}``)."""
    command, rest = ml.command[0], list(ml.command[1:])
    args: list[str] = []
    overrides: list[tuple[str, str]] = []
    positional = False
    while rest:
        tok = rest.pop(0)
        if positional or not tok.startswith("-"):
            positional = True
            args.append(_strip_group(tok))
        elif tok == "-o" or (tok.startswith("-o") and len(tok) > 2 and not tok.startswith("-o{")):
            value = tok[2:] if tok != "-o" else (rest.pop(0) if rest else "")
            if not value:
                raise ConfigError('missing "name=value" after -o', file=file, line=line)
            pair = _strip_group(value)
            pname, eq, pvalue = pair.partition("=")
            if not eq or not pname.strip():
                raise ConfigError(f'-o argument without "name=value": "{value}"', file=file, line=line)
            overrides.append((pname.strip(), pvalue.strip()))
        else:
            args.append(_strip_group(tok))
    return _strip_group(command), tuple(args), tuple(overrides)


def _strip_group(token: str) -> str:
    if token.startswith("{") and token.endswith("}"):
        return token[1:-1].strip()
    return token


def _address(name: str, file: str, line: int) -> tuple[str, int]:
    """Host and port of an inet service name."""
    if name.startswith("["):
        host, sep, port = name[1:].partition("]:")
        if not sep:
            raise ConfigError(f'bad inet service "{name}": expected [address]:port', file=file, line=line)
    elif ":" in name:
        host, _, port = name.rpartition(":")
    else:
        host, port = "", name
    if port.isdigit():
        number = int(port)
        if not 0 < number < 65536:
            raise ConfigError(f'bad port number in inet service "{name}"', file=file, line=line)
        return host, number
    number = tcp_port(port)
    if number is None:
        raise ConfigError(f"unknown service: {port}/tcp", file=file, line=line)
    return host, number


def _check_overrides(cfg, overrides, file: str, ll: LogicalLine, physical: list[str],
                     warnings: list[str] | None) -> None:
    try:
        checked = cfg.with_overrides(dict(overrides))
    except ConfigError as e:
        raise ConfigError(e.message, file=file, line=_line_of(e.param, ll, physical), param=e.param) from None
    if warnings is not None:
        for w in checked.warnings:
            if w not in cfg.warnings:
                warnings.append(w.replace("override: ", f"{file}, line {ll.line}: ", 1))


def _line_of(param: str | None, ll: LogicalLine, physical: list[str]) -> int:
    """The physical line of the -o that sets `param` (else the service's line)."""
    if param:
        for number in range(ll.line, ll.last_line + 1):
            text = physical[number - 1]
            if "-o" in text and param in text:
                return number
    return ll.line
