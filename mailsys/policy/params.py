"""params - the main.cf values and lookup tables the restrictions read.

DESCRIPTION
    param_value() reads one parameter from a Config, falling back to
    Postfix's default when the configuration table does not declare the
    name, and converting a value main.cf sets for an undeclared name from
    text to the type of the default (yes/no, a number, a list). A bad
    number raises ConfigError naming the parameter.

    Tables opens each "type:name" lookup table spec once, however many
    restriction lists, match lists and access restrictions name it, with an
    injected opener (default mailsys.config.tables.open_table). A proxy:
    prefix is dropped: proxymap only moves lookups into another process,
    and the answers are the table's own.

SEE ALSO
    mailsys.config, mailsys.config.tables, Postfix postconf(5), proxymap(8).
"""

from __future__ import annotations

from typing import Any, Callable

from mailsys.config.values import split_list
from mailsys.errors import ConfigError
from mailsys.policy.netmatch import Table

TablesOpener = Callable[[str, Any], Table]

# Postfix 3.7 default of parent_domain_matches_subdomains.
PARENT_DEFAULT = ("debug_peer_list", "fast_flush_domains", "mynetworks", "permit_mx_backup_networks",
                  "qmqpd_authorized_clients", "relay_domains", "smtpd_access_maps")


def param_value(cfg: Any, name: str, default: Any) -> Any:
    """cfg[name], or default when the configuration does not know the name.

    A parameter the config table does not declare but main.cf sets comes
    back as text; it is converted to the type of the default.
    """
    if cfg is None:
        return default
    try:
        value = cfg[name]
    except KeyError:
        return default
    if isinstance(value, str) and not isinstance(default, str):
        text = value.strip()
        if isinstance(default, bool):
            return text.lower() in ("yes", "true", "1")
        if isinstance(default, int):
            try:
                return int(text)
            except ValueError:
                raise ConfigError(f'bad numerical configuration: {name} = {text}', param=name) from None
        if isinstance(default, tuple):
            return split_list(text)
    return value


class Tables:
    """Opens each table spec once, whatever list or restriction names it."""

    def __init__(self, opener: TablesOpener | None, cfg: Any) -> None:
        self._opener = opener
        self._cfg = cfg
        self._open: dict[str, Table] = {}

    def __call__(self, spec: str) -> Table:
        table = self._open.get(spec)
        if table is None:
            opener = self._opener
            if opener is None:
                from mailsys.config.tables import open_table   # deferred: tests pass their own
                opener = open_table
            # proxy: only moves a lookup into Postfix's proxymap daemon; the
            # answers are the table's own, so mailsys reads the table directly.
            bare = spec[len("proxy:"):] if spec.startswith("proxy:") else spec
            table = opener(bare, self._cfg)
            self._open[spec] = table
        return table


__all__ = ["PARENT_DEFAULT", "Tables", "TablesOpener", "param_value"]
