"""postcat sections and qshape buckets."""

from __future__ import annotations

import time

import pytest

from mailsys.admin.postcat import envelope_records
from mailsys.admin.qshape import Shape, bucket, domain_of, render, tally
from mailsys.message.envelope import Envelope, Notify
from mailsys.queue import Queue, QueueStore

from admin_fixtures import CONTENT, D, S, rcpt, run_process, run_tool


def asctime(t: float) -> str:
    return time.asctime(time.localtime(t))


# -- postcat -------------------------------------------------------------------

@pytest.fixture
def one(setup):
    env = Envelope(queue_id="", sender="", arrival_time=1795738943, size=len(CONTENT),
                   client_name="client.example.org", client_addr="192.0.2.10",
                   client_port=41234, helo="client.example.org", protocol="ESMTP",
                   envid="abc123", ret="HDRS",
                   recipients=(rcpt("gina@remote.example", D, "x",
                                    orcpt="rfc822;gina@remote.example",
                                    notify=(Notify.FAILURE, Notify.DELAY)),
                               rcpt("sent@remote.example", S, "250 ok")))
    with QueueStore.open(setup.queue_dir) as store:
        return store.create(env, CONTENT, Queue.DEFERRED)


def test_postcat_all_sections(capsys, setup, one):
    status, out, err = run_tool(capsys, setup, "postcat", "-q", one)
    assert (status, err) == (0, "")
    where = f"deferred/{one}"
    n = len(CONTENT)
    assert out == "\n".join([
        f"*** ENVELOPE RECORDS {where} ***",
        "message_size: " + "%15d %15d %15d %15d %15d %15d" % (n, 0, 2, 0, n, 0),
        f"message_arrival_time: {asctime(1795738943)}",
        f"create_time: {asctime(1795738943)}",
        f"named_attribute: log_ident={one}",
        "named_attribute: rewrite_context=remote",
        "sender: ",
        "named_attribute: log_client_name=client.example.org",
        "named_attribute: log_client_address=192.0.2.10",
        "named_attribute: log_client_port=41234",
        "named_attribute: log_message_origin=client.example.org[192.0.2.10]",
        "named_attribute: log_helo_name=client.example.org",
        "named_attribute: log_protocol_name=ESMTP",
        "named_attribute: client_name=client.example.org",
        "named_attribute: reverse_client_name=client.example.org",
        "named_attribute: client_address=192.0.2.10",
        "named_attribute: client_port=41234",
        "named_attribute: helo_name=client.example.org",
        "named_attribute: protocol_name=ESMTP",
        "dsn_envid: abc123",
        "dsn_ret: 2",
        "named_attribute: dsn_orig_rcpt=rfc822;gina@remote.example",
        "dsn_notify: 12",
        "original_recipient: gina@remote.example",
        "recipient: gina@remote.example",
        "original_recipient: sent@remote.example",
        "done_recipient: sent@remote.example",
        f"*** MESSAGE CONTENTS {where} ***",
        CONTENT.decode().replace("\r\n", "\n").rstrip("\n"),
        f"*** HEADER EXTRACTED {where} ***",
        f"*** MESSAGE FILE END {where} ***",
    ]) + "\n"
    # The message_size line has Postfix's shape (compare postfix-compat.md 3.5).
    size_line = out.splitlines()[1]
    assert size_line.startswith("message_size:" + " " * (16 - len(str(n))) + str(n) + " ")


def test_postcat_shows_the_sasl_sender_before_the_sender():
    # Postfix 3.7.11 postcat of a message sent with MAIL FROM:<h@x.example>
    # AUTH=<s+2Bq@y.example>:
    #   named_attribute: rewrite_context=local
    #   named_attribute: sasl_sender=<s+2Bq@y.example>
    #   sender: h@x.example
    env = Envelope(queue_id="4jbDmW4NhRzJDXR", sender="h@x.example", arrival_time=1795738943,
                   rewrite_context="local", sasl_sender="<s+2Bq@y.example>",
                   recipients=(rcpt("u@pipex.test", D, ""),))
    lines = envelope_records(env)
    at = lines.index("named_attribute: rewrite_context=local")
    assert lines[at + 1:at + 3] == ["named_attribute: sasl_sender=<s+2Bq@y.example>",
                                    "sender: h@x.example"]
    assert not any("sasl_sender" in line for line in envelope_records(env.replace(sasl_sender="")))


