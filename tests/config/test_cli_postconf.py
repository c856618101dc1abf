"""mailsys postconf, run as a user runs it: output, warnings, exit codes, edits."""

import re
import shutil
import subprocess

import pytest


MASTER = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
smtp      inet  n       -       n       -       -       smtpd
submission inet n       -       n       -       -       smtpd
  -o syslog_name=postfix/submission
  -o { smtpd_recipient_restrictions = permit_sasl_authenticated, reject }
qmgr      unix  n       -       n       600     1       qmgr
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def test_n_prints_only_set_parameters_and_warns_unused(compat_main, confdir, run_cli):
    d = confdir(compat_main)
    r = run_cli(d, "postconf", "-n")
    assert r.returncode == 0
    # foo is unused: Postfix warns about it and leaves it out.
    assert r.stdout == ("mydestination = $myhostname, localhost.${mydomain} localhost\n"
                        "mydomain = example.com\n"
                        "myhostname = mx.example.com\n"
                        "myorigin = $mydomain\n")
    assert (f"postconf: warning: {d}/main.cf: unused parameter: "
            "foo=$$x ${myhostname?{set}:{unset}} ${nope:dflt}\n") in r.stderr


def test_x_expands(compat_main, confdir, run_cli):
    r = run_cli(confdir(compat_main), "postconf", "-x", "mydestination", "myorigin")
    assert r.stdout == "mydestination = mx.example.com, localhost.example.com localhost\nmyorigin = example.com\n"
    assert r.returncode == 0


def test_x_warns_undefined(confdir, run_cli):
    d = confdir("myorigin = $nope.example\n")
    r = run_cli(d, "postconf", "-xh", "myorigin")
    assert r.stdout == ".example\n"
    assert f"postconf: warning: {d}/main.cf: undefined parameter: nope" in r.stderr


def test_names_h_and_unknown(compat_main, confdir, run_cli):
    r = run_cli(confdir(compat_main), "postconf", "myhostname", "nosuchparam", "relayhost", "smtpd_banner")
    assert r.returncode == 0
    assert r.stdout == "myhostname = mx.example.com\nrelayhost =\nsmtpd_banner = $myhostname ESMTP $mail_name\n"
    assert r.stderr == "postconf: warning: nosuchparam: unknown parameter\n"
    r = run_cli(confdir(compat_main), "postconf", "-h", "message_size_limit")
    assert r.stdout == "10240000\n"


def test_all_and_defaults(confdir, run_cli):
    d = confdir("message_size_limit = 50M\n")
    everything = run_cli(d, "postconf").stdout.splitlines()
    assert "message_size_limit = 50M" in everything
    assert everything == sorted(everything)
    assert "max_idle = 100s" in everything and "default_process_limit = 100" in everything
    defaults = run_cli(d, "postconf", "-d").stdout.splitlines()
    assert "message_size_limit = 10240000" in defaults
    assert len(defaults) == len(everything)
    assert run_cli(d, "postconf", "-d", "maximal_queue_lifetime").stdout == "maximal_queue_lifetime = 5d\n"


def test_c_after_subcommand(confdir, tmp_path, run_cli):
    d = confdir("myhostname = other.example\n")
    r = run_cli(tmp_path / "nowhere", "postconf", "-c", str(d), "-h", "myhostname")
    assert (r.returncode, r.stdout) == (0, "other.example\n")


@pytest.mark.parametrize("main,expected", [
    ("# c\nmyhostname = a.b\nmessage_size_limit = lots\n",
     'line 3: parameter message_size_limit: bad size value "lots"'),
    ("myhostname = a.b\nbad line here\n", "line 2: missing '=' after attribute name: \"bad line here\""),
    ("smtpd_timeout = 30 # seconds\n", 'line 1: parameter smtpd_timeout: bad time value "30 # seconds"'),
    ("a = $b\nb = $a\nmyorigin = $a\n", "line 3: parameter myorigin: recursive parameter expansion"),
])
def test_errors_are_one_line_without_traceback(confdir, main, expected, run_cli):
    d = confdir(main)
    r = run_cli(d, "postconf", "-n")
    assert r.returncode == 1
    assert r.stderr.startswith(f"postconf: fatal: {d}/main.cf, {expected}")
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr


