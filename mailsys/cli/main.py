"""mailsys - the one command line entry point.

SYNOPSIS
    mailsys [-c config_dir] COMMAND [args ...]

DESCRIPTION
    Each COMMAND is named after the Postfix tool it stands for and takes the
    same flags (DESIGN.md, "Command line"). Every command lives in its own
    module under mailsys.cli and exposes ``main(argv, config_dir) -> int``;
    this module only picks the module, so that a broken command cannot stop
    the others from loading.

    The configuration directory is, in order: ``-c DIR`` before or after the
    command name, ``$MAILSYS_CONFIG_DIR``, ``./etc`` when it holds main.cf,
    else /etc/mailsys.

    A MailsysError reaches the user as one line on stderr and a non-zero
    exit status; nothing the user can cause prints a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from mailsys.errors import ConfigError, MailsysError, UsageError

# command name -> (module, the Postfix program name used in error messages)
COMMANDS: dict[str, tuple[str, str]] = {
    "start": ("mailsys.cli.postfix", "postfix"),
    "start-fg": ("mailsys.cli.postfix", "postfix"),
    "stop": ("mailsys.cli.postfix", "postfix"),
    "abort": ("mailsys.cli.postfix", "postfix"),
    "reload": ("mailsys.cli.postfix", "postfix"),
    "status": ("mailsys.cli.postfix", "postfix"),
    "check": ("mailsys.cli.postfix", "postfix"),
    "flush": ("mailsys.cli.postfix", "postfix"),
    "logrotate": ("mailsys.cli.logrotate", "postfix"),
    "postconf": ("mailsys.cli.postconf", "postconf"),
    "postmap": ("mailsys.cli.postmap", "postmap"),
    "postalias": ("mailsys.cli.postalias", "postalias"),
    "newaliases": ("mailsys.cli.postalias", "newaliases"),
    "postqueue": ("mailsys.cli.postqueue", "postqueue"),
    "mailq": ("mailsys.cli.sendmail", "sendmail"),     # Postfix's mailq is its sendmail
    "postsuper": ("mailsys.cli.postsuper", "postsuper"),
    "postcat": ("mailsys.cli.postcat", "postcat"),
    "sendmail": ("mailsys.cli.sendmail", "sendmail"),
    "log": ("mailsys.cli.log", "log"),
    "postlog": ("mailsys.cli.postlog", "postlog"),
    "qshape": ("mailsys.cli.qshape", "qshape"),
    "saslpasswd": ("mailsys.cli.saslpasswd", "saslpasswd"),
}

USAGE = ("usage: mailsys [-c config_dir] COMMAND [args ...]\n"
         "commands: " + " ".join(COMMANDS))

EX_USAGE = 64


def default_config_dir() -> Path:
    """The configuration directory when no -c is given."""
    env = os.environ.get("MAILSYS_CONFIG_DIR")
    if env:
        return Path(env)
    if Path("etc/main.cf").is_file():
        return Path("etc")
    return Path("/etc/mailsys")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    config_dir: Path | None = None
    if len(args) >= 2 and args[0] == "-c":
        config_dir = Path(args[1])
        del args[:2]
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, file=sys.stderr if not args else sys.stdout)
        return EX_USAGE if not args else 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"mailsys: fatal: unknown command: '{name}'. {USAGE}", file=sys.stderr)
        return EX_USAGE
    module_name, program = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        print(f"{program}: fatal: command not available in this build: {name}", file=sys.stderr)
        return EX_USAGE
    config_dir = (config_dir or default_config_dir()).absolute()
    try:
        return int(module.main(rest, config_dir, command=name) or 0)
    except ConfigError as e:
        print(f"{program}: fatal: {e}", file=sys.stderr)
        return 1
    except UsageError as e:
        print(f"{program}: fatal: {e}", file=sys.stderr)
        return EX_USAGE
    except MailsysError as e:
        print(f"{program}: fatal: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
