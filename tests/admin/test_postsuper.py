"""postsuper: each operation, ALL, "-", queue restriction, unknown IDs, bad
queue names, and Postfix's per-message lines and summaries."""

from __future__ import annotations

import os
import time

import pytest

from mailsys.message.envelope import RcptState
from mailsys.queue import Queue, QueueStore

from admin_fixtures import entries, log_lines, run_process, run_tool

NAMES = ("active", "incoming", "bounce", "long", "held")


def queues(setup, ids) -> dict[str, Queue | None]:
    found = entries(setup.queue_dir)
    return {n: found[ids[n]][1] if ids[n] in found else None for n in NAMES}


def test_delete_one(capsys, setup, queue):
    status, out, err = run_tool(capsys, setup, "postsuper", "-d", queue["long"])
    assert (status, out) == (0, "")
    assert err == f"postsuper: {queue['long']}: removed\npostsuper: Deleted: 1 message\n"
    assert queues(setup, queue)["long"] is None
    assert len(entries(setup.queue_dir)) == 4


def test_results_go_to_the_mail_log(capsys, setup, queue):
    run_tool(capsys, setup, "postsuper", "-d", queue["long"], "-d", "4jbJDG3zVyz09x4")
    lines = (setup.config_dir.parent / "log" / "mail.log").read_text().splitlines()
    tag = f"mailsys/postsuper[{os.getpid()}]: "
    assert [line.split(tag, 1)[1] for line in lines] == [
        f"{queue['long']}: removed",
        "Deleted: 1 message"]


def test_delete_all_in_one_queue(capsys, setup, queue):
    status, _, err = run_tool(capsys, setup, "postsuper", "-d", "ALL", "deferred")
    assert status == 0
    # ALL is a mass operation: Postfix counts, printing and logging only the sum.
    assert err == "postsuper: Deleted: 2 messages\n"
    log = (setup.config_dir.parent / "log" / "mail.log").read_text().splitlines()
    assert [line.split("]: ", 1)[1] for line in log if "/postsuper[" in line] == [
        "Deleted: 2 messages"]
    assert queues(setup, queue) == {"active": Queue.ACTIVE, "incoming": Queue.INCOMING,
                                    "bounce": None, "long": None, "held": Queue.HOLD}


def test_delete_all(capsys, setup, queue):
    status, _, err = run_tool(capsys, setup, "postsuper", "-d", "ALL")
    assert status == 0 and err.endswith("postsuper: Deleted: 5 messages\n")
    assert entries(setup.queue_dir) == {}
    status, _, err = run_tool(capsys, setup, "mailq")
    assert err == ""


def test_all_must_be_upper_case(capsys, setup, queue):
    status, _, err = run_tool(capsys, setup, "postsuper", "-d", "all")
    assert status == 0
    assert err.endswith("postsuper: Deleted: 0 messages\n")
    assert len(entries(setup.queue_dir)) == 5


def test_unknown_id_is_passed_over_without_a_word(capsys, setup, queue):
    # Postfix's delete_one() counts what it found and says nothing else
    # (src/postsuper/postsuper.c; seen live with Postfix 3.7.11). A short
    # Postfix-style ID is well formed, only never found in mailsys.
    status, out, err = run_tool(capsys, setup, "postsuper", "-d", "4jbJDG3zVyz09x4",
                                "-d", "ABCDEF123", "-d", queue["held"])
    assert status == 0
    assert err == (f"postsuper: {queue['held']}: removed\n"
                   "postsuper: Deleted: 1 message\n")
    status, out, err = run_tool(capsys, setup, "postsuper", "-H", queue["long"],
                                "-h", queue["held"])
    assert err == "postsuper: Placed on hold: 0 messages\npostsuper: Released from hold: 0 messages\n"


def test_a_malformed_id_is_an_invalid_queue_id(capsys, setup, queue):
    status, _, err = run_tool(capsys, setup, "postsuper", "-h", "bad/id")
    assert status == 0
    assert err == ("postsuper: warning: invalid mail queue id: bad/id\n"
                   "postsuper: Placed on hold: 0 messages\n")


