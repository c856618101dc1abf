"""loader - load main.cf into an immutable, typed Config.

    cfg = load(Path("etc"))                        # reads etc/main.cf
    cfg = load(Path("etc"), {"syslog_name": "mailsys/submission"})   # -o overrides
    cfg.message_size_limit     -> 10240000          (int)
    cfg["smtpd_timeout"]       -> 300.0             (float seconds)
    cfg.raw("smtpd_banner")    -> "$myhostname ESMTP $mail_name"

load() reads config_dir/main.cf, lays the overrides over it, then expands
and parses every known parameter that is set, so that a bad value stops the
program at start-up with ``FILE, line N: parameter NAME: bad size value
"lots"`` (ConfigError) instead of failing later in a daemon. Names that no
table entry knows and no other value refers to become warnings ("unused
parameter: foo=bar"), as with Postfix; so do references to names nothing
defines ("undefined parameter: nope"). unused_names() is that decision,
which postconf also uses to leave such names out of -n: as Postfix's
postconf_user.c, a name is used when a main.cf value refers to it with
$name (any value, a user-defined one too), when smtpd_restriction_classes
lists it, or when the caller says another file (master.cf) refers to it.

A Config never changes after load(); with_overrides() makes a new one. Typed
values are computed on first access and cached. Talks to nothing but the
file system (main.cf) and, for computed defaults, the host name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Mapping

from mailsys.config.maincf import Entry, Expander, parse_main_cf, references
from mailsys.config.params import PARAMS, Param, param
from mailsys.config.values import BadValue
from mailsys.errors import ConfigError

# Its names are used parameters (Postfix's VAR_REST_CLASSES).
RESTRICTION_CLASSES = "smtpd_restriction_classes"
COMMENT_HINT = ' (note: "#" starts a comment only at the beginning of a line)'


def load(config_dir: Path, overrides: Mapping[str, str] | None = None,
         referenced: Iterable[str] = ()) -> "Config":
    """The configuration in config_dir/main.cf with `overrides` on top;
    `referenced`: names other files refer to, never "unused" (unused_names)."""
    config_dir = Path(config_dir)
    path = config_dir / "main.cf"
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        raise ConfigError(f"open {path}: No such file or directory") from None
    except OSError as e:
        raise ConfigError(f"open {path}: {e.strerror}") from None
    warnings: list[str] = []
    entries = parse_main_cf(text, str(path), warnings)
    cfg = Config(config_dir, entries, (), str(path))
    cfg = cfg._validated(list(entries), warnings, referenced)
    return cfg.with_overrides(overrides, referenced) if overrides else cfg


class Config:
    """An immutable, validated view of main.cf plus overrides."""

    __slots__ = ("config_dir", "warnings", "file", "_entries", "_cache", "_expander")

    def __init__(self, config_dir: Path, entries: Mapping[str, Entry],
                 warnings: tuple[str, ...] = (), file: str | None = None) -> None:
        set_ = object.__setattr__
        set_(self, "config_dir", Path(config_dir))
        set_(self, "warnings", tuple(warnings))
        set_(self, "file", file)                      # main.cf path, for messages
        set_(self, "_entries", dict(entries))
        set_(self, "_cache", {})                      # name -> typed value
        set_(self, "_expander", Expander(self._lookup, file))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Config is immutable")

    def __reduce__(self):
        # Rebuilt from its parts: __setattr__ refuses pickle's default way.
        return (Config, (self.config_dir, self._entries, self.warnings, self.file))

    def __repr__(self) -> str:
        return f"<Config {self.config_dir} ({len(self._entries)} set)>"

    # -- the contract --------------------------------------------------------

    def __getitem__(self, name: str):
        try:
            return self._cache[name]
        except KeyError:
            pass
        p = param(name)
        if p is None:
            if name not in self._entries:
                raise KeyError(name)
            value: object = self.expand(self._entries[name].value)   # user-defined: text
        else:
            value = self._typed(p, self.raw(name), self._entries.get(name))
        self._cache[name] = value
        return value

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"unknown parameter: {name}") from None

    def raw(self, name: str) -> str:
        """The value as written in main.cf (or -o), else the default, unexpanded."""
        entry = self._entries.get(name)
        if entry is not None:
            return entry.value
        return self.default(name)

    def default(self, name: str) -> str:
        """The built-in default text of a known parameter (KeyError otherwise)."""
        p = param(name)
        if p is None:
            raise KeyError(name)
        if name == "config_directory":
            return str(self.config_dir)
        if p.compute is not None:
            return p.compute(self._expanded)
        return p.default

    def expand(self, text: str, warnings: list[str] | None = None) -> str:
        """Expand $name references in `text`; undefined names go to `warnings`."""
        return self._expander.expand(text, warnings)

    def path(self, name: str) -> Path:
        """A parameter's value as a path; a relative one is taken from config_dir.parent."""
        p = Path(str(self[name]))
        return p if p.is_absolute() else self.config_dir.absolute().parent / p

    def is_set(self, name: str) -> bool:
        """Whether main.cf or an override sets `name`."""
        return name in self._entries

    def with_overrides(self, overrides: Mapping[str, str],
                       referenced: Iterable[str] = ()) -> "Config":
        """A new Config with `overrides` (master.cf or postconf -o name=value)
        on top; `referenced` as for load()."""
        entries = dict(self._entries)
        for name, value in overrides.items():
            entries[name] = Entry(name, str(value).strip(), None, None)
        new = Config(self.config_dir, entries, (), self.file)
        return new._validated(list(overrides), list(self.warnings), referenced)

    # -- beyond the contract: what postconf needs ------------------------------

    def set_names(self) -> tuple[str, ...]:
        """Names set in main.cf or by overrides, sorted."""
        return tuple(sorted(self._entries))

    def entry(self, name: str) -> Entry | None:
        """Where `name` is set, or None."""
        return self._entries.get(name)

    def unused_names(self, referenced: Iterable[str] = ()) -> tuple[str, ...]:
        """Names set here that are "unused parameter"s, sorted: no table
        entry knows them, no value set here refers to them with $name,
        smtpd_restriction_classes does not list them, nor are they among
        `referenced`, the names other files (master.cf -o values) refer
        to. Postfix's postconf_user.c validates a user-defined name=value
        in the same three ways."""
        used = set(referenced)
        for entry in self._entries.values():
            used |= references(entry.value)
        if self.is_set(RESTRICTION_CLASSES):
            used |= set(re.findall(r"[^, \t\r\n]+", self._expanded(RESTRICTION_CLASSES)))
        return tuple(n for n in self.set_names() if param(n) is None and n not in used)

    # -- internals --------------------------------------------------------------

    def _lookup(self, name: str) -> str | None:
        entry = self._entries.get(name)
        if entry is not None:
            return entry.value
        if param(name) is not None:
            return self.default(name)
        return None

    def _expanded(self, name: str) -> str:
        return self.expand(self.raw(name))

    def _typed(self, p: Param, text: str, entry: Entry | None, warnings: list[str] | None = None):
        """Expand and parse `text` as parameter `p`; errors name where it was set."""
        where = {"file": entry.file if entry else None, "line": entry.line if entry else None,
                 "param": p.name}
        try:
            expanded = text if p.raw else self._expander.expand(text, warnings, (p.name,))
        except ConfigError as e:
            raise ConfigError(e.message, **where) from None
        try:
            value = p.type.parse(expanded, p.unit)
            _check_range(p, value, expanded)
        except BadValue as e:
            hint = COMMENT_HINT if " #" in text else ""
            raise ConfigError(f"{e}{hint}", **where) from None
        return value

    def _validated(self, names: list[str], warnings: list[str],
                   referenced: Iterable[str] = ()) -> "Config":
        """Check `names` (just set); return a copy carrying all warnings."""
        unused = set(self.unused_names(referenced))
        for name in names:
            entry = self._entries[name]
            p = param(name)
            if p is None:
                if name in unused:
                    warnings.append(f"{entry.file or 'override'}: unused parameter: {name}={entry.value}")
                continue
            self._cache[name] = self._typed(p, entry.value, entry, warnings)
        new = Config(self.config_dir, self._entries, tuple(dict.fromkeys(warnings)), self.file)
        new._cache.update(self._cache)
        return new


def _check_range(p: Param, value: object, text: str) -> None:
    if p.choices:
        words = value if isinstance(value, tuple) else (value,)
        for word in words:
            if str(word).lower() not in p.choices:
                allowed = ", ".join(c for c in p.choices if c) + (" or empty" if "" in p.choices else "")
                raise BadValue(f'bad value "{word}" (expected {allowed})')
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if p.min is not None and value < p.min:
        raise BadValue(f'value "{text}" is below the minimum {_num(p.min)}')
    if p.max is not None and value > p.max:
        raise BadValue(f'value "{text}" is above the maximum {_num(p.max)}')


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


__all__ = ["load", "Config", "PARAMS"]
