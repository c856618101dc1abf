"""/file delivery of an alias: written with the alias's rights, as an mbox entry or into a Maildir."""

from __future__ import annotations

import os
import pwd

import pytest

from mailsys.delivery.errors import DeliveryError
from mailsys.delivery.file import deliver_file
from mailsys.delivery.mbox_format import mbox_entry

NOBODY = pwd.getpwnam("nobody")
PRIVS = (NOBODY.pw_uid, NOBODY.pw_gid)
HEADER = b"Return-Path: <a@example.org>\nX-Original-To: file@example.test\nDelivered-To: file@example.test\n"
CONTENT = b"Subject: hi\r\n\r\nFrom here\r\n"


def test_appends_an_mbox_entry_as_the_alias_user(shared_dir):
    path = shared_dir / "file.out"
    entry = mbox_entry(HEADER, CONTENT, "a@example.org")
    for _ in range(2):
        assert deliver_file(str(path), entry, HEADER, CONTENT, privs=PRIVS) == \
            f"delivered to file: {path}"
    assert path.read_bytes() == entry * 2
    assert b"\n>From here\n" in entry
    if os.geteuid() == 0:
        assert (path.stat().st_uid, path.stat().st_gid) == PRIVS
        assert not (shared_dir / "file.out.lock").exists()


def test_maildir_path(shared_dir):
    box = shared_dir / "box"
    text = deliver_file(f"{box}/", b"", HEADER, CONTENT, privs=PRIVS)
    assert text == f"delivered to maildir: {box}/"
    [name] = os.listdir(box / "new")
    assert (box / "new" / name).read_bytes() == HEADER + b"Subject: hi\n\nFrom here\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to write as another user")
def test_a_file_the_user_may_not_create_defers_with_postfix_words(shared_dir):
    # Postfix 3.7 as nobody in a root-owned directory: "warning: unable to
    # create lock file F.lock: Permission denied", then "cannot append message
    # to file F: cannot create file exclusively: Permission denied" (Postfix
    # bounces it with 5.2.0; mailsys defers, as for every mailbox).
    d = shared_dir / "root-only"
    d.mkdir()
    os.chmod(d, 0o755)
    path = d / "file.out"
    warnings = []
    with pytest.raises(DeliveryError) as e:
        deliver_file(str(path), b"x\n", HEADER, b"x\n", privs=PRIVS, warn=warnings.append)
    assert (e.value.dsn, e.value.text) == (
        "4.2.0", f"cannot append message to file {path}: cannot create file exclusively: "
                 f"Permission denied")
    assert warnings == [f"unable to create lock file {path}.lock: Permission denied"]
    assert not path.exists()
