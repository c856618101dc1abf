"""postconf - show and edit the mailsys configuration (Postfix postconf(1)).

SYNOPSIS
    mailsys postconf [-c dir] [-dfhHnpvx] [-C class,...] [-o name=value ...] [name ...]
    mailsys postconf [-c dir] [-e] name=value ...
    mailsys postconf [-c dir] -X name ...
    mailsys postconf [-c dir] -# name ...
    mailsys postconf [-c dir] [-f] -M [name[/type] ...]
    mailsys postconf [-c dir] [-hH] -F [service[/type[/name]] ...]
    mailsys postconf [-c dir] [-fhH] -P [service[/type[/name]] ...]
    mailsys postconf [-c dir] -Me|-Fe|-Pe service/type[/name]=value ...
    mailsys postconf [-c dir] -MX|-M#|-PX service/type[/name] ...
    mailsys postconf [-c dir] -b | -t [template_file]
    mailsys postconf -a | -A | -m | -l
    mailsys postconf -T compile-version|run-version|public-key-algorithms

DESCRIPTION
    Without options, prints every parameter as ``name = value`` with the
    value as written (unexpanded), sorted: the parameter table's (class
    builtin), those of master.cf's services (class service: the queue
    manager's per-transport ones for a service that runs a delivery
    agent, ``relay_destination_concurrency_limit``, and the time limit of
    a pipe or spawn service, as Postfix's postconf_service.c adds them),
    and the user-defined ones (class user, below). -C class,... shows
    only the classes named, also with -d and -n (param_class()).

    -n prints only what main.cf sets, warning about names nothing uses
    and leaving them out, as Postfix does: a name that no parameter table
    knows is a parameter only when a value in main.cf or an -o value in
    master.cf refers to it with $name, or smtpd_restriction_classes lists
    it (Config.unused_names); asked for by name, an unused one is an
    unknown parameter. -d prints the built-in defaults; -h prints values
    without ``name = ``, -H names without `` = value``; -x expands $name
    references. -o name=value overrides a main.cf setting for this
    command only: the value printed, and what $name expands to (Postfix
    2.10 and later); an override is checked like a main.cf value, where
    Postfix's postconf prints whatever it is given. An unknown name gets
    ``postconf: warning: NAME: unknown parameter`` and the exit status
    stays 0, as with Postfix.

    Each line is printed as Postfix's pcf_print_line() prints it: the words
    one space apart, whatever whitespace separated them. -f folds a line
    that would reach 80 columns at word boundaries, each continuation
    indented by four spaces, which main.cf reads back as the same value
    (postconf(1): "Fold long lines when printing main.cf or master.cf
    configuration file entries"). -Mf puts each ``-o name=value`` of a
    service on a line of its own, and -Pf folds like the parameters; -F
    takes no -f here and prints its lines unfolded.

    -e edits main.cf in place: an existing setting (with its continuation
    lines) is replaced where it stands, other lines and comments are kept,
    new names are appended. Every new value is checked against the parameter
    table first, so a bad value never reaches the file. -X deletes settings,
    -# comments them out.
    The file is replaced atomically (written beside it, then renamed).

    -M prints master.cf with its columns aligned the way Postfix does
    (``%-10s %-5s %-7s %-7s %-7s %-7s %-7s command``), each service on one
    line (folded with -f), optionally only the services named as name or
    name/type. -F and
    -P print its fields and -o parameters one per line, and -Me, -Fe, -Pe,
    -MX, -M# and -PX edit it: see mailsys.cli.postconf_master.

    -t prints the notice templates in bounce(5) form (template_file's, else
    $bounce_template_file's, over the built-in ones), -b their text with
    $name expanded, as Postfix's postconf does.

    -m lists the lookup table types this build supports, one per line; -l
    the mailbox locking methods (mailbox_delivery_lock); -a the SASL
    server types smtpd_sasl_type may name (cyrus, mailsys's own users
    file, and dovecot); -A the SASL client types (cyrus: the smtp and lmtp
    clients' built-in one; smtp_sasl_type is not read), as Postfix does.

    -T compile-version and -T run-version print the version of the OpenSSL
    that the TLS layer (pyOpenSSL over cryptography) was built against and
    runs on, in "openssl version"'s form; -T public-key-algorithms the
    certificate key algorithms it supports, of those Postfix 3.7 names
    (dsa, ecdsa, rsa). Another mode is warned about, with exit status 1.

    Errors in main.cf or master.cf are reported as one line naming file,
    line and parameter, with exit status 1. So is a bad command line, in
    Postfix's words ("specify one of -d -n"): mailsys.cli.postconf_options
    checks which options go together, and that an argument with "=" in it
    makes an edit without -e.

BUGS
    -x, and so -o, change nothing in what -M, -F and -P print: master.cf
    values are printed as written, where Postfix expands $name in each
    -o value (and puts one that then holds whitespace in braces).
    "Undefined parameter" warnings come with -x only, and the other
    warnings about main.cf with -n only; Postfix gives them whenever it
    reads main.cf.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mailsys.cli import postconf_master as master
from mailsys.cli.postconf_options import Invocation, parse
from mailsys.config import load
from mailsys.config.loader import Config
from mailsys.config.files import replace_file
from mailsys.config.lines import physical_lines
from mailsys.config.maincf import parse_main_cf, split_name_value
from mailsys.config.params import PARAMS, param
from mailsys.config.tables import OPENERS
from mailsys.delivery.mbox_lock import LOCK_STYLES
from mailsys.errors import ConfigError, UsageError
from mailsys.message.bounce_templates import DEFAULTS as DEFAULT_TEMPLATES
from mailsys.message.bounce_templates import (TemplateError, config_lookup, format_expanded,
                                              format_templates, parse_templates)
from mailsys.message.dsn import param_type
from mailsys.sasl import CLIENT_TYPES, SERVER_TYPES

# Lists of what this build supports: table types, mailbox locking methods,
# SASL server and client types.
LISTS = {"-m": lambda: sorted(OPENERS), "-l": lambda: LOCK_STYLES,
         "-a": lambda: SERVER_TYPES, "-A": lambda: CLIENT_TYPES}


def main(argv: list[str], config_dir: Path, command: str = "postconf") -> int:
    try:
        return run(parse(argv), config_dir)
    except UsageError as e:
        # Postfix's postconf exits 1 after every fatal error, a bad command
        # line included (msg_fatal()), where other tools use EX_USAGE.
        print(f"postconf: fatal: {e}", file=sys.stderr)
        return 1


def run(inv: Invocation, config_dir: Path) -> int:
    """Carry out a checked command line (see mailsys.cli.postconf_options)."""
    config_dir = inv.config_dir or config_dir
    names, mode, edit_flag = list(inv.names), inv.mode, inv.edit
    if mode in ("-t", "-b"):
        return show_templates(config_dir, names, expanded=mode == "-b")
    if mode in LISTS:
        print("\n".join(LISTS[mode]()))
        return 0
    if mode == "-T":
        return show_tls(inv.tls)
    if edit_flag is not None and not names:
        raise UsageError("missing service argument")
    if mode == "-M":
        if edit_flag is None:
            return master.show_master(config_dir, names, "-f" in inv.flags)
        return master.edit_entries(config_dir, names, edit_flag[1])
    if mode == "-F":
        if edit_flag is None:
            return master.show_fields(config_dir, names, inv.hide)
        return master.edit_fields(config_dir, names)
    if mode == "-P":
        if edit_flag is None:
            return master.show_parameters(config_dir, names, inv.hide, "-f" in inv.flags)
        return master.edit_parameters(config_dir, names, delete=edit_flag == "-X")
    if edit_flag == "-e":
        return edit(config_dir, names)
    if edit_flag == "-X":
        return delete(config_dir, names)
    if edit_flag == "-#":
        return delete(config_dir, names, comment_out=True)
    return show(config_dir, inv)


def show_templates(config_dir: Path, names: list[str], expanded: bool) -> int:
    """postconf -t|-b [template_file]"""
    if len(names) > 1:
        raise UsageError("options -b and -t require at most one template file")
    cfg = load(config_dir)
    if names:
        path = Path(names[0])
    elif cfg.bounce_template_file:
        path = cfg.path("bounce_template_file")
    else:
        path = None
    templates = DEFAULT_TEMPLATES
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as e:
            raise ConfigError(f"open {path}: {e.strerror}") from None
        templates = parse_templates(text, str(path), warn)
    if not expanded:
        sys.stdout.write(format_templates(templates))
        return 0
    try:
        sys.stdout.write(format_expanded(templates, config_lookup(cfg, param_type),
                                         str(path) if path is not None else ""))
    except TemplateError as e:
        raise ConfigError(str(e)) from None
    return 0


def show_tls(what: str) -> int:
    """postconf -T compile-version|run-version|public-key-algorithms"""
    from mailsys import tls     # OpenSSL, loaded for -T only

    modes = {"compile-version": lambda: [tls.compile_version()],
             "run-version": lambda: [tls.run_version()],
             "public-key-algorithms": tls.public_key_algorithms}
    if what not in modes:
        # Postfix: a warning, not a fatal error, and exit status 1.
        warn(f"unknown 'postconf -T' mode: {what}")
        return 1
    print("\n".join(modes[what]()))
    return 0


def warn(message: str) -> None:
    print(f"postconf: warning: {message}", file=sys.stderr)


def show(config_dir: Path, inv: Invocation) -> int:
    """postconf [-d|-n] [-f] [-h|-H] [-x] [-C class,...] [-o name=value ...] [name ...]"""
    flags = inv.flags
    referenced, services = master.master_names(config_dir)
    if "-d" in flags:
        cfg = Config(config_dir, {}, (), str(config_dir / "main.cf"))
        used: list[str] = []
    else:
        cfg = load(config_dir, dict(inv.overrides), referenced=referenced)
        # What main.cf sets that no table knows but something refers to:
        # Postfix's user-defined parameters. The rest are "unused
        # parameter"s, which postconf does not know (postconf_user.c).
        unused = set(cfg.unused_names(referenced))
        used = [n for n in cfg.set_names() if param(n) is not None or n not in unused]
    if "-n" in flags:
        for w in cfg.warnings:
            # An -o setting stands in main.cf for this command, as in Postfix.
            warn(w.replace("override: ", f"{cfg.file}: ", 1))
    if inv.names:
        wanted = []
        for name in inv.names:
            if param(name) is not None or name in used:
                wanted.append(name)
            else:
                warn(f"{name}: unknown parameter")
    else:
        listed = used if "-n" in flags else sorted(set(PARAMS) | services | set(used))
        wanted = [name for name in listed if param_class(name, services) in inv.classes]
    out = []
    for name in wanted:
        if "-n" in flags and not cfg.is_set(name):
            continue
        value = cfg.default(name) if "-d" in flags else cfg.raw(name)
        if "-x" in flags:
            undefined: list[str] = []
            value = cfg.expand(value, undefined)
            for w in dict.fromkeys(undefined):
                warn(w)
        out.append(master.print_line(master.format_setting(name, value, inv.hide), "-f" in flags))
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return 0


def param_class(name: str, services: set[str]) -> str:
    """Which -C class a parameter is in: "service" for a parameter of a
    master.cf service (services), "builtin" for one of the parameter table,
    "user" for a user-defined one. A per-transport or per-service name of
    a service master.cf does not have is "service" too: Postfix knows such
    a name only from master.cf, mailsys by its form (mailsys.config.params)."""
    if name in services:
        return "service"
    if name in PARAMS:
        return "builtin"
    return "service" if param(name) is not None else "user"


# -- editing main.cf --------------------------------------------------------------

def _read_main(config_dir: Path) -> tuple[Path, str]:
    path = config_dir / "main.cf"
    try:
        return path, path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return path, ""
    except OSError as e:
        raise ConfigError(f"open {path}: {e.strerror}") from None


def edit(config_dir: Path, args: list[str]) -> int:
    """postconf -e name=value ...: validate, then replace in place or append."""
    path, text = _read_main(config_dir)
    changes: dict[str, str] = {}
    for arg in args:
        name, value = split_name_value(arg.strip(), None, None)
        changes[name] = value
    current = Config(config_dir, parse_main_cf(text, str(path)), (), str(path))
    current.with_overrides({n: v for n, v in changes.items() if param(n) is not None})
    replace_file(path, _rewrite(text, changes, str(path)))
    return 0


def delete(config_dir: Path, names: list[str], comment_out: bool = False) -> int:
    """postconf -X / -# name ...: remove or comment out settings, continuations included."""
    path, text = _read_main(config_dir)
    if text:
        marker = COMMENT_OUT if comment_out else None
        replace_file(path, _rewrite(text, dict.fromkeys(names, marker), str(path)))
    return 0