def test_queue_restriction_protects_other_queues(capsys, setup, queue):
    status, _, err = run_tool(capsys, setup, "postsuper", "-d", queue["held"], "deferred")
    assert status == 0 and err.endswith("postsuper: Deleted: 0 messages\n")
    assert queues(setup, queue)["held"] is Queue.HOLD


def test_bad_queue_name(capsys, setup, queue):
    status, out, err = run_tool(capsys, setup, "postsuper", "-d", "ALL", "bogusqueue")
    assert (status, out, err) == (1, "", "postsuper: fatal: invalid directory name: bogusqueue\n")
    assert len(entries(setup.queue_dir)) == 5


def test_ids_from_stdin(capsys, setup, queue, monkeypatch):
    # Lines are taken as they are (Postfix's operate_stream() with
    # vstring_get_nonl()): an empty or indented line is an invalid ID,
    # reported where it stands (seen live with Postfix 3.7.11).
    text = (f"{queue['active']}\n\n{queue['incoming']}\n 4jbJDG3zVyz09x4\n"
            f"4jbJDG3zVyz09x4\n{queue['long']}")
    status, _, err = run_tool(capsys, setup, "postsuper", "-h", "-", stdin=text,
                              monkeypatch=monkeypatch)
    assert status == 0
    assert err == (f"postsuper: {queue['active']}: placed on hold\n"
                   "postsuper: warning: invalid mail queue id: \n"
                   f"postsuper: {queue['incoming']}: placed on hold\n"
                   "postsuper: warning: invalid mail queue id:  4jbJDG3zVyz09x4\n"
                   f"postsuper: {queue['long']}: placed on hold\n"
                   "postsuper: Placed on hold: 3 messages\n")
    q = queues(setup, queue)
    assert q["active"] is q["incoming"] is Queue.HOLD


def test_expire_all_prints_only_the_sum(capsys, setup, queue):
    status, _, err = run_tool(capsys, setup, "postsuper", "-e", "ALL", "hold")
    assert (status, err) == (0, "postsuper: Force-expired: 1 message\n")
    status, _, err = run_tool(capsys, setup, "postsuper", "-e", queue["long"])
    assert (status, err) == (0, f"postsuper: {queue['long']}: expired\n"
                                "postsuper: Force-expired: 1 message\n")


def test_hold_all_and_release_all(capsys, setup, queue):
    status, _, err = run_tool(capsys, setup, "postsuper", "-h", "ALL")
    assert (status, err) == (0, "postsuper: Placed on hold: 4 messages\n")
    assert set(queues(setup, queue).values()) == {Queue.HOLD}
    before = time.time()
    status, _, err = run_tool(capsys, setup, "postsuper", "-H", "ALL")
    assert (status, err) == (0, "postsuper: Released from hold: 5 messages\n")
    found = entries(setup.queue_dir)
    assert {q for _, q in found.values()} == {Queue.DEFERRED}
    assert all(before <= env.next_attempt <= time.time() for env, _ in found.values())


def test_release_only_takes_held(capsys, setup, queue):
    status, _, err = run_tool(capsys, setup, "postsuper", "-H", queue["long"])
    assert status == 0
    assert err.endswith("postsuper: Released from hold: 0 messages\n")


def test_requeue_while_down_resets_deferred_recipients_in_place(capsys, setup, queue):
    # No cleanup to take the message: requeued in place, same queue ID
    # (mailsys.cli.postsuper_requeue; with the mail system up it gets a new one).
    # What a deferral recorded goes, the address it went to as well (Postfix
    # removes the defer log).
    with QueueStore.open(setup.queue_dir) as store:
        store.update(queue["bounce"], rcpt={1: dict(deferred_as="a@[192.0.2.1]")})
    status, _, err = run_tool(capsys, setup, "postsuper", "-r", queue["bounce"],
                              "-r", queue["held"])
    assert status == 0
    assert err == ("postsuper: warning: mail system is down: requeued in place, "
                   "under the same queue ID\n"
                   f"postsuper: {queue['bounce']}: requeued\n"
                   f"postsuper: {queue['held']}: requeued\n"
                   "postsuper: Requeued: 2 messages\n")
    found = entries(setup.queue_dir)
    env, q = found[queue["bounce"]]
    assert q is Queue.INCOMING
    # The bounced recipient stays done; the deferred ones are pending again.
    assert [r.state for r in env.recipients] == [RcptState.BOUNCED] + [RcptState.PENDING] * 5
    assert all(r.reason == "" and r.deferred_as == "" for r in env.recipients[1:])
    env, q = found[queue["held"]]
    assert q is Queue.INCOMING and not env.forced_expire


