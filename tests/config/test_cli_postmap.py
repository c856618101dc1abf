"""mailsys postmap: compile texthash source to lmdb, query any table type."""

import re
import subprocess
import sys


def test_compile_and_query(confdir, tmp_path, run_cli):
    d = confdir("")
    src = tmp_path / "transport"
    src.write_text("# transport\nExample.COM   smtp:[mx.example.com]:25\nslow.example  slow:\n")
    r = run_cli(d, "postmap", f"lmdb:{src}")
    assert (r.returncode, r.stderr) == (0, "")
    assert (tmp_path / "transport.lmdb").exists()
    r = run_cli(d, "postmap", "-q", "example.com", f"lmdb:{src}")
    assert (r.returncode, r.stdout) == (0, "smtp:[mx.example.com]:25\n")
    r = run_cli(d, "postmap", "-q", "nothere.example", f"lmdb:{src}")
    assert (r.returncode, r.stdout) == (1, "")


def test_default_type_and_relative_name(confdir, tmp_path, run_cli):
    d = confdir("")
    (tmp_path / "virtual").write_text("a@x  one\n")
    r = subprocess.run([sys.executable, "-m", "mailsys.cli.main", "-c", str(d), "postmap", "virtual"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert run_cli(d, "postmap", "-q", "A@X", f"lmdb:{tmp_path}/virtual").stdout == "one\n"


def test_query_other_types_and_stdin(confdir, tmp_path, run_cli):
    d = confdir("")
    (tmp_path / "t").write_text("bob two\nalice one\n")
    assert run_cli(d, "postmap", "-q", "BOB", f"texthash:{tmp_path}/t").stdout == "two\n"
    assert run_cli(d, "postmap", "-q", "k", "inline:{ k=v }").stdout == "v\n"
    assert run_cli(d, "postmap", "-q", "anything", "static:all").stdout == "all\n"
    r = run_cli(d, "postmap", "-q", "-", f"texthash:{tmp_path}/t", input="alice\nnobody\nbob\n")
    assert (r.returncode, r.stdout) == (0, "alice\tone\nbob\ttwo\n")


def test_errors(confdir, tmp_path, run_cli):
    d = confdir("")
    r = run_cli(d, "postmap", "-q", "x", f"hash:{tmp_path}/never")
    assert (r.returncode, r.stderr) == (1, (
        f"postmap: fatal: open database {tmp_path}/never.lmdb: No such file or directory "
        f"(hash:{tmp_path}/never is read from {tmp_path}/never.lmdb: build it with "
        f"\"mailsys postmap hash:{tmp_path}/never\", or \"mailsys postalias "
        f"hash:{tmp_path}/never\" for an aliases file)\n"))
    r = run_cli(d, "postmap", "-q", "x", "nosuch:/etc/aliases")
    # src/util/dict_open.c, seen live with Postfix 3.7.11.
    assert (r.returncode, r.stderr) == (1, "postmap: fatal: unsupported dictionary type: nosuch\n")
    r = run_cli(d, "postmap", f"lmdb:{tmp_path}/missing")
    assert r.returncode == 1 and "No such file or directory" in r.stderr and "Traceback" not in r.stderr
    # As Postfix 3.7's postmap: a bad line and a duplicate are warned about
    # and skipped, and the table is built.
    (tmp_path / "bad").write_text("key value\nlonely\nkey again\n")
    r = run_cli(d, "postmap", f"lmdb:{tmp_path}/bad")
    assert (r.returncode, r.stderr) == (0, (
        f"postmap: warning: {tmp_path}/bad, line 2: expected format: key whitespace value\n"
        f'postmap: warning: lmdb:{tmp_path}/bad: duplicate entry: "key"\n'))
    r = run_cli(d, "postmap", "-q", "key", f"lmdb:{tmp_path}/bad")
    assert (r.returncode, r.stdout) == (0, "value\n")
    (tmp_path / "bad.re").write_text("/a/q x\n/b/ y\n")
    r = run_cli(d, "postmap", "-q", "b", f"regexp:{tmp_path}/bad.re")
    assert (r.returncode, r.stdout, r.stderr) == (0, "y\n", (
        f'postmap: warning: regexp map {tmp_path}/bad.re, line 1: unknown regexp option "q": '
        "skipping this rule\n"))
    r = run_cli(d, "postmap")
    assert (r.returncode, r.stderr) == (1, "postmap: fatal: usage: postmap [-bfFhimnNoprsuUvw] "
                                           "[-c config_dir] [-d key] [-q key] [map_type:]file...\n")


def test_tables_that_cannot_be_built_or_changed(confdir, tmp_path, run_cli):
    # Postfix 3.7.11's words (src/global/dynamicmaps.c, src/util/dict_thash.c,
    # dict_static.c), seen live; names as given on the command line.
    d = confdir("")
    (tmp_path / "re").write_text("/a/ x\n")
    cases = [
        (("regexp:re",),
         "unsupported dictionary type: regexp does not support bulk-mode creation."),
        (("foo:re",), "unsupported dictionary type: foo. Is the postfix-foo package installed?"),
        (("-d", "a", "texthash:re"), "texthash:re map requires O_RDONLY access mode"),
        (("-d", "a", "static:x"), "table static:x: delete operation is not supported"),
        (("-d", "a", "foo:re"), "unsupported dictionary type: foo"),
        (("-q", "a", "texthash:nothere"),
         "open database nothere: No such file or directory"),
    ]
    for args, text in cases:
        r = subprocess.run([sys.executable, "-m", "mailsys.cli.main", "-c", str(d), "postmap",
                            *args], cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert (r.returncode, r.stderr) == (1, f"postmap: fatal: {text}\n"), args


def test_diagnostics_after_main_cf_go_to_the_mail_log(confdir, tmp_path, run_cli):
    # Postfix's postmap and postalias log once main.cf is read
    # (maillog_client_init() after mail_conf_read(), src/postmap/postmap.c);
    # a complaint about the options comes before that: stderr only (seen
    # live with Postfix 3.7.11).
    d = confdir(f"maillog_file = {tmp_path}/mail.log\nmaillog_file_prefixes = {tmp_path}\n")
    (tmp_path / "bad").write_text("key value\nlonely\n")
    assert run_cli(d, "postmap", f"lmdb:{tmp_path}/bad").returncode == 0
    assert run_cli(d, "postmap", "-q", "x", "nosuch:x").returncode == 1
    assert run_cli(d, "postmap").returncode == 1
    assert run_cli(d, "postmap", "-q", "a", "-d", "b", "x").returncode == 1
    assert run_cli(d, "postmap", "-Z").returncode == 1
    assert run_cli(d, "postalias", "foo:x").returncode == 1
    lines = [line.split(" ", 4)[4] for line in (tmp_path / "mail.log").read_text().splitlines()]
    assert [re.sub(r"\[\d+\]", "", line) for line in lines] == [
        f"mailsys/postmap: warning: {tmp_path}/bad, line 2: expected format: key whitespace value",
        "mailsys/postmap: fatal: unsupported dictionary type: nosuch",
        "mailsys/postmap: fatal: usage: postmap [-bfFhimnNoprsuUvw] [-c config_dir] [-d key] "
        "[-q key] [map_type:]file...",
        "mailsys/postalias: fatal: unsupported dictionary type: foo. "
        "Is the postfix-foo package installed?"]


def test_a_relative_table_name_stays_relative_in_messages(confdir, tmp_path):
    # Postfix opens the name as given: "t, line 2: ...", "open database
    # nothere: ..." (seen live with Postfix 3.7.11).
    d = confdir("")
    (tmp_path / "t").write_text("a 1\nlonely\n")

    def postmap(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mailsys.cli.main", "-c", str(d), "postmap",
                               *args], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    r = postmap("-q", "a", "texthash:t")
    assert (r.returncode, r.stdout, r.stderr) == (0, "1\n", (
        "postmap: warning: t, line 2: expected format: key whitespace value "
        "-- ignoring this line\n"))
    r = postmap("-s", "texthash:nothere")
    assert (r.returncode, r.stderr) == (1, "postmap: fatal: open database nothere: "
                                           "No such file or directory\n")
    r = postmap("-q", "a", "lmdb:nothere")
    assert (r.returncode, r.stderr) == (1, "postmap: fatal: open database nothere.lmdb: "
                                           "No such file or directory\n")
