"""mailsys postconf -F, -P and the master.cf edits (-Me -MX -M# -Fe -Pe -PX), as a user runs them."""

import shutil
import subprocess

import pytest

MASTER = """\
smtp      inet  n       -       n       -       -       smtpd
127.0.0.1:2587 inet  n  -       n       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
# the queue manager
qmgr      unix  n       -       n       300     1       qmgr
relay     unix  -       -       n       -       -       smtp
pipe      unix  -       n       n       -       -       pipe flags=Fqhu user=uucp argv=uux -r -n -z -a$sender - $nexthop!rmail ($recipient)
"""


def test_F_prints_every_field(confdir, run_cli):
    r = run_cli(confdir("", MASTER), "postconf", "-F", "qmgr", "127.0.0.1:2587/inet/command")
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == (
        "127.0.0.1:2587/inet/command = smtpd -o syslog_name=postfix/submission "
        "-o smtpd_tls_security_level=encrypt\n"
        "qmgr/unix/service = qmgr\n"
        "qmgr/unix/type = unix\n"
        "qmgr/unix/private = n\n"
        "qmgr/unix/unprivileged = -\n"
        "qmgr/unix/chroot = n\n"
        "qmgr/unix/wakeup = 300\n"
        "qmgr/unix/process_limit = 1\n"
        "qmgr/unix/command = qmgr\n")


def test_F_wildcards_h_and_unmatched(confdir, run_cli):
    r = run_cli(confdir("", MASTER), "postconf", "-Fh", "*/unix/wakeup", "nope/unix")
    assert r.stdout == "300\n-\n-\n"
    assert r.stderr == 'postconf: warning: unmatched request: "nope/unix"\n'


def test_P_prints_parameters_by_name(confdir, run_cli):
    r = run_cli(confdir("", MASTER), "postconf", "-P")
    assert r.stdout == ("127.0.0.1:2587/inet/smtpd_tls_security_level = encrypt\n"
                        "127.0.0.1:2587/inet/syslog_name = postfix/submission\n")
    r = run_cli(confdir("", MASTER), "postconf", "-Ph", "*/*/syslog_name")
    assert r.stdout == "postfix/submission\n"


def test_edits_rewrite_only_the_entries_they_touch(confdir, run_cli):
    d = confdir("", MASTER)
    for args in (["-Fe", "qmgr/unix/wakeup=60", "pipe/unix/process_limit=2"],
                 ["-Pe", "relay/unix/smtp_helo_timeout=5s",
                  "127.0.0.1:2587/inet/smtpd_tls_security_level=may"],
                 ["-PX", "127.0.0.1:2587/inet/syslog_name"],
                 ["-M#", "smtp/inet"],
                 ["-Me", "new/unix=new unix - - n - - smtp -o smtp_helo_timeout=10s"]):
        r = run_cli(d, "postconf", *args)
        assert (r.returncode, r.stderr) == (0, ""), args
    assert (d / "master.cf").read_text() == (
        "#smtp      inet  n       -       n       -       -       smtpd\n"
        "127.0.0.1:2587 inet n    -       n       -       -       smtpd\n"
        "    -o smtpd_tls_security_level=may\n"
        "# the queue manager\n"
        "qmgr       unix  n       -       n       60      1       qmgr\n"
        "relay      unix  -       -       n       -       -       smtp\n"
        "    -o smtp_helo_timeout=5s\n"
        # Arguments fold at 80 columns.
        "pipe       unix  -       n       n       -       2       pipe flags=Fqhu\n"
        "    user=uucp argv=uux -r -n -z -a$sender - $nexthop!rmail ($recipient)\n"
        "new        unix  -       -       n       -       -       smtp\n"
        "    -o smtp_helo_timeout=10s\n")
    r = run_cli(d, "postconf", "-MX", "new/unix", "relay/unix", "nope/unix")
    assert (r.returncode, r.stderr) == (0, "")
    assert "relay" not in (d / "master.cf").read_text()
    assert (d / "master.cf").read_text().endswith("($recipient)\n")


def test_Me_replaces_an_entry_where_it_stands(confdir, run_cli):
    d = confdir("", MASTER)
    r = run_cli(d, "postconf", "-Me", "qmgr/unix=qmgr unix n - n 600 1 qmgr")
    assert r.returncode == 0
    lines = (d / "master.cf").read_text().splitlines()
    assert lines[4:6] == ["# the queue manager",
                          "qmgr       unix  n       -       n       600     1       qmgr"]