def test_trailing_hash_error_explains_comments(confdir, run_cli):
    r = run_cli(confdir("smtpd_timeout = 30 # seconds\n"), "postconf")
    assert "comment only at the beginning of a line" in r.stderr


def test_e_replaces_in_place_and_keeps_comments(compat_main, confdir, run_cli):
    d = confdir(compat_main)
    r = run_cli(d, "postconf", "-e", "mydestination = $myhostname, localhost", "relayhost=[10.0.0.1]:25",
                "myorigin=example.org")
    assert (r.returncode, r.stderr) == (0, "")
    assert (d / "main.cf").read_text() == (
        "# main.cf\n"
        "myhostname = mx.example.com\n"
        "mydomain   = example.com\n"
        "myorigin = example.org\n"
        "mydestination = $myhostname, localhost\n"
        "  # this comment line is dropped, the value continues\n"
        "foo = $$x ${myhostname?{set}:{unset}} ${nope:dflt}\n"
        "relayhost = [10.0.0.1]:25\n")
    assert run_cli(d, "postconf", "-xh", "mydestination").stdout == "mx.example.com, localhost\n"


def test_e_drops_later_duplicates(confdir, run_cli):
    d = confdir("myhostname = a.example\nx = 1\nmyhostname = b.example\n  continued\n")
    run_cli(d, "postconf", "-e", "myhostname=c.example")
    assert (d / "main.cf").read_text() == "myhostname = c.example\nx = 1\n"


def test_e_refuses_bad_value_and_leaves_file_alone(compat_main, confdir, run_cli):
    d = confdir(compat_main)
    r = run_cli(d, "postconf", "-e", "message_size_limit=lots")
    assert r.returncode == 1
    assert 'parameter message_size_limit: bad size value "lots"' in r.stderr
    assert (d / "main.cf").read_text() == compat_main


def test_e_creates_missing_main_cf(tmp_path, run_cli):
    r = run_cli(tmp_path, "postconf", "-e", "myhostname=new.example")
    assert r.returncode == 0
    assert (tmp_path / "main.cf").read_text() == "myhostname = new.example\n"


def test_X_deletes(compat_main, confdir, run_cli):
    d = confdir(compat_main)
    assert run_cli(d, "postconf", "-X", "mydestination", "foo", "nothere").returncode == 0
    assert (d / "main.cf").read_text() == (
        "# main.cf\nmyhostname = mx.example.com\nmydomain   = example.com\nmyorigin   = $mydomain\n"
        "  # this comment line is dropped, the value continues\n")


def test_hash_comments_out(confdir, run_cli):
    # (myorigin: a parameter postconf -n prints; an unused "x = 1" it leaves out.)
    d = confdir("relayhost = [127.0.0.1]:2\nmydestination = a,\n  b\nmyorigin = x.example\n")
    assert run_cli(d, "postconf", "-#", "relayhost", "mydestination").returncode == 0
    assert (d / "main.cf").read_text() == ("#relayhost = [127.0.0.1]:2\n#mydestination = a,\n#  b\n"
                                           "myorigin = x.example\n")
    assert run_cli(d, "postconf", "-n").stdout == "myorigin = x.example\n"


def test_M_prints_normalized_master_cf(confdir, run_cli):
    d = confdir("", MASTER)
    r = run_cli(d, "postconf", "-M")
    assert r.returncode == 0
    assert r.stdout == (
        "smtp       inet  n       -       n       -       -       smtpd\n"
        "submission inet  n       -       n       -       -       smtpd -o syslog_name=postfix/submission "
        "-o { smtpd_recipient_restrictions = permit_sasl_authenticated, reject }\n"
        "qmgr       unix  n       -       n       600     1       qmgr\n"
        # A field wider than its column pushes the next one along (Postfix 3.7).
        "postlog    unix-dgram n  -       n       -       1       postlogd\n")


def test_M_selects_services(confdir, run_cli):
    d = confdir("", MASTER)
    r = run_cli(d, "postconf", "-M", "qmgr/unix", "smtp", "nope/inet")
    assert r.stdout == ("smtp       inet  n       -       n       -       -       smtpd\n"
                        "qmgr       unix  n       -       n       600     1       qmgr\n")
    assert r.stderr == 'postconf: warning: unmatched request: "nope/inet"\n'
    assert r.returncode == 0


