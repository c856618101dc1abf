"""mailsys postmap: compile texthash source to lmdb, query any table type."""

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
    assert (r.returncode, r.stderr) == (1, "postmap: fatal: unsupported dictionary type: nosuch (in nosuch:/etc/aliases)\n")
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
