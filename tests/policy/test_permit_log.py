"""smtpd_log_access_permit_actions: which permit actions a list names."""

import sys
from pathlib import Path

from mailsys.policy.permit_log import PermitLog, action_class, permit_text
from mailsys.policy.replies import CLIENT, HELO, RECIPIENT

sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/memtable.py (tests/ is no package)
from memtable import Table  # noqa: E402


def test_names_exclusions_tables_and_files_first_match_decides(tmp_path):
    names = tmp_path / "names"
    names.write_text("# logged\npermit_auth_destination, PERMIT_MX_BACKUP\n")
    log = PermitLog.compile(["!permit_mynetworks", f"/{names}".replace("//", "/"), "static:all"],
                            lambda spec: Table({"permit": "x", "ok": "x"}))
    assert not log.wants("permit_mynetworks")
    assert log.wants("permit_mx_backup") and log.wants("Permit")
    assert not log.wants("permit_sasl_authenticated")      # the table knows only its keys
    assert PermitLog.compile([], lambda spec: None) is None


def test_what_each_action_is_about():
    assert action_class("permit_mynetworks", HELO) == CLIENT
    assert action_class("PERMIT_AUTH_DESTINATION", HELO) == RECIPIENT
    assert action_class("permit", HELO) == HELO
    assert permit_text("OK", CLIENT, "c[1.2.3.4]", "hash:/t") == \
        "action=OK for Client host=c[1.2.3.4] from hash:/t"
    assert permit_text("permit", HELO, "h") == "action=permit for Helo command=h "
