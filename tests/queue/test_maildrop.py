"""The maildrop: sendmail's messages while cleanup is unreachable."""

from __future__ import annotations

import os
import stat
import time

import pytest

from mailsys.ipc.proto.cleanup import CleanupRecipient, CleanupRequest
from mailsys.queue import maildrop


def request(qid: str) -> CleanupRequest:
    return CleanupRequest(queue_id=qid, sender="alice@example.com",
                          recipients=(CleanupRecipient("bob@example.org"),),
                          content=b"Subject: x\r\n\r\nbody\r\n", arrival_time=time.time(),
                          origin="sendmail", local=True, protocol="local", uid=1234)


def test_a_dropped_request_reads_back_whole(tmp_path):
    dropped = request("4jcdAAAAAAz0001")
    path = maildrop.drop(tmp_path, dropped)
    assert path == tmp_path / "maildrop" / "4jcdAAAAAAz0001"
    assert stat.S_IMODE(os.stat(tmp_path / "maildrop").st_mode) == 0o700
    assert os.listdir(tmp_path / "maildrop") == ["4jcdAAAAAAz0001"]    # no temporary left
    assert maildrop.read(path) == dropped


def test_waiting_lists_whole_files_oldest_first(tmp_path):
    first = maildrop.drop(tmp_path, request("4jcdAAAAAAz0002"))
    second = maildrop.drop(tmp_path, request("4jcdAAAAAAz0001"))
    os.utime(first, (1, 1))
    (tmp_path / "maildrop" / ".4jcdAAAAAAz0003.99").write_bytes(b"half")   # being written
    assert maildrop.waiting(tmp_path) == [first, second]
    assert maildrop.pending(tmp_path)
    assert maildrop.waiting(tmp_path / "none") == [] and not maildrop.pending(tmp_path / "none")


def test_a_file_without_a_request_is_corrupt_and_set_aside(tmp_path):
    folder = maildrop.directory(tmp_path)
    junk = folder / "junk"
    junk.write_bytes(b"not a frame")
    with pytest.raises(maildrop.CorruptDrop, match="junk: not a cleanup request"):
        maildrop.read(junk)
    assert maildrop.set_aside(tmp_path, junk) == tmp_path / "corrupt" / "junk"
    assert not junk.exists() and (tmp_path / "corrupt" / "junk").read_bytes() == b"not a frame"


def test_no_queue_directory_no_drop(tmp_path):
    with pytest.raises(FileNotFoundError):
        maildrop.drop(tmp_path / "none", request("4jcdAAAAAAz0001"))
    assert not (tmp_path / "none").exists()


def test_envelopes_show_what_mailq_lists(tmp_path):
    dropped = request("4jcdAAAAAAz0001")
    maildrop.drop(tmp_path, dropped)
    (tmp_path / "maildrop" / "junk").write_bytes(b"not a frame")
    [env] = list(maildrop.envelopes(tmp_path))
    assert (env.queue_id, env.sender, env.size, env.arrival_time) == (
        "4jcdAAAAAAz0001", "alice@example.com", len(dropped.content), dropped.arrival_time)
    assert [r.address for r in env.recipients] == ["bob@example.org"]
    assert list(maildrop.envelopes(tmp_path / "none")) == []


def test_purge_removes_temporary_files_a_day_old(tmp_path):
    # Postfix's postsuper: a temporary file older than MAX_TEMP_AGE (a day) goes.
    whole = maildrop.drop(tmp_path, request("4jcdAAAAAAz0001"))
    folder = tmp_path / "maildrop"
    old, fresh = folder / ".4jcdAAAAAAz0002.x1", folder / ".4jcdAAAAAAz0003.x2"
    old.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    (folder / ".dir").mkdir()
    now = time.time()
    for path in (whole, old, folder / ".dir"):
        os.utime(path, (now - maildrop.TEMP_AGE - 60,) * 2)
    os.utime(fresh, (now - maildrop.TEMP_AGE + 60,) * 2)
    assert maildrop.purge(tmp_path, now) == [old.name]
    assert sorted(os.listdir(folder)) == sorted([".dir", fresh.name, whole.name])
    assert maildrop.purge(tmp_path, now) == []
    assert maildrop.purge(tmp_path / "none") == []
