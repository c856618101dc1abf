"""Socket paths and trigger bytes."""

from pathlib import Path

import pytest

from mailsys.ipc import names


def test_paths_follow_the_private_and_public_directories():
    q = Path("/var/spool/mailsys")
    assert names.private_path(q, names.ANVIL) == q / "private" / "anvil"
    assert names.public_path(q, names.CLEANUP) == q / "public" / "cleanup"
    assert names.private_path(str(q), "smtp") == q / "private" / "smtp"


@pytest.mark.parametrize("bad", ["", "..", ".", "a/b", "/etc/passwd", "x\0"])
def test_a_service_name_is_one_path_component(bad):
    with pytest.raises(ValueError, match="bad service name"):
        names.private_path(Path("/q"), bad)


def test_trigger_bytes_are_postfix_mail_proto_h():
    assert (names.TRIGGER_REQ_WAKEUP, names.QMGR_REQ_SCAN_INCOMING, names.QMGR_REQ_SCAN_DEFERRED,
            names.QMGR_REQ_FLUSH_DEAD, names.QMGR_REQ_SCAN_ALL) == (b"W", b"I", b"D", b"F", b"A")