def test_M_bad_field_count(confdir, run_cli):
    d = confdir("", MASTER + "broken unix -\n")
    r = run_cli(d, "postconf", "-M")
    assert r.returncode == 1
    assert r.stderr == f"postconf: fatal: {d}/master.cf, line 8: bad field count\n"


def test_bad_option_is_usage_error(confdir, run_cli):
    # Postfix: glibc getopt()'s complaint, then the fatal usage line, exit 1.
    r = run_cli(confdir(""), "postconf", "-Z")
    assert r.returncode == 1
    complaint, usage = r.stderr.splitlines()
    assert complaint == "postconf: invalid option -- 'Z'"
    assert usage.startswith("postconf: fatal: usage: postconf [")
    assert usage.endswith(" [-X (exclude)] [-# (comment-out)] [name...]")


def test_m_lists_the_lookup_table_types(confdir, run_cli):
    r = run_cli(confdir(""), "postconf", "-m")
    assert (r.returncode, r.stderr) == (0, "")
    # hash and btree are accepted (read as the lmdb table built from the file)
    assert r.stdout == "btree\ncidr\nhash\ninline\nlmdb\npcre\nregexp\nstatic\ntexthash\nunix\n"


def test_l_lists_the_mailbox_locking_methods(confdir, run_cli):
    r = run_cli(confdir(""), "postconf", "-l")
    assert (r.returncode, r.stderr, r.stdout) == (0, "", "flock\nfcntl\ndotlock\n")


def test_a_and_A_list_the_sasl_server_and_client_types(tmp_path, run_cli):
    # smtpd_sasl_type = cyrus (mailsys's users file) or dovecot; the smtp
    # client's one type. Neither reads the configuration.
    r = run_cli(tmp_path / "nowhere", "postconf", "-a")
    assert (r.returncode, r.stderr, r.stdout) == (0, "", "cyrus\ndovecot\n")
    r = run_cli(tmp_path / "nowhere", "postconf", "-A")
    assert (r.returncode, r.stderr, r.stdout) == (0, "", "cyrus\n")
    r = run_cli(tmp_path / "nowhere", "postconf", "-a", "-A")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "postconf: fatal: specify one of -a -A\n")


# -- -f: folding, and whitespace as Postfix's pcf_print_line() prints it ----------------

RESTRICTIONS = ("smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated,"
                " reject_unauth_destination, check_policy_service unix:private/policy\n")


def test_f_folds_main_cf_lines_at_word_boundaries(confdir, run_cli):
    # Postfix's postconf_print.c: a word goes on the line while the line
    # stays under 80 columns before its separating space, else on a new
    # line indented by four spaces.
    d = confdir(RESTRICTIONS)
    folded = ("smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated,\n"
              "    reject_unauth_destination, check_policy_service unix:private/policy\n")
    for args in (["-nf"], ["-f", "smtpd_recipient_restrictions"], ["-n", "-f"]):
        r = run_cli(d, "postconf", *args)
        assert (r.returncode, r.stdout) == (0, folded), args
    assert run_cli(d, "postconf", "-n").stdout == RESTRICTIONS
    r = run_cli(d, "postconf", "-hf", "smtpd_recipient_restrictions")
    assert r.stdout == ("permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination,\n"
                        "    check_policy_service unix:private/policy\n")
    # What -f prints is main.cf syntax for the same value.
    again = confdir(folded)
    assert run_cli(again, "postconf", "-n").stdout == RESTRICTIONS


def test_f_fills_a_line_up_to_80_columns():
    from mailsys.cli.postconf_master import print_line
    assert print_line("a" * 70 + " " + "b" * 9, fold=True) == "a" * 70 + " " + "b" * 9
    assert print_line("a" * 70 + " " + "b" * 10, fold=True) == "a" * 70 + "\n    " + "b" * 10
    assert print_line("x" * 90 + " y", fold=True) == "x" * 90 + "\n    y"   # never cut a word
    assert print_line("a  b\tc", fold=False) == "a b c"


