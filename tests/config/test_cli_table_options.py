"""postmap and postalias options -s, -d, -i, -N/-n, -f, -r, -w, -p, -o: Postfix 3.7's
output and exit statuses (each expectation below is what postmap/postalias 3.7.11 with
postfix-lmdb printed for the same files and commands)."""

import os
import stat

import lmdb
import pytest


@pytest.fixture
def d(confdir):
    return confdir("myhostname = mx.example.test\n")


def raw_entries(path):
    env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return list(txn.cursor())
    finally:
        env.close()


def test_s_lists_a_table_in_its_order_and_only_the_first(d, tmp_path, run_cli):
    (tmp_path / "map").write_text("Key1 v1\nkey1 again\nlonely\nk2 v2\n")
    (tmp_path / "other").write_text("z last\n")
    for name in ("map", "other"):
        assert run_cli(d, "postmap", f"lmdb:{tmp_path}/{name}").returncode == 0
    r = run_cli(d, "postmap", "-s", f"lmdb:{tmp_path}/map", f"lmdb:{tmp_path}/other")
    assert (r.returncode, r.stdout, r.stderr) == (0, "k2\tv2\nkey1\tv1\n", "")
    r = run_cli(d, "postmap", "-s")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "")
    r = run_cli(d, "postmap", "-s", f"texthash:{tmp_path}/other")
    assert (r.returncode, r.stdout) == (0, "z\tlast\n")
    r = run_cli(d, "postmap", "-s", "static:x")
    assert (r.returncode, r.stderr) == (
        1, "postmap: fatal: table static:x: sequence operation is not supported\n")
    r = run_cli(d, "postmap", "-s", f"lmdb:{tmp_path}/nosuch")
    assert (r.returncode, r.stderr) == (
        1, f"postmap: fatal: open database {tmp_path}/nosuch.lmdb: No such file or directory\n")


def test_postalias_adds_its_signature_and_prints_name_colon_tab_value(d, tmp_path, run_cli):
    src = tmp_path / "aliases"
    src.write_text("root: alice\nPostmaster: root\nroot: again\nlonely\nlist: a, b\n")
    r = run_cli(d, "postalias", f"lmdb:{src}")
    assert (r.returncode, r.stderr) == (0, (
        f'postalias: warning: lmdb:{src}: duplicate entry: "root"\n'
        f"postalias: warning: {src}, line 4: need name:value pair\n"))
    r = run_cli(d, "postalias", "-s", f"lmdb:{src}")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and lines[0] == "@:\t@" and lines[3:] == [
        "list:\ta, b", "postmaster:\troot", "root:\talice"]
    assert lines[1].startswith("YP_LAST_MODIFIED:\t") and len(lines[1].split("\t")[1]) == 10
    assert lines[2] == "YP_MASTER_NAME:\tmx.example.test"
    r = run_cli(d, "postalias", "-q", "-", f"lmdb:{src}", input="root\nnope\nlist\n")
    assert (r.returncode, r.stdout) == (0, "root:\talice\nlist:\ta, b\n")


def test_d_deletes_from_every_table(d, tmp_path, run_cli):
    (tmp_path / "map").write_text("a 1\nb 2\n")
    (tmp_path / "aliases").write_text("root: alice\nb: x\n")
    run_cli(d, "postmap", f"lmdb:{tmp_path}/map")
    run_cli(d, "postalias", f"lmdb:{tmp_path}/aliases")
    assert run_cli(d, "postmap", "-d", "A", f"lmdb:{tmp_path}/map").returncode == 0
    r = run_cli(d, "postmap", "-d", "a", f"lmdb:{tmp_path}/map")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "")
    assert run_cli(d, "postmap", "-s", f"lmdb:{tmp_path}/map").stdout == "b\t2\n"
    r = run_cli(d, "postmap", "-d", "-", f"lmdb:{tmp_path}/map", f"lmdb:{tmp_path}/aliases",
                input="b\nroot\n")
    assert r.returncode == 0
    assert run_cli(d, "postmap", "-s", f"lmdb:{tmp_path}/map").stdout == ""
    assert "root:" not in run_cli(d, "postalias", "-s", f"lmdb:{tmp_path}/aliases").stdout
    r = run_cli(d, "postmap", "-d", "a", f"hash:{tmp_path}/nosuch")
    assert (r.returncode, r.stderr) == (
        1, f"postmap: fatal: open database {tmp_path}/nosuch.lmdb: No such file or directory\n")