def test_postcat_header_and_body_options(capsys, setup, one):
    # Postfix's postcat prints its "*** ... ***" section lines only with -e
    # (src/postcat/postcat.c: each PRINT_MARKER is under PC_FLAG_PRINT_ENV),
    # and the empty line after the header is the first line of the body
    # state, so -h stops before it and -b starts with it.
    where = f"deferred/{one}"
    text = CONTENT.decode().replace("\r\n", "\n")
    head, _, body = text.partition("\n\n")
    _, out, _ = run_tool(capsys, setup, "postcat", "-h", "-q", one)
    assert out == head + "\n"
    _, out, _ = run_tool(capsys, setup, "postcat", "-bq", one)
    assert out == "\n" + body
    for hb in (("-hb",), ("-b", "-h")):
        _, out, _ = run_tool(capsys, setup, "postcat", *hb, "-q", one)
        assert out == text == head + "\n" + "\n" + body
    # -e alone: the envelope, then every section line with nothing between
    # MESSAGE CONTENTS and HEADER EXTRACTED.
    _, out, _ = run_tool(capsys, setup, "postcat", "-e", "-q", one)
    assert "Subject:" not in out
    assert out.startswith(f"*** ENVELOPE RECORDS {where} ***\n")
    assert out.endswith(f"\nrecipient: gina@remote.example\n"
                        f"original_recipient: sent@remote.example\n"
                        f"done_recipient: sent@remote.example\n"
                        f"*** MESSAGE CONTENTS {where} ***\n"
                        f"*** HEADER EXTRACTED {where} ***\n"
                        f"*** MESSAGE FILE END {where} ***\n")
    # -e with -h or -b: the text chosen, inside the envelope's section lines.
    _, out, _ = run_tool(capsys, setup, "postcat", "-eb", "-q", one)
    assert out.endswith(f"*** MESSAGE CONTENTS {where} ***\n\n{body}"
                        f"*** HEADER EXTRACTED {where} ***\n"
                        f"*** MESSAGE FILE END {where} ***\n")
    _, out, _ = run_tool(capsys, setup, "postcat", "-eh", "-q", one)
    assert out.endswith(f"*** MESSAGE CONTENTS {where} ***\n{head}\n"
                        f"*** HEADER EXTRACTED {where} ***\n"
                        f"*** MESSAGE FILE END {where} ***\n")


def test_postcat_body_of_a_message_without_header(capsys, setup):
    # The first line is empty: it is all body (postcat's first non-header
    # line switches to the body state), and -h prints nothing.
    env = Envelope(queue_id="", sender="a@example.com", arrival_time=1795738943,
                   recipients=(rcpt("b@example.com", D, "x"),))
    with QueueStore.open(setup.queue_dir) as store:
        qid = store.create(env, b"\r\nonly body\r\n", Queue.DEFERRED)
    assert run_tool(capsys, setup, "postcat", "-h", "-q", qid)[1] == ""
    assert run_tool(capsys, setup, "postcat", "-b", "-q", qid)[1] == "\nonly body\n"


def test_postcat_missing_id(capsys, setup, one):
    status, out, err = run_tool(capsys, setup, "postcat", "-q", "NOPE")
    assert (status, out) == (1, "")
    assert err == "postcat: fatal: open queue file NOPE: No such file or directory\n"


POSTCAT_USAGE = (  # src/postcat/postcat.c, seen live with Postfix 3.7.11
    "postcat: fatal: usage: postcat [-b (body text)] [-c config_dir] "
    "[-d (decimal record type)] [-e (envelope records)] [-h (header text)] "
    "[-q (access queue)] [-v] [file(s)...]\n")


def test_postcat_command_line_errors(capsys, setup, one):
    # Postfix 3.7.11's texts: glibc getopt's line before the usage line.
    assert run_tool(capsys, setup, "postcat", "-Z", "-q", one) == (
        1, "", "postcat: invalid option -- 'Z'\n" + POSTCAT_USAGE)
    assert run_tool(capsys, setup, "postcat", "-n", "-q", one) == (
        1, "", "postcat: invalid option -- 'n'\n" + POSTCAT_USAGE)
    assert run_tool(capsys, setup, "postcat", "-s", "x", "-q", one) == (
        1, "", "postcat: fatal: bad offset: x\n")
    assert run_tool(capsys, setup, "postcat", "-q", "bad-id") == (
        1, "", "postcat: fatal: bad mail queue ID: bad-id\n")
    # Without -q Postfix opens the name as a file.
    assert run_tool(capsys, setup, "postcat", "/tmp/nofile") == (
        1, "", "postcat: fatal: open /tmp/nofile: No such file or directory\n")


def test_postcat_config_directory_option(capsys, setup, one, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "main.cf").write_text(f"queue_directory = {tmp_path}/nowhere\n")
    assert run_tool(capsys, setup, "postcat", "-c", str(other), "-q", one) == (
        1, "", f"postcat: fatal: chdir {tmp_path}/nowhere: No such file or directory\n")
    status, out, _ = run_tool(capsys, setup, "postcat", "-s", "0", "-q", one)
    assert status == 0 and out.startswith(f"*** ENVELOPE RECORDS deferred/{one} ***")


