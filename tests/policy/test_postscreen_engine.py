"""postscreen's SMTP engine (bytes in, Steps out) and its test state / cache records.

The replies and log lines are those a live Postfix 3.7.11 postscreen gave
for the same input (deep tests on, pipelining enforce, non-SMTP enforce or
drop, bare newline ignore or enforce)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mailsys.policy.postscreen_smtp import BARE_NEWLINE, DROP, ENFORCE, IGNORE, NON_SMTP, \
    PIPELINING, CommandList, Engine, EngineSettings
from mailsys.policy.postscreen_tests import DEEP, DNSBL, PREGREET, TESTS, ClientTests, \
    parse_record, retained

sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/memtable.py (tests/ is no package)
from memtable import Table  # noqa: E402

NAMADDR = "[192.0.2.7]:4711"
EHLO_REPLY = (b"250-mx.example\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
              b"250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250 CHUNKING\r\n")


def settings(**kw) -> EngineSettings:
    actions = {PIPELINING: ENFORCE, NON_SMTP: DROP, BARE_NEWLINE: IGNORE}
    actions.update(kw.pop("actions", {}))
    kw.setdefault("smtputf8", False)
    return EngineSettings("mx.example", "mx.example ESMTP Postfix",
                          actions=tuple(actions.items()), **kw)


def run(engine: Engine, data: bytes, step: int | None = None) -> list:
    """Feed data (whole, or `step` bytes at a time) and collect the Steps."""
    steps = []
    chunks = [data] if step is None else [data[i:i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        engine.receive_data(chunk)
        while (s := engine.next_step()) is not None:
            steps.append(s)
    return steps


def replies(steps) -> bytes:
    return b"".join(s.reply for s in steps)


def logs(steps) -> list[str]:
    return [line for s in steps for line in s.log]


@pytest.mark.parametrize("step", [None, 1])
def test_good_client_passes_at_rcpt_and_is_deferred(step):
    engine = Engine(settings(), NAMADDR, todo=set(DEEP))
    # One command at a time: no pipelining, whether fed whole or byte by byte.
    out = []
    for line in (b"EHLO good.example\r\n", b"MAIL FROM:<a@good.example>\r\n",
                 b"RCPT TO:<b@x.example>\r\n", b"QUIT\r\n"):
        out += run(engine, line, step)
    assert replies(out) == (EHLO_REPLY + b"250 2.1.0 Ok\r\n"
                            b"450 4.3.2 Service currently unavailable\r\n221 2.0.0 Bye\r\n")
    assert logs(out) == ["NOQUEUE: reject: RCPT from [192.0.2.7]:4711: 450 4.3.2 Service "
                         "currently unavailable; from=<a@good.example>, to=<b@x.example>, "
                         "proto=ESMTP, helo=<good.example>"]
    assert sorted(p for s in out for p in s.passed) == sorted((t, "ttl") for t in DEEP)
    assert out[-1].close and engine.passed == set(DEEP) and not engine.failed


def test_pipelining_enforced():
    engine = Engine(settings(), NAMADDR, todo={PIPELINING})
    out = run(engine, b"EHLO pipe.example\r\nMAIL FROM:<a@pipe.example>\r\n"
                      b"RCPT TO:<b@x.example>\r\n")
    assert replies(out) == EHLO_REPLY + b"250 2.1.0 Ok\r\n550 5.5.1 Protocol error\r\n"
    assert logs(out) == [
        "COMMAND PIPELINING from [192.0.2.7]:4711 after EHLO: "
        "MAIL FROM:<a@pipe.example>\\r\\nRCPT TO:<b@x.example>\\r\\n",
        "NOQUEUE: reject: RCPT from [192.0.2.7]:4711: 550 5.5.1 Protocol error; "
        "from=<a@pipe.example>, to=<b@x.example>, proto=ESMTP, helo=<pipe.example>"]
    assert out[0].failed == (PIPELINING,) and engine.failed == {PIPELINING}
    assert not engine.passed
    out = run(engine, b"DATA\r\n")
    assert (out[0].reply, out[0].close) == (b"554 5.5.1 Error: no valid recipients\r\n", True)
    assert logs(out) == ["DATA without valid RCPT from [192.0.2.7]:4711"]


def test_pipelining_drop_and_ignore():
    engine = Engine(settings(actions={PIPELINING: DROP}), NAMADDR, todo={PIPELINING})
    out = run(engine, b"QUIT\r\nNOOP\r\n")
    assert (out[0].reply, out[0].close) == (b"521 5.5.1 Protocol error\r\n", True)
    assert logs(out) == ["COMMAND PIPELINING from [192.0.2.7]:4711 after QUIT: NOOP\\r\\n"]
    assert len(out) == 1
    engine = Engine(settings(actions={PIPELINING: IGNORE}), NAMADDR, todo={PIPELINING})
    out = run(engine, b"FOO\r\nBAR\r\n")
    assert replies(out) == b"502 5.5.2 Error: command not recognized\r\n" * 2
    assert logs(out) == ["COMMAND PIPELINING from [192.0.2.7]:4711 after FOO: BAR\\r\\n"]
    # Ignored: a pass for the shortest TTL, and no second report.
    assert out[0].passed == ((PIPELINING, "min"),) and engine.passed == {PIPELINING}


def test_non_smtp_commands():
    engine = Engine(settings(), NAMADDR, todo={NON_SMTP})
    out = run(engine, b"EHLO x\r\n") + run(engine, b"GET / HTTP/1.0\r\n")
    assert out[-1].reply == b"521 5.7.0 Error: I can break rules, too. Goodbye.\r\n"
    assert out[-1].close and out[-1].failed == (NON_SMTP,)
    assert logs(out) == ["NON-SMTP COMMAND from [192.0.2.7]:4711 after EHLO: GET / HTTP/1.0"]
    engine = Engine(settings(actions={NON_SMTP: ENFORCE}), NAMADDR, todo={NON_SMTP})
    out = run(engine, b"GET\r\n") + run(engine, b"Subject: hi\r\n") \
        + run(engine, b"HELO h\r\n") + run(engine, b"MAIL FROM:<a@b>\r\n") \
        + run(engine, b"RCPT TO:<c@d>\r\n")
    # Before any command the "where" is CONNECT; the word is followed by a space.
    assert logs(out)[0] == "NON-SMTP COMMAND from [192.0.2.7]:4711 after CONNECT: GET "
    assert len([line for line in logs(out) if "NON-SMTP" in line]) == 1
    assert out[-1].reply == b"550 5.5.1 Protocol error\r\n" and NON_SMTP in engine.failed
    engine = Engine(settings(actions={NON_SMTP: ENFORCE}), NAMADDR, todo={NON_SMTP})
    out = run(engine, b"FOO\r\n") + run(engine, b"Received: from x\r\n")
    assert logs(out) == ["NON-SMTP COMMAND from [192.0.2.7]:4711 after UNIMPLEMENTED: "
                         "Received: from x"]


def test_forbidden_commands_take_tables_and_negation():
    tables = {"regexp:r": Table({"XYZZY": "Bogus"})}
    forbidden = CommandList.compile(["!connect", "CONNECT", "regexp:r"], tables.__getitem__)
    assert forbidden.match("XYZZY") and not forbidden.match("connect")
    assert not forbidden.match("CONNECT")                 # "!connect" came first
    engine = Engine(settings(forbidden=forbidden), NAMADDR, todo={NON_SMTP})
    assert run(engine, b"XYZZY now\r\n")[0].close
    engine = Engine(settings(forbidden=forbidden), NAMADDR, todo={NON_SMTP})
    assert run(engine, b"CONNECT x\r\n")[0].reply == b"502 5.5.2 Error: command not recognized\r\n"


def test_bare_newline():
    engine = Engine(settings(), NAMADDR, todo={BARE_NEWLINE})
    out = run(engine, b"EHLO bare.example\n") + run(engine, b"MAIL FROM:<a@b>\n")
    assert logs(out) == ["BARE NEWLINE from [192.0.2.7]:4711 after EHLO bare.example"]
    assert out[0].passed == ((BARE_NEWLINE, "min"),)
    out = run(engine, b"RCPT TO:<c@d>\r\n")
    # Already passed ("ignore"): getting to RCPT adds nothing; the reply is the deferral.
    assert out[0].passed == () and out[0].reply.startswith(b"450 4.3.2")
    engine = Engine(settings(actions={BARE_NEWLINE: ENFORCE}), NAMADDR, todo={BARE_NEWLINE})
    out = run(engine, b"HELO x\n")
    assert out[0].reply == b"250 mx.example\r\n" and out[0].failed == (BARE_NEWLINE,)
    assert run(engine, b"MAIL FROM:<>\r\nRCPT TO:<c@d>\r\n")[-1].reply \
        == b"550 5.5.1 Protocol error\r\n"
    engine = Engine(settings(actions={BARE_NEWLINE: DROP}), NAMADDR, todo={BARE_NEWLINE})
    out = run(engine, b"HELO x\n")
    assert (out[0].reply, out[0].close) == (b"521 5.5.1 Protocol error\r\n", True)


def test_tests_not_to_do_stay_silent():
    engine = Engine(settings(), NAMADDR, todo=set())
    out = run(engine, b"EHLO x\nMAIL FROM:<a@b>\r\nGET /\r\nRCPT TO:<c@d>\r\n")
    assert [line for line in logs(out) if "NOQUEUE" not in line] == []
    assert all(not s.passed and not s.failed for s in out)


def test_limits_and_timeout():
    engine = Engine(settings(), NAMADDR, todo=set())
    out = run(engine, b"NOOP\r\n" * 21, 6)
    assert replies(out[:20]) == b"250 2.0.0 Ok\r\n" * 20
    assert (out[20].reply, out[20].close) == (
        b"421 mx.example Service unavailable - try again later\r\n", True)
    assert logs(out) == ["COMMAND COUNT LIMIT from [192.0.2.7]:4711 after NOOP"]
    engine = Engine(settings(command_count_limit=1), NAMADDR)
    assert run(engine, b"NOOP\r\n", 6)[0].reply == b"250 2.0.0 Ok\r\n"
    assert run(engine, b"QUIT\r\n")[0].reply == b"221 2.0.0 Bye\r\n"     # QUIT is exempt
    engine = Engine(settings(), NAMADDR)
    out = run(engine, b"A" * 2100)
    assert logs(out) == ["COMMAND LENGTH LIMIT from [192.0.2.7]:4711 after CONNECT"]
    assert out[0].reply.startswith(b"421 mx.example Service unavailable")
    # 2047 bytes and CRLF fit in line_length_limit (2048); 2048 do not.
    engine = Engine(settings(), NAMADDR)
    assert run(engine, b"X" * 2047 + b"\r\n")[0].reply.startswith(b"502 5.5.2")
    engine = Engine(settings(), NAMADDR)
    assert b"Service unavailable" in run(engine, b"X" * 2048 + b"\r\n")[0].reply
    engine = Engine(settings(), NAMADDR)
    run(engine, b"EHLO x\r\n")
    step = engine.time_limit()
    assert step.reply == b"421 4.4.2 mx.example Error: timeout exceeded\r\n" and step.close
    assert step.log == ("COMMAND TIME LIMIT from [192.0.2.7]:4711 after EHLO",)
    engine = Engine(settings(), NAMADDR)
    engine.receive_data(b"HEL")
    engine.receive_data(b"")
    assert engine.next_step().hangup


def test_command_replies():
    engine = Engine(settings(helo_required=True, disable_vrfy=True), NAMADDR)
    pairs = [(b"EHLO", b"501 Syntax: EHLO hostname"), (b"HELO", b"501 Syntax: HELO hostname"),
             (b"MAIL FROM:<a@b>", b"503 5.5.1 Error: send HELO/EHLO first"),
             (b"RCPT TO:<a@b>", b"503 5.5.1 Error: need MAIL command"),
             (b"HELO h.example", b"250 mx.example"),
             (b"VRFY x", b"502 5.5.1 VRFY command is disabled"),
             (b"VRFY", b"501 5.5.4 Syntax: VRFY address"),
             (b"ETRN", b"500 Syntax: ETRN domain"), (b"ETRN x", b"458 Unable to queue messages"),
             (b"STARTTLS", b"502 5.5.1 Error: command not implemented"),
             (b"AUTH PLAIN", b"502 5.5.2 Error: command not recognized"),
             (b"MAIL", b"501 5.5.4 Syntax: MAIL FROM:<address>"),
             (b"mail from:<a@b> SIZE=10", b"250 2.1.0 Ok"),
             (b"MAIL FROM:<a@b>", b"503 5.5.1 Error: nested MAIL command"),
             (b"RCPT", b"501 5.5.4 Syntax: RCPT TO:<address>"),
             (b"RSET", b"250 2.0.0 Ok"), (b"NOOP", b"250 2.0.0 Ok")]
    for command, reply in pairs:
        assert run(engine, command + b"\r\n")[0].reply == reply + b"\r\n", command
    # postscreen_disable_vrfy_command alone leaves VRFY in the EHLO reply (Postfix 3.7).
    assert b"250-VRFY\r\n" in run(engine, b"EHLO x\r\n")[0].reply
    engine = Engine(settings(ehlo_vrfy=False, discard_ehlo=frozenset({"DSN"})), NAMADDR)
    assert run(engine, b"EHLO x\r\n")[0].reply == (
        b"250-mx.example\r\n250-SIZE 10240000\r\n250-ETRN\r\n250-ENHANCEDSTATUSCODES\r\n"
        b"250-8BITMIME\r\n250 CHUNKING\r\n")
    for data, reply in ((b"DATA x\r\n", b"501 5.5.4 Syntax: DATA"),
                        (b"DATA\r\n", b"503 5.5.1 Error: need RCPT command"),
                        (b"BDAT 10\r\n", b"554 5.5.1 Error: need MAIL command"),
                        (b"BDAT\r\n", b"501 5.5.4 Syntax: BDAT count [LAST]")):
        engine = Engine(settings(), NAMADDR)
        out = run(engine, data)
        assert (out[0].reply, out[0].close) == (reply + b"\r\n", True)
        assert engine.next_step() is None


def test_enforced_reply_soft_bounce_and_filter():
    reply = "550 5.7.1 Service unavailable; client [192.0.2.7] blocked using zen.example"
    rewrite = Table({"RCPT TO:<x@y> FOO": "RCPT TO:<x@y>"})
    engine = Engine(settings(soft_bounce=True, command_filter=rewrite), NAMADDR, rcpt_reply=reply)
    out = run(engine, b"HELO h\r\nMAIL FROM:<@route:a@b>\r\n") \
        + run(engine, b" RCPT TO:<x@y> FOO\r\n")
    assert out[-1].reply == (b"450 4.7.1 Service unavailable; client [192.0.2.7] blocked "
                             b"using zen.example\r\n")
    assert logs(out) == [
        '[192.0.2.7]:4711: replacing command " RCPT TO:<x@y> FOO" with "RCPT TO:<x@y>"',
        "NOQUEUE: reject: RCPT from [192.0.2.7]:4711: 450 4.7.1 Service unavailable; client "
        "[192.0.2.7] blocked using zen.example; from=<a@b>, to=<x@y>, proto=SMTP, helo=<h>"]


def test_require_tls_refuses_mail_commands():
    engine = Engine(settings(require_tls=True), NAMADDR)
    assert run(engine, b"EHLO x\r\n")[0].reply.startswith(b"250-")
    assert run(engine, b"MAIL FROM:<a@b>\r\n")[0].reply \
        == b"530 5.7.0 Must issue a STARTTLS command first\r\n"


# --- the test state and cache records ---------------------------------------------

def test_new_client_record_as_postfix_writes_it():
    enabled = frozenset({PREGREET, *DEEP})
    tests = ClientTests.start(None, enabled, 1000.0)
    assert tests.todo == set(enabled) and tests.new
    tests.pass_test(PREGREET, 1000 + 86400)
    assert not tests.passed_all() and tests.updated()
    # Passed the pregreet test only (left before RCPT): deep stamps stay NEW.
    assert tests.record() == "87400;1;0;0;0"
    for test in DEEP:
        tests.pass_test(test, 1005 + 30 * 86400)
    assert tests.passed_all() and tests.record() == "87400;1;2593005;2593005;2593005"


def test_cached_record_todo_and_pass_old():
    enabled = frozenset({PREGREET, *DEEP})
    tests = ClientTests.start("87400;1;0;0;0", enabled, 2000.0)
    assert tests.todo == set(DEEP) and tests.new and not tests.expired
    assert tests.deep_todo == set(DEEP)
    # An old two-field record: the deep tests read as DISABLED, so not NEW.
    tests = ClientTests.start("87400;1", enabled, 2000.0)
    assert tests.todo == set(DEEP) and not tests.new
    assert parse_record("87400;x;5") == {PREGREET: 87400, DNSBL: 1, "pipelining": 1,
                                         "non_smtp": 1, "bare_newline": 1}
    tests = ClientTests.start("87400;1;2593005;2593005;2593005", enabled, 90000.0)
    assert tests.todo == {PREGREET} and tests.expired


def test_failure_bars_the_record_and_allow_list_passes_the_rest():
    tests = ClientTests.start(None, frozenset(TESTS), 1000.0)
    tests.pass_test(PREGREET, 5000)
    tests.fail_test("pipelining")
    assert not tests.updated() and not tests.passed_all()
    tests = ClientTests.start(None, frozenset({PREGREET, DNSBL, "pipelining"}), 1000.0)
    tests.allow_all(4600)
    tests.pass_test(DNSBL, 4600)
    assert tests.passed_all() and tests.deep_todo == set()
    assert tests.record() == "4600;4600;4600;4600;4600"


def test_cleanup_keeps_only_current_records():
    enabled = frozenset({PREGREET, *DEEP})
    assert retained("87400;1;2593005;2593005;2593005", enabled, 80000)
    assert not retained("87400;1;0;0;0", enabled, 80000)        # deep tests never passed
    assert retained("87400;1;0;0;0", frozenset({PREGREET}), 80000)
    assert not retained("87400;1", frozenset({PREGREET}), 90000)


def test_starttls_offered_and_session_reset():
    engine = Engine(settings(starttls=True), NAMADDR)
    ehlo = run(engine, b"EHLO x\r\n")[0].reply
    assert b"250-STARTTLS\r\n" in ehlo
    assert run(engine, b"STARTTLS now\r\n")[0].reply == b"501 5.5.4 Syntax: STARTTLS\r\n"
    step = run(engine, b"STARTTLS\r\n")[0]
    assert (step.reply, step.starttls) == (b"220 2.0.0 Ready to start TLS\r\n", True)
    engine.tls_started()
    assert engine.helo is None
    assert b"STARTTLS" not in run(engine, b"EHLO x\r\n")[0].reply
    assert run(engine, b"STARTTLS\r\n")[0].reply == b"554 5.5.1 Error: TLS already active\r\n"
    engine = Engine(settings(starttls=True, require_tls=True), NAMADDR)
    run(engine, b"STARTTLS\r\n")
    engine.tls_started()
    assert run(engine, b"MAIL FROM:<a@b>\r\n")[0].reply == b"250 2.1.0 Ok\r\n"
