"""spawn(8)'s master.cf command attributes: user=, argv= and Postfix's refusals."""

from __future__ import annotations

import grp
import pwd

import pytest

from mailsys.config import load
from mailsys.config.params import param, service_time_limit_name
from mailsys.config.spawn_attributes import SpawnAttributes, parse_spawn_attributes
from mailsys.errors import ConfigError

NOBODY = pwd.getpwnam("nobody")


def test_user_and_argv():
    attrs = parse_spawn_attributes(("user=nobody", "argv=/usr/bin/policyd-spf", "-v", "x=y"))
    assert attrs == SpawnAttributes(user="nobody", uid=NOBODY.pw_uid, gid=NOBODY.pw_gid,
                                    argv=("/usr/bin/policyd-spf", "-v", "x=y"))


def test_names_are_matched_without_case_and_argv_takes_every_later_word():
    attrs = parse_spawn_attributes(("USER=nobody", "Argv=/bin/cat", "user=root", "bogus"))
    assert (attrs.uid, attrs.argv) == (NOBODY.pw_uid, ("/bin/cat", "user=root", "bogus"))


def test_a_group_replaces_the_users_own():
    other = next(g for g in grp.getgrall() if g.gr_gid not in (0, NOBODY.pw_gid))
    attrs = parse_spawn_attributes((f"user=nobody:{other.gr_name}", "argv=/bin/true"))
    assert (attrs.uid, attrs.gid) == (NOBODY.pw_uid, other.gr_gid)
    # "user=nobody:" names no group: the user's own.
    assert parse_spawn_attributes(("user=nobody:", "argv=/bin/true")).gid == NOBODY.pw_gid


@pytest.mark.parametrize("args, message", [
    (("argv=/bin/true",), "missing user= attribute"),
    (("user=nobody",), "missing argv= attribute"),
    (("user=nobody", "group=x", "argv=/bin/true"), "unknown attribute name: group=x"),
    (("user=no-such-user-here", "argv=/bin/true"), "unknown user name: no-such-user-here"),
    (("user=nobody:no-such-group", "argv=/bin/true"), "unknown group name: no-such-group"),
    (("user=root", "argv=/bin/true"), "request to deliver as root"),
    (("user=nobody:root", "argv=/bin/true"), "request to use privileged group id 0"),
])
def test_refusals_in_postfix_words(args, message):
    with pytest.raises(ConfigError) as e:
        parse_spawn_attributes(args)
    assert str(e.value) == message


def test_the_mail_system_owner_is_refused_when_the_account_exists():
    with pytest.raises(ConfigError) as e:
        parse_spawn_attributes(("user=nobody", "argv=/bin/true"), owner="nobody")
    assert str(e.value) == "request to deliver as mail system owner"
    owner = next(e for e in pwd.getpwall() if e.pw_uid not in (0, NOBODY.pw_uid) and e.pw_gid)
    group = grp.getgrgid(owner.pw_gid).gr_name
    with pytest.raises(ConfigError) as e:
        parse_spawn_attributes((f"user=nobody:{group}", "argv=/bin/true"), owner=owner.pw_name)
    assert str(e.value) == f"request to use mail system owner group id {owner.pw_gid}"
    # An owner account that does not exist refuses nobody.
    assert parse_spawn_attributes(("user=nobody", "argv=/bin/true"),
                                  owner="no-such-owner").uid == NOBODY.pw_uid


def test_each_service_has_its_own_time_limit_parameter(tmp_path):
    assert service_time_limit_name("policyd-spf") == "policyd-spf_time_limit"
    p = param("policyd-spf_time_limit")
    assert p is not None and p.default == "$command_time_limit"
    (tmp_path / "main.cf").write_text("command_time_limit = 20m\npolicyd-spf_time_limit = 1h\n")
    cfg = load(tmp_path)
    assert cfg["policyd-spf_time_limit"] == 3600.0
    assert cfg["other_time_limit"] == 1200.0
    assert not [w for w in cfg.warnings if "unused parameter" in w]
    (tmp_path / "main.cf").write_text("policyd-spf_time_limit = soon\n")
    with pytest.raises(ConfigError) as e:
        load(tmp_path)
    assert 'parameter policyd-spf_time_limit: bad time value "soon"' in str(e.value)
