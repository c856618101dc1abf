"""Alias expansion rules (local(8)): each case's steps, checked against what
Postfix 3.7 logged for the same aliases on a private instance."""

from __future__ import annotations

import os
import pwd

import pytest

from mailsys.config.tables import DictTable
from mailsys.delivery.aliases import (AliasSettings, Command, Failure, File, Forward, Mailbox,
                                      Privs, Seen, Target, expand, split_local)

HOST = "pfx.test"
NOBODY = Privs(65534, 65534, "nobody")


def settings(entries: dict[str, str], **kw) -> AliasSettings:
    warnings = kw.pop("warnings", [])
    return AliasSettings(maps=(DictTable("texthash:aliases", entries),), myorigin=HOST,
                         is_here=lambda a: a.lower().endswith("@" + HOST),
                         owner_of=lambda table: 0, warn=warnings.append, **kw)


def run(entries, address=f"x@{HOST}", loops=(), sender="s@example.org", **kw):
    return expand(Target(address, address, sender), settings(entries, **kw), Seen(1000),
                  frozenset(loops))


def view(steps):
    """Each step as (kind, to, orig_to, detail)."""
    out = []
    for s in steps:
        t = s.target
        detail = {Mailbox: lambda: "", Forward: lambda: t.sender,
                  Command: lambda: s.command, File: lambda: s.path,
                  Failure: lambda: f"{s.dsn} {s.text}"}[type(s)]()
        out.append((type(s).__name__, t.address, t.orig, detail))
    return out


def test_no_alias_is_the_mailbox():
    assert view(run({})) == [("Mailbox", f"x@{HOST}", f"x@{HOST}", "")]


def test_alias_to_local_user_recurses_and_keeps_orig():
    # Postfix: to=<cloudsdk@pfx.test>, orig_to=<root@pfx.test>, ... (delivered to mailbox)
    steps = run({"postmaster": "root", "root": "alice"}, f"postmaster@{HOST}")
    assert view(steps) == [("Mailbox", f"alice@{HOST}", f"postmaster@{HOST}", "")]
    assert steps[0].target.delivered == f"postmaster@{HOST}"


def test_an_address_the_resolver_calls_bad_syntax_bounces_the_recipient():
    # Postfix 3.7.11, alias "minus: -bar@example.net": "to=<minus@localhost>,
    # relay=local, ... dsn=5.1.3, status=bounced (bad recipient address syntax:
    # -bar@example.net)": the recipient being expanded bounces, not the new one.
    steps = run({"minus": "-bar@example.net, alice"}, f"minus@{HOST}",
                bad_syntax=lambda a: a.startswith("-"))
    assert view(steps) == [
        ("Failure", f"minus@{HOST}", f"minus@{HOST}",
         "5.1.3 bad recipient address syntax: -bar@example.net"),
        ("Mailbox", f"alice@{HOST}", f"minus@{HOST}", "")]


def test_frozen_delivered_to_no_follows_each_step():
    steps = run({"postmaster": "root", "root": "alice, far@example.net"}, f"postmaster@{HOST}",
                frozen_delivered=False)
    assert [(type(s).__name__, s.target.delivered) for s in steps] == [
        ("Mailbox", f"alice@{HOST}"), ("Forward", f"root@{HOST}")]
    steps = run({"postmaster": "root", "root": "alice, far@example.net"}, f"postmaster@{HOST}")
    assert {s.target.delivered for s in steps} == {f"postmaster@{HOST}"}


def test_remote_address_is_forwarded_with_the_original_sender():
    steps = run({"remote": "far@example.net, alice"}, f"remote@{HOST}")
    assert view(steps) == [("Forward", "far@example.net", f"remote@{HOST}", "s@example.org"),
                           ("Mailbox", f"alice@{HOST}", f"remote@{HOST}", "")]


def test_extension_is_tried_with_and_without_and_not_propagated_by_default():
    entries = {"remote": "far@example.net"}
    steps = run(entries, f"Remote+Ext@{HOST}", delimiter="+")
    assert view(steps) == [("Forward", "far@example.net", f"Remote+Ext@{HOST}", "s@example.org")]
    steps = run(entries, f"remote+ext@{HOST}", delimiter="+", propagate=frozenset({"alias"}))
    assert view(steps)[0][1] == "far+ext@example.net"
    # the full local part wins when the table has it
    steps = run({**entries, "remote+ext": "other@example.net"}, f"remote+ext@{HOST}",
                delimiter="+")
    assert view(steps)[0][1] == "other@example.net"