def test_i_adds_from_stdin_with_the_duplicate_policy(d, tmp_path, run_cli):
    table = f"lmdb:{tmp_path}/m"
    (tmp_path / "m").write_text("a 1\nb 2\n")
    run_cli(d, "postmap", table)
    r = run_cli(d, "postmap", "-i", table, input="a 10\nnew1 val1\nbad\nnew1 dup\n")
    assert (r.returncode, r.stderr) == (0, (
        f'postmap: warning: {table}: duplicate entry: "a"\n'
        "postmap: warning: stdin, line 3: expected format: key whitespace value\n"
        f'postmap: warning: {table}: duplicate entry: "new1"\n'))
    assert run_cli(d, "postmap", "-s", table).stdout == "a\t1\nb\t2\nnew1\tval1\n"
    r = run_cli(d, "postmap", "-i", "-r", table, input="new1 val2\n")
    assert (r.returncode, r.stderr) == (0, "")
    r = run_cli(d, "postmap", "-i", "-w", table, input="new1 val3\n")
    assert (r.returncode, r.stderr) == (0, "")
    assert run_cli(d, "postmap", "-q", "new1", table).stdout == "val2\n"
    # A table that does not exist yet is created.
    r = run_cli(d, "postmap", "-i", f"lmdb:{tmp_path}/fresh", input="x y\n")
    assert r.returncode == 0 and run_cli(d, "postmap", "-q", "x", f"lmdb:{tmp_path}/fresh").stdout == "y\n"
    # postalias -i keeps its signature.
    (tmp_path / "aliases").write_text("root: alice\n")
    run_cli(d, "postalias", f"lmdb:{tmp_path}/aliases")
    r = run_cli(d, "postalias", "-i", f"lmdb:{tmp_path}/aliases", input="x: y\n")
    listed = run_cli(d, "postalias", "-s", f"lmdb:{tmp_path}/aliases").stdout.splitlines()
    assert r.returncode == 0 and listed[0] == "@:\t@" and listed[3:] == ["root:\talice", "x:\ty"]


def test_N_stores_terminating_nulls_and_f_keeps_the_case(d, tmp_path, run_cli):
    (tmp_path / "m").write_text("Mixed Value\n")
    assert run_cli(d, "postmap", "-N", f"lmdb:{tmp_path}/m").returncode == 0
    assert raw_entries(tmp_path / "m.lmdb") == [(b"mixed\0", b"Value\0")]
    assert run_cli(d, "postmap", "-s", f"lmdb:{tmp_path}/m").stdout == "mixed\tValue\n"
    assert run_cli(d, "postmap", "-q", "MIXED", f"hash:{tmp_path}/m").stdout == "Value\n"
    assert run_cli(d, "postmap", "-n", f"lmdb:{tmp_path}/m").returncode == 0
    assert raw_entries(tmp_path / "m.lmdb") == [(b"mixed", b"Value")]
    assert run_cli(d, "postmap", "-f", f"lmdb:{tmp_path}/m").returncode == 0
    assert run_cli(d, "postmap", "-s", f"lmdb:{tmp_path}/m").stdout == "Mixed\tValue\n"
    assert run_cli(d, "postmap", "-q", "Mixed", f"lmdb:{tmp_path}/m").returncode == 1
    assert run_cli(d, "postmap", "-f", "-q", "mixed", f"lmdb:{tmp_path}/m").returncode == 1
    assert run_cli(d, "postmap", "-f", "-q", "Mixed", f"lmdb:{tmp_path}/m").stdout == "Value\n"


