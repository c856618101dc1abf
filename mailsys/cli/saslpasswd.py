"""saslpasswd - manage the SMTP AUTH users of smtpd_sasl_users_file.

SYNOPSIS
    mailsys saslpasswd add [--cram-md5] USER
    mailsys saslpasswd delete USER
    mailsys saslpasswd list

DESCRIPTION
    add stores USER's password as a salted scrypt hash, replacing an
    existing entry. The password is read from standard input when that is
    not a terminal (one line; the trailing newline is dropped), otherwise
    prompted for twice. --cram-md5 also stores the CRAM-MD5 key in Dovecot's
    {CRAM-MD5} form (what `doveadm pw -s CRAM-MD5` prints), which lets the
    user log in with CRAM-MD5. It does not reveal the password, but whoever
    reads the file can log in with CRAM-MD5 (see mailsys.sasl.passwords).

    delete removes USER; an unknown USER is an error (exit 1). list prints
    the user names, one per line.

    The file (default $config_directory/sasl_users) is replaced atomically
    with mode 0600; a running smtpd notices the change by itself.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from mailsys.errors import MailsysError, UsageError
from mailsys.sasl.passwords import BadCredential, cram_key, hash_password
from mailsys.sasl.users import delete_user, list_users, set_user, valid_username, write_users_file

USAGE = "usage: saslpasswd add [--cram-md5] USER | saslpasswd delete USER | saslpasswd list"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:     # one line, exit 64, via UsageError
        raise UsageError(f"{message}; {USAGE}")


def users_file(config_dir: Path) -> Path:
    from mailsys.config import load
    return load(config_dir).path("smtpd_sasl_users_file")


def _read_password() -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if password.endswith("\r"):
            password = password[:-1]
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise MailsysError("passwords do not match")
    if not password:
        raise MailsysError("empty password")
    return password


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except OSError as e:
        raise MailsysError(f"open {path}: {e.strerror}") from None


def main(argv: list[str], config_dir: Path, command: str = "saslpasswd") -> int:
    parser = _Parser(prog="saslpasswd", add_help=False)
    parser.add_argument("action", choices=("add", "delete", "list"))
    parser.add_argument("--cram-md5", action="store_true")
    parser.add_argument("user", nargs="?")
    args = parser.parse_intermixed_args(argv)
    if args.action != "list" and not args.user:
        raise UsageError(f"{args.action} needs a user name; {USAGE}")
    if args.action == "list" and args.user:
        raise UsageError(USAGE)
    if args.cram_md5 and args.action != "add":
        raise UsageError(f"--cram-md5 goes with add; {USAGE}")
    if args.user is not None and not valid_username(args.user):
        raise UsageError(f"invalid user name: {args.user!r} (no ':' or white space)")

    path = users_file(config_dir)
    text = _read(path)
    if args.action == "list":
        for name in list_users(text):
            print(name)
        return 0
    if args.action == "delete":
        text, found = delete_user(text, args.user)
        if not found:
            raise MailsysError(f"unknown user: {args.user}")
    else:
        password = _read_password()
        credentials = [hash_password(password)]
        if args.cram_md5:
            credentials.append(cram_key(password))
        try:
            text = set_user(text, args.user, credentials)
        except BadCredential as e:
            raise UsageError(str(e)) from None
    try:
        write_users_file(path, text)
    except OSError as e:
        raise MailsysError(f"write {path}: {e.strerror}") from None
    return 0