def test_owner_request_special_keeps_dash_names_whole():
    assert split_local("owner-list@h", "-")[1] == "owner-list"
    assert split_local("list-request@h", "-")[1] == "list-request"
    assert split_local("list-x@h", "-")[1:3] == ("list", "x")
    assert split_local("owner-list@h", "-", owner_request_special=False)[1] == "owner"


def test_alias_listing_itself_goes_to_its_mailbox():
    # Postfix: self: self, far3@example.net -> mailbox of self, and a forward.
    steps = run({"self": "self, far3@example.net"}, f"self@{HOST}")
    assert view(steps) == [("Mailbox", f"self@{HOST}", f"self@{HOST}", ""),
                           ("Forward", "far3@example.net", f"self@{HOST}", "s@example.org")]


def test_alias_loop_bounces_at_depth_100_with_a_warning():
    warnings = []
    steps = run({"loop1": "loop2", "loop2": "loop1"}, f"loop1@{HOST}", warnings=warnings)
    # Postfix: to=<loop2@pfx.test>, orig_to=<loop1@pfx.test>, dsn=5.4.6,
    # status=bounced (alias database loop for loop2), and the same warning.
    assert view(steps) == [("Failure", f"loop2@{HOST}", f"loop1@{HOST}",
                            "5.4.6 alias database loop for loop2")]
    assert warnings == ["alias database loop for loop2"]


def test_duplicates_are_delivered_once():
    steps = run({"dup": "alice, alice, root", "root": "alice"}, f"dup@{HOST}")
    # Postfix logged one line: to=<cloudsdk@pfx.test>, orig_to=<dup@pfx.test>.
    # The second alice at the same depth is the same recipient; root's alice,
    # one level deeper, the same mailbox.
    assert view(steps) == [("Mailbox", f"alice@{HOST}", f"dup@{HOST}", "")]


def test_delivered_to_loop():
    steps = run({"a": "b"}, f"a@{HOST}", loops={f"b@{HOST}"})
    assert view(steps) == [("Failure", f"b@{HOST}", f"a@{HOST}",
                            f"5.4.6 mail forwarding loop for b@{HOST}")]


def test_owner_alias_sets_sender_resets_orig_and_forwards_everything():
    entries = {"olist": "alice, far5@example.net", "owner-olist": "root"}
    steps = run(entries, f"olist@{HOST}")
    # Postfix: from=<owner-olist@pfx.test>, the local member forwarded too,
    # and no orig_to= in the copy's delivery lines.
    assert view(steps) == [("Forward", f"alice@{HOST}", "", f"owner-olist@{HOST}"),
                           ("Forward", "far5@example.net", "", f"owner-olist@{HOST}")]
    assert steps[0].target.envid_reset
    steps = run(entries, f"olist@{HOST}", expand_owner_alias=True)
    assert steps[0].target.sender == f"root@{HOST}"
    steps = run(entries, f"olist@{HOST}", owner_request_special=False)
    assert view(steps)[0][0] == "Mailbox"


def test_notify_success_is_dropped_in_an_expansion():
    s = settings({"a": "far@example.net"})
    [step] = expand(Target(f"a@{HOST}", f"a@{HOST}", "s@x", notify=("SUCCESS", "FAILURE")),
                    s, Seen())
    assert step.target.notify == ("FAILURE",)
    [step] = expand(Target(f"a@{HOST}", f"a@{HOST}", "s@x", notify=("SUCCESS",)), s, Seen())
    assert step.target.notify == ("NEVER",)