def test_a_new_table_takes_its_sources_read_permissions_unless_p(d, tmp_path, run_cli):
    src = tmp_path / "m"
    src.write_text("a 1\n")
    src.chmod(0o640)
    run_cli(d, "postmap", f"lmdb:{src}")
    assert stat.S_IMODE((tmp_path / "m.lmdb").stat().st_mode) == 0o640
    run_cli(d, "postmap", "-p", f"lmdb:{src}")
    assert stat.S_IMODE((tmp_path / "m.lmdb").stat().st_mode) == 0o644


@pytest.mark.skipif(os.geteuid() != 0, reason="only root builds tables for other users")
def test_root_gives_a_table_to_its_sources_owner_unless_o(d, tmp_path, run_cli):
    src = tmp_path / "m"
    src.write_text("a 1\n")
    os.chown(src, 65534, 65534)
    run_cli(d, "postmap", f"lmdb:{src}")
    st = (tmp_path / "m.lmdb").stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    run_cli(d, "postmap", "-o", f"lmdb:{src}")
    st = (tmp_path / "m.lmdb").stat()
    assert (st.st_uid, st.st_gid) == (0, 0)


@pytest.mark.parametrize("args, stderr", [
    (["-s", "-q", "a"], "postmap: fatal: specify only one of -s -q or -d\n"),
    (["-q", "a", "-s"], "postmap: fatal: specify only one of -s or -q or -d\n"),
    (["-d", "a", "-q", "a"], "postmap: fatal: specify only one of -s -q or -d\n"),
    (["-x"], "postmap: invalid option -- 'x'\npostmap: fatal: usage: postmap [-bfFhimnNoprsuUvw] "
             "[-c config_dir] [-d key] [-q key] [map_type:]file...\n"),
])
def test_command_line_errors(d, tmp_path, run_cli, args, stderr):
    r = run_cli(d, "postmap", *args, f"lmdb:{tmp_path}/m")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", stderr)


def test_options_end_at_the_first_table(d, tmp_path, run_cli):
    (tmp_path / "m").write_text("a 1\n")
    r = run_cli(d, "postmap", f"lmdb:{tmp_path}/m", "-q", "a")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "postmap: fatal: open -q: No such file or directory\n")


MESSAGE = "From: a@example.org\nSubject: hello\n world\n\nbody line one\n\nfoo\nfrom: x\n"


@pytest.mark.parametrize("flags, stdout", [
    (["-h"], "From: a@example.org\tseen\nSubject: hello\n world\tseen\n"),
    (["-b"], "body line one\tseen\nfoo\tseen\nfrom: x\tseen\n"),
    (["-h", "-b"], "From: a@example.org\tseen\nSubject: hello\n world\tseen\n"
                   "body line one\tseen\nfoo\tseen\nfrom: x\tseen\n"),
])
def test_h_and_b_look_up_a_messages_headers_and_body_lines(d, tmp_path, run_cli, flags, stdout):
    (tmp_path / "any.re").write_text("/./ seen\n")
    r = run_cli(d, "postmap", *flags, "-q", "-", f"regexp:{tmp_path}/any.re", input=MESSAGE)
    assert (r.returncode, r.stdout, r.stderr) == (0, stdout, "")


def test_a_message_without_headers_is_all_body(d, tmp_path, run_cli):
    (tmp_path / "any.re").write_text("/./ seen\n")
    text = "garbage\nSubject: x\n\nbody\n"
    r = run_cli(d, "postmap", "-h", "-q", "-", f"regexp:{tmp_path}/any.re", input=text)
    assert (r.returncode, r.stdout) == (1, "")
    r = run_cli(d, "postmap", "-b", "-q", "-", f"regexp:{tmp_path}/any.re", input=text)
    assert (r.returncode, r.stdout) == (0, "garbage\tseen\nSubject: x\tseen\nbody\tseen\n")