def test_expire_and_force_expire(capsys, setup, queue):
    status, _, err = run_tool(capsys, setup, "postsuper", "-e", queue["long"],
                              "-e", queue["active"])
    assert status == 0
    assert err == (f"postsuper: {queue['long']}: expired\n"
                   f"postsuper: {queue['active']}: expired\n"
                   "postsuper: Force-expired: 2 messages\n")
    found = entries(setup.queue_dir)
    assert found[queue["long"]] [0].forced_expire and found[queue["active"]][0].forced_expire
    assert found[queue["long"]][1] is Queue.DEFERRED
    # mailq shows "#" after the status character.
    _, out, _ = run_tool(capsys, setup, "mailq")
    assert f"\n{queue['active']}*# " in out and f"\n{queue['long']}# " in out


def test_expire_leaves_held_on_hold_but_f_releases(capsys, setup, queue):
    with_e = run_tool(capsys, setup, "postsuper", "-e", queue["held"])
    assert with_e[0] == 0 and queues(setup, queue)["held"] is Queue.HOLD
    status, _, err = run_tool(capsys, setup, "postsuper", "-f", queue["held"])
    assert status == 0
    assert err == (f"postsuper: {queue['held']}: expired\n"
                   f"postsuper: {queue['held']}: released from hold\n"
                   "postsuper: Force-expired: 1 message\n"
                   "postsuper: Released from hold: 1 message\n")
    env, q = entries(setup.queue_dir)[queue["held"]]
    assert q is Queue.DEFERRED and env.forced_expire


def test_several_operations_in_one_call(capsys, setup, queue):
    status, _, err = run_tool(capsys, setup, "postsuper", "-h", queue["long"],
                              "-d", queue["active"])
    assert status == 0
    assert err == (f"postsuper: {queue['long']}: placed on hold\n"
                   f"postsuper: {queue['active']}: removed\n"
                   "postsuper: Deleted: 1 message\n"
                   "postsuper: Placed on hold: 1 message\n")


def test_operations_run_in_command_line_order(capsys, setup, queue, monkeypatch):
    # Postfix 3.5 and later run them as given (src/postsuper/postsuper.c,
    # super()): releasing a deferred entry does nothing, holding it then
    # holds it; the second "-" finds standard input at its end.
    status, _, err = run_tool(capsys, setup, "postsuper", "-H", queue["long"],
                              "-h", queue["long"])
    assert (status, err) == (0, f"postsuper: {queue['long']}: placed on hold\n"
                                "postsuper: Placed on hold: 1 message\n"
                                "postsuper: Released from hold: 0 messages\n")
    assert queues(setup, queue)["long"] is Queue.HOLD
    status, _, err = run_tool(capsys, setup, "postsuper", "-h", "-", "-d", "-",
                              stdin=queue["active"] + "\n", monkeypatch=monkeypatch)
    assert (status, err) == (0, f"postsuper: {queue['active']}: placed on hold\n"
                                "postsuper: Deleted: 0 messages\n"
                                "postsuper: Placed on hold: 1 message\n")
    assert queues(setup, queue)["active"] is Queue.HOLD


def test_structure_check_is_quiet(capsys, setup, queue):
    assert run_tool(capsys, setup, "postsuper") == (0, "", "")
    assert run_tool(capsys, setup, "postsuper", "-s", "-p") == (0, "", "")


def test_purge_removes_old_maildrop_temporary_files(capsys, setup, queue):
    # Postfix's postsuper -p (and postsuper alone): temporary files older than
    # a day go, quietly; -v names each one ("removed file maildrop/NAME").
    folder = setup.queue_dir / "maildrop"
    folder.mkdir()
    day_old = time.time() - 86400 - 60
    names = [f".4jbJDG3zVyz09x{n}.tmp" for n in range(3)]
    for name in names:
        (folder / name).write_bytes(b"half")
        os.utime(folder / name, (day_old, day_old))
    (folder / "fresh").write_bytes(b"")
    os.utime(folder / names[2], None)                   # being written now
    assert run_tool(capsys, setup, "postsuper", "-p", "-v") == (
        0, "", f"postsuper: removed file maildrop/{names[0]}\n"
               f"postsuper: removed file maildrop/{names[1]}\n")
    assert sorted(os.listdir(folder)) == sorted([names[2], "fresh"])
    os.utime(folder / names[2], (day_old, day_old))
    assert run_tool(capsys, setup, "postsuper") == (0, "", "")
    assert os.listdir(folder) == ["fresh"]