def test_include_forwards_addresses_and_restricts_commands_and_files(tmp_path):
    inc = tmp_path / "list"
    inc.write_text("# members\nalice\nfar4@example.net\n|/bin/echo hi\n/tmp/inc.file\n")
    os.chmod(inc, 0o644)
    steps = run({"list": f":include:{inc}"}, f"list@{HOST}")
    # Postfix: alice forwarded (not delivered here), "|/bin/echo" restricted
    # (5.7.1), "hi" an address, the file restricted.
    assert view(steps) == [
        ("Forward", f"alice@{HOST}", f"list@{HOST}", "s@example.org"),
        ("Forward", "far4@example.net", f"list@{HOST}", "s@example.org"),
        ("Failure", f"list@{HOST}", f"list@{HOST}", "5.7.1 mail to command is restricted"),
        ("Forward", f"hi@{HOST}", f"list@{HOST}", "s@example.org"),
        ("Failure", f"list@{HOST}", f"list@{HOST}", "5.7.1 mail to file is restricted")]
    steps = run({"list": f":include:{inc}"}, f"list@{HOST}",
                commands=frozenset({"alias", "include"}), files=frozenset({"include"}))
    assert [type(s).__name__ for s in steps] == ["Forward", "Forward", "Command", "Forward", "File"]


@pytest.mark.parametrize("mode, setup, warning", [
    (0o644, "relative", ":include:relative/list uses a relative path"),
    (0o646, "file", ":include: file {p} is world writable"),
    (0o644, "missing", "unable to lookup :include: file {p}: No such file or directory"),
    (0o755, "dir", ":include: file {p} is not a regular file"),
])
def test_bad_include_files(tmp_path, mode, setup, warning):
    p = tmp_path / "list"
    if setup == "dir":
        p.mkdir()
    elif setup != "missing":
        p.write_text("alice\n")
    if p.exists():
        os.chmod(p, mode)
    path = "relative/list" if setup == "relative" else str(p)
    warnings = []
    steps = run({"list": f":include:{path}"}, f"list@{HOST}", warnings=warnings)
    assert view(steps) == [("Failure", f"list@{HOST}", f"list@{HOST}",
                            "5.3.5 mail system configuration error")]
    assert warnings == [warning.format(p=p)]


def test_commands_and_files_run_with_default_or_owner_privs(tmp_path):
    entries = {"pipe": '"|/usr/bin/prog -x"', "file": "/var/log/x"}
    steps = run(entries, f"pipe@{HOST}")
    assert view(steps) == [("Command", f"pipe@{HOST}", f"pipe@{HOST}", "/usr/bin/prog -x")]
    assert steps[0].privs is None                       # root's table: default_privs
    owned = settings(entries)
    owned = AliasSettings(**{**{f: getattr(owned, f) for f in owned.__slots__},
                             "owner_of": lambda t: 65534, "user_of": lambda uid: NOBODY})
    [step] = expand(Target(f"file@{HOST}", f"file@{HOST}", "s@x"), owned, Seen())
    assert (type(step), step.path, step.privs) == (File, "/var/log/x", NOBODY)


def test_include_owned_by_a_user_gives_that_users_rights(tmp_path):
    inc = tmp_path / "pipes"
    inc.write_text('"|/bin/true"\n')
    os.chmod(inc, 0o644)
    if os.geteuid() == 0:
        os.chown(inc, 65534, 65534)
    who = pwd.getpwuid(os.stat(inc).st_uid)
    [step] = run({"inc": f":include:{inc}"}, f"inc@{HOST}",
                 commands=frozenset({"alias", "include"}))
    assert isinstance(step, Command)
    assert step.privs == Privs.of(who)


def test_empty_alias_and_broken_table_defer():
    warnings = []
    assert view(run({"empty": ","}, f"empty@{HOST}", warnings=warnings)) == [
        ("Failure", f"empty@{HOST}", f"empty@{HOST}", "4.3.0 alias database unavailable")]
    assert warnings == ["no recipient in alias lookup result for empty"]

    class Broken:
        spec = "lmdb:/gone"

        def lookup(self, key):
            raise OSError("gone")
    s = AliasSettings(maps=(Broken(),), warn=warnings.append)
    [step] = expand(Target(f"a@{HOST}", f"a@{HOST}", "s@x"), s, Seen())
    assert (step.dsn, step.text) == ("4.3.0", "alias database unavailable")


def test_duplicate_filter_limit_stops_remembering():
    seen = Seen(limit=1)
    assert (seen("a"), seen("b"), seen("a"), seen("b")) == (False, False, True, False)


# -- mailbox_transport, mailbox_command, fallback_transport, luser_relay ------------

ALICE = Privs(1000, 1000, "alice", "/home/alice", "/bin/bash")


def users(name):
    return ALICE if name == "alice" else None


