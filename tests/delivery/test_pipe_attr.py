"""pipe(8) command attributes: what is taken, and what is refused with Postfix's words."""

from __future__ import annotations

import grp
import pwd
from pathlib import Path

import pytest

from mailsys.config import load, parse_master_cf
from mailsys.delivery.pipe_attr import (PipeAttrError, check_service, parse_attributes,
                                        unescape)
from mailsys.errors import ConfigError

NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrgid(NOBODY.pw_gid).gr_name


def test_all_attributes():
    a = parse_attributes(["FLAGS=DRhu", f"user=nobody:{NOGROUP}", "directory=/tmp",
                          "chroot=/var/empty", r"eol=\r\n", "null_sender=", "size=1000",
                          "argv=/usr/lib/dovecot/deliver", "-f", "${sender}", "user=x"])
    assert a.flags == frozenset("DRhu")
    assert (a.user, a.uid, a.gid) == ("nobody", NOBODY.pw_uid, NOBODY.pw_gid)
    assert (a.directory, a.eol, a.null_sender, a.size_limit) == ("/tmp", b"\r\n", "", 1000)
    # argv= is last: what follows it is the command's, even "user=x"
    assert a.argv == ("/usr/lib/dovecot/deliver", "-f", "${sender}", "user=x")


def test_defaults():
    a = parse_attributes(["user=nobody", "argv=/bin/cat"])
    assert (a.flags, a.directory, a.eol, a.null_sender, a.size_limit) == (
        frozenset(), None, b"\n", "MAILER-DAEMON", 0)


@pytest.mark.parametrize("args, why", [
    (["argv=/bin/cat"], "missing user= command-line attribute"),
    (["user=nobody"], "missing argv= command-line attribute"),
    (["flags=Rz", "user=nobody", "argv=/bin/cat"], "unknown flag: z (ignored)"),
    (["user=root", "argv=/bin/cat"], "user= command-line attribute specifies root privileges"),
    (["user=nobody:root", "argv=/bin/cat"],
     "user= command-line attribute specifies privileged group id 0"),
    (["user=no-such-user-here", "argv=/bin/cat"],
     "get_service_attr: unknown username: no-such-user-here"),
    (["user=nobody:no-such-group", "argv=/bin/cat"],
     "get_service_attr: unknown group: no-such-group"),
    (["user=nobody", "size=10k", "argv=/bin/cat"], "get_service_attr: bad size= value: 10k"),
    (["user=nobody", "color=red", "argv=/bin/cat"], "unknown attribute name: color=red"),
])
def test_refused(args, why):
    with pytest.raises(PipeAttrError) as e:
        parse_attributes(args)
    assert str(e.value) == why


def test_mail_system_owner_is_refused():
    with pytest.raises(PipeAttrError) as e:
        parse_attributes(["user=nobody", "argv=/bin/cat"], mail_owner="nobody")
    assert str(e.value) == "user= command-line attribute specifies mail system owner nobody"
    # an owner account that does not exist here refuses nothing
    parse_attributes(["user=nobody", "argv=/bin/cat"], mail_owner="no-such-owner")


def test_unescape():
    assert unescape(r"\r\n") == b"\r\n"
    assert unescape(r"\101\7\\\t\q") == b"A\x07\\\t\\q"
    assert unescape("plain") == b"plain"


def test_check_names_master_cf_and_the_line(tmp_path: Path):
    (tmp_path / "main.cf").write_text(f"queue_directory = {tmp_path}/q\n")
    (tmp_path / "master.cf").write_text(
        "# comment\n"
        "ok     unix - n n - - pipe flags=R user=nobody argv=/bin/cat ${recipient}\n"
        "bad    unix - n n - - pipe\n"
        "  flags=R argv=/bin/cat\n"
        "macro  unix - n n - - pipe user=nobody argv=/bin/cat ${recipent}\n")
    cfg = load(tmp_path)
    ok, bad, macro = parse_master_cf(tmp_path / "master.cf", cfg)
    assert check_service(ok).argv == ("/bin/cat", "${recipient}")
    with pytest.raises(ConfigError) as e:
        check_service(bad)
    assert str(e.value) == (f"{tmp_path}/master.cf, line 3: service bad: "
                            "missing user= command-line attribute")
    with pytest.raises(ConfigError) as e:
        check_service(macro)
    assert str(e.value) == (f"{tmp_path}/master.cf, line 5: service macro: "
                            'unknown macro name: "recipent"')


def test_check_only_warns_about_an_account_this_host_lacks(tmp_path: Path):
    # Debian's master.cf has maildrop (user=vmail), uucp, mailman ... entries:
    # Postfix starts with them and refuses only when mail goes that way.
    (tmp_path / "main.cf").write_text(f"queue_directory = {tmp_path}/q\n")
    (tmp_path / "master.cf").write_text(
        "maildrop unix - n n - - pipe\n"
        "  flags=DRXhu user=no-such-vmail argv=/usr/bin/maildrop -d ${recipient}\n"
        "typo unix - n n - - pipe user=no-such-vmail flags=Rz argv=/bin/cat\n")
    cfg = load(tmp_path)
    maildrop, typo = parse_master_cf(tmp_path / "master.cf", cfg)
    warnings: list[str] = []
    attr = check_service(maildrop, warnings=warnings)
    assert (attr.user, attr.uid, attr.argv) == ("no-such-vmail", -1,
                                                ("/usr/bin/maildrop", "-d", "${recipient}"))
    assert warnings == [f"{tmp_path}/master.cf, line 1: service maildrop: "
                        "get_service_attr: unknown username: no-such-vmail"]
    with pytest.raises(ConfigError, match=r"line 3: service typo: unknown flag: z"):
        check_service(typo, warnings=[])