@pytest.mark.parametrize("args, error", [
    (["-Fe", "qmgr/unix/wakeup=soon"], 'invalid wakeup field "soon"'),
    (["-Fe", "qmgr/unix/bogus=1"], 'invalid service attribute name: "bogus"'),
    (["-Fe", "qmgr/unix/wakeup"], "missing '=' after attribute name"),
    (["-Pe", "relay/unix/smtp_helo_timeout=forever"], 'parameter smtp_helo_timeout: bad time value'),
    (["-Pe", "relay/unix/syslog_name=a b"], "-Pe does not accept whitespace in parameter value"),
    (["-Me", "x/unix=x unix -"], 'bad field count: "x/unix=x unix -"'),
    (["-Me", "x/unix=y unix - - n - - smtp"], "service name/type mismatch"),
    (["-MX", "qmgr"], "-Me, -MX or -M# requires service_name/type"),
    (["-F#", "qmgr/unix/wakeup"], "with option -F, do not specify -#"),
])
def test_a_bad_edit_leaves_master_cf_alone(confdir, run_cli, args, error):
    d = confdir("", MASTER)
    r = run_cli(d, "postconf", *args)
    assert r.returncode != 0
    assert error in r.stderr and "Traceback" not in r.stderr
    assert (d / "master.cf").read_text() == MASTER


def test_an_edit_of_a_missing_service_warns(confdir, run_cli):
    d = confdir("", MASTER)
    r = run_cli(d, "postconf", "-Pe", "nope/unix/syslog_name=x")
    assert r.returncode == 0
    assert r.stderr == 'postconf: warning: unmatched service_name/type: "nope/unix/syslog_name=x"\n'
    assert (d / "master.cf").read_text() == MASTER


EDITS = (["-Fe", "qmgr/unix/wakeup=60", "pipe/unix/process_limit=2", "relay/unix/command=smtp arg"],
         ["-Pe", "relay/unix/smtp_helo_timeout=5s", "127.0.0.1:2587/inet/syslog_name=sub",
          "pipe/unix/smtp_helo_timeout=5s"],
         ["-PX", "127.0.0.1:2587/inet/smtpd_tls_security_level"],
         ["-M#", "smtp/inet"],
         ["-Me", "new/unix=new unix - - n - - smtp -o smtp_helo_timeout=10s"])


@pytest.mark.skipif(shutil.which("postconf") is None, reason="Postfix is not installed")
def test_edits_and_listings_are_postfixs(tmp_path, confdir, run_cli):
    # Without comment lines between entries: Postfix moves an edited entry
    # below the comments that follow it, mailsys leaves it in place.
    master = "".join(line + "\n" for line in MASTER.splitlines() if not line.startswith("#"))
    ours = confdir("", master)
    theirs = tmp_path / "postfix"
    theirs.mkdir()
    (theirs / "main.cf").write_text("compatibility_level = 3.6\nmyhostname = mx.example.com\n")
    (theirs / "master.cf").write_text(master)

    def postfix(*args):
        return subprocess.run(["postconf", "-c", str(theirs), *args], capture_output=True,
                              text=True, timeout=30)

    for args in EDITS:
        assert run_cli(ours, "postconf", *args).returncode == 0
        assert postfix(*args).returncode == 0
    assert (ours / "master.cf").read_text() == (theirs / "master.cf").read_text()
    for listing in ("-M", "-F", "-P", "-Fh", "-FH", "-PH"):
        assert run_cli(ours, "postconf", listing).stdout == postfix(listing).stdout, listing


def test_P_reads_options_only_before_the_first_argument(confdir, run_cli):
    # An -o inside a pipe(8) argv= is the command's (Postfix passes it on).
    d = confdir("", "spamd unix - n n - - pipe user=nobody argv=/usr/bin/spamc -e "
                    "/usr/sbin/sendmail -oi -o x=y\n")
    r = run_cli(d, "postconf", "-P")
    assert (r.returncode, r.stdout) == (0, "")
    r = run_cli(d, "postconf", "-Pe", "spamd/unix/syslog_name=spam")
    assert (r.returncode, r.stderr) == (0, "")
    assert (d / "master.cf").read_text() == (
        "spamd      unix  -       n       n       -       -       pipe\n"
        "    -o syslog_name=spam\n"
        # Postfix's pcf_print_master_entry() pairs "-o" with a value only
        # before the first non-option argument: this "-o x=y" is folded as
        # any other word.
        "    user=nobody argv=/usr/bin/spamc -e /usr/sbin/sendmail -oi -o x=y\n")
    r = run_cli(d, "postconf", "-P")
    assert r.stdout == "spamd/unix/syslog_name = spam\n"