COMMENT_OUT = object()    # _rewrite: turn the setting into comment lines


def _rewrite(text: str, changes: dict, file: str) -> str:
    """main.cf text with each name set to its new value.

    The first setting of a name is replaced where it stands and later ones
    are dropped; comment and blank lines are kept even inside a continued
    value; names not yet present are appended. A value of None removes the
    setting, COMMENT_OUT turns each of its lines into a comment (``#name = ...``).
    """
    pending = dict(changes)
    done: set[str] = set()
    out: list[str] = []
    skipping = False
    commenting = False
    for raw in physical_lines(text):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            out.append(raw)
            continue
        if raw[0].isspace():
            if commenting:
                out.append("#" + raw)
            elif not skipping:
                out.append(raw)
            continue
        skipping = commenting = False
        name = _setting_name(raw)
        if name is not None and name in changes:
            value = pending.pop(name, None)
            if changes[name] is COMMENT_OUT:
                commenting = True
                out.append("#" + raw)
                continue
            skipping = True
            if name not in done:
                done.add(name)
                if value is not None:
                    out.append(master.format_setting(name, value))
            continue
        out.append(raw)
    for name, value in pending.items():
        if isinstance(value, str):
            out.append(master.format_setting(name, value))
    return "\n".join(out) + "\n" if out else ""


def _setting_name(line: str) -> str | None:
    name, eq, _ = line.partition("=")
    name = name.strip()
    return name if eq and name and not any(c.isspace() for c in name) else None


__all__ = ["main"]
