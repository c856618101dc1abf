"""The local agent's work on real directories: Maildir layout, mbox files, headers, loops, limits, failures."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailsys.config.tables import DictTable
from mailsys.delivery import maildir
from mailsys.delivery.local import deliver_request, delivered_to
from mailsys.delivery.mailbox import MailboxSettings, find_mailbox, MailboxError
from mailsys.delivery.mbox_lock import LockPolicy
from mailsys.ipc.proto.deliver import DeliverRecipient, DeliverRequest

sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/unprivileged.py (tests/ is no package)
from unprivileged import give_to_agent, open_directory, unprivileged  # noqa: E402

CONTENT = (b"Received: from client.example.org\r\n\tby mx.example.com\r\n"
           b"From: alice@example.com\r\nSubject: hi\r\n\r\nHello.\r\n.dot\r\n")


def request(*rcpts, cls="virtual", sender="alice@example.com", orig=""):
    now = time.time()
    return DeliverRequest(queue_id="1C0BF20E25F", transport=cls, nexthop="", sender=sender,
                          recipients=tuple(DeliverRecipient(i, r, orig=orig) for i, r in enumerate(rcpts)),
                          arrival_time=now, size=len(CONTENT), queued_at=now, address_class=cls)


@pytest.fixture
def vsettings(tmp_path):
    table = DictTable("texthash:vmaps", {"bob@example.com": "example.com/bob/",
                                         "@catch.example": "catch.example/all/",
                                         "mbox@example.com": "example.com/mbox",
                                         "evil@example.com": "../outside/"})
    return MailboxSettings(virtual_base=str(tmp_path / "vmail"), virtual_maps=(table,),
                           virtual_limit=0, recipient_delimiter="+")


def files(d):
    return sorted(os.listdir(d)) if d.exists() else []


def test_maildir_delivery_layout_and_headers(tmp_path, vsettings):
    (result,) = deliver_request(request("bob@example.com", orig="bobby@example.com"), CONTENT, vsettings)
    assert (result.status, result.dsn, result.reason, result.relay) == (
        "sent", "2.0.0", "delivered to maildir", "virtual")
    box = tmp_path / "vmail" / "example.com" / "bob"
    assert files(box) == ["cur", "new", "tmp"]
    assert files(box / "tmp") == [] and files(box / "cur") == []
    (name,) = files(box / "new")
    assert name.endswith("." + __import__("socket").gethostname())
    data = (box / "new" / name).read_bytes()
    assert data.startswith(b"Return-Path: <alice@example.com>\nX-Original-To: bobby@example.com\n"
                           b"Delivered-To: bob@example.com\nReceived: from client.example.org\n"
                           b"\tby mx.example.com\n")
    assert b"\r" not in data and data.endswith(b"\n\nHello.\n.dot\n")
    assert oct(os.stat(box / "new" / name).st_mode & 0o777) == "0o600"


def test_two_deliveries_get_two_files(tmp_path, vsettings):
    deliver_request(request("bob@example.com", "bob+tag@example.com"), CONTENT, vsettings)
    assert len(files(tmp_path / "vmail" / "example.com" / "bob" / "new")) == 2


def test_null_sender_and_catch_all(tmp_path, vsettings):
    (r,) = deliver_request(request("anyone@catch.example", sender=""), CONTENT, vsettings)
    assert r.status == "sent"
    (name,) = files(tmp_path / "vmail" / "catch.example" / "all" / "new")
    data = (tmp_path / "vmail" / "catch.example" / "all" / "new" / name).read_bytes()
    assert data.startswith(b"Return-Path: <>\nX-Original-To: anyone@catch.example\n")


def test_unknown_virtual_user_bounces(vsettings):
    (r,) = deliver_request(request("nobody@example.com"), CONTENT, vsettings)
    assert (r.status, r.dsn, r.reason) == ("bounced", "5.1.1", 'unknown user: "nobody@example.com"')


def test_loop_is_bounced_and_other_recipients_still_delivered(tmp_path, vsettings):
    looped = b"Delivered-To: Bob@Example.com\r\n" + CONTENT
    loop, other = deliver_request(request("bob@example.com", "x@catch.example"), looped, vsettings)
    assert (loop.status, loop.dsn, loop.reason) == ("bounced", "5.4.6",
                                                    "mail forwarding loop for bob@example.com")
    assert other.status == "sent"
    assert files(tmp_path / "vmail" / "example.com" / "bob" / "new") == []
    # A Delivered-To in the body is not the header's.
    body_only = CONTENT + b"Delivered-To: bob@example.com\r\n"
    assert delivered_to(body_only) == set()


def test_size_limit_bounces(tmp_path, vsettings):
    small = dataclasses.replace(vsettings, virtual_limit=50)
    (r,) = deliver_request(request("bob@example.com"), CONTENT, small)
    assert (r.status, r.dsn) == ("bounced", "5.2.2")
    assert r.reason == "maildir delivery failed: error writing message: File too large"
    assert files(tmp_path / "vmail" / "example.com" / "bob" / "tmp") == []


@pytest.fixture
def open_dir():
    with open_directory("mailsys-local-") as d:
        yield d


def test_unwritable_maildir_defers_and_loses_nothing(open_dir, vsettings):
    s = dataclasses.replace(vsettings, virtual_base=str(open_dir / "vmail"))
    box = open_dir / "vmail" / "example.com" / "bob"
    for sub in maildir.SUBDIRS:
        (box / sub).mkdir(parents=True)
    give_to_agent(open_dir / "vmail", box.parent, box, *(box / sub for sub in maildir.SUBDIRS))
    os.chmod(box / "tmp", 0o500)
    (r,) = unprivileged(lambda: deliver_request(request("bob@example.com"), CONTENT, s))
    assert (r.status, r.dsn) == ("deferred", "4.2.0")
    assert r.reason.startswith(f"create maildir file {box / 'tmp'}/")
    assert r.reason.endswith(": Permission denied")
    assert files(box / "new") == [] and files(box / "tmp") == []
    # Once the directory is fixed the retry delivers.
    os.chmod(box / "tmp", 0o700)
    (r,) = unprivileged(lambda: deliver_request(request("bob@example.com"), CONTENT, s))
    assert r.status == "sent" and len(files(box / "new")) == 1


def test_uncreatable_maildir_defers(open_dir, vsettings):
    s = dataclasses.replace(vsettings, virtual_base=str(open_dir / "vmail"))
    (open_dir / "vmail").mkdir()
    give_to_agent(open_dir / "vmail")
    os.chmod(open_dir / "vmail", 0o500)
    (r,) = unprivileged(lambda: deliver_request(request("bob@example.com"), CONTENT, s))
    assert (r.status, r.dsn) == ("deferred", "4.2.0")
    assert r.reason.endswith("Permission denied")
    assert not (open_dir / "vmail" / "example.com").exists()


def test_configuration_errors_defer(tmp_path, vsettings):
    (evil,) = deliver_request(request("evil@example.com"), CONTENT, vsettings)
    assert (evil.status, evil.dsn) == ("deferred", "4.3.5")
    # An mbox file is never given directories: Postfix's virtual(8) defers, and so does mailsys.
    (mbox,) = deliver_request(request("mbox@example.com"), CONTENT, vsettings)
    path = tmp_path / "vmail" / "example.com" / "mbox"
    assert (mbox.status, mbox.dsn, mbox.reason) == (
        "deferred", "4.2.0", f"delivery failed to mailbox {path}: unable to create lock file "
                             f"{path}.lock: No such file or directory")


def test_local_users_in_the_spool_directory(tmp_path):
    users = DictTable("texthash:users", {"bob": "ok"})
    s = MailboxSettings(local_maps=(users,), spool=tmp_path / "spool", spool_maildir=True,
                        recipient_delimiter="+")
    ok, unknown = deliver_request(request("Bob+list@mx.example.com", "eve@mx.example.com", cls="local"),
                                  CONTENT, s)
    assert (ok.status, ok.relay) == ("sent", "local")
    assert len(files(tmp_path / "spool" / "bob" / "new")) == 1
    assert (unknown.status, unknown.dsn, unknown.reason) == ("bounced", "5.1.1", 'unknown user: "eve"')


def test_local_home_mailbox(tmp_path):
    homes = {"bob": str(tmp_path / "home" / "bob")}
    s = MailboxSettings(home_mailbox="Maildir/", home_of=homes.get)
    box = find_mailbox("bob@mx.example.com", "local", s)
    assert box.path == tmp_path / "home" / "bob" / "Maildir"
    with pytest.raises(MailboxError) as e:
        find_mailbox("carol@mx.example.com", "local", s)
    assert e.value.dsn == "5.1.1"


def test_unique_names_differ():
    names = {maildir.unique_name(now=1795738934.5, hostname="h/x:y") for _ in range(100)}
    assert len(names) == 100
    assert all(n.startswith("1795738934.M500000P") and n.endswith(".h\\057x\\072y") for n in names)


def test_a_file_in_the_way_defers_and_loses_nothing(tmp_path, vsettings):
    # Runs as any user, root included: a file where a directory must be.
    box = tmp_path / "vmail" / "example.com" / "bob"
    box.mkdir(parents=True)
    (box / "new").write_text("not a directory")
    (r,) = deliver_request(request("bob@example.com"), CONTENT, vsettings)
    assert (r.status, r.dsn) == ("deferred", "4.2.0")
    assert r.reason.startswith(f"create maildir file {box / 'new'}: ")
    assert files(box / "tmp") == []
    (box / "new").unlink()
    (r,) = deliver_request(request("bob@example.com"), CONTENT, vsettings)
    assert r.status == "sent" and len(files(box / "new")) == 1


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs, filled up, or skip where mounting is not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_disk_defers_and_loses_nothing(small_disk, vsettings):
    s = dataclasses.replace(vsettings, virtual_base=str(small_disk))
    box = small_disk / "example.com" / "bob"
    for sub in maildir.SUBDIRS:
        (box / sub).mkdir(parents=True)
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"x" * 1024):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    (r,) = deliver_request(request("bob@example.com"), CONTENT * 200, s)
    assert (r.status, r.dsn) == ("deferred", "4.3.0")
    assert r.reason.endswith("No space left on device")
    assert files(box / "new") == [] and files(box / "tmp") == []
    filler.unlink()
    (r,) = deliver_request(request("bob@example.com"), CONTENT * 200, s)
    assert r.status == "sent" and len(files(box / "new")) == 1


def test_both_size_limits_come_from_main_cf(tmp_path):
    from mailsys.config import load
    (tmp_path / "etc").mkdir()
    (tmp_path / "users").write_text("bob ok\n")
    (tmp_path / "etc" / "main.cf").write_text(
        f"virtual_mailbox_limit = 100\nmailbox_size_limit = 400\n"
        f"mail_spool_directory = {tmp_path}/spool/\nlocal_recipient_maps = texthash:{tmp_path}/users\n")
    s = MailboxSettings.from_config(load(tmp_path / "etc"))
    assert (s.virtual_limit, s.local_limit) == (100, 400)
    (r,) = deliver_request(request("bob@mx.example.com", cls="local"), CONTENT * 4, s)
    assert (r.status, r.dsn) == ("bounced", "5.2.2")
    assert files(tmp_path / "spool" / "bob" / "new") == []
    (r,) = deliver_request(request("bob@mx.example.com", cls="local"), CONTENT, s)
    assert r.status == "sent"

# --- mbox files: where they are, how they are written ------------------------------------

MBOX_CONTENT = (b"Received: from client.example.org\r\n\tby mx.example.com\r\n"
                b"From: alice@example.com\r\nSubject: hi\r\n\r\nFrom here on\r\nHello.\r\n")
FAST = LockPolicy(attempts=2, delay=0.05)
FROM_LINE = re.compile(rb"^From (\S+)  \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n")


@pytest.fixture
def local(tmp_path):
    return MailboxSettings(spool=tmp_path / "spool", recipient_delimiter="+", local_locks=FAST,
                           home_of={"bob": str(tmp_path / "home" / "bob")}.get,
                           owner_of=lambda user: None)


def test_where_local_mail_goes(tmp_path, local):
    spool, home = tmp_path / "spool", tmp_path / "home" / "bob"
    cases = [
        (dict(), spool / "bob", True),                                  # Postfix's default
        (dict(spool_maildir=True), spool / "bob", False),               # mail_spool_directory = /var/mail/
        (dict(home_mailbox="Mailbox"), home / "Mailbox", True),
        (dict(home_mailbox="Maildir/"), home / "Maildir", False),
        (dict(home_mailbox="Maildir/", spool_maildir=True), home / "Maildir", False),
    ]
    for change, path, is_mbox in cases:
        box = find_mailbox("Bob+list@mx.example.com", "local", dataclasses.replace(local, **change))
        assert (box.path, box.mbox) == (path, is_mbox), change
        if is_mbox:
            assert box.user == "bob" and box.locks == FAST


@pytest.fixture
def comsat(monkeypatch):
    """A UDP socket standing in for comsat: biff.notify() sends to it."""
    import socket
    from mailsys.delivery import biff
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    monkeypatch.setattr(biff, "_address", sock.getsockname())
    yield sock
    sock.close()


def test_a_local_mbox_delivery_tells_comsat_user_at_offset(tmp_path, local, comsat):
    # Postfix 3.7.11 delivering to nobody's 1600-byte mailbox sent
    # b"nobody@1600\x00" to 127.0.0.1:512 (biff = yes, the default).
    (tmp_path / "spool").mkdir()
    for _ in range(2):
        deliver_request(request("bob+x@mx.example.com", cls="local"), MBOX_CONTENT, local)
    size = (tmp_path / "spool" / "bob").stat().st_size
    assert [comsat.recv(100) for _ in range(2)] == [b"bob@0\0", f"bob@{size // 2}".encode() + b"\0"]
    comsat.settimeout(0.2)
    deliver_request(request("bob@mx.example.com", cls="local"), MBOX_CONTENT,
                    dataclasses.replace(local, biff=False))
    deliver_request(request("bob@mx.example.com", cls="local"), MBOX_CONTENT,
                    dataclasses.replace(local, spool_maildir=True))
    with pytest.raises(OSError):                    # biff = no, and a Maildir: no datagram
        comsat.recv(100)


def test_the_mbox_owner_is_the_users_passwd_entry(tmp_path):
    s = MailboxSettings(spool=tmp_path)
    assert find_mailbox("nobody@mx.example.com", "local", s).owner == (65534, 65534)
    assert find_mailbox("no-such-user-here@mx.example.com", "local", s).owner is None


def test_local_mbox_delivery_appends_in_order_with_postfix_headers(tmp_path, local):
    (tmp_path / "spool").mkdir()
    first, = deliver_request(request("bob+list@mx.example.com", cls="local",
                                     orig="Bob+list@mx.example.com"), MBOX_CONTENT, local)
    second, = deliver_request(request("bob@mx.example.com", cls="local", sender=""), MBOX_CONTENT, local)
    for r in (first, second):
        assert (r.status, r.dsn, r.reason, r.relay) == ("sent", "2.0.0", "delivered to mailbox", "local")
    data = (tmp_path / "spool" / "bob").read_bytes()
    starts = [m.start() for m in re.finditer(rb"(?m)^From ", data)]
    assert len(starts) == 2
    one, two = data[:starts[1]], data[starts[1]:]
    assert FROM_LINE.match(one).group(1) == b"alice@example.com"
    assert FROM_LINE.match(two).group(1) == b"MAILER-DAEMON"
    assert one[one.index(b"\n") + 1:] == (
        b"Return-Path: <alice@example.com>\nX-Original-To: Bob+list@mx.example.com\n"
        b"Delivered-To: bob+list@mx.example.com\nReceived: from client.example.org\n"
        b"\tby mx.example.com\nFrom: alice@example.com\nSubject: hi\n\n>From here on\nHello.\n\n")
    assert two[two.index(b"\n") + 1:].startswith(b"Return-Path: <>\nX-Original-To: bob@mx.example.com\n")
    assert oct((tmp_path / "spool" / "bob").stat().st_mode & 0o777) == "0o600"


def test_local_mbox_failures_read_as_postfix_local(tmp_path, local):
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "bob.lock").write_bytes(b"")
    r, = deliver_request(request("bob@mx.example.com", cls="local"), MBOX_CONTENT, local)
    box = tmp_path / "spool" / "bob"
    assert (r.status, r.dsn, r.reason) == (
        "deferred", "4.2.0", f"cannot update mailbox {box} for user bob. "
                             f"unable to create lock file {box}.lock: File exists")
    (tmp_path / "spool" / "bob.lock").unlink()
    full = dataclasses.replace(local, local_limit=100)
    r, = deliver_request(request("bob@mx.example.com", cls="local"), MBOX_CONTENT, full)
    assert (r.status, r.dsn, r.reason) == (
        "bounced", "5.2.2", f"cannot update mailbox {box} for user bob. "
                            f"error writing message: File too large")
    assert box.read_bytes() == b""


def test_strict_mailbox_ownership_defers_a_mailbox_of_someone_else(tmp_path, local):
    # Postfix 3.7, /tmp/spool/nobody owned by root (mode 666), mail to nobody:
    #   warning: specify "strict_mailbox_ownership = no" to ignore mailbox ownership mismatch
    #   ... dsn=4.2.0, status=deferred (cannot update mailbox /tmp/spool/nobody for user
    #   nobody. destination /tmp/spool/nobody is not owned by recipient)
    # and with strict_mailbox_ownership = no: status=sent (delivered to mailbox).
    if os.geteuid() != 0:
        pytest.skip("needs root to give the mailbox away")
    (tmp_path / "spool").mkdir()
    box = tmp_path / "spool" / "bob"
    box.write_bytes(b"")
    os.chown(box, 65534, 65534)             # bob's own uid is 4242
    warnings: list[str] = []
    s = dataclasses.replace(local, owner_of=lambda user: (4242, 4242), warn=warnings.append)
    r, = deliver_request(request("bob@mx.example.com", cls="local"), MBOX_CONTENT, s)
    assert (r.status, r.dsn, r.reason) == (
        "deferred", "4.2.0", f"cannot update mailbox {box} for user bob. "
                             f"destination {box} is not owned by recipient")
    assert warnings == ['specify "strict_mailbox_ownership = no" to ignore mailbox '
                        'ownership mismatch']
    assert box.read_bytes() == b""
    os.chown(box, 4242, 4242)               # the recipient's own file is fine
    r, = deliver_request(request("bob@mx.example.com", cls="local"), MBOX_CONTENT, s)
    assert r.status == "sent"
    os.chown(box, 65534, 65534)
    r, = deliver_request(request("bob@mx.example.com", cls="local"), MBOX_CONTENT,
                         dataclasses.replace(s, strict_owner=False))
    assert (r.status, r.reason) == ("sent", "delivered to mailbox")


def test_mailbox_owners():
    from mailsys.delivery.local import mailbox_owners
    from mailsys.delivery.mailbox import Mailbox
    euid = os.geteuid()
    known, unknown = Mailbox(Path("/x"), owner=(4242, 4242)), Mailbox(Path("/x"))
    if euid == 0:
        assert (mailbox_owners(known), mailbox_owners(unknown)) == ({4242}, {0})
    else:           # unprivileged, every mailbox is written as mailsys itself
        assert (mailbox_owners(known), mailbox_owners(unknown)) == ({euid, 4242}, {euid})


@pytest.fixture
def virtual(tmp_path):
    maps = DictTable("texthash:vmaps", {"bob@example.com": "example.com/bob",
                                        "ann@example.com": "example.com/ann/"})
    (tmp_path / "vmail" / "example.com").mkdir(parents=True)
    return MailboxSettings(virtual_base=str(tmp_path / "vmail"), virtual_maps=(maps,),
                           virtual_locks=FAST, recipient_delimiter="+")


def test_virtual_mbox_and_maildir_side_by_side(tmp_path, virtual):
    bob, ann = deliver_request(request("bob+x@example.com", "ann@example.com", cls="virtual"),
                               MBOX_CONTENT, virtual)
    assert (bob.status, bob.reason, bob.relay) == ("sent", "delivered to mailbox", "virtual")
    assert (ann.status, ann.reason) == ("sent", "delivered to maildir")
    data = (tmp_path / "vmail" / "example.com" / "bob").read_bytes()
    assert FROM_LINE.match(data) and data.endswith(b"\nHello.\n\n")
    assert b"\nDelivered-To: bob+x@example.com\n" in data
    assert len(os.listdir(tmp_path / "vmail" / "example.com" / "ann" / "new")) == 1
    over = dataclasses.replace(virtual, virtual_limit=len(data) + 10)
    r, = deliver_request(request("bob@example.com", cls="virtual"), MBOX_CONTENT, over)
    path = tmp_path / "vmail" / "example.com" / "bob"
    assert (r.status, r.dsn, r.reason) == (
        "bounced", "5.2.2", f"delivery failed to mailbox {path}: error writing message: File too large")


def test_virtual_owner_maps(virtual):
    uids = DictTable("texthash:uids", {"bob@example.com": "5000", "@low.example": "10"})
    gids = DictTable("static:5000", {"bob@example.com": "5000", "@low.example": "5000"})
    s = dataclasses.replace(virtual, virtual_uid_maps=(uids,), virtual_gid_maps=(gids,))
    assert find_mailbox("bob+x@example.com", "virtual", s).owner == (5000, 5000)
    assert find_mailbox("bob@example.com", "virtual", virtual).owner is None
    missing = dataclasses.replace(s, virtual_maps=(DictTable("t", {"@low.example": "low/x",
                                                                   "eve@example.com": "e"}),))
    for address, text in (("x@low.example", "recipient x@low.example: bad uid 10 in virtual_uid_maps"),
                          ("eve@example.com", "recipient eve@example.com: not found in virtual_uid_maps")):
        with pytest.raises(MailboxError) as e:
            find_mailbox(address, "virtual", missing)
        assert (e.value.dsn, e.value.text) == ("4.3.5", text)


def test_the_lock_parameters_come_from_main_cf(tmp_path):
    from mailsys.config import load
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "main.cf").write_text(
        "mailbox_delivery_lock = flock, dotlock\nvirtual_mailbox_lock = fcntl\n"
        "deliver_lock_attempts = 3\ndeliver_lock_delay = 2s\nstale_lock_time = 60s\n"
        "mail_spool_directory = /var/mail/\n")
    s = MailboxSettings.from_config(load(tmp_path / "etc"))
    assert s.local_locks == LockPolicy(styles=("flock", "dotlock"), attempts=3, delay=2, stale=60)
    assert s.virtual_locks == LockPolicy(styles=("fcntl",), attempts=3, delay=2, stale=60)
    assert s.spool_maildir and s.spool == Path("/var/mail")
    (tmp_path / "etc" / "main.cf").write_text("")
    d = MailboxSettings.from_config(load(tmp_path / "etc"))
    assert d.local_locks == d.virtual_locks == LockPolicy(("fcntl", "dotlock"), 20, 1, 500)
    assert not d.spool_maildir and d.spool == Path("/var/mail")
    (tmp_path / "etc" / "main.cf").write_text("mailbox_delivery_lock = fcntl, lockf\n")
    with pytest.raises(Exception) as e:
        MailboxSettings.from_config(load(tmp_path / "etc"))
    assert "lockf" in str(e.value)


def test_the_shipped_main_cf_keeps_local_maildirs():
    # README: "swaks --to root@localhost  # delivered to ./var/mail/root/new/"
    from mailsys.config import load
    etc = Path(__file__).parents[2] / "etc"
    box = find_mailbox("root@localhost", "local", MailboxSettings.from_config(load(etc)))
    assert (box.path, box.mbox) == (etc.absolute().parent / "var" / "mail" / "root", False)


def test_prepend_delivered_header_file_covers_mailboxes(tmp_path, local):
    # Postfix 3.7.11, prepend_delivered_header = command: the mailbox copy
    # had X-Original-To and no Delivered-To.
    (tmp_path / "spool").mkdir()
    quiet = dataclasses.replace(local, delivered_header=frozenset({"command", "forward"}))
    r, = deliver_request(request("bob@mx.example.com", cls="local"), MBOX_CONTENT, quiet)
    assert r.status == "sent"
    data = (tmp_path / "spool" / "bob").read_bytes()
    assert b"\nX-Original-To: bob@mx.example.com\nReceived:" in data
    assert b"Delivered-To" not in data


def test_virtual_always_prepends_delivered_to(tmp_path, virtual):
    quiet = dataclasses.replace(virtual, delivered_header=frozenset())
    r, = deliver_request(request("ann@example.com", cls="virtual"), MBOX_CONTENT, quiet)
    box = tmp_path / "vmail" / "example.com" / "ann" / "new"
    [name] = os.listdir(box)
    assert b"\nDelivered-To: ann@example.com\n" in (box / name).read_bytes()


def test_enable_original_recipient_no_drops_x_original_to(tmp_path, local):
    # Postfix 3.7.11, enable_original_recipient = no, root: nobody: nobody's
    # mbox had "Delivered-To: root@bench.localdomain" and no X-Original-To
    # (local still logged orig_to=<root@bench.localdomain>).
    (tmp_path / "spool").mkdir()
    off = dataclasses.replace(local, original_recipient=False)
    r, = deliver_request(request("bob@mx.example.com", cls="local", orig="root@mx.example.com"),
                         MBOX_CONTENT, off)
    assert r.status == "sent"
    data = (tmp_path / "spool" / "bob").read_bytes()
    assert b"\nReturn-Path: <alice@example.com>\nDelivered-To: bob@mx.example.com\n" in data
    assert b"X-Original-To" not in data


def test_ownership_and_forward_filter_come_from_main_cf(tmp_path):
    from mailsys.config import load
    from mailsys.delivery.aliases import AliasSettings
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "main.cf").write_text("alias_maps =\n")
    cfg = load(tmp_path / "etc")
    assert MailboxSettings.from_config(cfg).strict_owner is True
    assert AliasSettings.from_config(cfg, lambda a: False, print).forward_filter == (
        "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    (tmp_path / "etc" / "main.cf").write_text(
        "alias_maps =\nstrict_mailbox_ownership = no\nforward_expansion_filter = abc\n")
    cfg = load(tmp_path / "etc")
    assert MailboxSettings.from_config(cfg).strict_owner is False
    assert AliasSettings.from_config(cfg, lambda a: False, print).forward_filter == "abc"
