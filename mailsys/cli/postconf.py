"""postconf - show and edit the mailsys configuration (Postfix postconf(1)).

SYNOPSIS
    mailsys postconf [-c dir] [-dhnx] [name ...]
    mailsys postconf [-c dir] -e name=value ...
    mailsys postconf [-c dir] -X name ...
    mailsys postconf [-c dir] -# name ...
    mailsys postconf [-c dir] [-h] -M [name[/type] ...]
    mailsys postconf -m

DESCRIPTION
    Without options, prints every parameter as ``name = value`` with the
    value as written (unexpanded), sorted. -n prints only what main.cf sets,
    warning about names nothing uses; -d prints the built-in defaults; -h
    prints values without ``name = ``; -x expands $name references. An
    unknown name gets ``postconf: warning: NAME: unknown parameter`` and the
    exit status stays 0, as with Postfix.

    -e edits main.cf in place: an existing setting (with its continuation
    lines) is replaced where it stands, other lines and comments are kept,
    new names are appended. Every new value is checked against the parameter
    table first, so a bad value never reaches the file. -X deletes settings,
    -# comments them out.
    The file is replaced atomically (written beside it, then renamed).

    -M prints master.cf with its columns aligned the way Postfix does
    (``%-10s %-5s %-7s %-7s %-7s %-7s %-7s command``), each service on one
    line, optionally only the services named as name or name/type.

    -m lists the lookup table types this build supports, one per line.

    Errors in main.cf or master.cf are reported as one line naming file,
    line and parameter, with exit status 1.
"""

from __future__ import annotations

import getopt
import os
import sys
import tempfile
from pathlib import Path

from mailsys.config import load
from mailsys.config.loader import Config
from mailsys.config.lines import physical_lines
from mailsys.config.maincf import parse_main_cf, split_name_value
from mailsys.config.mastercf import split_master_text
from mailsys.config.params import PARAMS, param
from mailsys.config.tables import OPENERS, sync_directory
from mailsys.errors import ConfigError, UsageError

USAGE = ("usage: postconf [-c config_dir] [-dhnx] [name ...] | -e name=value ... | -X|-# name ... "
         "| -M [name[/type] ...] | -m")


def main(argv: list[str], config_dir: Path, command: str = "postconf") -> int:
    try:
        opts, names = getopt.gnu_getopt(argv, "c:dehmnxXM#")
    except getopt.GetoptError as e:
        raise UsageError(f"{e}. {USAGE}") from None
    flags = {flag for flag, _ in opts}
    for flag, value in opts:
        if flag == "-c":
            config_dir = Path(value).absolute()
    if len(flags & {"-e", "-X", "-#", "-M", "-m"}) > 1:
        raise UsageError(USAGE)
    if "-m" in flags:
        print("\n".join(sorted(OPENERS)))
        return 0
    if "-e" in flags:
        return edit(config_dir, names)
    if "-X" in flags:
        return delete(config_dir, names)
    if "-#" in flags:
        return delete(config_dir, names, comment_out=True)
    if "-M" in flags:
        return show_master(config_dir, names)
    return show(config_dir, names, flags)


def warn(message: str) -> None:
    print(f"postconf: warning: {message}", file=sys.stderr)


def format_line(name: str, value: str, values_only: bool) -> str:
    if values_only:
        return value
    return f"{name} = {value}" if value else f"{name} ="


def show(config_dir: Path, names: list[str], flags: set[str]) -> int:
    """postconf [-d|-n] [-h] [-x] [name ...]"""
    if "-d" in flags:
        cfg = Config(config_dir, {}, (), str(config_dir / "main.cf"))
    else:
        cfg = load(config_dir)
    if "-n" in flags:
        for w in cfg.warnings:
            warn(w)
    if names:
        wanted = []
        for name in names:
            known = param(name) is not None or (cfg.is_set(name) and "-d" not in flags)
            if known:
                wanted.append(name)
            else:
                warn(f"{name}: unknown parameter")
    elif "-n" in flags:
        wanted = list(cfg.set_names())
    else:
        wanted = sorted(set(PARAMS) | {n for n in cfg.set_names() if param(n) is not None})
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
        out.append(format_line(name, value, "-h" in flags))
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return 0


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
    if not args:
        raise UsageError(USAGE)
    path, text = _read_main(config_dir)
    changes: dict[str, str] = {}
    for arg in args:
        name, value = split_name_value(arg.strip(), None, None)
        changes[name] = value
    current = Config(config_dir, parse_main_cf(text, str(path)), (), str(path))
    current.with_overrides({n: v for n, v in changes.items() if param(n) is not None})
    _write_atomically(path, _rewrite(text, changes, str(path)))
    return 0


def delete(config_dir: Path, names: list[str], comment_out: bool = False) -> int:
    """postconf -X / -# name ...: remove or comment out settings, continuations included."""
    if not names:
        raise UsageError(USAGE)
    path, text = _read_main(config_dir)
    if text:
        marker = COMMENT_OUT if comment_out else None
        _write_atomically(path, _rewrite(text, dict.fromkeys(names, marker), str(path)))
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
                    out.append(format_line(name, value, False))
            continue
        out.append(raw)
    for name, value in pending.items():
        if isinstance(value, str):
            out.append(format_line(name, value, False))
    return "\n".join(out) + "\n" if out else ""


def _setting_name(line: str) -> str | None:
    name, eq, _ = line.partition("=")
    name = name.strip()
    return name if eq and name and not any(c.isspace() for c in name) else None


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".main.cf.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        except FileNotFoundError:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        sync_directory(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- master.cf ------------------------------------------------------------------------

MASTER_WIDTHS = (10, 5, 7, 7, 7, 7, 7)


def format_master(fields: tuple[str, ...], command: tuple[str, ...]) -> str:
    """One master.cf service the way postconf -M prints it."""
    cols = " ".join(f"{value:<{width}}" for value, width in zip(fields, MASTER_WIDTHS))
    return f"{cols} {' '.join(command)}"


def show_master(config_dir: Path, requests: list[str]) -> int:
    path = config_dir / "master.cf"
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise ConfigError(f"open {path}: {e.strerror}") from None
    warnings: list[str] = []
    lines = split_master_text(text, str(path), warnings)
    for w in warnings:
        warn(w)
    matched: set[str] = set()
    out = []
    for ml in lines:
        name, type_ = ml.fields[0], ml.fields[1]
        hits = [r for r in requests if r in (name, f"{name}/{type_}")]
        if requests and not hits:
            continue
        matched.update(hits)
        out.append(format_master(ml.fields, ml.command))
    for r in requests:
        if r not in matched:
            warn(f'unmatched request: "{r}"')
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return 0


__all__ = ["main", "format_master"]