def test_mailbox_transport_and_its_maps_take_the_mailbox_delivery():
    steps = run({"root": "alice"}, f"root@{HOST}", mailbox_transport="lmtp:unix:private/dovecot")
    assert [(type(s).__name__, s.target.address, s.transport) for s in steps] == [
        ("Pass", f"alice@{HOST}", "lmtp:unix:private/dovecot")]
    maps = (DictTable("texthash:t", {"bob": "relay:[mx.example]"}),)
    steps = run({}, f"bob+x@{HOST}", delimiter="+", mailbox_transport="lmtp:x",
                mailbox_transport_maps=maps)
    assert steps[0].transport == "relay:[mx.example]"


def test_mailbox_command_runs_as_the_user_and_unknown_users_are_unknown():
    # Postfix: to=<cloudsdk+ext@pfx.test>, ... (delivered to command: CMD), run as the user
    steps = run({}, f"alice+ext@{HOST}", delimiter="+", mailbox_command="procmail -a $EXTENSION",
                passwd=users)
    assert [(type(s).__name__, s.target.address, s.command, s.privs) for s in steps] == [
        ("Command", f"alice+ext@{HOST}", "procmail -a $EXTENSION", ALICE)]
    maps = (DictTable("texthash:c", {"alice": "/usr/bin/special"}),)
    steps = run({}, f"alice@{HOST}", mailbox_command="procmail", mailbox_command_maps=maps,
                passwd=users)
    assert steps[0].command == "/usr/bin/special"
    steps = run({}, f"ghost@{HOST}", mailbox_command="procmail", passwd=users)
    assert view(steps) == [("Failure", f"ghost@{HOST}", f"ghost@{HOST}",
                            '5.1.1 unknown user: "ghost"')]


def test_unknown_user_goes_to_fallback_transport_or_luser_relay():
    unknown = dict(knows=lambda address: not address.startswith("ghost"))
    steps = run({}, f"ghost@{HOST}", fallback_transport="relay:[old.example]", **unknown)
    assert [(type(s).__name__, s.transport) for s in steps] == [("Pass", "relay:[old.example]")]
    # Postfix with luser_relay = $user+lost@relay.example: ghost@pfx.test is
    # "forwarded as X", whose recipient is ghost+lost@relay.example, orig_to=<ghost@pfx.test>
    steps = run({}, f"ghost@{HOST}", luser_relay="$user+lost@relay.example", **unknown)
    assert view(steps) == [("Forward", "ghost+lost@relay.example", f"ghost@{HOST}",
                            "s@example.org")]
    # a relay address that is local is delivered here
    steps = run({}, f"ghost@{HOST}", luser_relay="postmaster", **unknown)
    assert view(steps) == [("Mailbox", f"postmaster@{HOST}", f"ghost@{HOST}", "")]
    assert view(run({}, f"ghost@{HOST}", **unknown)) == [
        ("Failure", f"ghost@{HOST}", f"ghost@{HOST}", '5.1.1 unknown user: "ghost"')]


def test_local_expand():
    from mailsys.delivery.aliases import local_expand
    values = {"user": "bob", "extension": "x", "domain": "h"}
    assert local_expand("$user@relay", values) == "bob@relay"
    assert local_expand("${user}${extension?+$extension}@$domain", values) == "bob+x@h"
    assert local_expand("a${extension:none}b$$", {}) == "anoneb$"


# -- .forward (forward_path) ------------------------------------------------------------

def forward_settings(home, **kw):
    bob = Privs(65534, 65534, "bob", str(home), "/bin/sh")
    return {"forward_path": ("$home/.forward${recipient_delimiter}${extension}",
                             "$home/.forward"),
            "passwd": lambda user: bob if user == "bob" else None, **kw}


def test_dotforward_like_postfix(tmp_path):
    # Postfix 3.7 with "\cloudsdk, far6@example.net", a |command and "cloudsdk" again:
    # the mailbox once, the command as the user, one forward with orig_to=<cloudsdk@...>.
    (tmp_path / ".forward").write_text('\\bob, far6@example.net\n"|/usr/bin/vacation bob"\nbob\n')
    steps = run({}, f"bob@{HOST}", **forward_settings(tmp_path))
    assert view(steps) == [("Mailbox", f"bob@{HOST}", f"bob@{HOST}", ""),
                           ("Forward", "far6@example.net", f"bob@{HOST}", "s@example.org"),
                           ("Command", f"bob@{HOST}", f"bob@{HOST}", "/usr/bin/vacation bob")]
    assert steps[2].privs.name == "bob"