def test_bad_option(capsys, setup, queue):
    # Postfix 3.7.11's two lines, glibc getopt's first (its usage text lacks a space).
    status, out, err = run_tool(capsys, setup, "postsuper", "-x")
    assert status == 1 and err == (
        "postsuper: invalid option -- 'x'\n"
        "postsuper: fatal: usage: postsuper [-c config_dir] [-d queue_id (delete)] "
        "[-e queue_id (expire)] [-f queue_id (expire and/or un-hold)] [-h queue_id (hold)] "
        "[-H queue_id (un-hold)] [-p (purge temporary files)] [-r queue_id (requeue)] "
        "[-s (structure fix)] [-S (redundant structure fix)][-v (verbose)] [queue...]\n")


def test_bad_queue_name_is_logged(capsys, setup, queue):
    # Postfix finds a bad queue name after main.cf is read, so its fatal
    # error goes to the mail log too (seen live with Postfix 3.7.11).
    assert run_tool(capsys, setup, "postsuper", "-d", "ALL", "bogusqueue")[0] == 1
    assert log_lines(setup) == ["mailsys/postsuper: fatal: invalid directory name: bogusqueue"]


def test_options_end_at_the_first_queue_name(capsys, setup, queue):
    # Postfix's GETOPT() is getopt(..., "+..."): "-v" after "deferred" is
    # one more queue name, and not a valid one (seen live with Postfix 3.7.11).
    status, _, err = run_tool(capsys, setup, "postsuper", "-d", "ALL", "deferred", "-v")
    assert (status, err) == (1, "postsuper: fatal: invalid directory name: -v\n")
    assert len(entries(setup.queue_dir)) == 5


def test_config_directory_option(capsys, setup, queue, tmp_path):
    # postsuper's own -c, which must be absolute (src/postsuper/postsuper.c).
    assert run_tool(capsys, setup, "postsuper", "-c", "etc", "-d", "ALL") == (
        1, "", "postsuper: fatal: -c requires absolute pathname\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "main.cf").write_text(f"queue_directory = {tmp_path}/nowhere\n")
    status, _, err = run_tool(capsys, setup, "postsuper", "-c", str(other), "-d", "ALL")
    assert (status, err) == (1, f"postsuper: fatal: chdir {tmp_path}/nowhere: "
                                "No such file or directory\n")
    assert len(entries(setup.queue_dir)) == 5


def test_change_pokes_qmgr(capsys, setup, queue):
    import socket
    (setup.queue_dir / "public").mkdir()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(setup.queue_dir / "public" / "qmgr"))
    sock.listen(4)
    sock.settimeout(2)
    with sock:
        run_tool(capsys, setup, "postsuper", "-r", queue["long"], "-H", queue["held"])
        conn, _ = sock.accept()
        with conn:
            assert conn.recv(16) == b"DI"


@pytest.mark.integration
def test_postsuper_as_a_process(setup, queue, tmp_path):
    r = run_process(setup, "postsuper", "-d", "-", stdin=queue["incoming"] + "\n")
    assert r.returncode == 0
    assert r.stderr == f"postsuper: {queue['incoming']}: removed\npostsuper: Deleted: 1 message\n"
    r = run_process(setup, "postsuper", "-d", "ALL", "bogusqueue")
    assert (r.returncode, r.stderr) == (1, "postsuper: fatal: invalid directory name: bogusqueue\n")
    (setup.config_dir / "main.cf").write_text(f"queue_directory = {tmp_path}/nowhere\n")
    r = run_process(setup, "postsuper", "-d", "ALL")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr == f"postsuper: fatal: chdir {tmp_path}/nowhere: No such file or directory\n"
