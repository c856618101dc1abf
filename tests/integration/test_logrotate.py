"""`mailsys logrotate` (Postfix `postfix logrotate`) against a real master and alone.

What Postfix 3.7.11's postfix-script did on a private instance, and these
tests hold mailsys to: the file becomes maillog.20261128-074310.gz, the
master's "reload -- version" line lands in the old or the new file, and
every failure is one "postfix/postfix-script: fatal: ..." line, exit 1.
"""

from __future__ import annotations

import gzip
import re

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SUFFIX = re.compile(r"^mail\.(log|json)\.\d{8}-\d{6}(\.gz)?$")


def rotated(inst, ext: str = ".gz") -> list:
    return sorted(p for p in inst.log_path.parent.iterdir()
                  if SUFFIX.match(p.name) and p.name.endswith(ext))


def test_rotates_compresses_and_postlogd_reopens(mailsys_running):
    inst = mailsys_running
    inst.wait_log("daemon started")
    inst.wait_until(lambda: (inst.log_path.parent / "mail.json").exists())
    [postlogd] = inst.children("postlog")
    r = inst.cli("logrotate")
    assert (r.returncode, r.stderr) == (0, "")
    old_log, old_json = [p for p in rotated(inst) if ".log." in p.name], \
                        [p for p in rotated(inst) if ".json." in p.name]
    assert len(old_log) == len(old_json) == 1
    assert "daemon started -- version" in gzip.decompress(old_log[0].read_bytes()).decode()
    assert b'"daemon started' in gzip.decompress(old_json[0].read_bytes())
    assert not (inst.log_path.parent / old_log[0].stem).exists()   # gzip replaced it
    # postlogd writes the new file (same process, reopened by the reload's SIGHUP).
    assert inst.cli("reload").returncode == 0
    inst.wait_log(f"mailsys/master[{inst.master_pid()}]: reload -- version")
    assert inst.children("postlog") == [postlogd]


def test_suffix_is_strftime_and_stopped_system_is_fine(mailsys_instance):
    inst = mailsys_instance
    inst.write_config(main_cf={"maillog_file_rotate_suffix": "old-%Y"})
    inst.log_path.parent.mkdir(parents=True)
    inst.log_path.write_text("a line\n")
    r = inst.cli("logrotate")
    assert (r.returncode, r.stderr) == (0, "")
    [old] = [p for p in inst.log_path.parent.iterdir() if p.name.startswith("mail.log.old-")]
    assert re.fullmatch(r"mail\.log\.old-\d{4}\.gz", old.name)
    assert gzip.decompress(old.read_bytes()) == b"a line\n"


def test_absent_file_is_mv_failure(mailsys_instance):
    inst = mailsys_instance
    r = inst.cli("logrotate")
    text = (f"fatal: logfile '{inst.log_path}' rotation failed: "
            f"mv: cannot stat '{inst.log_path}': No such file or directory")
    assert r.returncode == 1
    assert r.stderr == f"mailsys/postfix-script: {text}\n"
    assert "mailsys/postfix-script[" in inst.log_text() and text in inst.log_text()


@pytest.mark.parametrize("compressor, reason", [
    ("/bin/false", ""),
    ("/nonexistent/zip", "/nonexistent/zip: not found"),
])
def test_compressor_failure_keeps_the_renamed_file(mailsys_instance, compressor, reason):
    inst = mailsys_instance
    inst.write_config(main_cf={"maillog_file_compressor": compressor})
    inst.log_path.parent.mkdir(parents=True)
    inst.log_path.write_text("a line\n")
    r = inst.cli("logrotate")
    assert r.returncode == 1
    assert r.stderr == (f"mailsys/postfix-script: fatal: logfile '{inst.log_path}' "
                        f"rotation failed: {reason}\n")
    [old] = rotated(inst, ext="")
    assert old.read_text() == "a line\n"


@pytest.mark.parametrize("main_cf, args, stderr", [
    ({"maillog_file": ""}, (),
     "mailsys/postfix-script: fatal: empty 'maillog_file' parameter value - logfile rotation failed\n"),
    ({"maillog_file": "/dev/stdout", "maillog_file_prefixes": "/dev/stdout"}, (),
     "mailsys/postfix-script: fatal: not rotating '/dev/stdout'\n"),
    ({}, ("now",), "mailsys/postfix-script: fatal: usage mailsys logrotate (no arguments)\n"),
    ({"maillog_file_compressor": ""}, (),
     "mailsys: fatal: bad string length 0 < 1: maillog_file_compressor = \n"),
    ({"maillog_file_rotate_suffix": ""}, (),
     "mailsys: fatal: bad string length 0 < 1: maillog_file_rotate_suffix = \n"),
])
def test_refusals(mailsys_instance, main_cf, args, stderr):
    inst = mailsys_instance
    inst.write_config(main_cf=main_cf)
    r = inst.cli("logrotate", *args)
    assert (r.returncode, r.stderr) == (1, stderr)