def test_dotforward_with_extension_and_fallbacks(tmp_path):
    (tmp_path / ".forward").write_text("plain@example.net\n")
    (tmp_path / ".forward+list").write_text("list@example.net\n")
    s = forward_settings(tmp_path, delimiter="+")
    assert view(run({}, f"bob+list@{HOST}", **s))[0][1] == "list@example.net"
    assert view(run({}, f"bob+other@{HOST}", **s))[0][1] == "plain@example.net"
    assert view(run({}, f"bob@{HOST}", **s))[0][1] == "plain@example.net"
    # an alias comes first; a user without a password entry has no .forward
    assert view(run({"bob": "carol"}, f"bob@{HOST}", **s))[0][:2] == ("Mailbox", f"carol@{HOST}")
    assert view(run({}, f"carol@{HOST}", **s)) == [("Mailbox", f"carol@{HOST}", f"carol@{HOST}", "")]


def test_dotforward_values_pass_forward_expansion_filter(tmp_path):
    # Postfix 3.7, forward_path = /tmp/f/${extension}.forward, mail to
    # nobody+x#y@bench.localdomain: x_y.forward is read, not x#y.forward
    # (forwarded to the address in x_y.forward); with "#" added to
    # forward_expansion_filter the other file is read.
    (tmp_path / "x_y.forward").write_text("masked@example.net\n")
    (tmp_path / "x#y.forward").write_text("raw@example.net\n")
    s = forward_settings(tmp_path, delimiter="+", forward_path=("$home/${extension}.forward",))
    assert view(run({}, f"bob+x#y@{HOST}", **s))[0][1] == "masked@example.net"
    s["forward_filter"] = "#xy/_-.abcdefghijklmnopqrstuvwxyz0123456789"
    assert view(run({}, f"bob+x#y@{HOST}", **s))[0][1] == "raw@example.net"


@pytest.mark.parametrize("mode, owner, warning", [
    (0o646, None, "file {p} is world writable"),
    (0o644, 1234, "file {p} has bad owner uid 1234"),
])
def test_unsafe_dotforward_is_ignored_with_a_warning(tmp_path, mode, owner, warning):
    p = tmp_path / ".forward"
    p.write_text("far@example.net\n")
    os.chmod(p, mode)
    if owner is not None:
        if os.geteuid() != 0:
            pytest.skip("needs root to give the file away")
        os.chown(p, owner, owner)
    warnings = []
    steps = run({}, f"bob@{HOST}", warnings=warnings,
                **forward_settings(tmp_path, forward_path=("$home/.forward",)))
    assert view(steps) == [("Mailbox", f"bob@{HOST}", f"bob@{HOST}", "")]
    assert warnings == [warning.format(p=p)]


def test_commands_in_dotforward_follow_allow_mail_to_commands(tmp_path):
    (tmp_path / ".forward").write_text('"|/bin/true"\n/tmp/bob.copy\n')
    steps = run({}, f"bob@{HOST}", commands=frozenset({"alias"}), files=frozenset({"alias"}),
                **forward_settings(tmp_path))
    assert [s.text for s in steps] == ["mail to command is restricted",
                                       "mail to file is restricted"]


def test_require_home_directory_defers_a_user_without_one(tmp_path):
    home = tmp_path / "bob"
    passwd = {"bob": Privs(1000, 1000, "bob", str(home))}.get
    entries = {"root": "bob"}
    assert view(run(entries, f"root@{HOST}", passwd=passwd)) == [
        ("Mailbox", f"bob@{HOST}", f"root@{HOST}", "")]
    assert view(run(entries, f"root@{HOST}", passwd=passwd, require_home=True)) == [
        ("Failure", f"bob@{HOST}", f"root@{HOST}",
         f"4.3.0 cannot access home directory {home}: No such file or directory")]
    home.mkdir()
    assert view(run(entries, f"root@{HOST}", passwd=passwd, require_home=True)) == [
        ("Mailbox", f"bob@{HOST}", f"root@{HOST}", "")]
    # a name without a password entry is not looked at here
    assert view(run({}, f"carol@{HOST}", passwd=passwd, require_home=True)) == [
        ("Mailbox", f"carol@{HOST}", f"carol@{HOST}", "")]
