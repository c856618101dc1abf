"""environment - the process environment every daemon runs with (Postfix clean_env()).

SYNOPSIS
    from mailsys.runtime.environment import imported, import_environment
    imported({"LANG": "de_DE.UTF-8", "FOO": "x", "TZ": "UTC"}, ["TZ", "LANG=C"])
        # {"TZ": "UTC", "LANG": "C"}
    import_environment(cfg)      # os.environ becomes imported(os.environ, $import_environment)

DESCRIPTION
    Postfix's master strips its environment once at start-up to the names
    in $import_environment (a NAME=VALUE element sets the variable instead),
    "to enforce consistent behavior whether Postfix is started by hand, or
    at system boot time" (master.c); every daemon inherits what is left,
    and a delivery command gets its $export_environment names from that
    (mailsys.delivery.command). With the default list a pipe(8) or local(8)
    command sees LANG=C whatever the starting shell had, and no variable
    the list leaves out. Postfix 3.7.11 started with FOO=bar,
    LANG=de_DE.UTF-8 and TZ=Europe/Berlin ran its pipe command with
    LANG=C, MAIL_CONFIG, PATH=/usr/bin:/bin and TZ=Europe/Berlin, no FOO.

    One deliberate difference: variables named PYTHON* are kept, whatever
    the list says. They are the interpreter's (PYTHONPATH, PYTHONHOME) and
    a daemon the master execs needs them to start at all; a delivery
    command still gets them only when $export_environment names them.

    The master calls import_environment() before it forks anything, and
    not again on reload (as Postfix's master). Like Postfix, changing
    import_environment takes a stop and start.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

# Kept whatever import_environment says (see DESCRIPTION).
_INTERPRETER_PREFIX = "PYTHON"


def imported(environ: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The environment left of environ by an import_environment list."""
    kept = {k: v for k, v in environ.items() if k.startswith(_INTERPRETER_PREFIX)}
    for item in names:
        name, eq, value = item.partition("=")
        if eq:
            kept[name] = value
        elif name in environ:
            kept[name] = environ[name]
    return kept


def import_environment(cfg) -> None:
    """Make this process's environment what $import_environment imports."""
    keep = imported(os.environ, cfg.import_environment)
    os.environ.clear()
    os.environ.update(keep)


__all__ = ["import_environment", "imported"]