def test_whitespace_between_words_prints_as_one_space(confdir, run_cli):
    # pcf_print_line() normalizes the whitespace with or without -f.
    d = confdir("smtpd_banner = $myhostname\tESMTP   $mail_name\n")
    assert run_cli(d, "postconf", "-h", "smtpd_banner").stdout == "$myhostname ESMTP $mail_name\n"
    assert run_cli(d, "postconf", "-n").stdout == "smtpd_banner = $myhostname ESMTP $mail_name\n"


SUBMISSION = ("submission inet n - n - - smtpd -v -o syslog_name=postfix/submission"
              " -o smtpd_tls_security_level=encrypt\n"
              "  -o { smtpd_client_restrictions = permit_sasl_authenticated,"
              " reject_unknown_client_hostname, reject }\n"
              "pipe unix - n n - 2 pipe flags=Fqhu user=uucp"
              " argv=uux -r -n -z -a$sender - $nexthop!rmail ($recipient)\n")


def test_Mf_puts_each_option_with_a_value_on_a_line_of_its_own(confdir, run_cli):
    # Postfix's pcf_print_master_entry() with PCF_FOLD_LINE: a generic
    # option stays on the first line, "-o value" lines are forced, other
    # arguments fold before 80 columns.
    d = confdir("", SUBMISSION)
    r = run_cli(d, "postconf", "-Mf")
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == (
        "submission inet  n       -       n       -       -       smtpd -v\n"
        "    -o syslog_name=postfix/submission\n"
        "    -o smtpd_tls_security_level=encrypt\n"
        "    -o { smtpd_client_restrictions = permit_sasl_authenticated,"
        " reject_unknown_client_hostname, reject }\n"
        "pipe       unix  -       n       n       -       2       pipe flags=Fqhu\n"
        "    user=uucp argv=uux -r -n -z -a$sender - $nexthop!rmail ($recipient)\n")
    assert run_cli(d, "postconf", "-fM", "pipe").stdout.count("\n") == 2
    assert run_cli(d, "postconf", "-M", "pipe").stdout.count("\n") == 1


def test_Pf_folds_like_main_cf_parameters(confdir, run_cli):
    d = confdir("", SUBMISSION)
    r = run_cli(d, "postconf", "-Pf", "submission/inet/smtpd_client_restrictions")
    assert (r.returncode, r.stdout) == (0, (
        "submission/inet/smtpd_client_restrictions = permit_sasl_authenticated,\n"
        "    reject_unknown_client_hostname, reject\n"))
    r = run_cli(d, "postconf", "-P", "submission/inet/smtpd_client_restrictions")
    assert r.stdout == ("submission/inet/smtpd_client_restrictions = permit_sasl_authenticated,"
                        " reject_unknown_client_hostname, reject\n")


# -- which parameters -n and "postconf name" know ------------------------------------------

def test_unused_parameters_are_unknown_to_postconf(confdir, run_cli):
    # Postfix 3.7.11 with "foo = x" in main.cf:
    #   postconf -n        leaves foo out; postconf: warning: .../main.cf: unused parameter: foo=x
    #   postconf foo       postconf: warning: foo: unknown parameter (exit 0)
    d = confdir("foo = x\nmyhostname = mx.example.com\n")
    r = run_cli(d, "postconf", "-n")
    assert (r.returncode, r.stdout) == (0, "myhostname = mx.example.com\n")
    assert r.stderr == f"postconf: warning: {d}/main.cf: unused parameter: foo=x\n"
    r = run_cli(d, "postconf", "foo", "myhostname")
    assert (r.returncode, r.stdout) == (0, "myhostname = mx.example.com\n")
    assert r.stderr == "postconf: warning: foo: unknown parameter\n"
    assert "foo = x" not in run_cli(d, "postconf").stdout


def test_a_postfix_main_cf_s_installation_names_are_known(confdir, run_cli):
    # Lines postfix-install and Debian's main.cf write; Postfix 3.7.11's
    # postconf -n lists them without a warning, and so does mailsys's.
    main = ("readme_directory = no\ncommand_directory = /usr/sbin\n"
            "meta_directory = /etc/postfix\nshlib_directory = /usr/lib/postfix\n"
            "setgid_group = postdrop\nsendmail_path = /usr/sbin/sendmail\n")
    r = run_cli(confdir(main), "postconf", "-n")
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == "".join(sorted(main.splitlines(keepends=True)))