def test_m_and_message_modes_need_q_dash(d, tmp_path, run_cli):
    (tmp_path / "any.re").write_text("/./ seen\n")
    r = run_cli(d, "postmap", "-h", "-q", "x", f"regexp:{tmp_path}/any.re")
    assert (r.returncode, r.stderr) == (1, 'postmap: fatal: specify -b -h or -m only with "-q -"\n')
    r = run_cli(d, "postmap", "-m", "-q", "-", f"regexp:{tmp_path}/any.re",
                input="Subject: hello\n world\n")
    assert (r.returncode, r.stdout, r.stderr) == (
        0, "Subject: hello\tseen\n world\tseen\n",
        "postmap: warning: ignoring -m option without -b or -h\n")


MIME_MESSAGE = """\
From: a@example.com
Subject: multi
 line
Content-Type: multipart/mixed; boundary="BB"

preamble
--BB
Content-Type: text/plain
X-Part: one

part one text
--BB
Content-Type: message/rfc822

From: inner@example.com
Content-Type: multipart/alternative; boundary=CC

--CC
Content-Type: text/html

<p>inner</p>
--CC--
--BB--
epilogue
"""


# What Postfix 3.7.11's postmap printed for this message and "/^/ X"
# (every key, the empty ones too).
@pytest.mark.parametrize("flags, keys", [
    (["-h", "-m"], ["From: a@example.com", "Subject: multi\n line",
                    'Content-Type: multipart/mixed; boundary="BB"', "Content-Type: text/plain",
                    "X-Part: one", "Content-Type: message/rfc822", "From: inner@example.com",
                    "Content-Type: multipart/alternative; boundary=CC",
                    "Content-Type: text/html"]),
    (["-b", "-m"], ["", "preamble", "--BB", "", "part one text", "--BB", "", "", "--CC", "",
                    "<p>inner</p>", "--CC--", "--BB--", "epilogue"]),
    (["-b"], ["", "preamble", "--BB", "Content-Type: text/plain", "X-Part: one", "",
              "part one text", "--BB", "Content-Type: message/rfc822", "",
              "From: inner@example.com", "Content-Type: multipart/alternative; boundary=CC",
              "", "--CC", "Content-Type: text/html", "", "<p>inner</p>", "--CC--", "--BB--",
              "epilogue"]),
])
def test_m_parses_mime_for_h_and_b(d, tmp_path, run_cli, flags, keys):
    (tmp_path / "all.re").write_text("/^/ X\n")
    r = run_cli(d, "postmap", *flags, "-q", "-", f"regexp:{tmp_path}/all.re", input=MIME_MESSAGE)
    assert (r.returncode, r.stdout, r.stderr) == (0, "".join(f"{k}\tX\n" for k in keys), "")
    both = run_cli(d, "postmap", "-h", "-b", "-m", "-q", "-", f"regexp:{tmp_path}/all.re",
                   input=MIME_MESSAGE)
    assert both.stdout.count("\tX\n") == 23                 # every header and line, once


def test_F_stores_file_contents_in_base64(d, tmp_path, run_cli):
    (tmp_path / "f1").write_text("one\n")
    (tmp_path / "f2").write_text("two")
    src = tmp_path / "fmap"
    src.write_text(f"key1 {tmp_path}/f1, {tmp_path}/f2\nkey2 /nonexist\n")
    r = run_cli(d, "postmap", "-F", f"lmdb:{src}")
    assert (r.returncode, r.stderr) == (0, f"postmap: warning: {src}, line 2: open /nonexist: "
                                           "No such file or directory: skipping this entry\n")
    assert run_cli(d, "postmap", "-q", "key1", f"lmdb:{src}").stdout == "b25lCgp0d28=\n"
    assert run_cli(d, "postmap", "-F", "-q", "key1", f"lmdb:{src}").stdout == "one\n\ntwo\n"
    assert run_cli(d, "postmap", "-F", "-s", f"lmdb:{src}").stdout == "key1\tone\n\ntwo\n"
    r = run_cli(d, "postmap", "-F", "-q", "-", f"lmdb:{src}", input="key1\nkey2\n")
    assert (r.returncode, r.stdout) == (0, "key1\tone\n\ntwo\n")
