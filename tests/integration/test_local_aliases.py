"""Local aliases end to end through a real master: smtpd -> cleanup -> qmgr -> local,
with alias_maps = hash:FILE built by `mailsys newaliases`; forwarded copies go back
through cleanup and out to a sink relayhost."""

from __future__ import annotations

import os
import pwd
import re
import runpy
import shutil
import smtplib
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

here = Path(__file__).parent
sinks = SimpleNamespace(**runpy.run_path(str(here / "smtpsink.py")))
h = SimpleNamespace(**runpy.run_path(str(here / "smtpd_helpers.py")))

MASTER = ["cleanup unix - - n - 0 cleanup", "qmgr unix n - n 300 1 qmgr",
          "bounce unix - - n - 0 bounce", "smtp unix - - n - - smtp",
          "relay unix - - n - - smtp", "local unix - n n - - local"]
STATUS = r"delay=[\d.]+, delays=[\d.]+/[\d.]+/0/[\d.]+, dsn=2\.0\.0, status=sent"


@pytest.fixture
def out_dir():
    """Where commands and files of aliases write: the default_privs user
    (nobody) may not enter pytest's directories."""
    d = Path(tempfile.mkdtemp(prefix="msal", dir="/tmp"))
    os.chmod(d, 0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_site(mailsys_instance, tmp_path, out_dir):
    """make_site(**main_cf): the master started with these aliases and main.cf additions."""
    inst = mailsys_instance
    spool = tmp_path / "spool"
    spool.mkdir()
    members = tmp_path / "members"
    members.write_text("# list members\nfar4@example.net\nalice\n")
    commands = tmp_path / "commands"
    commands.write_text(f'"|/bin/sh -c \'cat > {out_dir}/inc.out\'"\n{out_dir}/inc.file\n')
    aliases = tmp_path / "aliases"
    aliases.write_text(f"# aliases(5)\npostmaster: root\nroot: alice\n"
                       f"remote: far@example.net,\n  alice\n"
                       f"list: :include:{members}\nowner-list: alice\n"
                       f"pipe: \"|/bin/sh -c 'id -u > {out_dir}/pipe.out; env >> "
                       f"{out_dir}/pipe.out; cat >> {out_dir}/pipe.out'\"\n"
                       f"tempfail: \"|/bin/sh -c 'echo try later; exit 75'\"\n"
                       f"file: {out_dir}/file.out\n"
                       f"where: \"|/bin/sh -c 'pwd > {out_dir}/where.out'\"\n"
                       f"incpipe: :include:{commands}\n")
    sink = sinks.SmtpSink()
    sink_thread = sinks.SinkThread(sink)
    sink_port = sink_thread.__enter__()

    def make(**main):
        port = inst.free_port()
        inst.write_config(
            master_cf=[*MASTER, f"127.0.0.1:{port} inet n - n - - smtpd"],
            main_cf={"relayhost": f"[127.0.0.1]:{sink_port}", "mydestination": "example.test",
                     "myorigin": "example.test", "mynetworks": "127.0.0.0/8",
                     "mail_spool_directory": str(spool), "local_recipient_maps": "",
                     "alias_database": f"hash:{aliases}", "alias_maps": "$alias_database",
                     **{k: v.replace("SINK", str(sink_port)) for k, v in main.items()}})
        r = inst.cli("newaliases")
        assert (r.returncode, r.stderr) == (0, "")
        inst.start()
        inst.wait_until(lambda: h.listening(port))
        return SimpleNamespace(inst=inst, port=port, spool=spool, sink=sink)
    try:
        yield make
    finally:
        inst.stop()
        sink_thread.__exit__(None, None, None)


@pytest.fixture
def site(make_site):
    return make_site()


def send(site, rcpt: str, sender: str = "sender@example.org") -> str:
    with smtplib.SMTP("127.0.0.1", site.port, timeout=10) as s:
        s.ehlo("c.example")
        s.mail(sender)
        s.rcpt(rcpt)
        return h.qid_of(s.data(f"Subject: to {rcpt}\r\n\r\nhello\r\n".encode())[1])


def test_alias_to_a_local_user_is_delivered_to_her_mailbox(site):
    qid = send(site, "postmaster@example.test")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    assert re.search(rf"mailsys/local\[\d+\]: {qid}: to=<alice@example\.test>, "
                     rf"orig_to=<postmaster@example\.test>, relay=local, {STATUS} "
                     rf"\(delivered to mailbox\)", log), log
    box = (site.spool / "alice").read_bytes()
    # frozen_delivered_to = yes: the address the delivery started with
    # (Postfix 3.7.11, root: nobody, wrote "X-Original-To: root@bench.localdomain"
    # and "Delivered-To: root@bench.localdomain" into nobody's mailbox).
    assert b"X-Original-To: postmaster@example.test\nDelivered-To: postmaster@example.test\n" \
        in box
    assert b"Subject: to postmaster@example.test\n" in box
    assert not (site.spool / "root").exists() and not (site.spool / "postmaster").exists()


def test_delivered_to_follows_frozen_delivered_to_and_prepend_delivered_header(make_site):
    # Postfix 3.7.11: frozen_delivered_to = no gave "Delivered-To:
    # nobody@bench.localdomain" for root: nobody; prepend_delivered_header
    # without "forward" leaves the forwarded copy without one.
    site = make_site(frozen_delivered_to="no", prepend_delivered_header="file")
    qid = send(site, "remote@example.test")
    site.inst.wait_log(f"{qid}: removed", timeout=20)
    box = (site.spool / "alice").read_bytes()
    assert b"X-Original-To: remote@example.test\nDelivered-To: alice@example.test\n" in box
    site.inst.wait_until(lambda: site.sink.messages)
    [message] = site.sink.messages
    assert b"Delivered-To:" not in message.data.split(b"\r\n\r\n")[0]


def test_alias_to_a_remote_address_is_forwarded_through_cleanup(site):
    qid = send(site, "remote@example.test")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    found = re.search(rf"mailsys/local\[\d+\]: {qid}: to=<remote@example\.test>, relay=local, "
                      rf"{STATUS} \(forwarded as (\w+)\)", log)
    assert found, log
    new = found.group(1)
    assert new != qid
    # the local member of the same alias is delivered here, in the same pass
    assert re.search(rf"{qid}: to=<alice@example\.test>, orig_to=<remote@example\.test>, "
                     rf"relay=local, {STATUS} \(delivered to mailbox\)", log), log
    log = site.inst.wait_log(f"{new}: removed", timeout=20)
    assert f"{new}: from=<sender@example.org>," in log
    assert re.search(rf"{new}: to=<far@example\.net>, orig_to=<remote@example\.test>, "
                     rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent", log), log
    [message] = site.sink.messages
    assert (message.sender, message.rcpts) == ("sender@example.org", ["far@example.net"])
    head = message.data.split(b"\r\n\r\n")[0]
    lines = head.split(b"\r\n")
    assert lines[0] == b"Received: by mx.example.test (mailsys)"
    assert lines[1].startswith(f"\tid {new}; ".encode())
    assert lines[2] == b"Delivered-To: remote@example.test"
    assert f"with ESMTP id {qid}".encode() in head      # the original message follows


def test_include_list_with_owner_forwards_every_member_from_the_owner(site):
    qid = send(site, "list@example.test")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    found = re.search(rf"{qid}: to=<list@example\.test>, relay=local, {STATUS} "
                      rf"\(forwarded as (\w+)\)", log)
    assert found, log
    new = found.group(1)
    log = site.inst.wait_log(f"{new}: removed", timeout=20)
    assert f"{new}: from=<owner-list@example.test>, size=" in log
    # a mailing list starts afresh: no orig_to= in the copy's lines (as Postfix)
    assert re.search(rf"{new}: to=<alice@example\.test>, relay=local, {STATUS} "
                     rf"\(delivered to mailbox\)", log), log
    assert re.search(rf"{new}: to=<far4@example\.net>, relay=127\.0\.0\.1", log), log
    [message] = site.sink.messages
    assert (message.sender, message.rcpts) == ("owner-list@example.test", ["far4@example.net"])
    assert b"Delivered-To: list@example.test\r\n" in message.data
    box = (site.spool / "alice").read_bytes()
    assert b"Return-Path: <owner-list@example.test>\n" in box


def test_command_gets_the_message_as_default_privs(site, out_dir):
    qid = send(site, "pipe@example.test")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    command = (f"/bin/sh -c 'id -u > {out_dir}/pipe.out; env >> {out_dir}/pipe.out; "
               f"cat >> {out_dir}/pipe.out'")
    assert re.search(rf"mailsys/local\[\d+\]: {qid}: to=<pipe@example\.test>, relay=local, "
                     rf"{STATUS} \(delivered to command: {re.escape(command)}\)", log), log
    lines = (out_dir / "pipe.out").read_text().splitlines()
    if os.geteuid() == 0:
        assert lines[0] == str(pwd.getpwnam("nobody").pw_uid)
    env = dict(line.split("=", 1) for line in lines[1:] if re.match(r"^[A-Z_]+=", line))
    for name, value in {"USER": "pipe", "LOGNAME": "pipe", "LOCAL": "pipe",
                        "DOMAIN": "example.test", "RECIPIENT": "pipe@example.test",
                        "ORIGINAL_RECIPIENT": "pipe@example.test",
                        "SENDER": "sender@example.org", "PATH": "/usr/bin:/bin",
                        "CLIENT_ADDRESS": "127.0.0.1", "CLIENT_HELO": "c.example",
                        "CLIENT_PROTOCOL": "ESMTP"}.items():
        assert env.get(name) == value, (name, env)
    assert "HOME" not in env and "SHELL" not in env      # not for default_privs (Postfix)
    start = next(i for i, line in enumerate(lines) if line.startswith("From sender@example.org  "))
    assert lines[start + 1:start + 4] == ["Return-Path: <sender@example.org>",
                                          "X-Original-To: pipe@example.test",
                                          "Delivered-To: pipe@example.test"]
    assert "Subject: to pipe@example.test" in lines and lines[-1] == "hello"


def test_command_gets_the_sasl_sender_of_mail_from(make_site, out_dir, tmp_path):
    # Postfix 3.7.11, MAIL FROM:<a@x.example> AUTH=<s+2Bq@y.example> to an
    # alias "|/bin/sh -c 'env > ...'": SASL_SENDER=_s+2Bq@y.example_ (the
    # AUTH= value as sent, through command_expansion_filter like every
    # exported value).
    (tmp_path / "sasl_users").write_text("")
    site = make_site(smtpd_sasl_auth_enable="yes", smtpd_sasl_users_file=str(tmp_path / "sasl_users"))
    with smtplib.SMTP("127.0.0.1", site.port, timeout=10) as s:
        s.ehlo("c.example")
        assert s.docmd("MAIL FROM:<sender@example.org> AUTH=<s+2Bq@y.example>")[0] == 250
        assert s.docmd("RCPT TO:<pipe@example.test>")[0] == 250
        qid = h.qid_of(s.data(b"Subject: auth\r\n\r\nhello\r\n")[1])
    site.inst.wait_log(f"{qid}: removed", timeout=20)
    lines = (out_dir / "pipe.out").read_text().splitlines()
    assert "SASL_SENDER=_s+2Bq@y.example_" in lines, lines


def test_command_gets_the_addresses_unquoted(site, out_dir):
    # local/command.c exports the internal form, without the quotes of a
    # quoted local part; command_expansion_filter then makes the space "_".
    with smtplib.SMTP("127.0.0.1", site.port, timeout=10) as s:
        s.ehlo("c.example")
        assert s.docmd('MAIL FROM:<"s p"@example.org>')[0] == 250
        assert s.docmd("RCPT TO:<pipe@example.test>")[0] == 250
        qid = h.qid_of(s.data(b"Subject: quoted\r\n\r\nhello\r\n")[1])
    site.inst.wait_log(f"{qid}: removed", timeout=20)
    lines = (out_dir / "pipe.out").read_text().splitlines()
    assert "SENDER=s_p@example.org" in lines, lines


def test_command_exit_75_defers_and_file_destination_appends(site, out_dir):
    qid = send(site, "tempfail@example.test")
    log = site.inst.wait_log(f"{qid}: to=<tempfail@example.test>", timeout=20)
    assert re.search(rf"{qid}: to=<tempfail@example\.test>, relay=local, delay=[\d.]+, "
                     rf"delays=[\d.]+/[\d.]+/0/[\d.]+, dsn=4\.3\.0, status=deferred "
                     rf"\(temporary failure\. Command output: try later \)", log), log
    qid = send(site, "file@example.test")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    assert re.search(rf"{qid}: to=<file@example\.test>, relay=local, {STATUS} "
                     rf"\(delivered to file: {re.escape(str(out_dir))}/file\.out\)", log), log
    data = (out_dir / "file.out").read_bytes()
    assert data.startswith(b"From sender@example.org  ")
    assert b"\nX-Original-To: file@example.test\nDelivered-To: file@example.test\n" in data
    assert data.endswith(b"\nhello\n\n")
    if os.geteuid() == 0:
        assert (out_dir / "file.out").stat().st_uid == pwd.getpwnam("nobody").pw_uid


def test_include_file_may_not_name_commands_or_files(site, out_dir):
    qid = send(site, "incpipe@example.test")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    for what in ("command", "file"):
        assert re.search(rf"{qid}: to=<incpipe@example\.test>, relay=local, delay=[\d.]+, "
                         rf"delays=[\d.]+/[\d.]+/0/[\d.]+, dsn=5\.7\.1, status=bounced "
                         rf"\(mail to {what} is restricted\)", log), log
    assert f"{qid}: sender non-delivery notification:" in log
    assert not (out_dir / "inc.out").exists() and not (out_dir / "inc.file").exists()


def test_mailbox_command_runs_as_the_user_and_root_as_default_privs(make_site, out_dir):
    out = f"{out_dir}/mc.$USER"
    command = f"/bin/sh -c 'id -u > {out}; env >> {out}; cat >> {out}'"
    # main.cf expands $name in a table's spec: $$ keeps the shell's $USER
    spec = command.replace("$", "$$")
    site = make_site(mailbox_command_maps=f"inline:{{ {{nobody={spec}}}, {{root={spec}}} }}",
                     alias_maps="", recipient_delimiter="+")
    nobody = pwd.getpwnam("nobody")
    for user in ("nobody", "root"):
        qid = send(site, f"{user}+ext@example.test")
        log = site.inst.wait_log(f"{qid}: removed", timeout=20)
        assert re.search(rf"{qid}: to=<{user}\+ext@example\.test>, relay=local, {STATUS} "
                         rf"\(delivered to command: {re.escape(command)}\)", log), log
        lines = (out_dir / f"mc.{user}").read_text().splitlines()
        if os.geteuid() == 0:
            assert lines[0] == str(nobody.pw_uid)      # root's command too: never as root
        env = dict(line.split("=", 1) for line in lines[1:] if re.match(r"^[A-Z_]+=", line))
        home = pwd.getpwnam(user).pw_dir
        assert (env["USER"], env["EXTENSION"], env["LOCAL"], env["HOME"]) == (
            user, "ext", f"{user}+ext", home)
    # a user the maps do not name still gets her mailbox
    qid = send(site, "alice@example.test")
    site.inst.wait_log(f"{qid}: removed", timeout=20)
    assert (site.spool / "alice").exists()


def test_luser_relay_takes_mail_for_users_without_a_password_entry(make_site):
    site = make_site(luser_relay="$user+lost@relay.example", recipient_delimiter="+")
    qid = send(site, "ghost@example.test")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    found = re.search(rf"{qid}: to=<ghost@example\.test>, relay=local, {STATUS} "
                      rf"\(forwarded as (\w+)\)", log)
    assert found, log
    log = site.inst.wait_log(f"{found.group(1)}: removed", timeout=20)
    assert re.search(rf"{found.group(1)}: to=<ghost\+lost@relay\.example>, "
                     rf"orig_to=<ghost@example\.test>, relay=127", log), log
    assert [m.rcpts for m in site.sink.messages] == [["ghost+lost@relay.example"]]
    assert not (site.spool / "ghost").exists()


def test_mailbox_transport_hands_the_delivery_to_another_agent(make_site):
    site = make_site(mailbox_transport_maps="inline:{ alice=relay:[127.0.0.1]:SINK }")
    qid = send(site, "postmaster@example.test")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    # the other agent delivers and logs; local logs nothing for it (Postfix deliver_pass)
    # (the relay service is the smtp program, which logs as smtp)
    assert re.search(rf"mailsys/smtp\[\d+\]: {qid}: to=<alice@example\.test>, "
                     rf"orig_to=<postmaster@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, "
                     rf".*status=sent \(250 ", log), log
    assert not re.search(rf"local\[\d+\]: {qid}: to=<alice", log), log
    assert [(m.sender, m.rcpts) for m in site.sink.messages] == [
        ("sender@example.org", ["alice@example.test"])]
    assert not (site.spool / "alice").exists()


def test_dotforward_on_forward_path(make_site, out_dir):
    forward = out_dir / "nobody.forward"
    forward.write_text(f'\\nobody, far6@example.net\n"|/bin/sh -c \'id -u > {out_dir}/fwd.out\'"\n'
                       f"nobody\n")
    os.chmod(forward, 0o644)
    site = make_site(forward_path=f"{out_dir}/$user.forward${{recipient_delimiter}}${{extension}}, "
                                  f"{out_dir}/$user.forward")
    qid = send(site, "nobody@example.test")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    lines = [line for line in log.splitlines() if f"local[" in line and f"{qid}: to=" in line]
    # as Postfix 3.7 logged the same .forward: mailbox once, the command, the forward
    assert [re.sub(r".*status=", "", line) for line in lines[:2]] == [
        "sent (delivered to mailbox)",
        f"sent (delivered to command: /bin/sh -c 'id -u > {out_dir}/fwd.out')"]
    assert all(f"{qid}: to=<nobody@example.test>, relay=local," in line for line in lines), lines
    found = re.search(r"status=sent \(forwarded as (\w+)\)", lines[2])
    assert found and len(lines) == 3, lines
    log = site.inst.wait_log(f"{found.group(1)}: removed", timeout=20)
    assert re.search(rf"{found.group(1)}: to=<far6@example\.net>, orig_to=<nobody@example\.test>, "
                     rf"relay=127", log), log
    assert (site.spool / "nobody").read_bytes().count(b"\nSubject: to nobody@example.test\n") == 1
    if os.geteuid() == 0:
        assert (out_dir / "fwd.out").read_text().strip() == str(pwd.getpwnam("nobody").pw_uid)


def test_a_table_never_built_is_one_fatal_line(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = inst.free_port()
    inst.write_config(master_cf=[*MASTER, f"127.0.0.1:{port} inet n - n - - smtpd"],
                      main_cf={"mydestination": "example.test",
                               "alias_maps": f"hash:{tmp_path}/aliases"})
    inst.start()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as s:
            s.ehlo("c.example")
    # as Postfix: "fatal: open database /etc/aliases.db: No such file or directory"
    log = inst.wait_log(f"fatal: open database {tmp_path}/aliases.lmdb: No such file or directory "
                        f"(hash:{tmp_path}/aliases is read from {tmp_path}/aliases.lmdb: "
                        f'build it with "mailsys postmap hash:{tmp_path}/aliases", or '
                        f'"mailsys postalias hash:{tmp_path}/aliases" for an aliases file)')
    assert "Traceback" not in log and "unexpected error" not in log


def test_newaliases_takes_effect_without_a_reload(site, tmp_path):
    aliases = tmp_path / "aliases"
    aliases.write_text(aliases.read_text().replace("remote: far@example.net,\n  alice\n",
                                                   "remote: bob\n"))
    r = site.inst.cli("newaliases")
    assert (r.returncode, r.stderr) == (0, "")
    qid = send(site, "remote@example.test")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    assert re.search(rf"{qid}: to=<bob@example\.test>, orig_to=<remote@example\.test>, "
                     rf"relay=local, {STATUS} \(delivered to mailbox\)", log), log
    assert site.sink.messages == [] and not (site.spool / "alice").exists()


@pytest.mark.parametrize("setting", ["", "OUT/$local", "OUT/missing"])
def test_command_execution_directory(make_site, out_dir, setting):
    # local(8): "The current working directory is the mail queue directory",
    # unless command_execution_directory ($names expanded) says otherwise;
    # failing to enter it defers the mail.
    (out_dir / "where").mkdir()
    site = make_site(**({"command_execution_directory": setting.replace("OUT", str(out_dir))}
                        if setting else {}))
    qid = send(site, "where@example.test")
    if setting.endswith("missing"):
        log = site.inst.wait_log(f"{qid}: to=<where@example.test>", timeout=20)
        assert re.search(rf'mailsys/local\[\d+\]: fatal: cannot change directory to '
                         rf'"{out_dir}/missing" for uid=\d+ gid=\d+: No such file or directory', log)
        assert "status=deferred" in log and not (out_dir / "where.out").exists()
        return
    site.inst.wait_log(f"{qid}: removed", timeout=20)
    expected = out_dir / "where" if setting else site.inst.queue_dir
    assert (out_dir / "where.out").read_text().strip() == str(Path(expected).resolve())


def test_local_delivery_status_filter_rewrites_the_logged_status(make_site, tmp_path):
    # Postfix 3.7.11 with the same regexp table logged "dsn=2.0.0,
    # status=sent (stored in the mailbox)" and, for an unknown user,
    # "dsn=4.3.0, status=deferred (no such user: "nosuchuser")".
    table = tmp_path / "dsnf"
    table.write_text("/^2\\.0\\.0 delivered to mailbox$/ 2.0.0 stored in the mailbox\n")
    site = make_site(local_delivery_status_filter=f"regexp:{table}")
    qid = send(site, "postmaster@example.test")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    assert re.search(rf"mailsys/local\[\d+\]: {qid}: to=<alice@example\.test>, "
                     rf"orig_to=<postmaster@example\.test>, relay=local, {STATUS} "
                     rf"\(stored in the mailbox\)", log), log