@pytest.mark.integration
def test_postcat_errors_as_processes(setup, one):
    r = run_process(setup, "postcat", "-q", "NOPE")
    assert (r.returncode, r.stderr) == (
        1, "postcat: fatal: open queue file NOPE: No such file or directory\n")
    r = run_process(setup, "postcat")
    assert (r.returncode, r.stderr) == (1, POSTCAT_USAGE)
    r = run_process(setup, "postcat", "-q", one)
    assert r.returncode == 0 and r.stdout.startswith(f"*** ENVELOPE RECORDS deferred/{one} ***")


# -- qshape --------------------------------------------------------------------

def test_buckets_double():
    shape = Shape()
    minute = 60
    assert [bucket(a * minute, shape) for a in (0, 4.9, 5, 9.9, 10, 19, 20, 39, 40,
                                                 639, 640, 1279, 1280, 99999)] == \
        [1, 1, 2, 2, 3, 3, 4, 4, 5, 8, 9, 9, 10, 10]


def test_domains_as_qshape_files_them():
    assert domain_of("User@Sub.Example.COM") == "sub.example.com"
    assert domain_of("") == "MAILER-DAEMON"
    assert domain_of("a@example..com.") == "example.com"


def test_table_layout():
    now = 1_800_000_000.0
    envs = [(Envelope(queue_id="", sender="a@x.example", arrival_time=now - age * 60,
                      recipients=(rcpt("r1@remote.example"), rcpt("r2@remote.example"),
                                  rcpt("r3@other.example"), rcpt("done@gone.example", S))),
             Queue.DEFERRED) for age in (1, 30, 2000)]
    counts, subs = tally(envs, now, Shape())
    text = render(counts, subs, Shape())
    heads = ["T", "5", "10", "20", "40", "80", "160", "320", "640", "1280", "1280+"]
    widths = [3] * 6 + [4, 4, 4, 5, 6]
    dw = 80 - sum(widths)

    def row(name, cells):
        return name.rjust(dw) + "".join(str(c).rjust(w) for c, w in zip(cells, widths)) + "\n"
    assert text == (row("", heads)
                    + row("TOTAL", [9, 3, 0, 0, 3, 0, 0, 0, 0, 0, 3])
                    + row("remote.example", [6, 2, 0, 0, 2, 0, 0, 0, 0, 0, 2])
                    + row("other.example", [3, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1]))
    assert all(len(line) == 80 for line in text.splitlines())
    by_sender = render(*tally(envs, now, Shape(), by_sender=True), Shape())
    assert by_sender.splitlines()[2].split() == ["x.example", "3", "1", "0", "0", "1",
                                                 "0", "0", "0", "0", "0", "1"]


def test_parent_domains():
    now = 1_800_000_000.0
    envs = [(Envelope(queue_id="", sender="a@b", arrival_time=now,
                      recipients=tuple(rcpt(f"u@h{i}.example.com") for i in range(5))),
             Queue.INCOMING)]
    lines = render(*tally(envs, now, Shape(parents=True)), Shape(parents=True)).splitlines()
    assert lines[2].split()[:2] == [".example.com", "5"]
    lines = render(*tally(envs, now, Shape(parents=True, min_subdomains=6)),
                   Shape(parents=True, min_subdomains=6)).splitlines()
    assert not any(".example.com" == line.split()[0] for line in lines[1:])


def test_qshape_cli(capsys, setup, queue):
    status, out, err = run_tool(capsys, setup, "qshape")
    assert (status, err) == (0, "")
    # Default queues are incoming and active: 3 + 2 undelivered recipients.
    assert out.splitlines()[1].split()[:2] == ["TOTAL", "5"]
    status, out, _ = run_tool(capsys, setup, "qshape", "deferred", "hold")
    assert out.splitlines()[1].split()[:2] == ["TOTAL", "7"]
    assert out.splitlines()[2].split()[:2] == ["remote.example", "6"]
    status, out, _ = run_tool(capsys, setup, "qshape", "-s", "hold")
    assert out.splitlines()[2].split()[:2] == ["example.com", "1"]
    status, out, err = run_tool(capsys, setup, "qshape", "bogus")
    assert (status, out, err) == (1, "", "qshape: fatal: invalid queue name: bogus\n")
    status, _, err = run_tool(capsys, setup, "qshape", "-b", "x")
    assert status == 1 and err.startswith("qshape: fatal: usage: qshape")