def test_referenced_user_parameters_are_known(confdir, run_cli):
    # postconf_user.c: $name in a main.cf value (an unused one's too) or in a
    # master.cf -o value, or a smtpd_restriction_classes name, makes a
    # name=value a user-defined parameter; the per-transport names of the
    # parameter table are parameters of their own.
    main = ("smtpd_restriction_classes = strict\n"
            "strict = reject_unknown_sender_domain\n"
            "mua_client_restrictions = permit_sasl_authenticated, reject\n"
            "relay_destination_concurrency_limit = 5\n"
            "tld = org\n"
            "mydomain = example.$tld\n"
            "lonely = 1\n")
    master = ("smtp inet n - n - - smtpd\n"
              "relay unix - - n - - smtp\n"
              "submission inet n - n - - smtpd -o smtpd_client_restrictions=$mua_client_restrictions\n")
    d = confdir(main, master)
    r = run_cli(d, "postconf", "-n")
    assert r.stdout == ("mua_client_restrictions = permit_sasl_authenticated, reject\n"
                        "mydomain = example.$tld\n"
                        "relay_destination_concurrency_limit = 5\n"
                        "smtpd_restriction_classes = strict\n"
                        "strict = reject_unknown_sender_domain\n"
                        "tld = org\n")
    assert r.stderr == f"postconf: warning: {d}/main.cf: unused parameter: lonely=1\n"
    r = run_cli(d, "postconf", "strict", "mua_client_restrictions", "tld")
    assert (r.stdout, r.stderr) == ("strict = reject_unknown_sender_domain\n"
                                    "mua_client_restrictions = permit_sasl_authenticated, reject\n"
                                    "tld = org\n", "")
    assert "\ntld = org\n" in run_cli(d, "postconf").stdout
    # Without master.cf's reference the restriction list is unused again.
    r = run_cli(confdir(main, "smtp inet n - n - - smtpd\n"), "postconf", "-n")
    assert "mua_client_restrictions" not in r.stdout
    assert "unused parameter: mua_client_restrictions=" in r.stderr


# -- -H: names without values ------------------------------------------------------------

def test_H_prints_names_only(compat_main, confdir, run_cli):
    d = confdir(compat_main)
    r = run_cli(d, "postconf", "-nH")
    assert (r.returncode, r.stdout) == (0, "mydestination\nmydomain\nmyhostname\nmyorigin\n")
    r = run_cli(d, "postconf", "-H", "relayhost", "nosuchparam", "myorigin")
    assert (r.stdout, r.stderr) == ("relayhost\nmyorigin\n",
                                    "postconf: warning: nosuchparam: unknown parameter\n")
    assert run_cli(d, "postconf", "-xH", "myorigin").stdout == "myorigin\n"
    assert run_cli(d, "postconf", "-dH", "mydomain").stdout == "mydomain\n"
    everything = run_cli(d, "postconf").stdout.splitlines()
    assert run_cli(d, "postconf", "-H").stdout.splitlines() == [
        line.split(" =")[0] for line in everything]


def test_H_with_F_and_P(confdir, run_cli):
    d = confdir("", MASTER)
    r = run_cli(d, "postconf", "-FH", "qmgr/unix")
    assert r.stdout == "".join(f"qmgr/unix/{field}\n" for field in (
        "service", "type", "private", "unprivileged", "chroot", "wakeup", "process_limit", "command"))
    r = run_cli(d, "postconf", "-PH")
    assert r.stdout == ("submission/inet/smtpd_recipient_restrictions\n"
                        "submission/inet/syslog_name\n")


@pytest.mark.parametrize("args, message", [
    (["-hH"], "specify one of -h -H"),
    (["-MH"], "with option -M, do not specify -H"),
    (["-H", "-e", "a=b"], "specify one of -e -H"),
])
def test_H_refused_where_postfix_refuses_it(confdir, run_cli, args, message):
    r = run_cli(confdir("", MASTER), "postconf", *args)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", f"postconf: fatal: {message}\n")


# -- -o: main.cf settings for this command only -------------------------------------------

def test_o_overrides_values_and_expansion(compat_main, confdir, run_cli):
    d = confdir(compat_main)
    r = run_cli(d, "postconf", "-x", "-o", "mydomain = example.org", "myorigin", "mydomain")
    assert (r.returncode, r.stdout) == (0, "myorigin = example.org\nmydomain = example.org\n")
    r = run_cli(d, "postconf", "-o", "mydomain=a.example", "-o", "mydomain=b.example", "mydomain")
    assert r.stdout == "mydomain = b.example\n"
    assert (d / "main.cf").read_text() == compat_main


def test_o_is_set_for_n_and_an_unknown_name_is_unused(compat_main, confdir, run_cli):
    d = confdir(compat_main)
    r = run_cli(d, "postconf", "-n", "-o", "relayhost=[relay.example]", "-o", "newthing=1")
    assert "relayhost = [relay.example]\n" in r.stdout and "newthing" not in r.stdout
    # Postfix 3.7.11 names main.cf for an unused override too.
    assert f"postconf: warning: {d}/main.cf: unused parameter: newthing=1\n" in r.stderr


@pytest.mark.parametrize("override, reason", [
    ("noeq", "missing '=' after attribute name"),
    ("a b=c", "missing '=' after attribute name"),
    ("=v", "missing attribute name"),
])
def test_o_without_name_value_is_fatal(confdir, run_cli, override, reason):
    r = run_cli(confdir(""), "postconf", "-o", override, "relayhost")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == f"postconf: fatal: invalid parameter override: {override}: {reason}\n"


@pytest.mark.skipif(shutil.which("postconf") is None, reason="Postfix is not installed")
def test_o_prints_as_postfixs(compat_main, confdir, run_cli):
    d = confdir(compat_main, "")
    for args in (["-x", "-o", "mydomain = example.org", "myorigin", "mydomain", "mydestination"],
                 ["-o", "relayhost=[relay.$mydomain]", "-xH", "relayhost"],
                 ["-o", "noeq"], ["-o", "mydomain=x", "-d"]):
        ours = run_cli(d, "postconf", *args)
        theirs = subprocess.run(["postconf", "-c", str(d), *args], capture_output=True, text=True,
                                timeout=30)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), args
        if ours.returncode:
            assert ours.stderr == theirs.stderr, args


# -- -C: parameter classes, and the parameters of master.cf's services -----------------------

CLASS_MAIN = """\
myhostname = mx.example.com
relayhost = [relay.$mydomain]
foo = bar $myhostname
bar_maps = hash:/x/$foo
header_checks = $bar_maps
smtpd_restriction_classes = myclass
myclass = reject
relay_destination_concurrency_limit = 3
"""
CLASS_MASTER = """\
smtp      inet  n       -       n       -       -       smtpd
relay     unix  -       -       n       -       -       smtp
mypipe    unix  -       n       n       -       -       pipe flags=R user=nobody argv=/bin/true
myspawn   unix  -       n       n       -       -       spawn user=nobody argv=/bin/true
"""


def test_C_selects_builtin_service_and_user_parameters(confdir, run_cli):
    d = confdir(CLASS_MAIN, CLASS_MASTER)
    r = run_cli(d, "postconf", "-C", "user")
    assert (r.returncode, r.stdout) == (0, "bar_maps = hash:/x/$foo\nfoo = bar $myhostname\n"
                                           "myclass = reject\n")
    assert run_cli(d, "postconf", "-nC", "service").stdout == "relay_destination_concurrency_limit = 3\n"
    assert run_cli(d, "postconf", "-nC", "builtin").stdout == (
        "header_checks = $bar_maps\nmyhostname = mx.example.com\nrelayhost = [relay.$mydomain]\n"
        "smtpd_restriction_classes = myclass\n")
    assert run_cli(d, "postconf", "-n", "-C", "USER, service").stdout == (
        "bar_maps = hash:/x/$foo\nfoo = bar $myhostname\nmyclass = reject\n"
        "relay_destination_concurrency_limit = 3\n")
    # Named parameters are shown whatever their class; an empty -C shows none.
    assert run_cli(d, "postconf", "-C", "user", "myhostname").stdout == "myhostname = mx.example.com\n"
    assert run_cli(d, "postconf", "-n", "-C", ",").stdout == ""


def test_a_services_parameters_are_listed(confdir, run_cli):
    # Postfix's postconf_service.c: a delivery agent's service gets the
    # queue manager's per-transport parameters, pipe and spawn the time limit.
    d = confdir(CLASS_MAIN, CLASS_MASTER)
    service = run_cli(d, "postconf", "-dC", "service").stdout.splitlines()
    assert len(service) == 16 + 17 + 1
    assert "relay_destination_concurrency_limit = $default_destination_concurrency_limit" in service
    assert "relay_initial_destination_concurrency = $initial_destination_concurrency" in service
    assert "mypipe_time_limit = $command_time_limit" in service
    assert [line for line in service if line.startswith("myspawn")] == [
        "myspawn_time_limit = $command_time_limit"]
    assert "relay_destination_concurrency_limit = 3" in run_cli(d, "postconf").stdout.splitlines()
    assert run_cli(d, "postconf", "-dC", "user").stdout == ""


def test_C_with_an_unknown_class_is_fatal(confdir, run_cli):
    r = run_cli(confdir(""), "postconf", "-C", "user,nosuch", "-n")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == 'postconf: fatal: unknown -C option value "nosuch" in "user,nosuch"\n'


@pytest.mark.skipif(shutil.which("postconf") is None, reason="Postfix is not installed")
def test_C_lists_as_postfixs(confdir, run_cli):
    d = confdir(CLASS_MAIN, CLASS_MASTER)
    for args in (["-dC", "service"], ["-C", "user"], ["-xC", "user"], ["-nC", "service,user"],
                 ["-HC", "service"], ["-C", "bogus"]):
        ours = run_cli(d, "postconf", *args)
        theirs = subprocess.run(["postconf", "-c", str(d), *args], capture_output=True, text=True,
                                timeout=30)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), args


# -- -T: the TLS library -----------------------------------------------------------------

def test_T_reports_the_tls_library(tmp_path, run_cli):
    from mailsys import tls

    nowhere = tmp_path / "nowhere"      # -T reads no configuration
    for mode, expected in (("compile-version", tls.compile_version() + "\n"),
                           ("run-version", tls.run_version() + "\n"),
                           ("public-key-algorithms", "".join(f"{a}\n" for a in tls.public_key_algorithms()))):
        r = run_cli(nowhere, "postconf", "-T", mode)
        assert (r.returncode, r.stderr, r.stdout) == (0, "", expected), mode
    r = run_cli(nowhere, "postconf", "-T", "mkdir")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == "postconf: warning: unknown 'postconf -T' mode: mkdir\n"
    r = run_cli(nowhere, "postconf", "-T", "run-version", "-T", "compile-version")
    assert r.stderr == "postconf: fatal: At most one -T <mode> option may be specified\n"


@pytest.mark.skipif(shutil.which("postconf") is None, reason="Postfix is not installed")
def test_T_and_usage_as_postfixs(tmp_path, run_cli):
    def both(*args):
        theirs = subprocess.run(["postconf", "-c", str(tmp_path), *args], capture_output=True,
                                text=True, timeout=30)
        return run_cli(tmp_path, "postconf", *args), theirs

    for mode in ("compile-version", "run-version"):
        for r in both("-T", mode):      # each its own OpenSSL, in the same form
            assert r.returncode == 0
            assert re.fullmatch(r"OpenSSL \d+\.\d+\.\d+\S* +\d+ [A-Z][a-z]{2} \d{4}\n", r.stdout)
    for r in both("-T", "public-key-algorithms"):
        assert set(r.stdout.split()) <= {"dsa", "ecdsa", "rsa"} and r.stdout.endswith("rsa\n")
    ours, theirs = both("-T", "bogus")
    assert (ours.returncode, ours.stdout, ours.stderr) == (1, "", theirs.stderr)
    # The usage line lists the same options, but for Postfix's "-c param_class" slip.
    ours, theirs = both("-Z")
    assert ours.stderr == theirs.stderr.replace("[-c param_class]", "[-C param_class]")
